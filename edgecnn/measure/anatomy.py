"""Where the bytes of a .tflite file go, and which ops it runs (``edgecnn inspect``).

Reads the flatbuffer directly with the generated TFLite schema that ships with ai-edge-litert
(TensorFlow's own copy when LiteRT is not installed), so it runs on the light device install and
never builds an interpreter. The file is untrusted: the identifier is checked, every vector
length is checked against the file size before it is walked, and a malformed file is one
``ModelFileError``.

Sections of the file (each stored vector counted once, however many tables point at it):

* constants: the tensor buffers (weights, biases, other constant tensors) by tensor type;
* quantization scales (float32) and zero points (int64, one per channel for per-channel
  tensors; ``edgecnn export`` stores each distinct zero-point vector once, see
  ``edgecnn/export/compact.py``, and ``zero_point_vectors`` shows it: stored vs referenced);
* metadata: the named metadata buffers (``min_runtime_version``, ``CONVERSION_METADATA``,
  ``TFLITE_METADATA``, ...), and the associated files (labels) archived after the flatbuffer;
* other: the graph itself (operators, tensor tables, names, signatures) and alignment padding.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import List

from edgecnn.errors import ModelFileError, RuntimeNotAvailableError

_WIDTH = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "STRING": 1, "BOOL": 1,
          "INT16": 2, "COMPLEX64": 8, "INT8": 1, "FLOAT64": 8, "COMPLEX128": 16, "UINT64": 8,
          "UINT32": 4, "UINT16": 2, "INT4": 1}


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as fb
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as fb
        except ImportError:
            raise RuntimeNotAvailableError("edgecnn inspect needs the TFLite schema: pip install ai-edge-litert "
                                           "(the light install has it)") from None
    return fb


def _names(enum_class) -> dict:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


class _Reader:
    """Bounds checks for vectors read from an untrusted flatbuffer."""

    def __init__(self, path: Path, size: int):
        self.path, self.size = path, size

    def count(self, n: int, what: str, min_bytes: int = 1) -> int:
        if n < 0 or n * min_bytes > self.size:
            raise ModelFileError(f"{self.path}: malformed .tflite ({what}: {n} entries in a {self.size}-byte file)")
        return n


def tflite_breakdown(path) -> dict:
    """Size of each section of a .tflite file, tensor counts, and the ops per subgraph."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFileError(f"cannot read {path}: {e.strerror or e}") from None
    fb = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFileError(f"{path} is not a TFLite flatbuffer (no 'TFL3' identifier at byte 4)")
    try:
        return _breakdown(fb, path, data)
    except ModelFileError:
        raise
    except Exception as e:  # offsets that point outside the file, truncated tables, bad unions
        raise ModelFileError(f"{path}: malformed .tflite ({type(e).__name__}: {e})") from None


def _breakdown(fb, path: Path, data: bytes) -> dict:
    rd = _Reader(path, len(data))
    types, builtin = _names(fb.TensorType), _names(fb.BuiltinOperator)
    model = fb.Model.GetRootAs(data, 0)
    n_buffers = rd.count(model.BuffersLength(), "buffers", 4)

    def buffer_bytes(index: int) -> int:
        if not 0 <= index < n_buffers:
            return 0
        buf = model.Buffers(index)
        if buf is None:
            return 0
        n = buf.DataLength()
        if not n and buf.Offset() > 1:  # stored after the flatbuffer (models over 2 GB)
            n = buf.Size()
        return rd.count(n, "buffer data")

    constants, n_const = Counter(), Counter()
    largest = []
    seen_buffers, seen_vectors = set(), set()
    scale_bytes = zero_bytes = per_channel_tensors = per_channel_entries = 0
    zero_refs = 0
    ops: List[dict] = []
    tensors = 0
    n_subgraphs = rd.count(model.SubgraphsLength(), "subgraphs", 4)
    for si in range(n_subgraphs):
        sg = model.Subgraphs(si)
        n_tensors = rd.count(sg.TensorsLength(), "tensors", 4)
        tensors += n_tensors
        for ti in range(n_tensors):
            t = sg.Tensors(ti)
            dtype = types.get(t.Type(), str(t.Type())).lower()
            if t.Buffer() not in seen_buffers:
                seen_buffers.add(t.Buffer())
                n = buffer_bytes(t.Buffer())
                if n:
                    constants[dtype] += n
                    n_const[dtype] += 1
                    name = t.Name().decode("utf-8", "replace") if t.Name() else f"tensor {ti}"
                    shape = [int(v) for v in t.ShapeAsNumpy()] if t.ShapeLength() else []
                    largest.append({"tensor": name, "dtype": dtype, "shape": shape, "bytes": n})
            q = t.Quantization()
            if q is None:
                continue
            n_scale = rd.count(q.ScaleLength(), "quantization scales", 4)
            n_zero = rd.count(q.ZeroPointLength(), "quantization zero points", 8)
            for slot, n, width, kind in ((8, n_scale, 4, "scale"), (10, n_zero, 8, "zero")):
                off = q._tab.Offset(slot)
                if not (n and off):
                    continue
                if kind == "zero":
                    zero_refs += 1
                pos = q._tab.Vector(off)  # the vector's position in the file: shared vectors count once
                if (kind, pos) in seen_vectors:
                    continue
                seen_vectors.add((kind, pos))
                if kind == "scale":
                    scale_bytes += width * n
                else:
                    zero_bytes += width * n
            if n_scale > 1:
                per_channel_tensors += 1
                per_channel_entries += n_scale
        for oi in range(rd.count(sg.OperatorsLength(), "operators", 4)):
            ops.append({"subgraph": si, "index": oi, "opcode": sg.Operators(oi).OpcodeIndex()})

    opcodes = []
    for i in range(rd.count(model.OperatorCodesLength(), "operator codes", 4)):
        oc = model.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))  # the schema's own rule
        if builtin.get(code) == "CUSTOM":
            opcodes.append("CUSTOM:" + (oc.CustomCode() or b"?").decode("utf-8", "replace"))
        else:
            opcodes.append(builtin.get(code, f"BUILTIN_{code}"))
    for op in ops:
        op["op"] = opcodes[op.pop("opcode")] if 0 <= op["opcode"] < len(opcodes) else "?"

    metadata = {}
    for i in range(rd.count(model.MetadataLength(), "metadata", 4)):
        m = model.Metadata(i)
        name = m.Name().decode("utf-8", "replace") if m.Name() else f"metadata {i}"
        if m.Buffer() not in seen_buffers:
            seen_buffers.add(m.Buffer())
            metadata[name] = metadata.get(name, 0) + buffer_bytes(m.Buffer())

    from edgecnn.contract.tflite_metadata import flatbuffer_size

    total = len(data)
    archive = total - flatbuffer_size(data)
    counted = sum(constants.values()) + scale_bytes + zero_bytes + sum(metadata.values()) + archive
    largest.sort(key=lambda r: -r["bytes"])
    return {
        "file": path.name, "bytes": total, "schema_version": int(model.Version()),
        "subgraphs": n_subgraphs, "tensors": tensors, "buffers": n_buffers,
        "constants": {k: {"bytes": v, "tensors": n_const[k]} for k, v in constants.most_common()},
        "quantization": {"scale_bytes": scale_bytes, "zero_point_bytes": zero_bytes,
                         "per_channel_tensors": per_channel_tensors, "per_channel_entries": per_channel_entries,
                         "zero_point_vectors": {"stored": sum(1 for k, _ in seen_vectors if k == "zero"),
                                                "referenced": zero_refs}},
        "metadata": metadata,
        "associated_files_bytes": archive,
        "other_bytes": total - counted,
        "op_counts": dict(Counter(op["op"] for op in ops).most_common()),
        "ops": ops,
        "largest_constants": largest[:5],
    }


def format_breakdown(b: dict) -> str:
    """The breakdown as a small text table (bytes, share of the file), then the op counts."""
    total = b["bytes"]

    def row(label: str, n: int, note: str = "") -> str:
        return f"  {label:<34} {n:>12,}  {n / total:6.1%}{note}"

    q = b["quantization"]
    lines = [f"{b['file']}: {total:,} bytes, {b['subgraphs']} subgraph(s), {b['tensors']} tensors, "
             f"{len(b['ops'])} ops"]
    for dtype, c in b["constants"].items():
        lines.append(row(f"constants {dtype}", c["bytes"], f"  ({c['tensors']} tensors)"))
    zv = q["zero_point_vectors"]
    lines.append(row("quantization scales (float32)", q["scale_bytes"],
                     f"  ({q['per_channel_tensors']} per-channel tensors, {q['per_channel_entries']:,} channels)"))
    lines.append(row("quantization zero points (int64)", q["zero_point_bytes"],
                     f"  ({zv['stored']} vectors stored for {zv['referenced']} tensors)"))
    for name, n in b["metadata"].items():
        lines.append(row(f"metadata {name}", n))
    if b.get("associated_files_bytes"):
        lines.append(row("associated files (appended ZIP)", b["associated_files_bytes"]))
    lines.append(row("graph, names, padding", b["other_bytes"]))
    if b["largest_constants"]:
        lines.append("  largest constants: " + ", ".join(
            f"{r['tensor']} {r['dtype']}{r['shape']} {r['bytes']:,} B" for r in b["largest_constants"][:3]))
    lines.append("  ops: " + ", ".join(f"{op} {n}" for op, n in b["op_counts"].items()))
    return "\n".join(lines)


def describe_file(path) -> dict:
    """What ``edgecnn inspect`` says about a model file's own description: its TFLite Metadata or
    ONNX metadata_props as a device reads them (``contract.model_metadata``), None when it has none."""
    from edgecnn.contract.model_metadata import describe

    d = describe(path)
    return {"file": Path(path).name, "bytes": Path(path).stat().st_size, "self_description": d.to_dict() if d else None}


def format_description(info: dict) -> str:
    """The description as lines: where it comes from, names, labels, preprocessing, output."""
    d = info["self_description"]
    if d is None:
        return (f"  metadata: none. Without a manifest beside it, edgecnn classify needs --labels FILE and "
                f"--preprocess SPEC for {info['file']}.")
    labels = d["labels"]
    pp = d["preprocessing"]
    lines = [f"  metadata ({d['source']}): {d['name'] or '-'} {d['version'] or ''}".rstrip(),
             f"    {d['description']}" if d["description"] else None,
             f"    author: {d['author'] or '-'}; license: {d['license'] or '-'}",
             (f"    labels: {len(labels)} ({', '.join(labels[:5])}{', ...' if len(labels) > 5 else ''})" if labels
              else "    labels: none"),
             (f"    input: {pp['input_size'][0]}x{pp['input_size'][1]}x{pp['channels']} "
              f"{d['color_space'] or ''}, (pixel * {pp['scale']:.6g} - {pp['mean']}) / {pp['std']}, "
              f"crop {pp['crop_fraction']:g}" if pp else "    input: preprocessing not given"),
             f"    normalization (mean/std in pixels): {d['normalization']}" if d["normalization"] else None,
             f"    output: {d['output_kind']}",
             f"    not usable alone: {d['note']}" if d["note"] else None]
    return "\n".join(line for line in lines if line)

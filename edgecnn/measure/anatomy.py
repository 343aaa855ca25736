"""Where the bytes of a .tflite file go, and which ops it runs (``edgecnn inspect``).

Reads the flatbuffer directly, with a small reader of its own that knows the few TFLite tables
it walks (the names of tensor types and builtin ops come from the generated TFLite schema that
ships with ai-edge-litert, TensorFlow's own copy when LiteRT is not installed), so it runs on
the light device install and never builds an interpreter.

The file is untrusted, and a flatbuffer is a graph of offsets: one table may be pointed at
20,000 times, a vector may claim four billion entries, a name may be 100 KB long. So:

* the file is opened through ``edgecnn.data.limits`` (a regular file only, never a FIFO or a
  device, opened non-blocking, at most ``MAX_TFLITE_BYTES``);
* every table, vtable, vector and string is checked to lie inside the file before it is read,
  and every vector's length against the bytes it must occupy before it is walked;
* the work is budgeted by the file's size: every table visited and every vector entry walked is
  charged its bytes, and a file that makes the reader visit more than ``WORK_PER_BYTE`` times
  its own size (its tables point at the same bytes again and again) is refused;
* a table listed twice (one tensor table behind 20,000 entries) is refused: writers never share
  tensor, operator or subgraph tables (``compact.py`` shares zero-point vectors, which are data);
* shapes and names are read for the five largest constants only, names at most
  ``MAX_NAME_BYTES`` each, and every name is shown escaped (``edgecnn.core.text.shown``).

A malformed file is one ``ModelFileError``. Sections of the file (each stored vector counted
once, however many tables point at it):

* constants: the tensor buffers (weights, biases, other constant tensors) by tensor type;
* quantization scales (float32) and zero points (int64, one per channel for per-channel
  tensors; ``edgecnn export`` stores each distinct zero-point vector once, see
  ``edgecnn/export/compact.py``, and ``zero_point_vectors`` shows it: stored vs referenced);
* metadata: the named metadata buffers (``min_runtime_version``, ``CONVERSION_METADATA``,
  ``TFLITE_METADATA``, ...), and the associated files (labels) archived after the flatbuffer;
* other: the graph itself (operators, tensor tables, names, signatures) and alignment padding.
"""
from __future__ import annotations

import heapq
import struct
from collections import Counter
from pathlib import Path
from typing import List, Optional, Tuple

from edgecnn.core.text import shown
from edgecnn.errors import ModelFileError, RuntimeNotAvailableError

# A flatbuffer cannot exceed 2 GiB; larger models keep their buffers after it, which this reader
# does not load (and a file of that size is no edge CNN).
MAX_TFLITE_BYTES = 2 << 30
WORK_PER_BYTE = 4       # bytes the reader may visit per byte of the file (legitimate files: about 1)
WORK_SLACK = 1 << 20
MAX_NAME_BYTES = 256    # of a tensor, metadata or custom-op name shown
MAX_RANK = 16           # of a tensor shape shown
_LARGEST = 5


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


class _Malformed(Exception):
    pass


class _Flat:
    """Bounds-checked reads of a flatbuffer held in ``data``, with a work budget."""

    def __init__(self, data: bytes):
        self.data, self.size = data, len(data)
        self.work, self.budget = 0, WORK_PER_BYTE * self.size + WORK_SLACK
        self.listed = {}  # kind of table -> positions already walked

    def charge(self, n: int, what: str) -> None:
        self.work += n
        if self.work > self.budget:
            raise _Malformed(f"its tables point at the same bytes again and again ({what}: more than "
                             f"{WORK_PER_BYTE} times the file's {self.size:,} bytes to read)")

    def _get(self, fmt: str, pos: int, what: str):
        width = struct.calcsize(fmt)
        if not 0 <= pos <= self.size - width:
            raise _Malformed(f"{what} at byte {pos} lies outside the file")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def table(self, pos: int, what: str) -> Tuple[int, int, int]:
        """(position, vtable position, vtable size) of the table at ``pos``, all inside the file."""
        vt = pos - self._get("<i", pos, what)
        vt_size = self._get("<H", vt, f"{what}'s vtable")
        obj_size = self._get("<H", vt + 2, f"{what}'s vtable")
        if vt_size < 4 or vt_size % 2 or vt + vt_size > self.size or obj_size < 4 or pos + obj_size > self.size:
            raise _Malformed(f"{what} at byte {pos} has a broken vtable")
        self.charge(obj_size + vt_size, what)
        return pos, vt, vt_size

    def _field(self, t, slot: int) -> int:
        pos, vt, vt_size = t
        entry = 4 + 2 * slot
        return self._get("<H", vt + entry, "a vtable entry") if entry < vt_size else 0

    def scalar(self, t, slot: int, fmt: str, default=0):
        off = self._field(t, slot)
        return self._get(fmt, t[0] + off, "a field") if off else default

    def _target(self, t, slot: int, what: str) -> Optional[int]:
        off = self._field(t, slot)
        if not off:
            return None
        at = t[0] + off
        return at + self._get("<I", at, what)

    def child(self, t, slot: int, what: str):
        pos = self._target(t, slot, what)
        return None if pos is None else self.table(pos, what)

    def vector(self, t, slot: int, width: int, what: str) -> Tuple[int, int]:
        """(start, length) of a vector field; its ``length * width`` bytes lie inside the file."""
        pos = self._target(t, slot, what)
        if pos is None:
            return 0, 0
        n = self._get("<I", pos, what)
        if n * width > self.size - pos - 4:
            raise _Malformed(f"{what}: {n:,} entries of {width} bytes do not fit in a {self.size:,}-byte file")
        return pos + 4, n

    def tables(self, t, slot: int, what: str):
        """The tables of a vector-of-tables field, each entry charged as it is walked. Each table is
        listed once: writers never share a tensor, operator or subgraph table, a hostile file does
        (one tensor listed 20,000 times)."""
        start, n = self.vector(t, slot, 4, what)
        seen = self.listed.setdefault(what, set())
        for i in range(n):
            self.charge(4, what)
            at = start + 4 * i
            pos = at + self._get("<I", at, what)
            if pos in seen:
                raise _Malformed(f"{what}: entry {i} repeats a table listed before (at byte {pos})")
            seen.add(pos)
            yield self.table(pos, what)

    def string(self, t, slot: int, what: str) -> Optional[str]:
        """At most MAX_NAME_BYTES of a string field, decoded (bad UTF-8 replaced)."""
        start, n = self.vector(t, slot, 1, what)
        if not start:
            return None
        take = min(n, MAX_NAME_BYTES)
        self.charge(take, what)
        text = self.data[start:start + take].decode("utf-8", "replace")
        return text + "..." if n > take else text


def tflite_breakdown(path) -> dict:
    """Size of each section of a .tflite file, tensor counts, and the ops per subgraph."""
    from edgecnn.data.limits import read_bytes
    from edgecnn.errors import DataError

    path = Path(path)
    try:
        data = read_bytes(path, "TFLite model", MAX_TFLITE_BYTES)
    except DataError as e:
        raise ModelFileError(e.message) from None
    fb = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFileError(f"{path} is not a TFLite flatbuffer (no 'TFL3' identifier at byte 4)")
    try:
        return _breakdown(fb, path, _Flat(data))
    except _Malformed as e:
        raise ModelFileError(f"{path}: malformed .tflite ({e})") from None


def _breakdown(fb, path: Path, f: _Flat) -> dict:
    types, builtin = _names(fb.TensorType), _names(fb.BuiltinOperator)
    model = f.table(f._get("<I", 0, "the root offset"), "the model table")
    _, n_buffers = f.vector(model, 4, 4, "buffers")

    def buffer_bytes(index: int) -> int:
        if not 0 <= index < n_buffers:
            return 0
        start, _ = f.vector(model, 4, 4, "buffers")
        at = start + 4 * index
        buf = f.table(at + f._get("<I", at, "a buffer"), "a buffer")
        _, n = f.vector(buf, 0, 1, "buffer data")
        if not n:  # stored after the flatbuffer (models over 2 GB): offset and size, checked against the file
            offset, size = f.scalar(buf, 1, "<Q"), f.scalar(buf, 2, "<Q")
            if offset > 1 and size:
                if offset + size > f.size:
                    raise _Malformed(f"buffer {index}: {size:,} bytes at byte {offset:,} lie outside the file")
                n = size
        return n

    constants, n_const = Counter(), Counter()
    largest: List[tuple] = []  # heap of (bytes, -order, tensor table, dtype, index)
    seen_buffers, seen_vectors = set(), set()
    scale_bytes = zero_bytes = per_channel_tensors = per_channel_entries = 0
    zero_refs = tensors = 0
    ops: List[Tuple[int, int, int]] = []  # (subgraph, index, opcode index)
    subgraphs = list(f.tables(model, 2, "subgraphs"))
    for si, sg in enumerate(subgraphs):
        for ti, t in enumerate(f.tables(sg, 0, "tensors")):
            tensors += 1
            dtype = types.get(f.scalar(t, 1, "<b"), "?").lower()
            b = f.scalar(t, 2, "<I")
            if b not in seen_buffers:
                seen_buffers.add(b)
                n = buffer_bytes(b)
                if n:
                    constants[dtype] += n
                    n_const[dtype] += 1
                    item = (n, -tensors, t, dtype, ti)
                    (heapq.heappush if len(largest) < _LARGEST else heapq.heappushpop)(largest, item)
            q = f.child(t, 4, "quantization")
            if q is None:
                continue
            n_scale = n_zero = 0
            for slot, width, kind in ((2, 4, "scale"), (3, 8, "zero")):
                start, n = f.vector(q, slot, width, f"quantization {kind}s")
                if kind == "scale":
                    n_scale = n
                else:
                    n_zero = n
                if not n:
                    continue
                if kind == "zero":
                    zero_refs += 1
                if (kind, start) in seen_vectors:  # shared vectors (compact.py) count once
                    continue
                seen_vectors.add((kind, start))
                if kind == "scale":
                    scale_bytes += width * n
                else:
                    zero_bytes += width * n
            if n_scale > 1:
                per_channel_tensors += 1
                per_channel_entries += n_scale
        for oi, op in enumerate(f.tables(sg, 3, "operators")):
            ops.append((si, oi, f.scalar(op, 0, "<I")))

    opcodes = []
    for oc in f.tables(model, 1, "operator codes"):
        code = max(f.scalar(oc, 3, "<i"), f.scalar(oc, 0, "<b"))  # the schema's own rule
        if builtin.get(code) == "CUSTOM":
            opcodes.append("CUSTOM:" + (f.string(oc, 1, "a custom op name") or "?"))
        else:
            opcodes.append(builtin.get(code, f"BUILTIN_{code}"))
    op_rows = [{"subgraph": si, "index": oi, "op": opcodes[c] if 0 <= c < len(opcodes) else "?"}
               for si, oi, c in ops]

    metadata = {}
    for i, m in enumerate(f.tables(model, 6, "metadata")):
        name = f.string(m, 0, "a metadata name") or f"metadata {i}"
        b = f.scalar(m, 1, "<I")
        if b not in seen_buffers:
            seen_buffers.add(b)
            metadata[name] = metadata.get(name, 0) + buffer_bytes(b)

    biggest = []
    for n, _, t, dtype, ti in sorted(largest, key=lambda r: (-r[0], -r[1])):
        start, rank = f.vector(t, 0, 4, "a tensor shape")
        if rank > MAX_RANK:
            raise _Malformed(f"tensor {ti} has rank {rank:,}; at most {MAX_RANK}")
        shape = [f._get("<i", start + 4 * k, "a shape") for k in range(rank)]
        biggest.append({"tensor": f.string(t, 3, "a tensor name") or f"tensor {ti}", "dtype": dtype,
                        "shape": shape, "bytes": n})

    from edgecnn.contract.tflite_metadata import flatbuffer_size

    total = f.size
    archive = total - flatbuffer_size(f.data)
    counted = sum(constants.values()) + scale_bytes + zero_bytes + sum(metadata.values()) + archive
    return {
        "file": path.name, "bytes": total, "schema_version": int(f.scalar(model, 0, "<I")),
        "subgraphs": len(subgraphs), "tensors": tensors, "buffers": n_buffers,
        "constants": {k: {"bytes": v, "tensors": n_const[k]} for k, v in constants.most_common()},
        "quantization": {"scale_bytes": scale_bytes, "zero_point_bytes": zero_bytes,
                         "per_channel_tensors": per_channel_tensors, "per_channel_entries": per_channel_entries,
                         "zero_point_vectors": {"stored": sum(1 for k, _ in seen_vectors if k == "zero"),
                                                "referenced": zero_refs}},
        "metadata": metadata,
        "associated_files_bytes": archive,
        "other_bytes": total - counted,
        "op_counts": dict(Counter(op["op"] for op in op_rows).most_common()),
        "ops": op_rows,
        "largest_constants": biggest,
    }


def format_breakdown(b: dict) -> str:
    """The breakdown as a small text table (bytes, share of the file), then the op counts."""
    total = b["bytes"]

    def row(label: str, n: int, note: str = "") -> str:
        return f"  {label:<34} {n:>12,}  {n / total:6.1%}{note}"

    q = b["quantization"]
    lines = [f"{shown(b['file'])}: {total:,} bytes, {b['subgraphs']} subgraph(s), {b['tensors']} tensors, "
             f"{len(b['ops'])} ops"]
    for dtype, c in b["constants"].items():
        lines.append(row(f"constants {dtype}", c["bytes"], f"  ({c['tensors']} tensors)"))
    zv = q["zero_point_vectors"]
    lines.append(row("quantization scales (float32)", q["scale_bytes"],
                     f"  ({q['per_channel_tensors']} per-channel tensors, {q['per_channel_entries']:,} channels)"))
    lines.append(row("quantization zero points (int64)", q["zero_point_bytes"],
                     f"  ({zv['stored']} vectors stored for {zv['referenced']} tensors)"))
    for name, n in b["metadata"].items():
        lines.append(row(f"metadata {shown(name, 40)}", n))
    if b.get("associated_files_bytes"):
        lines.append(row("associated files (appended ZIP)", b["associated_files_bytes"]))
    lines.append(row("graph, names, padding", b["other_bytes"]))
    if b["largest_constants"]:
        lines.append("  largest constants: " + ", ".join(
            f"{shown(r['tensor'], 80)} {r['dtype']}{r['shape']} {r['bytes']:,} B" for r in b["largest_constants"][:3]))
    lines.append("  ops: " + ", ".join(f"{shown(op, 80)} {n}" for op, n in b["op_counts"].items()))
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
    lines = [f"  metadata ({d['source']}): {shown(d['name'] or '-', 80)} {shown(d['version'] or '', 40)}".rstrip(),
             f"    {shown(d['description'], 400)}" if d["description"] else None,
             f"    author: {shown(d['author'] or '-', 120)}; license: {shown(d['license'] or '-', 120)}",
             (f"    labels: {len(labels)} ({', '.join(shown(x, 40) for x in labels[:5])}{', ...' if len(labels) > 5 else ''})" if labels
              else "    labels: none"),
             (f"    input: {pp['input_size'][0]}x{pp['input_size'][1]}x{pp['channels']} "
              f"{shown(d['color_space'] or '', 20)}, (pixel * {pp['scale']:.6g} - {pp['mean']}) / {pp['std']}, "
              f"crop {pp['crop_fraction']:g}" if pp else "    input: preprocessing not given"),
             f"    normalization (mean/std in pixels): {d['normalization']}" if d["normalization"] else None,
             f"    output: {d['output_kind']}",
             f"    not usable alone: {shown(d['note'], 400)}" if d["note"] else None]
    return "\n".join(line for line in lines if line)

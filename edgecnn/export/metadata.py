"""Self-describing artifacts: TFLite Metadata in every .tflite, ``metadata_props`` in every .onnx.

The clients mobile and embedded developers use (MediaPipe's ImageClassifier, the TFLite Task
Library, ML Kit, LiteRT's example apps) read labels and normalization from TFLite Metadata
inside the file and refuse or mis-run a file without it; ONNX Runtime exposes an ONNX model's
``metadata_props`` as its custom metadata map. What is written (the reader is
``edgecnn.contract.model_metadata``, which also says how a device derives the preprocessing):

* .tflite, per the published ``metadata_schema.fbs`` (identifier M001, min parser 1.0.0):
  ModelMetadata name, description, version, author, licence; the input's ImageProperties (RGB,
  or GRAYSCALE for 1-channel models), NormalizationOptions (mean, std in pixel units: 0 / 255 for
  the camera input every export takes) and Stats (the input's value range); the output's
  FeatureProperties, Stats 0..1 and the name ``probability`` for probabilities (``logits``
  otherwise, the TFLite Support writers' convention: the schema has no output-kind field), and
  ``labels.txt`` (TENSOR_AXIS_LABELS); at model level ``edgecnn.json`` (DESCRIPTIONS): edgecnn's
  preprocessing spec (its crop fraction has no standard field) and output kind.
  The metadata flatbuffer becomes a new buffer named by a ``TFLITE_METADATA`` entry of
  ``Model.metadata``; the model is re-serialised with identical zero-point vectors written
  once and byte vectors 16-byte aligned (``export.compact.sharing_builder``: the plain object
  API would undo the compaction, +6.6% on an int8 QuickNet, and align nothing); the files are a
  ZIP archive appended after the flatbuffer, entries STORED with a fixed date (MediaPipe refuses
  compressed entries; the same inputs give the same bytes).
* .onnx: ``edgecnn.labels`` (a JSON list), ``edgecnn.preprocessing`` (the spec as JSON),
  ``edgecnn.output_kind``, for an integer input ``edgecnn.input_quantization`` (ONNX keeps no
  quantization on a graph input), ``edgecnn.name``/``version``/``author``/``license``/``metadata_version``,
  ONNX's image keys ``Image.BitmapPixelFormat`` (Rgb8 / Gray8), ``Image.ColorSpaceGamma`` (SRGB)
  and ``Image.NominalPixelRange`` (Normalized_0_1 for pixels / 255), the input's type denotation
  IMAGE, and ``doc_string`` / ``model_version``.

Each writer reads its result back with the device-side reader and checks it says what was
meant; a TFLite file is also run before and after on the check inputs, bit-identical outputs
required (metadata changes no op and no weight byte).
"""
from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from edgecnn.contract import model_metadata as mm
from edgecnn.contract import tflite_metadata as tm
from edgecnn.errors import ExportError

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry time: the same inputs give the same bytes


@dataclasses.dataclass(frozen=True)
class ClassifierInfo:
    """What a file says about itself: names and the preprocessing it takes (a PreprocessSpec)."""

    name: str
    labels: Sequence[str]
    spec: object
    output_kind: str = "probabilities"
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    precision: str = ""


def pixel_normalization(spec) -> tuple:
    """(mean, std) in pixel units, as NormalizationOptions hold them: the spec's
    ``(p * scale - mean) / std`` is ``(p - mean / scale) / (std / scale)``; one value when every
    channel has the same."""
    mean = [float(m) / float(spec.scale) for m in spec.mean]
    std = [float(s) / float(spec.scale) for s in spec.std]
    if len(set(mean)) == 1 and len(set(std)) == 1:
        mean, std = mean[:1], std[:1]
    return mean, std


# ---------------------------------------------------------------------------- TFLite
def _table(b, nfields: int, offsets: Dict[int, Optional[int]] = None, bytes_: Dict[int, int] = None) -> int:
    b.StartObject(nfields)
    for slot, off in sorted((offsets or {}).items()):
        if off is not None:
            b.PrependUOffsetTRelativeSlot(slot, off, 0)
    for slot, v in sorted((bytes_ or {}).items()):
        b.PrependUint8Slot(slot, int(v), 0)
    return b.EndObject()


def _offsets(b, offs: List[int]) -> int:
    b.StartVector(4, len(offs), 4)
    for o in reversed(offs):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _floats(b, values) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype="<f4"))


def _stats(b, lo, hi) -> int:
    return _table(b, 2, offsets={tm.ST_MAX: _floats(b, hi), tm.ST_MIN: _floats(b, lo)})


def _file(b, name: str, description: str, ftype: str) -> int:
    return _table(b, 5, offsets={tm.AF_NAME: b.CreateString(name), tm.AF_DESCRIPTION: b.CreateString(description)},
                  bytes_={tm.AF_TYPE: tm.ASSOCIATED_FILE_TYPES[ftype]})


def build_metadata(info: ClassifierInfo, input_tensor: dict) -> bytes:
    """The ``ModelMetadata`` flatbuffer (M001) of a one-input, one-output image classifier."""
    import flatbuffers

    spec = info.spec
    b = flatbuffers.Builder(1024)
    colour = "RGB" if spec.channels == 3 else "GRAYSCALE"
    image = _table(b, 2, bytes_={tm.IP_COLOR_SPACE: tm.COLOR_SPACES[colour]})
    content_in = _table(b, 3, offsets={tm.CT_PROPS: image}, bytes_={tm.CT_PROPS_TYPE: tm.CONTENT_IMAGE})
    mean, std = pixel_normalization(spec)
    norm = _table(b, 2, offsets={tm.NO_MEAN: _floats(b, mean), tm.NO_STD: _floats(b, std)})
    unit = _table(b, 2, offsets={tm.PU_OPTIONS: norm}, bytes_={tm.PU_OPTIONS_TYPE: tm.PU_NORMALIZATION})
    if input_tensor["dtype"] in ("uint8", "int8"):
        lim = np.iinfo(np.dtype(input_tensor["dtype"]))
        lo, hi = [float(lim.min)], [float(lim.max)]
    else:
        lo = sorted({(0.0 - m) / s for m, s in zip(mean, std)})[:1]
        hi = sorted({(255.0 - m) / s for m, s in zip(mean, std)})[-1:]
    in_desc = (f"{colour} image, {spec.input_size[0]}x{spec.input_size[1]}: "
               + ("the pixel bytes as they are (uint8)." if input_tensor["dtype"] == "uint8" else
                  f"pixels normalized as (p - {mean}) / {std}."))
    tensor_in = _table(b, 7, offsets={tm.TM_NAME: b.CreateString("image"), tm.TM_DESCRIPTION: b.CreateString(in_desc),
                                      tm.TM_CONTENT: content_in, tm.TM_PROCESS_UNITS: _offsets(b, [unit]),
                                      tm.TM_STATS: _stats(b, lo, hi)})
    feature = _table(b, 0)
    content_out = _table(b, 3, offsets={tm.CT_PROPS: feature}, bytes_={tm.CT_PROPS_TYPE: tm.CONTENT_FEATURE})
    labels = _file(b, mm.LABELS_FILE, "Labels of the classes the model recognizes, in output order.",
                   "TENSOR_AXIS_LABELS")
    probs = info.output_kind == "probabilities"
    out_desc = (f"Probabilities of the {len(info.labels)} labels." if probs else
                f"Logits of the {len(info.labels)} labels; softmax gives probabilities.")
    tensor_out = _table(b, 7, offsets={tm.TM_NAME: b.CreateString("probability" if probs else "logits"),
                                       tm.TM_DESCRIPTION: b.CreateString(out_desc), tm.TM_CONTENT: content_out,
                                       tm.TM_STATS: _stats(b, [0.0], [1.0]) if probs else None,
                                       tm.TM_ASSOCIATED_FILES: _offsets(b, [labels])})
    subgraph = _table(b, tm.SG_FIELDS, offsets={tm.SG_INPUTS: _offsets(b, [tensor_in]),
                                                tm.SG_OUTPUTS: _offsets(b, [tensor_out])})
    own = _file(b, mm.EDGECNN_FILE, "edgecnn's preprocessing spec (with its centre-crop fraction) and output kind.",
                "DESCRIPTIONS")
    fields = {tm.MM_NAME: info.name, tm.MM_DESCRIPTION: info.description, tm.MM_VERSION: info.version,
              tm.MM_AUTHOR: info.author, tm.MM_LICENSE: info.license, tm.MM_MIN_PARSER_VERSION: tm.MIN_PARSER_VERSION}
    offsets = {slot: b.CreateString(v) for slot, v in fields.items() if v}
    offsets.update({tm.MM_SUBGRAPHS: _offsets(b, [subgraph]), tm.MM_ASSOCIATED_FILES: _offsets(b, [own])})
    b.Finish(_table(b, 8, offsets=offsets), file_identifier=tm.METADATA_IDENTIFIER)
    return bytes(b.Output())


def edgecnn_doc(info: ClassifierInfo) -> bytes:
    return (json.dumps({"schema": mm.METADATA_VERSION, "model": info.name, "precision": info.precision,
                        "preprocessing": info.spec.to_dict(), "output_kind": info.output_kind}, indent=1,
                       sort_keys=True) + "\n").encode("utf-8")


def append_files(flatbuffer: bytes, files: Dict[str, bytes]) -> bytes:
    """``flatbuffer`` + a ZIP of ``files``: STORED, offsets from the start of the whole file (as
    the reference populator's ``zipfile.ZipFile(model, "a")`` writes them), fixed dates."""
    out = io.BytesIO()
    out.write(flatbuffer)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zi = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            zi.compress_type = zipfile.ZIP_STORED
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, data)
    return out.getvalue()


def with_tflite_metadata(data: bytes, info: ClassifierInfo, where: str = "model") -> bytes:
    """``data`` (a .tflite's bytes) with ``info`` as its TFLITE_METADATA and its labels and
    ``edgecnn.json`` appended. Metadata already there is replaced; the converter's own entries
    (``min_runtime_version``, ``CONVERSION_METADATA``) and every weight byte are kept."""
    from edgecnn.export.compact import schema, sharing_builder

    fb = schema()

    io_ = tm.model_io(data, where)
    _check_classifier(io_, info, where)
    body = data[:tm.flatbuffer_size(data)]  # a previous archive goes
    model = fb.ModelT.InitFromPackedBuf(bytearray(body), 0)
    for i, buf in enumerate(model.buffers or []):
        if (buf.offset or 0) > 1 or (buf.size or 0) > 0:
            raise ExportError(f"{where}: buffer {i} lies outside the flatbuffer (a model over 2 GB); metadata is not "
                              f"written into such files.")
    meta = fb.BufferT()
    meta.data = np.frombuffer(build_metadata(info, io_["input"]), dtype=np.uint8)
    model.buffers = list(model.buffers or [])
    entry = next((e for e in (model.metadata or []) if _text(e.name) == tm.METADATA_NAME), None)
    if entry is not None:
        model.buffers[entry.buffer] = meta
    else:
        model.buffers.append(meta)
        e = fb.MetadataT()
        e.name = tm.METADATA_NAME
        e.buffer = len(model.buffers) - 1
        model.metadata = list(model.metadata or []) + [e]
    b = sharing_builder(len(body) + 4096)
    b.Finish(model.Pack(b), file_identifier=tm.TFLITE_IDENTIFIER)
    labels = ("\n".join(info.labels) + "\n").encode("utf-8")
    return append_files(bytes(b.Output()), {mm.LABELS_FILE: labels, mm.EDGECNN_FILE: edgecnn_doc(info)})


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, (bytes, bytearray)) else (v or "")


def _check_classifier(io_: dict, info: ClassifierInfo, where: str) -> None:
    i, o = io_["input"], io_["output"]
    if io_["subgraphs"] != 1 or io_["inputs"] != 1 or io_["outputs"] != 1:
        raise ExportError(f"{where}: metadata describes one subgraph with one input and one output; this model has "
                          f"{io_['subgraphs']}/{io_['inputs']}/{io_['outputs']}.")
    h, w = info.spec.input_size
    if i["shape"] != [1, h, w, info.spec.channels]:
        raise ExportError(f"{where}: input {i['shape']} is not [1, {h}, {w}, {info.spec.channels}].")
    if mm._classes(o) != len(info.labels):
        raise ExportError(f"{where}: output {o['shape']} does not hold one score per label ({len(info.labels)}).")
    for label in info.labels:
        if not label or "\n" in label or "\r" in label:
            raise ExportError(f"{where}: label {label[:40]!r} cannot be a line of labels.txt.")


def write_tflite_metadata(path, info: ClassifierInfo, check_inputs: Optional[Sequence[np.ndarray]] = None) -> dict:
    """Write ``info`` into the .tflite at ``path`` (atomically), read it back, and run the model
    before and after on ``check_inputs`` (native input tensors): -> the manifest's metadata record."""
    from edgecnn.core.files import atomic_write_bytes
    from edgecnn.export.compact import outputs_on

    path = Path(path)
    before = path.read_bytes()
    after = with_tflite_metadata(before, info, path.name)
    got = mm.describe_tflite(after, path.name)
    _check_read_back(got, info, tm.model_io(after)["input"], path.name)
    if check_inputs:
        a, b = outputs_on(before, check_inputs), outputs_on(after, check_inputs)
        if a is not None and not all(np.array_equal(x, y) for x, y in zip(a, b)):
            raise ExportError(f"{path.name}: outputs changed when its metadata was written; refused.")
    atomic_write_bytes(path, after)
    return {"written": True, "format": f"TFLite Metadata {tm.SCHEMA_VERSION} (min parser {tm.MIN_PARSER_VERSION})",
            "associated_files": [mm.LABELS_FILE, mm.EDGECNN_FILE], "normalization": dict(zip(
                ("mean", "std"), pixel_normalization(info.spec))), "output": got.output_kind,
            "bytes_added": len(after) - len(before), "metadata_bytes": len(tm.metadata_buffer(after) or b"")}


def _check_read_back(got, info: ClassifierInfo, tensor: dict, where: str) -> None:
    want = dict(labels=list(info.labels), output_kind=info.output_kind)
    have = dict(labels=got.labels if got else None, output_kind=got.output_kind if got else None)
    if got is None or have != want or got.preprocessing is None or \
            not mm.same_input(got.spec(), info.spec, tensor):
        raise ExportError(f"{where}: its metadata does not read back as written; refused.")


# ---------------------------------------------------------------------------- ONNX
def onnx_props(info: ClassifierInfo, input_tensor: dict) -> Dict[str, str]:
    spec = info.spec
    props = {mm.ONNX_LABELS: json.dumps(list(info.labels)), mm.ONNX_PREPROCESSING: json.dumps(spec.to_dict()),
             mm.ONNX_OUTPUT_KIND: info.output_kind, mm.ONNX_VERSION_KEY: str(mm.METADATA_VERSION),
             "edgecnn.name": info.name, "edgecnn.version": info.version, "edgecnn.author": info.author,
             "edgecnn.license": info.license,
             "Image.BitmapPixelFormat": "Rgb8" if spec.channels == 3 else "Gray8", "Image.ColorSpaceGamma": "SRGB"}
    if input_tensor["dtype"] in ("uint8", "int8"):
        props[mm.ONNX_INPUT_QUANTIZATION] = json.dumps({"scale": float(input_tensor["scale"]),
                                                        "zero_point": int(input_tensor["zero_point"])})
    mean, std = pixel_normalization(spec)
    if mean == [0.0] and std == [255.0]:
        props["Image.NominalPixelRange"] = "Normalized_0_1"
    elif mean == [0.0] and std == [1.0]:
        props["Image.NominalPixelRange"] = "NominalRange_0_255"
    return props


def write_onnx_metadata(path, info: ClassifierInfo, input_tensor: dict) -> dict:
    """Write ``info`` into the .onnx at ``path`` (atomically) and read it back. Other
    metadata_props (ONNX Runtime's quantization records) are kept; edgecnn's are replaced."""
    import onnx

    from edgecnn.core.files import atomic_write_bytes

    path = Path(path)
    before = path.stat().st_size
    model = onnx.load(str(path), load_external_data=False)
    props = onnx_props(info, input_tensor)
    keep = [(p.key, p.value) for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    for k, v in keep + sorted(props.items()):
        model.metadata_props.add(key=k, value=v)
    model.doc_string = info.description
    model.model_version = 1
    inp = model.graph.input[0]
    inp.type.denotation = "IMAGE"
    dims = inp.type.tensor_type.shape.dim
    if len(dims) == 4:
        for d, denotation in zip(dims, ("DATA_BATCH", "DATA_FEATURE", "DATA_FEATURE", "DATA_CHANNEL")):
            d.denotation = denotation
    data = model.SerializeToString()
    got = mm.describe_onnx(data, path.name)
    _check_read_back(got, info, input_tensor, path.name)
    atomic_write_bytes(path, data)
    return {"written": True, "format": "ONNX metadata_props", "keys": sorted(props),
            "bytes_added": len(data) - before}

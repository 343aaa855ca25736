"""What a model file says about itself: labels, the preprocessing it takes and its output kind,
from the TFLite Metadata inside a .tflite or the ``metadata_props`` of an .onnx.

A file edgecnn exported carries both the standard fields other clients read (MediaPipe, the
TFLite Task Library, ONNX Runtime's model metadata) and edgecnn's own preprocessing spec, so
that ``edgecnn classify model.tflite image.png`` needs nothing beside it. The manifest remains the
record of verification; a lone file is used unverified.

How the preprocessing is read, for a .tflite (the standard fields decide, as MediaPipe reads them):

* an integer input (uint8, int8) takes the camera's pixels as they are: MediaPipe feeds raw
  bytes whatever NormalizationOptions say. The spec is the one that quantizes to the pixel
  itself with the tensor's scale s and zero point z: ``(p * s - z * s) / 1``;
* a float input is ``(p - mean) / std`` with the NormalizationOptions' mean and std in pixel
  units: one value for every channel gives scale ``1/std``, mean ``mean/std``, std 1 (MediaPipe
  computes ``p * alpha + beta`` with those), one per channel gives scale 1/255, mean/255, std/255;
* edgecnn's own ``edgecnn.json`` (a model-level associated file) adds what the standard has no
  field for: the centre-crop fraction, and the output kind. Its spec must give the same input
  tensor as the standard fields for every pixel value, else the file is refused as inconsistent.

For an .onnx, edgecnn's ``edgecnn.preprocessing`` and, for an integer input, its
``edgecnn.input_quantization`` (ONNX has no tensor quantization parameters on a graph input).

Every file is untrusted input: the TFLite side goes through the bounded reader of
``contract.tflite_metadata``, the ONNX side through a bounded protobuf scan of the top-level
message (no onnx package needed); the JSON inside is size-capped and type-checked, and the spec
validated like a manifest's.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from edgecnn.contract.checks import MAX_CLASSES, OUTPUT_KINDS, _is_int, _is_num
from edgecnn.contract import tflite_metadata as tm
from edgecnn.errors import ModelFileError

EDGECNN_FILE = "edgecnn.json"   # the model-level associated file with edgecnn's spec and output kind
LABELS_FILE = "labels.txt"
METADATA_VERSION = 1
ONNX_LABELS = "edgecnn.labels"
ONNX_PREPROCESSING = "edgecnn.preprocessing"
ONNX_OUTPUT_KIND = "edgecnn.output_kind"
ONNX_INPUT_QUANTIZATION = "edgecnn.input_quantization"
ONNX_VERSION_KEY = "edgecnn.metadata_version"
MAX_MODEL_BYTES = 2 << 30
MAX_PROP_BYTES = 8 << 20
MAX_PROPS = 1024


@dataclasses.dataclass
class ModelDescription:
    """What a model file says about itself (None fields: the file does not say)."""

    format: str                      # tflite | onnx
    source: str                      # "TFLite Metadata" | "ONNX metadata_props"
    labels: Optional[List[str]]
    preprocessing: Optional[dict]    # a PreprocessSpec dict: what the file takes
    output_kind: str                 # probabilities | logits
    name: str = ""
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    normalization: Optional[dict] = None    # the file's own mean/std, pixel units (TFLite)
    color_space: Optional[str] = None
    input_quantization: Optional[dict] = None  # ONNX integer input: {"scale", "zero_point"}
    note: str = ""                   # why the preprocessing or the labels are missing

    def spec(self):
        from edgecnn.data.preprocess import PreprocessSpec

        return None if self.preprocessing is None else PreprocessSpec.from_dict(self.preprocessing)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def describe(path) -> Optional[ModelDescription]:
    """The description a .tflite or .onnx file carries, or None when it carries none."""
    from edgecnn.contract.checks import regular_file
    from edgecnn.data.limits import read_bytes
    from edgecnn.errors import DataError

    p = regular_file(path, "model file")
    try:
        data = read_bytes(p, "model file", MAX_MODEL_BYTES)
    except DataError as e:
        raise ModelFileError(e.message) from None
    return describe_bytes(data, str(p))


def describe_bytes(data: bytes, where: str = "model") -> Optional[ModelDescription]:
    if len(data) >= 8 and bytes(data[4:8]) == tm.TFLITE_IDENTIFIER:
        return describe_tflite(data, where)
    return describe_onnx(data, where)


# ---------------------------------------------------------------------------- TFLite
def describe_tflite(data: bytes, where: str = "model") -> Optional[ModelDescription]:
    meta = tm.metadata_buffer(data, where)
    if meta is None:
        return None
    d = tm.parse_metadata(meta, where)
    io = tm.model_io(data, where)
    if len(d["subgraphs"]) != 1 or len(d["subgraphs"][0]["inputs"]) != 1 or len(d["subgraphs"][0]["outputs"]) != 1:
        raise ModelFileError(f"{where}: its TFLite Metadata does not describe one input and one output; refused.")
    tin, tout = d["subgraphs"][0]["inputs"][0], d["subgraphs"][0]["outputs"][0]
    files = tm.associated_files(data, where)
    own = _edgecnn_doc(files, d["associated_files"], where)
    labels, note = _tflite_labels(tout, files, io["output"], where)
    spec, why = _tflite_spec(io["input"], tin, own, where)
    kind = own.get("output_kind") if own else None
    if kind is None:
        stats = tout.get("stats") or {}
        kind = ("probabilities" if tout["name"] in ("probability", "probabilities")
                or (stats.get("min") == [0.0] and stats.get("max") == [1.0]) else "logits")
    return ModelDescription("tflite", "TFLite Metadata", labels, spec, kind, d["name"], d["description"],
                            d["version"], d["author"], d["license"], tin.get("normalization"), tin.get("color_space"),
                            None, "; ".join(n for n in (note, why) if n))


def _edgecnn_doc(files: Dict[str, bytes], declared: List[dict], where: str) -> Optional[dict]:
    if not any(f["name"] == EDGECNN_FILE for f in declared) or EDGECNN_FILE not in files:
        return None
    doc = _json(files[EDGECNN_FILE], f"{where}: {EDGECNN_FILE}")
    if not isinstance(doc, dict):
        raise ModelFileError(f"{where}: {EDGECNN_FILE} is not a JSON object; refused.")
    if doc.get("output_kind") is not None and doc["output_kind"] not in OUTPUT_KINDS:
        raise ModelFileError(f"{where}: {EDGECNN_FILE} output_kind {str(doc['output_kind'])[:40]!r} is not one of "
                             f"{', '.join(OUTPUT_KINDS)}; refused.")
    if doc.get("preprocessing") is not None:
        from edgecnn.contract.run import validate_spec

        validate_spec(doc["preprocessing"], f"{where}: {EDGECNN_FILE}")
    return doc


def _tflite_labels(tout: dict, files: Dict[str, bytes], out_tensor: Optional[dict], where: str):
    from edgecnn.data.labels import parse_labels

    decl = [f for f in tout["associated_files"] if f["type"] == "TENSOR_AXIS_LABELS"]
    if not decl:
        return None, "its metadata names no labels file"
    decl.sort(key=lambda f: f["locale"] != "")  # the default locale first
    name = decl[0]["name"]
    if name not in files:
        raise ModelFileError(f"{where}: its metadata names the labels file {name[:80]!r}, which the file does not "
                             f"carry; refused.")
    labels = parse_labels(files[name], f"{where}: {name}", ModelFileError)
    n = _classes(out_tensor)
    if n is not None and n != len(labels):
        raise ModelFileError(f"{where}: {len(labels)} labels in {name} for {n} output scores; refused.")
    return labels, ""


def _classes(t: Optional[dict]) -> Optional[int]:
    if not t or not t.get("shape") or len(t["shape"]) < 2 or any(v < 1 for v in t["shape"][1:]):
        return None
    return int(math.prod(t["shape"][1:]))


def _image_input(t: Optional[dict]) -> Optional[Tuple[int, int, int]]:
    from edgecnn.data.preprocess import MAX_SIDE

    if not t or len(t["shape"]) != 4 or t["shape"][0] not in (1, -1):
        return None
    h, w, c = t["shape"][1:]
    return (h, w, c) if c in (1, 3) and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE else None


def _tflite_spec(tin: Optional[dict], meta_in: dict, own: Optional[dict], where: str):
    """(PreprocessSpec dict or None, why None) from the input tensor and its metadata."""
    from edgecnn.data.preprocess import PreprocessError, PreprocessSpec

    hwc = _image_input(tin)
    if hwc is None:
        return None, f"its input {tin and tin['shape']} is not one NHWC image of 1 or 3 channels"
    h, w, c = hwc
    crop = 1.0
    if own and own.get("preprocessing"):
        crop = float(own["preprocessing"].get("crop_fraction", 1.0))
    if tin["dtype"] in ("uint8", "int8") and tin["scale"] > 0:
        s, z = float(tin["scale"]), int(tin["zero_point"])
        kw = dict(scale=s, mean=(z * s,) * c, std=(1.0,) * c)
    elif tin["dtype"] == "float32":
        norm = meta_in.get("normalization")
        if not norm:
            return None, "its float input has no NormalizationOptions"
        mean, std = norm["mean"], norm["std"]
        if len(mean) not in (1, c) or len(std) not in (1, c) or not all(math.isfinite(v) for v in mean + std) \
                or not all(v > 0 for v in std):
            raise ModelFileError(f"{where}: NormalizationOptions mean {mean[:4]} / std {std[:4]} do not fit a "
                                 f"{c}-channel input (one or {c} finite values, std > 0); refused.")
        mean, std = (mean * c)[:c], (std * c)[:c]
        if len(set(mean)) == 1 and len(set(std)) == 1:
            kw = dict(scale=1.0 / std[0], mean=(mean[0] / std[0],) * c, std=(1.0,) * c)
        else:
            kw = dict(scale=1.0 / 255.0, mean=tuple(m / 255.0 for m in mean), std=tuple(v / 255.0 for v in std))
    else:
        return None, f"its input is {tin['dtype']}"
    try:
        spec = PreprocessSpec(input_size=(h, w), channels=c, crop_fraction=crop, **kw)
    except PreprocessError as e:
        raise ModelFileError(f"{where}: its metadata gives no usable preprocessing ({e.message}); refused.") from None
    if own and own.get("preprocessing"):
        theirs = PreprocessSpec.from_dict(own["preprocessing"])
        if (tuple(theirs.input_size), theirs.channels) != ((h, w), c) or not same_input(spec, theirs, tin):
            raise ModelFileError(f"{where}: {EDGECNN_FILE} and the standard metadata describe different inputs; "
                                 f"refused.")
    return spec.to_dict(), ""


def same_input(a, b, tensor: dict) -> bool:
    """Whether specs ``a`` and ``b`` feed the same tensor for every pixel value 0..255: equal
    quantized values for an integer input, float values within 1e-5 for a float one."""
    import numpy as np

    from edgecnn.data.preprocess import normalize, quantize

    p = np.repeat(np.arange(256, dtype=np.uint8)[:, None], a.channels, axis=1)[None, :, None, :]
    xa, xb = normalize(p, a), normalize(p, b)
    if tensor.get("dtype") in ("uint8", "int8") and tensor.get("scale", 0) > 0:
        dt = np.dtype(tensor["dtype"])
        return bool(np.array_equal(quantize(xa, tensor["scale"], tensor["zero_point"], dt),
                                   quantize(xb, tensor["scale"], tensor["zero_point"], dt)))
    return bool(np.allclose(xa, xb, rtol=0, atol=1e-5))


# ---------------------------------------------------------------------------- ONNX
def describe_onnx(data: bytes, where: str = "model") -> Optional[ModelDescription]:
    """From ModelProto.metadata_props (what ONNX Runtime's ``get_modelmeta().custom_metadata_map``
    returns), doc_string and model_version; None when the file carries no edgecnn keys."""
    top = onnx_fields(data, where)
    props = top["metadata_props"]
    if not any(k.startswith("edgecnn.") for k in props):
        return None
    labels = None
    note = []
    if ONNX_LABELS in props:
        labels = _json(props[ONNX_LABELS].encode("utf-8"), f"{where}: {ONNX_LABELS}")
        if not (isinstance(labels, list) and 1 <= len(labels) <= MAX_CLASSES
                and all(isinstance(s, str) and s and "\n" not in s and len(s) <= 1024 for s in labels)):
            raise ModelFileError(f"{where}: {ONNX_LABELS} is not a list of 1 to {MAX_CLASSES} one-line names; refused.")
    else:
        note.append("its metadata names no labels")
    spec = None
    if ONNX_PREPROCESSING in props:
        from edgecnn.contract.run import validate_spec

        spec = _json(props[ONNX_PREPROCESSING].encode("utf-8"), f"{where}: {ONNX_PREPROCESSING}")
        validate_spec(spec, f"{where}: {ONNX_PREPROCESSING}")
    else:
        note.append("its metadata gives no preprocessing")
    kind = props.get(ONNX_OUTPUT_KIND, "probabilities")
    if kind not in OUTPUT_KINDS:
        raise ModelFileError(f"{where}: {ONNX_OUTPUT_KIND} {kind[:40]!r} is not one of {', '.join(OUTPUT_KINDS)}; "
                             f"refused.")
    quant = input_quantization(props, where)
    return ModelDescription("onnx", "ONNX metadata_props", labels, spec, kind, props.get("edgecnn.name", ""),
                            top["doc_string"], props.get("edgecnn.version") or str(top["model_version"] or ""), props.get("edgecnn.author", ""),
                            props.get("edgecnn.license", ""), None,
                            {"Rgb8": "RGB", "Gray8": "GRAYSCALE"}.get(props.get("Image.BitmapPixelFormat", "")),
                            quant, "; ".join(note))


def input_quantization(props: Dict[str, str], where: str = "model") -> Optional[dict]:
    """``{"scale", "zero_point"}`` of an ONNX model's integer input, from its metadata_props (as
    ONNX Runtime's custom metadata map returns them), or None when it records none."""
    if ONNX_INPUT_QUANTIZATION not in props:
        return None
    q = _json(str(props[ONNX_INPUT_QUANTIZATION]).encode("utf-8"), f"{where}: {ONNX_INPUT_QUANTIZATION}")
    if not (isinstance(q, dict) and _is_num(q.get("scale")) and q["scale"] > 0
            and _is_int(q.get("zero_point")) and -128 <= q["zero_point"] <= 255):
        raise ModelFileError(f"{where}: {ONNX_INPUT_QUANTIZATION} needs a scale > 0 and an integer zero_point; "
                             f"refused.")
    return {"scale": float(q["scale"]), "zero_point": int(q["zero_point"])}


class _Bad(Exception):
    pass


def _varint(buf, i: int) -> Tuple[int, int]:
    result, shift = 0, 0
    while True:
        if i >= len(buf):
            raise _Bad("a truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise _Bad("a varint longer than 64 bits")


def _fields(buf, start: int, end: int):
    """(field number, wire type, value or (start, end) of a length-delimited field), in order."""
    i = start
    while i < end:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
            yield field, wire, v
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            if i > end:
                raise _Bad("a truncated fixed-size field")
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > end:
                raise _Bad("a length-delimited field runs past its message")
            yield field, wire, (i, i + n)
            i += n
        else:
            raise _Bad(f"wire type {wire}")


def onnx_fields(data: bytes, where: str = "model") -> dict:
    """The top-level ModelProto fields a device needs (producer, model_version, doc_string,
    metadata_props), by a bounded scan of the protobuf: the graph is skipped, never parsed."""
    buf = memoryview(data)
    out = {"producer_name": "", "model_version": None, "doc_string": "", "metadata_props": {}}
    try:
        for field, wire, v in _fields(buf, 0, len(buf)):
            if wire == 2 and field in (2, 6):
                if v[1] - v[0] > MAX_PROP_BYTES:
                    raise _Bad("a string over its cap")
                out["producer_name" if field == 2 else "doc_string"] = bytes(buf[v[0]:v[1]]).decode("utf-8")
            elif wire == 0 and field == 5:
                out["model_version"] = v
            elif wire == 2 and field == 14:
                if len(out["metadata_props"]) >= MAX_PROPS:
                    raise _Bad(f"more than {MAX_PROPS} metadata_props")
                key = value = ""
                for f2, w2, v2 in _fields(buf, v[0], v[1]):
                    if w2 == 2 and f2 in (1, 2):
                        if v2[1] - v2[0] > MAX_PROP_BYTES:
                            raise _Bad("a metadata value over its cap")
                        text = bytes(buf[v2[0]:v2[1]]).decode("utf-8")
                        key, value = (text, value) if f2 == 1 else (key, text)
                out["metadata_props"][key] = value
    except (_Bad, UnicodeDecodeError) as e:
        raise ModelFileError(f"{where}: not a readable ONNX model ({e}); refused.") from None
    return out


def _json(raw: bytes, where: str):
    if len(raw) > MAX_PROP_BYTES:
        raise ModelFileError(f"{where}: more than {MAX_PROP_BYTES >> 20} MiB; refused.")

    from edgecnn.contract.checks import parse_json

    return parse_json(raw, where, ModelFileError)

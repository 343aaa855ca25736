"""TFLite Metadata as a device reads it: a bounded reader of the model flatbuffer, its
``TFLITE_METADATA`` buffer (``metadata_schema.fbs``, identifier ``M001``) and the ZIP archive of
associated files appended after it. The writer (``edgecnn.export.metadata``) shares the schema's
slot numbers below.

Where things are in a self-describing .tflite (the layout of the reference MetadataPopulator,
which MediaPipe's ModelMetadataExtractor and the TFLite Support libraries read):

1. ``Model.metadata`` holds an entry ``{name: "TFLITE_METADATA", buffer: i}``; ``Model.buffers[i]``
   holds the ``ModelMetadata`` flatbuffer: model name, description, version, author, licence,
   and per subgraph one ``TensorMetadata`` per input and output (the input's ImageProperties
   colour space, NormalizationOptions mean/std in pixel units and Stats; the output's
   FeatureProperties, Stats and its labels file, an ``AssociatedFile`` of type
   TENSOR_AXIS_LABELS).
2. The associated files are entries of a ZIP archive appended after the flatbuffer, STORED
   (uncompressed: MediaPipe hands out pointers into the model and refuses compressed entries).

Every file is untrusted input: a flatbuffer carries offsets, and a hostile one points anywhere.
Nothing here follows an offset without checking it against the buffer, no vector longer than
its cap is walked, the walk follows the fixed shape of the schema (no recursion driven by the
file), and the archive must be small, STORED and hold few entries. A malformed file is one
``ModelFileError`` line. Only the standard library: no TensorFlow, no flatbuffers runtime, no
generated code.
"""
from __future__ import annotations

import io
import struct
import zipfile
from typing import Dict, List, Optional, Tuple

from edgecnn.errors import ModelFileError

METADATA_NAME = "TFLITE_METADATA"   # Model.metadata[].name that MediaPipe and TFLite Support look for
METADATA_IDENTIFIER = b"M001"       # file_identifier of metadata_schema.fbs
TFLITE_IDENTIFIER = b"TFL3"         # file_identifier of the TFLite schema.fbs
SCHEMA_VERSION = "1.5.0"            # the metadata_schema.fbs followed here
MIN_PARSER_VERSION = "1.0.0"        # every field written by edgecnn exists since 1.0.0

# Caps on what a file may make this reader walk or hold (far above any classifier's needs).
MAX_METADATA_BYTES = 1 << 20
MAX_VECTOR = 1 << 16                # entries of any vector walked (tensors, buffers, metadata entries)
MAX_STRING = 1 << 16
MAX_ARCHIVE_ENTRIES = 64
MAX_ASSOCIATED_BYTES = 16 << 20
MAX_DIMS = 8

# --- metadata_schema.fbs: enum values and field slots (the index of each field in its table) ----
ASSOCIATED_FILE_TYPES = {"UNKNOWN": 0, "DESCRIPTIONS": 1, "TENSOR_AXIS_LABELS": 2, "TENSOR_VALUE_LABELS": 3,
                         "TENSOR_AXIS_SCORE_CALIBRATION": 4, "VOCABULARY": 5, "SCANN_INDEX_FILE": 6}
COLOR_SPACES = {"UNKNOWN": 0, "RGB": 1, "GRAYSCALE": 2}
CONTENT_FEATURE, CONTENT_IMAGE = 1, 2      # union ContentProperties { FeatureProperties, ImageProperties, ... }
PU_NORMALIZATION = 1                       # union ProcessUnitOptions { NormalizationOptions, ... }
AF_NAME, AF_DESCRIPTION, AF_TYPE, AF_LOCALE = 0, 1, 2, 3        # table AssociatedFile
IP_COLOR_SPACE, IP_DEFAULT_SIZE = 0, 1                          # table ImageProperties
CT_PROPS_TYPE, CT_PROPS, CT_RANGE = 0, 1, 2                     # table Content (a union takes 2 slots)
NO_MEAN, NO_STD = 0, 1                                          # table NormalizationOptions
PU_OPTIONS_TYPE, PU_OPTIONS = 0, 1                              # table ProcessUnit
ST_MAX, ST_MIN = 0, 1                                           # table Stats (max first)
TM_NAME, TM_DESCRIPTION, TM_DIMENSION_NAMES, TM_CONTENT, TM_PROCESS_UNITS, TM_STATS, TM_ASSOCIATED_FILES = range(7)
SG_NAME, SG_DESCRIPTION, SG_INPUTS, SG_OUTPUTS, SG_ASSOCIATED_FILES = range(5)
SG_FIELDS = 10
MM_NAME, MM_DESCRIPTION, MM_VERSION, MM_SUBGRAPHS, MM_AUTHOR, MM_LICENSE, MM_ASSOCIATED_FILES, \
    MM_MIN_PARSER_VERSION = range(8)

# --- TFLite schema.fbs: the subset read here ------------------------------------------------
MODEL_SUBGRAPHS, MODEL_BUFFERS, MODEL_METADATA = 2, 4, 6
BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = 0, 1, 2
META_NAME, META_BUFFER = 0, 1
SUBGRAPH_TENSORS, SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS = 0, 1, 2
TENSOR_SHAPE, TENSOR_TYPE, TENSOR_NAME, TENSOR_QUANTIZATION = 0, 1, 3, 4
QP_SCALE, QP_ZERO_POINT = 2, 3
TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8"}


class _Bad(Exception):
    """A structural fault, turned into one ModelFileError line by the public functions."""


class _Table:
    """A flatbuffer table at ``pos`` of ``buf``, read by slot number, every offset checked."""

    __slots__ = ("buf", "pos", "vt", "vt_size")

    def __init__(self, buf: bytes, pos: int):
        self.buf = buf
        self.pos = pos
        _need(buf, pos, 4)
        self.vt = pos - struct.unpack_from("<i", buf, pos)[0]
        _need(buf, self.vt, 4)
        self.vt_size = struct.unpack_from("<H", buf, self.vt)[0]
        if self.vt_size < 4 or self.vt_size % 2:
            raise _Bad("bad vtable")
        _need(buf, self.vt, self.vt_size)

    def _field(self, slot: int) -> int:
        entry = 4 + 2 * slot
        if entry + 2 > self.vt_size:
            return 0
        off = struct.unpack_from("<H", self.buf, self.vt + entry)[0]
        return self.pos + off if off else 0

    def scalar(self, slot: int, fmt: str, default=0):
        p = self._field(slot)
        if not p:
            return default
        _need(self.buf, p, struct.calcsize(fmt))
        return struct.unpack_from("<" + fmt, self.buf, p)[0]

    def _target(self, slot: int) -> int:
        p = self._field(slot)
        if not p:
            return 0
        _need(self.buf, p, 4)
        t = p + struct.unpack_from("<I", self.buf, p)[0]
        _need(self.buf, t, 4)
        return t

    def table(self, slot: int) -> Optional["_Table"]:
        t = self._target(slot)
        return _Table(self.buf, t) if t else None

    def _vector(self, slot: int, size: int, cap: int) -> Tuple[int, int]:
        t = self._target(slot)
        if not t:
            return 0, 0
        n = struct.unpack_from("<I", self.buf, t)[0]
        if n > cap:
            raise _Bad(f"a vector of {n} entries (at most {cap})")
        _need(self.buf, t + 4, n * size)
        return t + 4, n

    def string(self, slot: int) -> Optional[str]:
        t = self._target(slot)
        return _string_at(self.buf, t) if t else None

    def tables(self, slot: int, cap: int = MAX_VECTOR) -> List["_Table"]:
        start, n = self._vector(slot, 4, cap)
        out = []
        for i in range(n):
            p = start + 4 * i
            out.append(_Table(self.buf, p + struct.unpack_from("<I", self.buf, p)[0]))
        return out

    def table_at(self, slot: int, i: int, cap: int = MAX_VECTOR) -> "_Table":
        """Entry ``i`` of a vector of tables (only that one is read)."""
        start, n = self._vector(slot, 4, cap)
        if not 0 <= i < n:
            raise _Bad(f"index {i} outside a vector of {n}")
        p = start + 4 * i
        return _Table(self.buf, p + struct.unpack_from("<I", self.buf, p)[0])

    def strings(self, slot: int, cap: int = 64) -> List[str]:
        start, n = self._vector(slot, 4, cap)
        return [_string_at(self.buf, start + 4 * i + struct.unpack_from("<I", self.buf, start + 4 * i)[0])
                for i in range(n)]

    def numbers(self, slot: int, fmt: str, cap: int = MAX_VECTOR) -> Optional[List]:
        if not self._field(slot):
            return None
        start, n = self._vector(slot, struct.calcsize(fmt), cap)
        return list(struct.unpack_from(f"<{n}{fmt}", self.buf, start)) if n else []

    def byte_range(self, slot: int, cap: int) -> Optional[Tuple[int, int]]:
        """(start, length) of a [ubyte] vector inside the buffer."""
        if not self._field(slot):
            return None
        return self._vector(slot, 1, cap)

    def union(self, type_slot: int, value_slot: int) -> Tuple[int, Optional["_Table"]]:
        kind = self.scalar(type_slot, "B", 0)
        value = self.table(value_slot)
        return (kind, value) if kind and value is not None else (kind, None)


def _need(buf: bytes, pos: int, n: int) -> None:
    if pos < 0 or n < 0 or pos + n > len(buf):
        raise _Bad("an offset points outside the file")


def _string_at(buf: bytes, t: int) -> str:
    _need(buf, t, 4)
    n = struct.unpack_from("<I", buf, t)[0]
    if n > MAX_STRING:
        raise _Bad(f"a string of {n} bytes")
    _need(buf, t + 4, n)
    return bytes(buf[t + 4:t + 4 + n]).decode("utf-8", errors="strict")


def _root(buf: bytes, identifier: bytes, what: str) -> _Table:
    if len(buf) < 8 or bytes(buf[4:8]) != identifier:
        raise _Bad(f"{what}: flatbuffer identifier {bytes(buf[4:8])!r}, not {identifier!r}")
    return _Table(buf, struct.unpack_from("<I", buf, 0)[0])


def _guarded(where: str, fn, *args):
    try:
        return fn(*args)
    except ModelFileError:
        raise
    except (_Bad, struct.error, UnicodeDecodeError, ValueError, OverflowError) as e:
        raise ModelFileError(f"{where}: malformed TFLite metadata ({e}); refused.") from None


# ---------------------------------------------------------------------------- the model
def model_io(data: bytes, where: str = "model") -> dict:
    """Subgraph 0's first input and output tensors ({name, shape, dtype, scale, zero_point}) and
    the counts of subgraphs, inputs and outputs, read from the flatbuffer without a runtime."""
    return _guarded(where, _model_io, data)


def _model_io(data: bytes) -> dict:
    root = _root(data, TFLITE_IDENTIFIER, "not a TFLite model")
    sgs = root.tables(MODEL_SUBGRAPHS, 1024)
    if not sgs:
        raise _Bad("the model has no subgraph")
    sg = sgs[0]
    ins = sg.numbers(SUBGRAPH_INPUTS, "i", 1024) or []
    outs = sg.numbers(SUBGRAPH_OUTPUTS, "i", 1024) or []

    def tensor(i: int) -> dict:
        t = sg.table_at(SUBGRAPH_TENSORS, i, 1 << 24)
        q = t.table(TENSOR_QUANTIZATION)
        scale = (q.numbers(QP_SCALE, "f", 1 << 16) if q else None) or []
        zp = (q.numbers(QP_ZERO_POINT, "q", 1 << 16) if q else None) or []
        return {"name": t.string(TENSOR_NAME) or "", "shape": [int(d) for d in t.numbers(TENSOR_SHAPE, "i", MAX_DIMS) or []],
                "dtype": TENSOR_TYPES.get(t.scalar(TENSOR_TYPE, "b", 0), "other"),
                "scale": float(scale[0]) if len(scale) == 1 else 0.0,
                "zero_point": int(zp[0]) if len(zp) == 1 else 0}

    return {"subgraphs": len(sgs), "inputs": len(ins), "outputs": len(outs),
            "input": tensor(ins[0]) if ins else None, "output": tensor(outs[0]) if outs else None}


def metadata_buffer(data: bytes, where: str = "model") -> Optional[bytes]:
    """The TFLITE_METADATA flatbuffer of a model, or None when it has none."""
    return _guarded(where, _metadata_buffer, data)


def _metadata_buffer(data: bytes) -> Optional[bytes]:
    root = _root(data, TFLITE_IDENTIFIER, "not a TFLite model")
    entries = [e for e in root.tables(MODEL_METADATA, 1024) if e.string(META_NAME) == METADATA_NAME]
    if not entries:
        return None
    if len(entries) > 1:
        raise _Bad(f"{len(entries)} {METADATA_NAME} entries")
    buf = root.table_at(MODEL_BUFFERS, entries[0].scalar(META_BUFFER, "I", 0), 1 << 24)
    rng = buf.byte_range(BUFFER_DATA, MAX_METADATA_BYTES)
    if rng is not None and rng[1]:
        start, n = rng
    else:  # a model over 2 GB keeps buffer data after the flatbuffer, by offset and size
        start, n = buf.scalar(BUFFER_OFFSET, "Q", 0), buf.scalar(BUFFER_SIZE, "Q", 0)
        if n > MAX_METADATA_BYTES:
            raise _Bad(f"a metadata buffer of {n} bytes")
        _need(data, start, n)
    if n == 0:
        return None
    return bytes(data[start:start + n])


# What zipfile raises on a crafted archive besides BadZipFile (encryption and patch flags, sizes).
_ZIP_ERRORS = (ValueError, OverflowError, EOFError, struct.error, NotImplementedError, RuntimeError, OSError)


def associated_files(data: bytes, where: str = "model") -> Dict[str, bytes]:
    """The files of the archive appended to a model (name -> bytes); {} when there is none.

    At most ``MAX_ARCHIVE_ENTRIES`` entries of ``MAX_ASSOCIATED_BYTES`` in all, each STORED
    (what MediaPipe requires, and nothing is decompressed here)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return {}
    except _ZIP_ERRORS as e:
        raise ModelFileError(f"{where}: unreadable archive of associated files ({e}); refused.") from None
    out: Dict[str, bytes] = {}
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ARCHIVE_ENTRIES:
            raise ModelFileError(f"{where}: {len(infos)} associated files (at most {MAX_ARCHIVE_ENTRIES}); refused.")
        total = 0
        for zi in infos:
            if zi.compress_type != zipfile.ZIP_STORED:
                raise ModelFileError(f"{where}: associated file {zi.filename[:80]!r} is compressed; TFLite metadata "
                                     f"stores them uncompressed. Refused.")
            total += zi.file_size
            if total > MAX_ASSOCIATED_BYTES:
                raise ModelFileError(f"{where}: associated files over {MAX_ASSOCIATED_BYTES >> 20} MiB; refused.")
            try:
                out[zi.filename] = zf.read(zi)
            except (zipfile.BadZipFile,) + _ZIP_ERRORS as e:
                raise ModelFileError(f"{where}: associated file {zi.filename[:80]!r} is unreadable ({e}); "
                                     f"refused.") from None
    return out


# ---------------------------------------------------------------------------- the metadata
def parse_metadata(meta: bytes, where: str = "model") -> dict:
    """The ``ModelMetadata`` flatbuffer -> a plain dict of the fields an image classifier uses."""
    return _guarded(where, _parse_metadata, meta)


def _files(t: _Table, slot: int) -> List[dict]:
    names = {v: k for k, v in ASSOCIATED_FILE_TYPES.items()}
    return [{"name": f.string(AF_NAME) or "", "description": f.string(AF_DESCRIPTION) or "",
             "type": names.get(f.scalar(AF_TYPE, "b", 0), "UNKNOWN"), "locale": f.string(AF_LOCALE) or ""}
            for f in t.tables(slot, 64)]


def _tensor_metadata(t: _Table) -> dict:
    d = {"name": t.string(TM_NAME) or "", "description": t.string(TM_DESCRIPTION) or "", "content": None,
         "color_space": None, "normalization": None, "stats": None, "associated_files": _files(t, TM_ASSOCIATED_FILES)}
    c = t.table(TM_CONTENT)
    if c is not None:
        kind, props = c.union(CT_PROPS_TYPE, CT_PROPS)
        d["content"] = {CONTENT_FEATURE: "feature", CONTENT_IMAGE: "image"}.get(kind, "other" if kind else None)
        if kind == CONTENT_IMAGE and props is not None:
            cs = props.scalar(IP_COLOR_SPACE, "b", 0)
            d["color_space"] = {v: k for k, v in COLOR_SPACES.items()}.get(cs, "UNKNOWN")
    norms = []
    for pu in t.tables(TM_PROCESS_UNITS, 16):
        kind, opt = pu.union(PU_OPTIONS_TYPE, PU_OPTIONS)
        if kind == PU_NORMALIZATION and opt is not None:
            norms.append({"mean": [float(x) for x in opt.numbers(NO_MEAN, "f", 16) or []],
                          "std": [float(x) for x in opt.numbers(NO_STD, "f", 16) or []]})
    if len(norms) > 1:
        raise _Bad("more than one NormalizationOptions on one tensor")
    d["normalization"] = norms[0] if norms else None
    s = t.table(TM_STATS)
    if s is not None:
        mx, mn = s.numbers(ST_MAX, "f", 16), s.numbers(ST_MIN, "f", 16)
        d["stats"] = {"min": mn, "max": mx}
    return d


def _parse_metadata(meta: bytes) -> dict:
    if len(meta) > MAX_METADATA_BYTES:
        raise _Bad(f"{len(meta)} bytes of metadata")
    root = _root(meta, METADATA_IDENTIFIER, "TFLITE_METADATA is not a ModelMetadata")
    sgs = root.tables(MM_SUBGRAPHS, 16)
    return {"name": root.string(MM_NAME) or "", "description": root.string(MM_DESCRIPTION) or "",
            "version": root.string(MM_VERSION) or "", "author": root.string(MM_AUTHOR) or "",
            "license": root.string(MM_LICENSE) or "", "min_parser_version": root.string(MM_MIN_PARSER_VERSION) or "",
            "associated_files": _files(root, MM_ASSOCIATED_FILES),
            "subgraphs": [{"name": sg.string(SG_NAME) or "",
                           "inputs": [_tensor_metadata(t) for t in sg.tables(SG_INPUTS, 16)],
                           "outputs": [_tensor_metadata(t) for t in sg.tables(SG_OUTPUTS, 16)]} for sg in sgs]}


def flatbuffer_size(data: bytes) -> int:
    """Where the TFLite flatbuffer ends: the first local header of an appended archive, else the
    whole length (a flatbuffer does not record its own length)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            starts = [zi.header_offset for zi in zf.infolist()[:MAX_ARCHIVE_ENTRIES]]
    except (zipfile.BadZipFile,) + _ZIP_ERRORS:
        return len(data)
    start = min(starts) if starts else len(data)
    return start if 8 <= start <= len(data) else len(data)

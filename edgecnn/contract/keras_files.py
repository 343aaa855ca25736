"""Keras model files as untrusted input: what is loaded, and how, so that no code comes from a file.

A ``.keras`` file is a zip of ``config.json`` (the architecture), ``model.weights.h5`` and
``metadata.json``. Keras rebuilds the architecture by looking classes and functions up by the
names in the config, and ``tf_keras.models.load_model`` chooses its loader by the file's *name*:
a name not ending in ``.keras`` goes to the HDF5 loader, which ignores safe mode and runs the
marshalled bytecode of Lambda layers. One file can be a zip and an HDF5 file at once (the HDF5
superblock may sit at byte 512, 1024, ... behind a zip, or the HDF5 body may hide in the zip's
comment), so "is it a zip" decides nothing. Safe loading is therefore built so that no name,
member or config entry of the file reaches Keras unchecked:

1. The file must be a plain zip from its first byte to its last (no bytes before the first
   member, no comment, nothing after the end record) and no HDF5 signature may appear at any
   offset where the HDF5 library looks for one. Its members must be exactly what a ``.keras``
   holds: ``config.json``, ``model.weights.h5``, optionally ``metadata.json``; sizes are capped
   before anything is decompressed, in total and in compression ratio.
2. ``config.json`` is parsed here and checked against an **allow-list**: every serialized object
   must be a built-in layer, initializer, regularizer, constraint or dtype policy of Keras
   (``SAFE_CLASSES``), every function an activation (``SAFE_ACTIVATIONS``), and every op-layer
   (``TFOpLambda``, ``SlicingOpLambda``) must call an element-wise or shape op (``SAFE_TF_OPS``,
   ``SAFE_SLICING_OPS``). ``ClassMethod``, ``InstanceMethod``, ``InstanceProperty``, ``Lambda``
   and anything not listed are refused, naming the layer.
3. A new zip is written into a private temporary folder (mode 0700, always removed): the checked
   config (re-serialized, without ``compile_config``: the optimizer and losses are never loaded,
   so they are neither checked nor written), the weights copied with the caps enforced
   while streaming. Keras's zip loader (``saving_lib.load_model``) is called on that file: Keras
   sees exactly what was checked, under a name it cannot misread, with no assets to unpack.

Keras 3 files (``metadata.json`` says ``keras_version`` 3.x: saved with ``import keras`` or TF
2.21's ``tf.keras``) go through the same three steps and are loaded by Keras 3's zip loader. Keras
3 looks every object up by its ``module`` *and* ``class_name`` (a public ``keras.*`` function is one
lookup away: its own safe mode let a crafted Lambda call ``keras.config.set_floatx``), so for
them the allow-list is a table of exact (module, class) pairs (``KERAS3_CLASSES``): the built-in
layers of ``keras.layers``, Functional and Sequential models, the element-wise ``keras.ops``
nodes a functional graph records (``KERAS3_OPS``), initializers, regularizers, constraints and
the float32 dtype policy. The refusals are the same as for tf_keras files: Lambda, custom or
registered classes (without ``--custom-objects``), modules outside Keras.

``unsafe=True`` (``--unsafe-load``) is the one way past this, for a model the user trusts.
No TensorFlow is imported at module level.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from edgecnn.contract.checks import parse_json, regular_file
from edgecnn.errors import EdgecnnError, InvalidConfigError, ModelFileError

CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
METADATA = "metadata.json"
MEMBERS = frozenset({CONFIG, WEIGHTS, METADATA})

MAX_UNCOMPRESSED = 1 << 30          # all members together, decompressed
MAX_CONFIG_BYTES = 64 << 20
MAX_METADATA_BYTES = 1 << 20
MAX_RATIO = 100                     # decompressed / compressed, for members over RATIO_FLOOR bytes
RATIO_FLOOR = 1 << 20
MAX_CONFIG_DEPTH = 256
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_LOCAL = b"PK\x03\x04"
_ZIP_END = b"PK\x05\x06"
_CHUNK = 1 << 20

# Built-in Keras classes that compute on tensors and read no file, import no module and call no
# Python given in the file. Layers first, then the objects their configs hold.
SAFE_LAYERS = frozenset({
    "InputLayer", "Functional", "Sequential",
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "Dense",
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
    "Activation", "ReLU", "PReLU", "LeakyReLU", "ELU", "Softmax", "ThresholdedReLU",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "Flatten", "Reshape", "Permute", "RepeatVector", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
    "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout", "GaussianNoise",
    "AlphaDropout", "ActivityRegularization", "Identity",
    "Rescaling", "Normalization", "Resizing", "CenterCrop", "RandomFlip", "RandomRotation", "RandomZoom",
    "RandomContrast", "RandomTranslation", "RandomCrop", "RandomBrightness", "RandomHeight", "RandomWidth",
    "TFOpLambda", "SlicingOpLambda",
})
SAFE_OBJECTS = frozenset({
    # initializers
    "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling",
    "GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform", "Orthogonal",
    # regularizers and constraints
    "L1", "L2", "L1L2", "OrthogonalRegularizer", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm",
    "RadialConstraint",
    # dtype policies (tf_keras and Keras 3)
    "Policy", "DTypePolicy", "FloatDTypePolicy",
    # values the serializer writes in place
    "__tensor__", "__numpy__", "__bytes__", "__keras_tensor__", "__tuple__", "function",
})
SAFE_CLASSES = SAFE_LAYERS | SAFE_OBJECTS

SAFE_ACTIVATIONS = frozenset({
    "linear", "relu", "relu6", "sigmoid", "hard_sigmoid", "softmax", "log_softmax", "tanh", "swish", "silu",
    "hard_swish", "hard_silu", "gelu", "elu", "selu", "softplus", "softsign", "exponential", "leaky_relu", "mish",
})

# TensorFlow functions a functional model may call through a TFOpLambda layer and still load in
# safe mode: ``x + 3.0`` or ``x * (1 / 6)`` on a Keras tensor is saved as one (MobileNetV3's
# hard-swish has 56 of them). The layer looks its function up by name in the whole TensorFlow API,
# so only element-wise arithmetic, activations and shape ops (no file, no Python) are listed.
SAFE_TF_OPS = frozenset({
    "__operators__.add", "__operators__.getitem", "math.add", "math.subtract", "math.multiply", "math.truediv",
    "math.divide", "math.negative", "math.maximum", "math.minimum", "math.square", "math.sqrt", "math.abs",
    "math.sigmoid", "math.tanh", "math.exp", "nn.relu", "nn.relu6", "nn.silu", "nn.swish", "nn.gelu",
    "nn.softmax", "nn.sigmoid", "compat.v1.transpose", "reshape", "identity", "math.reduce_mean",
    "concat", "clip_by_value", "cast", "expand_dims", "squeeze", "transpose",
})
SAFE_SLICING_OPS = frozenset({"__operators__.getitem"})
_OP_LAYERS = {"TFOpLambda": SAFE_TF_OPS, "SlicingOpLambda": SAFE_SLICING_OPS}
_CODE_LAYERS = ("Lambda", "__lambda__", "ClassMethod", "InstanceMethod", "InstanceProperty", "__typespec__")
_ACTIVATION_KEYS = ("activation", "recurrent_activation")

# Keras 3: the exact (module, class) pairs a file may name. The op nodes are what a functional
# graph records when ``keras.ops`` (or ``+ - * /``) is applied to its tensors: element-wise
# arithmetic and activations, no file, no Python.
KERAS3_OPS = {
    "keras.src.ops.numpy": frozenset({"Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Mean", "Maximum",
                                      "Minimum", "Negative", "Clip", "Square", "Sqrt", "Abs", "Exp"}),
    "keras.src.ops.nn": frozenset({"Relu", "Relu6", "Sigmoid", "HardSigmoid", "HardSilu", "Silu", "Softmax"}),
}
_KERAS3_MODELS = frozenset({"Functional", "Sequential", "Model"})
KERAS3_CLASSES = {
    "keras.layers": SAFE_LAYERS - _KERAS3_MODELS - {"TFOpLambda", "SlicingOpLambda"},
    "keras": _KERAS3_MODELS | {"DTypePolicy", "FloatDTypePolicy"},
    "keras.models": _KERAS3_MODELS,
    "keras.src.models.functional": frozenset({"Functional"}),
    "keras.src.models.sequential": frozenset({"Sequential"}),
    "keras.initializers": SAFE_OBJECTS & frozenset({
        "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling",
        "GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform", "Orthogonal"}),
    "keras.regularizers": frozenset({"L1", "L2", "L1L2", "OrthogonalRegularizer"}),
    "keras.constraints": frozenset({"MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"}),
    None: frozenset({"__keras_tensor__", "__numpy__", "__tensor__", "__bytes__", "__tuple__"}),
    **KERAS3_OPS,
}
_FUNCTION_MODULES = ("builtins", "keras.activations", "keras.src.activations.activations")


# ---------------------------------------------------------------------------- what the file is
def hdf5_offsets(path, size: Optional[int] = None) -> list:
    """Offsets at which the HDF5 library would find a superblock: 0, 512, 1024, 2048, ..."""
    size = os.path.getsize(path) if size is None else size
    found, off = [], 0
    with open(path, "rb") as f:
        while off + len(HDF5_MAGIC) <= size:
            f.seek(off)
            if f.read(len(HDF5_MAGIC)) == HDF5_MAGIC:
                found.append(off)
            off = 512 if off == 0 else off * 2
    return found


def file_kind(path) -> str:
    """'keras' (a plain zip and nothing else), 'polyglot' (a zip that is HDF5 too), 'hdf5',
    'savedmodel' or 'unknown'. Decided from the bytes, never from the name."""
    p = Path(path)
    if p.is_dir():
        return "savedmodel" if (p / "saved_model.pb").exists() else "unknown"
    with open(p, "rb") as f:
        head = f.read(4)
    is_hdf5 = bool(hdf5_offsets(p))
    is_zip = zipfile.is_zipfile(p)
    if is_zip and (is_hdf5 or head != _ZIP_LOCAL):
        return "polyglot" if is_hdf5 else "unknown"
    if is_hdf5:
        return "hdf5"
    return "keras" if is_zip else "unknown"


def _plain_zip(path, size: int) -> None:
    """The zip runs from byte 0 to the end record at the very end: no prefix, comment or suffix."""
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(max(0, size - 22))
        tail = f.read(22)
    if head != _ZIP_LOCAL or len(tail) != 22 or tail[:4] != _ZIP_END or tail[20:22] != b"\x00\x00":
        raise ModelFileError(f"{path}: not a plain .keras zip (data before its first member, after its end record, "
                             f"or in a zip comment); refused.")


def _check_members(path, z: zipfile.ZipFile) -> dict:
    infos = z.infolist()
    names = [i.filename for i in infos]
    if len(names) != len(set(names)):
        raise ModelFileError(f"{path}: the .keras zip names a member twice; refused.")
    extra = sorted(set(names) - MEMBERS)
    if extra:
        shown = ", ".join(repr(n[:60]) for n in extra[:3])
        raise ModelFileError(f"{path}: the .keras zip holds {shown}{' ...' if len(extra) > 3 else ''}, which a Keras "
                             f"model file does not (only {CONFIG}, {WEIGHTS}, {METADATA}); refused.")
    for need in (CONFIG, WEIGHTS):
        if need not in names:
            raise ModelFileError(f"{path}: not a Keras model (no {need} in the zip).")
    total = 0
    for i in infos:
        if i.flag_bits & 0x1:
            raise ModelFileError(f"{path}: member {i.filename} is encrypted; refused.")
        if i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFileError(f"{path}: member {i.filename} uses an unsupported compression; refused.")
        total += i.file_size
        if i.file_size > RATIO_FLOOR and i.file_size > MAX_RATIO * max(i.compress_size, 1):
            raise ModelFileError(f"{path}: member {i.filename} expands {i.file_size // max(i.compress_size, 1)}-fold "
                                 f"(at most {MAX_RATIO}); refused as a zip bomb.")
    if total > MAX_UNCOMPRESSED:
        raise ModelFileError(f"{path}: the .keras zip expands to {total} bytes (at most {MAX_UNCOMPRESSED}); refused.")
    if z.getinfo(CONFIG).file_size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{path}: its {CONFIG} is {z.getinfo(CONFIG).file_size} bytes; refused.")
    if METADATA in names and z.getinfo(METADATA).file_size > MAX_METADATA_BYTES:
        raise ModelFileError(f"{path}: its {METADATA} is {z.getinfo(METADATA).file_size} bytes; refused.")
    return {i.filename: i for i in infos}


def _read_member(path, z: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """A member's bytes, never more than ``cap`` (the recorded size is not trusted)."""
    with z.open(info) as f:
        raw = f.read(cap + 1)
    if len(raw) > cap or len(raw) != info.file_size:
        raise ModelFileError(f"{path}: member {info.filename} is not the size its zip entry records; refused.")
    return raw


def _json(path, raw: bytes, what: str):
    obj = parse_json(raw, str(path), ModelFileError, what=what, max_depth=MAX_CONFIG_DEPTH)
    if not isinstance(obj, dict):
        raise ModelFileError(f"{path}: its {what} is not a JSON object.")
    return obj


def read_config(path) -> dict:
    """The config.json of the .keras zip at ``path``, after the file and its members are checked."""
    return read_archive(path)[0]


def keras_generation(meta: dict) -> int:
    """3 for a file Keras 3 wrote (``keras_version`` 3.x in metadata.json), else 2 (tf_keras)."""
    return 3 if str((meta or {}).get("keras_version", "")).startswith("3.") else 2


def read_archive(path):
    """(config.json, metadata.json or {}) of the .keras zip at ``path``, the file and members checked."""
    p = Path(path)
    size = p.stat().st_size
    if hdf5_offsets(p, size):
        raise ModelFileError(f"{p}: the file is a zip and an HDF5 file at once; the HDF5 part can run code "
                             f"(Keras picks its loader by file name); refused.")
    _plain_zip(p, size)
    try:
        with zipfile.ZipFile(p) as z:
            infos = _check_members(p, z)
            cfg = _json(p, _read_member(p, z, infos[CONFIG], MAX_CONFIG_BYTES), CONFIG)
            meta = (_json(p, _read_member(p, z, infos[METADATA], MAX_METADATA_BYTES), METADATA)
                    if METADATA in infos else {})
            return cfg, meta
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError) as e:
        raise ModelFileError(f"{p}: not a readable .keras zip ({' '.join(str(e).split())[:120]}).") from None


# ---------------------------------------------------------------------------- the config allow-list
def _layer_name(o) -> str:
    cfg = o.get("config")
    name = cfg.get("name") if isinstance(cfg, dict) else None
    return str(name)[:80] if isinstance(name, str) else "?"


def _allowed_module(module, generation: int) -> bool:
    if generation == 3:
        return module in KERAS3_CLASSES or module in _FUNCTION_MODULES
    if module is None:
        return True
    if not isinstance(module, str):
        return False
    if module in ("keras", "tf_keras", "builtins") or module.startswith(("keras.", "tf_keras.")):
        return True
    return module.startswith("edgecnn.models.")


def _refuse_code(path, o, cls) -> None:
    raise ModelFileError(f"{path}: layer '{_layer_name(o)}' is a {cls} layer, which runs code named by the file; "
                         f"refused (pass --unsafe-load only for a model you trust).")


def _not_listed(path, o, what: str) -> None:
    raise ModelFileError(f"{path}: layer '{_layer_name(o)}' is {what}, which is not on edgecnn's list of Keras "
                         f"classes that load without running code from the file; refused (pass --unsafe-load only "
                         f"for a model you trust).")


def _check_object(path, o: dict, generation: int = 2) -> None:
    cls = o.get("class_name")
    if not isinstance(cls, str):
        raise ModelFileError(f"{path}: a config entry has class_name {str(cls)[:40]!r}; refused.")
    if cls in _CODE_LAYERS or "__lambda__" in o:
        _refuse_code(path, o, cls)
    mod = o.get("module")
    reg = o.get("registered_name")
    inner = o.get("config")
    if cls == "function":
        fn = inner if isinstance(inner, str) else None
        if mod not in _FUNCTION_MODULES or fn not in SAFE_ACTIVATIONS or reg not in (None, fn, cls):
            raise ModelFileError(f"{path}: the config names the function {str(fn)[:60]!r} from {str(mod)[:60]!r}, "
                                 f"which is not a Keras activation; refused in safe mode.")
        return
    if not _allowed_module(mod, generation):
        mod_s = str(mod)[:120]
        if isinstance(mod, str) and (mod == "keras" or mod.startswith("keras.")):
            _not_listed(path, o, f"{mod_s}.{cls[:80]}")  # inside Keras, but not a model's building block
        raise ModelFileError(f"{path}: layer '{_layer_name(o)}' is {cls[:80]} from module {mod_s!r}, not built into "
                             f"Keras; refused in safe mode. For a model you trust, register it: "
                             f"--custom-objects {mod_s}:{cls[:80]} --unsafe-load.")
    if reg is not None and reg != cls and not (generation == 2 and isinstance(reg, str) and reg.startswith("edgecnn>")):
        raise ModelFileError(f"{path}: layer '{_layer_name(o)}' is the custom object {str(reg)[:80]!r}, not built "
                             f"into Keras; refused in safe mode. For a model you trust, register it: "
                             f"--custom-objects MODULE:{cls[:80]} --unsafe-load.")
    if generation == 3 and cls not in KERAS3_CLASSES.get(mod, ()):
        _not_listed(path, o, f"{mod}.{cls[:80]}" if mod else cls[:80])
    if cls not in SAFE_CLASSES and not (generation == 3 and cls in KERAS3_OPS.get(mod, ())):
        _not_listed(path, o, cls[:80])
    if cls in _OP_LAYERS:
        fn = inner.get("function") if isinstance(inner, dict) else None
        if fn not in _OP_LAYERS[cls]:
            raise ModelFileError(f"{path}: layer '{_layer_name(o)}' ({cls}) calls the TensorFlow function "
                                 f"{str(fn)[:80]!r}, which is not element-wise arithmetic or a shape op; refused "
                                 f"in safe mode (pass --unsafe-load only for a model you trust).")
    if isinstance(inner, dict):
        for key in _ACTIVATION_KEYS:
            act = inner.get(key)
            if isinstance(act, str) and act not in SAFE_ACTIVATIONS:
                raise ModelFileError(f"{path}: layer '{_layer_name(o)}' names the activation {act[:60]!r}, which is "
                                     f"not a Keras activation; refused in safe mode.")
        if generation == 3:
            _check_float32(path, o, cls, inner)


def _check_float32(path, o: dict, cls: str, inner: dict) -> None:
    """A Keras 3 model computes in float32: edgecnn converts, quantizes and verifies float32 graphs
    (a mixed_float16 or quantized dtype policy would change what every artifact is compared with)."""
    if cls in ("DTypePolicy", "FloatDTypePolicy"):
        policy, who = inner.get("name"), "a layer's dtype policy"
    else:
        policy, who = inner.get("dtype"), f"layer '{_layer_name(o)}'"
        if not isinstance(policy, str):
            return  # a policy object, checked on its own
    if policy not in (None, "float32"):
        raise ModelFileError(f"{path}: {who} computes in {str(policy)[:40]!r}; edgecnn imports float32 models "
                             f"(set the dtype policy to float32 before saving).")


def check_config(cfg, path, generation: int = 2) -> None:
    """Refuse a config that names anything outside the allow-lists (see the module docstring);
    ``generation``: 3 for a file Keras 3 wrote (``keras_generation``), else 2."""
    stack = [cfg]
    while stack:
        o = stack.pop()
        if isinstance(o, list):
            stack.extend(o)
            continue
        if not isinstance(o, dict):
            continue
        if "class_name" in o:
            _check_object(path, o, generation)
        stack.extend(v for v in o.values() if isinstance(v, (dict, list)))


def safe_load_refusal(path) -> Optional[str]:
    """Why safe mode would refuse the .keras file at ``path`` (the one-line reason), or None."""
    try:
        cfg, meta = read_archive(path)
        cfg.pop("compile_config", None)
        check_config(cfg, path, keras_generation(meta))
    except ModelFileError as e:
        return e.message
    return None


# ---------------------------------------------------------------------------- the rebuilt file
@contextmanager
def private_dir(prefix: str = "edgecnn-") -> Iterator[Path]:
    """A temporary folder only this user can enter, removed whatever happens inside."""
    d = tempfile.mkdtemp(prefix=prefix)
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _copy_capped(path, z: zipfile.ZipFile, info: zipfile.ZipInfo, out: zipfile.ZipFile) -> None:
    left = info.file_size
    with z.open(info) as src, out.open(info.filename, "w", force_zip64=left > (1 << 31)) as dst:
        while True:
            chunk = src.read(min(_CHUNK, left + 1))
            if not chunk:
                break
            left -= len(chunk)
            if left < 0:
                raise ModelFileError(f"{path}: member {info.filename} is larger than its zip entry records; refused.")
            dst.write(chunk)
    if left:
        raise ModelFileError(f"{path}: member {info.filename} is shorter than its zip entry records; refused.")


def rebuild(path, folder):
    """Write ``folder/model.keras``: the checked config (no compile config) and the capped weights;
    returns (its path, the Keras generation that wrote the file: 2 or 3)."""
    cfg, meta = read_archive(path)
    generation = keras_generation(meta)
    cfg.pop("compile_config", None)  # optimizer and losses: never loaded (compile=False), so not written
    check_config(cfg, path, generation)
    dst = Path(folder) / "model.keras"
    try:
        with zipfile.ZipFile(path) as z, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as out:
            infos = _check_members(path, z)
            out.writestr(CONFIG, json.dumps(cfg))
            if meta:
                out.writestr(METADATA, json.dumps({k: meta[k] for k in ("keras_version", "date_saved")
                                                   if isinstance(meta.get(k), str)}))
            _copy_capped(path, z, infos[WEIGHTS], out)
    except (zipfile.BadZipFile, EOFError, NotImplementedError, ValueError) as e:
        raise ModelFileError(f"{path}: not a readable .keras zip ({' '.join(str(e).split())[:120]}).") from None
    except OSError as e:
        from edgecnn.errors import RESOURCE_ERRNOS, system_error

        if e.errno in RESOURCE_ERRNOS:  # this machine cannot, not a bad file: the operating system's answer
            e.filename = e.filename or str(dst)
            raise system_error(e) from None
        raise ModelFileError(f"{path}: cannot unpack it into {folder} ({e.strerror or e}); free space in the "
                             f"temporary folder ($TMPDIR).") from None
    return dst, generation


def load_safely(path, *, custom_objects=None):
    """The model of the .keras file at ``path``, loaded through the checks above: a tf_keras model,
    or a Keras 3 model for a file Keras 3 wrote."""
    with private_dir("edgecnn-keras-") as d:
        rebuilt, generation = rebuild(path, d)
        if generation == 3:
            from keras.src.saving import saving_lib as keras3_saving

            return _keras_call(path, lambda: keras3_saving.load_model(str(rebuilt), custom_objects=custom_objects,
                                                                      compile=False, safe_mode=True))
        from edgecnn.models.registry import list_models

        list_models()  # edgecnn's own layers register before deserialisation
        import tf_keras  # noqa: F401 - initialises the package before its saving module
        from tf_keras.src.saving import saving_lib

        return _keras_call(path, lambda: saving_lib.load_model(rebuilt, custom_objects=custom_objects,
                                                               compile=False, safe_mode=True))


def load_unsafely(path, *, custom_objects=None):
    """Whatever Keras reads at ``path`` (HDF5, SavedModel, zip), code and all: ``--unsafe-load``.
    A zip that Keras 3 wrote is read by Keras 3, anything else by tf_keras."""
    from edgecnn.models.registry import list_models

    p = Path(path)
    if not p.is_dir() and zipfile.is_zipfile(p):
        try:
            with zipfile.ZipFile(p) as z:
                small = METADATA in z.namelist() and z.getinfo(METADATA).file_size <= MAX_METADATA_BYTES
                raw = z.read(METADATA) if small else b"{}"
            generation = keras_generation(parse_json(raw, str(p), ValueError))
        except (zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError, AttributeError):
            generation = 2
        if generation == 3:
            from keras.src.saving import saving_lib as keras3_saving

            return _keras_call(path, lambda: keras3_saving.load_model(str(p), custom_objects=custom_objects,
                                                                      compile=False, safe_mode=False))
    list_models()
    import tf_keras

    return _keras_call(path, lambda: tf_keras.models.load_model(path, compile=False, safe_mode=False,
                                                                custom_objects=custom_objects))


def _keras_call(path, load):
    try:
        return load()
    except EdgecnnError:
        raise
    except Exception as e:  # tf_keras raises ValueError/TypeError/OSError/zip errors for bad files
        msg = " ".join(str(e).split())[:200]
        raise ModelFileError(f"{path}: cannot load the Keras model ({type(e).__name__}: {msg}).") from None


# ---------------------------------------------------------------------------- the one door in
def custom_objects_from(specs) -> dict:
    """``["module:attr", ...]`` -> {attr name: object}, importing each module. This runs the
    module's code: only for ``--unsafe-load``, which the caller checks."""
    import importlib

    out = {}
    for spec in specs or ():
        mod, _, attr = str(spec).partition(":")
        if not mod or not attr or not all(p.isidentifier() for p in mod.split(".") + attr.split(".")):
            raise InvalidConfigError(f"--custom-objects {spec!r}: expected module:attr, such as mylayers:MyBlock.")
        try:
            obj = importlib.import_module(mod)
        except Exception as e:  # noqa: BLE001 - ImportError or anything the module raises
            msg = " ".join(str(e).split())[:120]
            raise InvalidConfigError(f"--custom-objects {spec!r}: cannot import module '{mod}' "
                                     f"({type(e).__name__}: {msg}); is it on PYTHONPATH?") from None
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise InvalidConfigError(f"--custom-objects {spec!r}: module '{mod}' has no '{attr}'.")
            obj = getattr(obj, part)
        out[attr.split(".")[-1]] = obj
    return out


_KIND_WORDS = {"hdf5": "an HDF5 file", "savedmodel": "a SavedModel folder",
               "polyglot": "a zip and an HDF5 file at once (the HDF5 part can run code)"}


def load_keras(path, *, unsafe: bool = False, custom_objects=None):
    """Load a Keras model (tf_keras, or Keras 3 for a file Keras 3 wrote): a plain ``.keras`` zip
    through the checks of ``contract.keras_files`` (whatever the file is called), or anything Keras
    reads when ``unsafe``."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{p}: Keras model not found.")
    if not p.is_dir():
        regular_file(p, "Keras model")
    if unsafe:
        return load_unsafely(p, custom_objects=custom_objects)
    kind = file_kind(p)
    if kind != "keras":
        what = _KIND_WORDS.get(kind, "not a .keras zip")
        raise ModelFileError(f"{p}: is {what}; edgecnn loads Keras models only as plain .keras zips in safe mode "
                             f"(other formats can run code from the file). Re-save it with model.save('m.keras'), "
                             f"or pass --unsafe-load for a model you trust.")
    return load_safely(p, custom_objects=custom_objects)


def check_model_matches(model, input_shape, num_classes: int, where: str, error=ModelFileError) -> None:
    """The model's input is (H, W, C) = ``input_shape`` and its output has ``num_classes`` scores."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise error(f"{where}: the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                    f"edgecnn deploys one image input and one class-score output.")
    got = tuple(model.inputs[0].shape[1:])
    if got != tuple(input_shape):
        raise error(f"{where}: the model's input is {list(got)}, but its record says {list(input_shape)}; refused.")
    out = model.outputs[0].shape
    if len(out) != 2 or out[-1] != num_classes:
        raise error(f"{where}: the model's output is {list(out)}, not [batch, {num_classes}] for its "
                    f"{num_classes} labels; refused.")



"""The artifact contract: run directories, export folders and their manifests, in one module.

A *run* is ``runs/<model>/<run-name>/`` holding ``run.json``, ``model.keras``, ``checkpoints/``,
``history.csv``, ``export/`` and ``bench/`` (see DESIGN.md). ``export/manifest.json`` describes
every artifact of an export. This module is the only reader, writer and validator of both
files, and ``resolve(target)`` is the one way a command turns "a run, an export folder, an
artifact or a model name" into paths. No TensorFlow at import: the device side uses it too.

Every file is untrusted input, including the ones edgecnn wrote (runs and exports travel
between people), so everything read here is checked before it is used:

* JSON files must be regular files (a FIFO is refused, never waited on), at most
  ``MAX_JSON_BYTES``, nested at most ``MAX_JSON_DEPTH`` deep, with every field of the right type.
* Paths stored in run.json/manifest.json are relative to the file that stores them and must
  resolve (symlinks followed) inside its own folder: the export folder, or the run folder around
  it. Nothing outside is ever read, sent or executed.
* Every artifact carries a sha256; a missing or malformed one is an error, and an artifact is
  used only when its bytes match it. ``model.keras`` is checked against the sha256 run.json
  records for it, so a replaced model is refused.
* Sizes read from a file (input size, classes, tensor shapes) are bounded and checked against
  each other before anything is allocated.
* Keras models load only as ``.keras`` zips, in safe mode, after their config has been checked
  for anything that would import or call code from outside Keras and edgecnn's own layers.
  HDF5, SavedModel or anything else loads only with ``unsafe=True`` (``--unsafe-load``).

The dataset path a run was trained on is the one path that may point outside its folder (it
names the user's data, which is only ever read through the safe loaders in ``edgecnn.data``):
it is stored relative to the run folder so that a run moved together with its data, or used
from another working directory, still finds its own held-out split.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from edgecnn.data.preprocess import MAX_SIDE
from edgecnn.errors import EdgecnnError, InvalidConfigError, ModelFileError, RunError

RUN_FILE = "run.json"
MODEL_FILE = "model.keras"
EXPORT_DIR = "export"
BENCH_DIR = "bench"
MANIFEST = "manifest.json"
FILENAME = MANIFEST  # the manifest's file name, as the export modules call it
RUN_SCHEMA = 1
SCHEMA = 1  # manifest schema

FORMATS = {"tflite": ("fp32", "fp16", "dynamic", "int8", "mixed"), "onnx": ("fp32", "int8")}
OUTPUT_KINDS = ("probabilities", "logits")
TENSOR_DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64")
NAMED_DATASETS = ("sample", "cifar10", "cifar100", "fashion_mnist")

MAX_JSON_BYTES = 32 << 20
MAX_JSON_DEPTH = 64
MAX_CLASSES = 100_000
MAX_ARTIFACTS = 64

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_TOP_KEYS = ("schema", "model", "run", "trained", "labels", "preprocessing", "keras", "tools", "created", "artifacts")
_ARTIFACT_KEYS = ("format", "precision", "sha256", "bytes", "inputs", "outputs", "output_kind", "verified")
_TENSOR_KEYS = ("name", "shape", "dtype", "scale", "zero_point")
_RUN_KEYS = ("model", "input_shape", "num_classes", "labels", "preprocessing")


# ---------------------------------------------------------------------------- safe primitives
def check_name(name, what: str = "name", error=InvalidConfigError) -> str:
    """A plain name (run, model, artifact): letters, digits, '.', '_', '+', '-'; no path, no dotfile."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise error(f"{what} {name!r} is not a plain name (letters, digits, '.', '_', '+', '-'; at most 128; "
                    f"no '/', no leading '.').")
    return name


def regular_file(path, what: str = "file", error=ModelFileError) -> Path:
    """``path`` if it is a regular file (after symlinks); a FIFO, socket or device is refused unopened.
    The check is the data loaders' own (``edgecnn.data.limits``), raised as ``error``."""
    from edgecnn.data.limits import check_regular
    from edgecnn.errors import DataError

    try:
        check_regular(path, what)
    except DataError as e:
        raise error(e.message) from None
    return Path(path)


def inside(root, rel, what: str = "path", error=ModelFileError) -> Path:
    """``root/rel`` for a relative path that stays inside ``root`` with symlinks resolved."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        raise error(f"{root}: {what} {rel!r} is not a relative path.")
    if os.path.isabs(rel) or ".." in Path(rel).parts:
        raise error(f"{root}: {what} {rel!r} points outside its folder; refused.")
    root = Path(root)
    p = root / rel
    real_root = os.path.realpath(root)
    real = os.path.realpath(p)
    if os.path.commonpath([real_root, real]) != real_root:
        raise error(f"{root}: {what} {rel!r} resolves outside its folder (a symlink to {real}); refused.")
    return p


def _depth_ok(obj, limit: int) -> bool:
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if d > limit:
            return False
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)
    return True


def read_json_file(path, what: str = "JSON file", error=ModelFileError, max_bytes: Optional[int] = None):
    """Parse a JSON object from a regular file of bounded size and depth; one-line errors."""
    max_bytes = MAX_JSON_BYTES if max_bytes is None else max_bytes
    from edgecnn.data.limits import read_bytes
    from edgecnn.errors import DataError

    p = Path(path)
    try:
        raw = read_bytes(p, what, max_bytes)
    except DataError as e:
        raise error(e.message) from None
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise error(f"{p}: the {what} is nested too deeply; refused.") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise error(f"{p}: unreadable {what} ({' '.join(str(e).split())[:160]}).") from None
    if not _depth_ok(obj, MAX_JSON_DEPTH):
        raise error(f"{p}: the {what} is nested more than {MAX_JSON_DEPTH} levels deep; refused.")
    if not isinstance(obj, dict):
        raise error(f"{p}: the {what} is not a JSON object.")
    return obj


def _reject_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def sha256_ok(value) -> bool:
    return isinstance(value, str) and bool(_SHA_RE.match(value))


def check_file_sha256(path, expected, what: str, error=ModelFileError) -> Path:
    """``path`` if it is a regular file whose sha256 is ``expected`` (which must be a sha256)."""
    from edgecnn.io import sha256_file

    if not sha256_ok(expected):
        raise error(f"{path}: the {what} has no valid sha256 recorded ({expected!r}); cannot trust it. Re-export.")
    regular_file(path, what, error)
    if sha256_file(path) != expected:
        raise error(f"{path}: its sha256 differs from the one recorded for it; the file was changed or replaced "
                    f"after it was written. Re-export (or retrain) instead of editing artifacts by hand.")
    return Path(path)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------------------- preprocessing spec
def validate_spec(d, where: str, error=ModelFileError) -> None:
    """A PreprocessSpec dict: JSON types checked here (a float where an integer belongs is refused,
    not truncated), the values by ``PreprocessSpec`` itself, the one place that knows them."""
    from edgecnn.data.preprocess import PreprocessError, PreprocessSpec

    def bad(msg):
        raise error(f"{where}: preprocessing {msg}")

    if not isinstance(d, dict):
        bad("is not an object")
    size = d.get("input_size")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
        bad(f"input_size {size!r} must be [height, width] in integers")
    if "channels" in d and not _is_int(d["channels"]):
        bad(f"channels {d['channels']!r} must be an integer")
    for key in ("crop_fraction", "scale"):
        if key in d and not _is_num(d[key]):
            bad(f"{key} {d[key]!r} must be a finite number")
    for key in ("mean", "std"):
        if key in d and not (isinstance(d[key], list) and all(_is_num(x) for x in d[key])):
            bad(f"{key} {d[key]!r} must be a list of finite numbers")
    try:
        PreprocessSpec.from_dict(d)
    except PreprocessError as e:
        raise error(f"{where}: {e.message}") from None


def spec_from(d, where: str, error=ModelFileError):
    from edgecnn.data.preprocess import PreprocessSpec

    validate_spec(d, where, error)
    return PreprocessSpec.from_dict(d)


# ---------------------------------------------------------------------------- run directories
@dataclasses.dataclass
class Run:
    """A run directory as the later stages see it (run.json validated)."""

    path: Path
    info: dict
    spec: object  # PreprocessSpec
    labels: List[str]
    model_name: str

    @property
    def num_classes(self) -> int:
        return int(self.info["num_classes"])

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        return tuple(int(v) for v in self.info["input_shape"])

    @property
    def model_path(self) -> Path:
        return inside(self.path, MODEL_FILE, "model file", RunError)

    @property
    def trained(self) -> bool:
        return bool(self.info.get("trained"))

    @property
    def export_dir(self) -> Path:
        return self.path / EXPORT_DIR

    @property
    def output_kind(self) -> str:
        """What the model outputs: "probabilities" (it ends in softmax) or "logits"."""
        return self.info.get("output_kind", "probabilities")

    @property
    def custom_objects(self) -> List[str]:
        """``module:attr`` of the custom objects an imported model needs (loaded only when unsafe)."""
        return list(self.info.get("custom_objects") or [])

    def load_model(self, *, unsafe: bool = False, custom_objects=None):
        """The trained tf_keras model, after its sha256 and config have been checked."""
        p = self.model_path
        if not p.exists():
            raise RunError(f"{self.path}: no {MODEL_FILE}; the run is not trained yet. Finish it with "
                           f"'edgecnn train --resume {self.path}'.")
        want = self.info.get("model_sha256")
        if want is not None or not unsafe:
            check_file_sha256(p, want, f"{MODEL_FILE} recorded in {RUN_FILE}", RunError)
        if self.info.get("unsafe_load") and not unsafe:
            # run.json is untrusted too: it records that its model needs unsafe loading, it never
            # switches unsafe loading on by itself.
            raise RunError(f"{self.path}: this run's model was imported with --unsafe-load (it holds custom code"
                           f"{': ' + ', '.join(self.custom_objects) if self.custom_objects else ''}); pass "
                           f"--unsafe-load to load it, only if you trust it.")
        if unsafe and self.custom_objects and custom_objects is None:
            custom_objects = custom_objects_from(self.custom_objects)
        model = load_keras(p, unsafe=unsafe, custom_objects=custom_objects)
        check_model_matches(model, self.input_shape, self.num_classes, f"{self.path}/{MODEL_FILE}", RunError)
        want_name = self.info.get("keras_model_name")
        if want_name is not None and model.name != want_name:
            raise RunError(f"{self.path}: {RUN_FILE} names model '{want_name}', but {MODEL_FILE} holds "
                           f"'{model.name}'; the run is inconsistent, refused.")
        self._check_architecture(model)
        return model

    def _check_architecture(self, model) -> None:
        """A zoo run's model.keras must hold the architecture run.json names (layer types and shapes)."""
        from edgecnn.registry import create_model, list_models

        if self.model_name not in list_models():
            return
        try:
            ref = create_model(self.model_name, input_shape=self.input_shape, num_classes=self.num_classes,
                               **(self.info.get("model_kwargs") or {}))
        except EdgecnnError as e:
            raise RunError(f"{self.path}: {RUN_FILE} describes a model edgecnn cannot build ({e.message}).") from None

        def shape(layer):
            try:
                return str(layer.output_shape)
            except (AttributeError, RuntimeError):  # layers with several inbound nodes
                return None

        def plan(m):
            return [(type(layer).__name__, shape(layer)) for layer in m.layers], m.count_params()

        if plan(ref) != plan(model):
            raise RunError(f"{self.path}: {RUN_FILE} names '{self.model_name}', but {MODEL_FILE} holds another "
                           f"architecture ('{model.name}', {model.count_params()} parameters); refused.")


def runs_root(runs_dir=None) -> Path:
    """--runs-dir, else $EDGECNN_RUNS, else ./runs."""
    return Path(runs_dir or os.environ.get("EDGECNN_RUNS") or "runs")


def run_dir_for(model_name: str, run_name: str, runs_dir=None) -> Path:
    """``<runs root>/<model>/<run name>``, refusing names that would leave the runs root."""
    check_name(model_name, "model name")
    check_name(run_name, "--name")
    root = runs_root(runs_dir)
    return inside(root, f"{model_name}/{run_name}", "run folder", InvalidConfigError)


def _check_object(obj, keys, bad) -> None:
    """A JSON object with every key in ``keys`` and a plain model name in 'model'."""
    if not isinstance(obj, dict):
        bad("not a JSON object")
    missing = [k for k in keys if k not in obj]
    if missing:
        bad(f"missing keys {missing}")
    if not isinstance(obj["model"], str) or not _NAME_RE.match(obj["model"]):
        bad(f"'model' {obj['model']!r} is not a model name")


def validate_run_info(info, where: str) -> None:
    def bad(msg):
        raise RunError(f"{where}: {msg}; not a valid edgecnn {RUN_FILE}.")

    _check_object(info, _RUN_KEYS, bad)
    shape = info["input_shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(v) and v >= 1 for v in shape)
            and max(shape[:2]) <= MAX_SIDE and shape[2] in (1, 3)):
        bad(f"'input_shape' {shape!r} must be [H, W, C] with H, W in 1..{MAX_SIDE} and C 1 or 3")
    labels = info["labels"]
    if not (isinstance(labels, list) and 2 <= len(labels) <= MAX_CLASSES and all(isinstance(s, str) for s in labels)):
        bad(f"'labels' must be a list of 2..{MAX_CLASSES} strings")
    if not _is_int(info["num_classes"]) or info["num_classes"] != len(labels):
        bad(f"'num_classes' {info['num_classes']!r} disagrees with its {len(labels)} labels")
    validate_spec(info["preprocessing"], where, RunError)
    if list(info["preprocessing"]["input_size"]) != shape[:2] or info["preprocessing"].get("channels", 3) != shape[2]:
        bad(f"preprocessing input_size/channels disagree with input_shape {shape}")
    for key, kind in (("dataset", dict), ("model_kwargs", dict), ("recipe", dict), ("metrics", (dict, type(None)))):
        if key in info and not isinstance(info[key], kind):
            bad(f"'{key}' has the wrong type")
    if "trained" in info and not isinstance(info["trained"], bool):
        bad("'trained' must be true or false")
    if info.get("output_kind", "probabilities") not in OUTPUT_KINDS:
        bad(f"'output_kind' {info['output_kind']!r} must be one of {', '.join(OUTPUT_KINDS)}")
    if "unsafe_load" in info and not isinstance(info["unsafe_load"], bool):
        bad("'unsafe_load' must be true or false")
    objs = info.get("custom_objects", [])
    if not (isinstance(objs, list) and len(objs) <= 64 and all(isinstance(o, str) and len(o) <= 256 for o in objs)):
        bad("'custom_objects' must be a list of module:attr strings")
    if "source" in info and not isinstance(info["source"], dict):
        bad("'source' has the wrong type")
    classes = (info.get("dataset") or {}).get("classes")
    if classes is not None and classes != labels:
        bad("'dataset.classes' must equal 'labels' (the order of the model's outputs)")
    if "seed" in info and not (_is_int(info["seed"]) and info["seed"] >= 0):
        bad(f"'seed' {info['seed']!r} must be an integer >= 0")
    if info.get("trained") and not sha256_ok(info.get("model_sha256")):
        bad(f"a trained run must record the sha256 of its {MODEL_FILE} ('model_sha256')")


def load_run(path) -> Run:
    """A run directory (or its run.json) -> Run. RunError when missing or inconsistent."""
    p = Path(path)
    if p.name == RUN_FILE:
        p = p.parent
    f = p / RUN_FILE
    if not f.exists():
        raise RunError(f"{p}: not a run directory (no {RUN_FILE}). Train one with 'edgecnn train MODEL'.")
    info = read_json_file(f, RUN_FILE, RunError)
    validate_run_info(info, str(f))
    return Run(p, info, spec_from(info["preprocessing"], str(f), RunError), list(info["labels"]), info["model"])


def write_run(run_dir, info: dict) -> Path:
    """Validate and atomically write run.json."""
    from edgecnn.io import atomic_write_json

    validate_run_info(info, str(Path(run_dir) / RUN_FILE))
    return atomic_write_json(Path(run_dir) / RUN_FILE, info)


def save_model(run_dir, info: dict, model) -> Path:
    """Write model.keras atomically and record its sha256 and Keras name in ``info`` (not yet written)."""
    from edgecnn.io import atomic_path, sha256_file

    target = Path(run_dir) / MODEL_FILE
    with atomic_path(target) as tmp:
        model.save(tmp)
    info["model_file"] = MODEL_FILE
    info["model_sha256"] = sha256_file(target)
    info["keras_model_name"] = model.name
    return target


def find_latest_run(model_name: str, runs_dir=None, *, trained_only: bool = True) -> Optional[Path]:
    """The most recently created (trained) valid run of a model under the runs root, or None."""
    check_name(model_name, "model name", RunError)
    base = runs_root(runs_dir) / model_name
    best = None
    for f in base.glob(f"*/{RUN_FILE}") if base.is_dir() else ():
        try:
            info = read_json_file(f, RUN_FILE, RunError)
            validate_run_info(info, str(f))
        except RunError:
            continue  # a damaged run is never picked silently; naming it directly gives the reason
        if trained_only and not info.get("trained"):
            continue
        key = (str(info.get("created", "")), f.stat().st_mtime)
        if best is None or key > best[0]:
            best = (key, f.parent)
    return best[1] if best else None


def resolve_run(ref, runs_dir=None) -> Path:
    """A run path, or a model name meaning its latest trained run."""
    t = resolve(ref, runs_dir)
    if t.run_dir is None:
        raise RunError(f"{ref}: not a run directory (no {RUN_FILE}).")
    return t.run_dir


def dataset_record(data, run_dir) -> dict:
    """How run.json names its dataset: a dataset name, or a path relative to the run folder."""
    name = str(data)
    if name in NAMED_DATASETS:
        return {"data_arg": name, "data_path": None}
    p = Path(name).expanduser().resolve()
    return {"data_arg": name, "data_path": os.path.relpath(p, Path(run_dir).resolve())}


def dataset_source(d: dict, base, where: str) -> str:
    """The dataset a record names, found relative to ``base``; never another dataset instead."""
    arg = d.get("data_arg") if isinstance(d, dict) else None
    if arg is None:
        arg = d.get("source") if isinstance(d, dict) else None
    rel = d.get("data_path") if isinstance(d, dict) else None
    if rel is None and arg in NAMED_DATASETS:
        return arg
    if arg is None and rel is None:
        raise RunError(f"{where}: records no dataset; cannot find its held-out split.")
    tried = []
    if isinstance(rel, str):
        cand = Path(base) / rel
        tried.append(str(cand))
        if cand.exists():
            return str(cand)
    if isinstance(arg, str) and os.path.isabs(arg):
        tried.append(arg)
        if Path(arg).exists():
            return arg
    raise RunError(f"{where}: its dataset '{arg}' is not here (looked at {', '.join(tried) or 'nothing'}); "
                   f"put the data there, or evaluate with --data PATH.")


def dataset_kwargs(info: dict, run_dir=None) -> dict:
    """The load_dataset arguments that reproduce a run's data (source resolved from the run folder)."""
    d = info.get("dataset") or {}
    if run_dir is not None:
        source = dataset_source(d, run_dir, f"{Path(run_dir) / RUN_FILE}")
    else:
        source = d.get("data_arg") or d.get("source") or "sample"
    return {"source": source,
            "val_fraction": d.get("val_fraction", 0.1), "seed": info.get("seed", 0),
            "max_train": d.get("max_train_images"), "max_test": d.get("max_test_images"),
            "skip_bad": bool(d.get("skip_bad_images", False)),
            **({"classes": list(d["classes"])} if d.get("classes") is not None else {})}


def versions() -> dict:
    """Python, numpy, edgecnn, TensorFlow and tf_keras versions, as run.json records them."""
    import numpy as np

    import edgecnn
    from edgecnn.io import dist_version

    return {"python": platform.python_version(), "numpy": np.__version__, "edgecnn": edgecnn.__version__,
            "tensorflow": dist_version("tensorflow"), "tf_keras": dist_version("tf_keras")}


def tool_versions(*names: str) -> Dict[str, str]:
    """Installed versions of the named distributions (those not installed are left out)."""
    from edgecnn.io import dist_version

    found = {n: dist_version(n) for n in names or ("edgecnn", "tensorflow", "tf_keras", "tf2onnx", "onnx",
                                                   "onnxruntime", "ai-edge-litert", "tensorflow-model-optimization",
                                                   "numpy")}
    return {n: v for n, v in found.items() if v is not None}


# ---------------------------------------------------------------------------- Keras model files
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
    """Load a tf_keras model: a plain ``.keras`` zip through the checks of ``contract.keras_files``
    (whatever the file is called), or anything Keras reads when ``unsafe``."""
    from edgecnn.contract import keras_files

    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{p}: Keras model not found.")
    if not p.is_dir():
        regular_file(p, "Keras model")
    if unsafe:
        return keras_files.load_unsafely(p, custom_objects=custom_objects)
    kind = keras_files.file_kind(p)
    if kind != "keras":
        what = _KIND_WORDS.get(kind, "not a .keras zip")
        raise ModelFileError(f"{p}: is {what}; edgecnn loads Keras models only as plain .keras zips in safe mode "
                             f"(other formats can run code from the file). Re-save it with model.save('m.keras'), "
                             f"or pass --unsafe-load for a model you trust.")
    return keras_files.load_safely(p, custom_objects=custom_objects)


def safe_load_refusal(path) -> Optional[str]:
    """Why safe mode would refuse the .keras zip at ``path`` (the one-line reason), or None."""
    from edgecnn.contract import keras_files

    return keras_files.safe_load_refusal(path)


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


# ---------------------------------------------------------------------------- manifests
def artifact_name(model: str, fmt: str, precision: str) -> str:
    """``<model>_<precision>.<tflite|onnx>``, e.g. ``quicknet_int8.tflite``."""
    if fmt not in FORMATS or precision not in FORMATS[fmt]:
        raise ValueError(f"no {precision} {fmt} artifact")
    return f"{model}_{precision}.{fmt}"


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def new_manifest(model: str, *, run=None, trained: bool, labels, preprocessing: dict, tools: Dict[str, str],
                 dataset: Optional[dict] = None) -> dict:
    """A manifest without artifacts. ``run`` is stored relative to the export folder ('..')."""
    return {"schema": SCHEMA, "model": model, "run": run, "trained": bool(trained),
            "labels": list(labels), "preprocessing": dict(preprocessing), "keras": {"top1": None, "top5": None},
            "tools": dict(tools), "created": now(), "dataset": dataset, "artifacts": {}}


def artifact_entry(path, fmt: str, precision: str, inputs, outputs, output_kind: str = "probabilities") -> dict:
    """The entry of one written artifact (not yet verified); ``output_kind`` as OUTPUT_KINDS."""
    from edgecnn.io import sha256_file

    p = Path(path)
    return {"format": fmt, "precision": precision, "sha256": sha256_file(p), "bytes": p.stat().st_size,
            "inputs": [t.to_dict() if hasattr(t, "to_dict") else dict(t) for t in inputs],
            "outputs": [t.to_dict() if hasattr(t, "to_dict") else dict(t) for t in outputs],
            "output_kind": output_kind, "verification": None, "verified": False}


def export_root(export_dir) -> Path:
    """The folder a manifest's paths must stay inside: the run around ``<run>/export``, else the export."""
    e = Path(export_dir)
    if e.name == EXPORT_DIR and (e.parent / RUN_FILE).is_file():
        return e.parent
    return e


def manifest_file(path_or_dir) -> Path:
    p = Path(path_or_dir)
    if p.is_dir():
        if (p / MANIFEST).exists():
            return p / MANIFEST
        if (p / EXPORT_DIR / MANIFEST).exists():  # a run directory
            return p / EXPORT_DIR / MANIFEST
        return p / MANIFEST
    return p


manifest_path = manifest_file


def write_manifest(export_dir, manifest: dict) -> Path:
    from edgecnn.io import atomic_write_json

    validate(manifest, where=str(Path(export_dir) / MANIFEST))
    return atomic_write_json(Path(export_dir) / MANIFEST, manifest)


def read_manifest(path_or_dir, *, check_files: bool = False) -> dict:
    """Read and validate a manifest (a file, an export dir, or a run dir holding export/).

    ``check_files``: also check that every artifact is a regular file inside the folder with the
    recorded size and sha256. Raises ``ModelFileError`` with one line naming what is wrong.
    """
    p = manifest_file(path_or_dir)
    if not p.exists():
        raise ModelFileError(f"{p}: no {MANIFEST}; export the model first ('edgecnn export MODEL_OR_RUN').")
    m = read_json_file(p, MANIFEST, ModelFileError)
    validate(m, where=str(p))
    if check_files:
        for name in m["artifacts"]:
            artifact_path(p.parent, m, name)
    return m


def artifact_path(export_dir, manifest: dict, name: str, *, check: bool = True) -> Path:
    """The path of a listed artifact, inside the export folder, its size and sha256 checked."""
    export_dir = Path(export_dir)
    arts = manifest["artifacts"]
    if name not in arts:
        raise ModelFileError(f"{name} is not listed in {export_dir / MANIFEST} (it lists: "
                             f"{', '.join(sorted(arts)) or 'nothing'}).")
    p = inside(export_dir, name, "artifact")
    if not p.exists():
        raise ModelFileError(f"{p} is listed in the manifest but missing.")
    regular_file(p, "artifact")
    if check:
        a = arts[name]
        if p.stat().st_size != a["bytes"]:
            raise ModelFileError(f"{p}: {p.stat().st_size} bytes, but the manifest records {a['bytes']}, so its sha256 "
                                 f"cannot match; the copy is truncated or from another export.")
        check_file_sha256(p, a["sha256"], "artifact")
    return p


def keras_reference(export_dir, manifest: dict) -> Optional[Path]:
    """The Keras model file the artifacts came from (``keras.model_file``, relative to the manifest),
    which must lie inside the export folder or the run folder around it."""
    ref = (manifest.get("keras") or {}).get("model_file")
    if ref is None:
        return None
    export_dir = Path(export_dir)
    if not isinstance(ref, str) or not ref or os.path.isabs(ref) or "\\" in ref or "\x00" in ref:
        raise ModelFileError(f"{export_dir / MANIFEST}: keras.model_file {ref!r} is not a relative path.")
    root = os.path.realpath(export_root(export_dir))
    real = os.path.realpath(export_dir / ref)
    if os.path.commonpath([root, real]) != root:
        raise ModelFileError(f"{export_dir / MANIFEST}: keras.model_file {ref!r} points outside its export/run "
                             f"folder; refused.")
    return export_dir / ref


def reference_model(export_dir, manifest: dict, *, unsafe: bool = False):
    """Load the Keras model of ``keras.model_file``: the run's own (sha256 from run.json), or a copy in
    the export (sha256 from the manifest's ``keras.model_sha256``)."""
    p = keras_reference(export_dir, manifest)
    if p is None:
        raise RunError(f"{export_dir}: its manifest names no Keras model (keras.model_file); re-export.")
    run = run_of_export(export_dir)
    if run is not None and os.path.realpath(p) == os.path.realpath(run / MODEL_FILE):
        return load_run(run).load_model(unsafe=unsafe)
    if not p.exists():
        raise RunError(f"{p}: the Keras model the artifacts came from is missing; re-export.")
    check_file_sha256(p, (manifest.get("keras") or {}).get("model_sha256"), "reference Keras model")
    return load_keras(p, unsafe=unsafe)


def run_of_export(export_dir) -> Optional[Path]:
    """The run folder an export belongs to: ``<run>/export`` with a run.json, else None."""
    root = export_root(export_dir)
    return root if root != Path(export_dir) else None


def validate(m, where: str = "manifest") -> None:
    """Every field of a manifest typed and bounded; tensors consistent with the preprocessing."""
    def bad(msg):
        raise ModelFileError(f"{where}: {msg}")

    _check_object(m, _TOP_KEYS, bad)
    if m["schema"] != SCHEMA:
        bad(f"schema {m['schema']!r}, this edgecnn reads schema {SCHEMA}")
    if m["run"] is not None and not isinstance(m["run"], str):
        bad("'run' must be null or a string")
    if not isinstance(m["trained"], bool):
        bad("'trained' must be true or false")
    labels = m["labels"]
    if not (isinstance(labels, list) and 1 <= len(labels) <= MAX_CLASSES and all(isinstance(s, str) for s in labels)):
        bad(f"'labels' must be a non-empty list of at most {MAX_CLASSES} strings")
    validate_spec(m["preprocessing"], where)
    spec = m["preprocessing"]
    for key in ("keras", "tools"):
        if not isinstance(m[key], dict):
            bad(f"'{key}' must be an object")
    ref = m["keras"].get("model_file")
    if ref is not None and not isinstance(ref, str):
        bad("'keras.model_file' must be a string")
    if m.get("dataset") is not None and not isinstance(m["dataset"], dict):
        bad("'dataset' must be null or an object")
    arts = m["artifacts"]
    if not isinstance(arts, dict):
        bad("'artifacts' must be an object")
    if len(arts) > MAX_ARTIFACTS:
        bad(f"{len(arts)} artifacts; at most {MAX_ARTIFACTS}")
    h, w = spec["input_size"]
    c = spec.get("channels", 3)
    for name, a in arts.items():
        if not _NAME_RE.match(name) or name in (MANIFEST,):
            bad(f"artifact name {name!r} must be a plain file name")
        if not isinstance(a, dict):
            bad(f"artifact {name}: not an object")
        miss = [k for k in _ARTIFACT_KEYS if k not in a]
        if miss:
            bad(f"artifact {name}: missing keys {miss}")
        if a["format"] not in FORMATS or a["precision"] not in FORMATS[a["format"]]:
            bad(f"artifact {name}: unknown format/precision {a['format']}/{a['precision']}")
        if not name.endswith("." + a["format"]):
            bad(f"artifact {name}: the name does not end in .{a['format']}")
        if not sha256_ok(a["sha256"]):
            bad(f"artifact {name}: 'sha256' {a['sha256']!r} is missing or not a sha256; cannot trust the file")
        if not (_is_int(a["bytes"]) and a["bytes"] > 0):
            bad(f"artifact {name}: 'bytes' must be a positive integer")
        if a["output_kind"] not in OUTPUT_KINDS:
            bad(f"artifact {name}: output_kind {a['output_kind']!r} must be one of {', '.join(OUTPUT_KINDS)}")
        if not isinstance(a["verified"], bool):
            bad(f"artifact {name}: 'verified' must be true or false")
        for side in ("inputs", "outputs"):
            ts = a[side]
            if not (isinstance(ts, list) and len(ts) == 1):
                bad(f"artifact {name}: '{side}' must list exactly one tensor")
            t = ts[0]
            if not isinstance(t, dict) or any(k not in t for k in _TENSOR_KEYS):
                bad(f"artifact {name}: tensor entries need {list(_TENSOR_KEYS)}")
            shape = t["shape"]
            if not (isinstance(shape, list) and 1 <= len(shape) <= 8 and all(_is_int(v) and -1 <= v <= 1 << 20
                                                                              for v in shape)):
                bad(f"artifact {name}: {side} shape {shape!r} is not a list of small integers")
            if t["dtype"] not in TENSOR_DTYPES:
                bad(f"artifact {name}: {side} dtype {t['dtype']!r} is not one of {', '.join(TENSOR_DTYPES)}")
            if not (_is_num(t["scale"]) and t["scale"] >= 0) or not _is_int(t["zero_point"]):
                bad(f"artifact {name}: {side} scale/zero_point must be finite numbers")
        ishape = a["inputs"][0]["shape"]
        want = [h, w, c] if spec.get("layout", "NHWC") == "NHWC" else [c, h, w]
        if len(ishape) != 4 or ishape[1:] != want:
            bad(f"artifact {name}: input shape {ishape} disagrees with the preprocessing input_size {[h, w]} and "
                f"{c} channel(s); refused")
        oshape = a["outputs"][0]["shape"]
        if len(oshape) < 2 or int(math.prod(v for v in oshape[1:])) != len(labels):
            bad(f"artifact {name}: output shape {oshape} does not give one score per label ({len(labels)} labels)")
        v = a.get("verification")
        if v is not None and (not isinstance(v, dict) or not isinstance(v.get("passed"), bool)):
            bad(f"artifact {name}: 'verification' must be null or an object with 'passed'")
        if a["verified"] and not (isinstance(v, dict) and v.get("passed") is True):
            bad(f"artifact {name}: marked verified without a passed verification")
        if a["precision"] == "mixed":
            _validate_mixed_entry(name, a, bad)


FLOAT_OP_REASONS = ("speed", "accuracy")


def _validate_mixed_entry(name: str, a: dict, bad) -> None:
    """A mixed-precision entry: its float ops (op, node, why) and the quantization report it names
    (a plain file name beside the artifact, with its sha256)."""
    ops = a.get("float_ops")
    if not (isinstance(ops, list) and len(ops) <= 100_000):
        bad(f"artifact {name}: 'float_ops' must be a list")
    for f in ops:
        if not (isinstance(f, dict) and isinstance(f.get("op"), str) and isinstance(f.get("node"), str)
                and len(f["op"]) <= 64 and len(f["node"]) <= 4096 and f.get("why") in FLOAT_OP_REASONS):
            bad(f"artifact {name}: each float op needs 'op', 'node' (strings) and 'why' "
                f"({' or '.join(FLOAT_OP_REASONS)})")
    rep = a.get("quant_report")
    if rep is not None:
        if not (isinstance(rep, str) and _NAME_RE.match(rep) and rep != MANIFEST):
            bad(f"artifact {name}: 'quant_report' must be a plain file name")
        if not sha256_ok(a.get("quant_report_sha256")):
            bad(f"artifact {name}: 'quant_report_sha256' is missing or not a sha256")


def quant_report_path(export_dir, manifest: dict, name: str) -> Optional[Path]:
    """The quantization report a mixed artifact names, inside the export folder, its sha256
    checked (None when the entry names none)."""
    from edgecnn.io import sha256_file

    a = manifest["artifacts"][name]
    rep = a.get("quant_report")
    if rep is None:
        return None
    p = inside(export_dir, rep, "quantization report")
    if not p.exists():
        raise ModelFileError(f"{p}: the quantization report of {name} is missing.")
    regular_file(p, "quantization report")
    if sha256_file(p) != a["quant_report_sha256"]:
        raise ModelFileError(f"{p}: sha256 does not match the manifest's record for {name}; refusing to trust it.")
    return p


# ---------------------------------------------------------------------------- one resolver
@dataclasses.dataclass
class Resolved:
    """What a command's target names: a run, an export, a single artifact, or a mix."""

    target: str
    run_dir: Optional[Path] = None
    export_dir: Optional[Path] = None
    manifest: Optional[dict] = None
    artifact: Optional[Path] = None  # a single artifact file the target named

    @property
    def run(self) -> Optional[Run]:
        return load_run(self.run_dir) if self.run_dir is not None else None

    def require_manifest(self, error=ModelFileError) -> dict:
        if self.manifest is None:
            where = self.export_dir or self.run_dir or self.target
            raise error(f"{where}: no {MANIFEST}; export the model first ('edgecnn export {self.target}').")
        return self.manifest


def resolve(target, runs_dir=None, *, manifest: bool = True, error=RunError) -> Resolved:
    """Turn a run dir, run.json, export dir, manifest.json, artifact file or model name into paths.

    A model name means its newest trained run under the runs root. The manifest (when the
    target has one and ``manifest`` is true) is read and validated here, once for every command.
    """
    ref = str(target)
    p = Path(ref)
    r = Resolved(ref)
    if p.name in (RUN_FILE, MANIFEST) and p.exists() and not p.is_dir():
        p = p.parent
    if p.is_dir():
        if (p / RUN_FILE).exists():
            r.run_dir = p
            if (p / EXPORT_DIR / MANIFEST).exists():
                r.export_dir = p / EXPORT_DIR
        elif (p / MANIFEST).exists():
            r.export_dir = p
            r.run_dir = run_of_export(p)
        elif (p / EXPORT_DIR / MANIFEST).exists():  # a run folder whose run.json stayed behind
            r.export_dir = p / EXPORT_DIR
        else:
            raise error(f"{p}: neither a run directory ({RUN_FILE}) nor an export folder ({MANIFEST}); no "
                        f"manifest.json to read.")
    elif p.exists():
        regular_file(p, "model file")
        r.artifact = p
        if (p.parent / MANIFEST).exists():
            r.export_dir = p.parent
            r.run_dir = run_of_export(p.parent)
    elif "/" not in ref and os.sep not in ref and _NAME_RE.match(ref):
        from edgecnn.registry import get_entry

        latest = find_latest_run(ref, runs_dir)
        if latest is None:
            get_entry(ref)  # an unknown model name fails with did-you-mean
            raise RunError(f"No trained run of '{ref}' under {runs_root(runs_dir)}/; train one with "
                           f"'edgecnn train {ref}' or pass a run directory.")
        r.run_dir = latest
        if (latest / EXPORT_DIR / MANIFEST).exists():
            r.export_dir = latest / EXPORT_DIR
    else:
        raise error(f"{p}: no such run, export folder or file.")
    if r.run_dir is not None:
        load_run(r.run_dir)  # validated once, here
    if manifest and r.export_dir is not None:
        r.manifest = read_manifest(r.export_dir / MANIFEST)
        if r.artifact is not None and r.artifact.name not in r.manifest["artifacts"]:
            raise ModelFileError(f"{r.artifact.name} is not listed in {r.export_dir / MANIFEST}.")
    return r


def check_loaded_tensors(inputs, outputs, entry: dict, where: str, error=ModelFileError) -> None:
    """The tensors a runtime reports for an artifact are the ones its manifest entry records
    (batch dimension aside), so a swapped or mislabelled model is caught before it is fed."""
    def key(t):
        d = t.to_dict() if hasattr(t, "to_dict") else t
        return [int(v) for v in list(d["shape"])[1:]], d["dtype"]

    got = [key(t) for t in inputs], [key(t) for t in outputs]
    want = [key(t) for t in entry["inputs"]], [key(t) for t in entry["outputs"]]
    if got != want:
        raise error(f"{where}: the model's tensors {got} differ from its manifest entry {want}; refused.")

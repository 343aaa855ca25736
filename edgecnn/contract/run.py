"""Run directories: ``runs/<model>/<run>/`` with run.json (validated here), model.keras and the
dataset record that finds the run's own held-out split."""
from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from edgecnn.contract.checks import (EXPORT_DIR, MAX_CLASSES, MODEL_FILE, NAMED_DATASETS, OUTPUT_KINDS, RUN_FILE,
                                     _RUN_KEYS, _check_object, _is_int, _is_num, check_file_sha256, check_labels, check_name,
                                     inside, read_json_file, sha256_ok)
from edgecnn.contract.keras_files import check_model_matches, custom_objects_from, load_keras
from edgecnn.data.preprocess import MAX_SIDE
from edgecnn.errors import EdgecnnError, InvalidConfigError, ModelFileError, RunError

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
        from edgecnn.models.registry import create_model, list_models

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


def validate_run_info(info, where: str) -> None:
    def bad(msg):
        raise RunError(f"{where}: {msg}; not a valid edgecnn {RUN_FILE}.")

    _check_object(info, _RUN_KEYS, bad)
    shape = info["input_shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(v) and v >= 1 for v in shape)
            and max(shape[:2]) <= MAX_SIDE and shape[2] in (1, 3)):
        bad(f"'input_shape' {shape!r} must be [H, W, C] with H, W in 1..{MAX_SIDE} and C 1 or 3")
    labels = info["labels"]
    if not (isinstance(labels, list) and 2 <= len(labels) <= MAX_CLASSES):
        bad(f"'labels' must be a list of 2..{MAX_CLASSES} strings")
    check_labels(labels, where, RunError, min_len=2)
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
    for key, low in (("val_fraction", 0.0), ("test_fraction", 0.0)):
        v = (info.get("dataset") or {}).get(key)
        if v is not None and not (_is_num(v) and low <= v < 1):
            bad(f"'dataset.{key}' {v!r} must be a fraction in [0, 1)")
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
    from edgecnn.core.files import atomic_write_json

    validate_run_info(info, str(Path(run_dir) / RUN_FILE))
    return atomic_write_json(Path(run_dir) / RUN_FILE, info)


def save_model(run_dir, info: dict, model) -> Path:
    """Write model.keras atomically and record its sha256 and Keras name in ``info`` (not yet written)."""
    from edgecnn.core.files import atomic_path, sha256_file

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
    from edgecnn.data.datasets import TEST_FRACTION

    return {"source": source, "test_fraction": d.get("test_fraction", TEST_FRACTION),
            "val_fraction": d.get("val_fraction", 0.1), "seed": info.get("seed", 0),
            "max_train": d.get("max_train_images"), "max_test": d.get("max_test_images"),
            "skip_bad": bool(d.get("skip_bad_images", False)),
            **({"classes": list(d["classes"])} if d.get("classes") is not None else {})}


def versions() -> dict:
    """Python, numpy, edgecnn, TensorFlow and tf_keras versions, as run.json records them."""
    import numpy as np

    import edgecnn
    from edgecnn.core.files import dist_version

    return {"python": platform.python_version(), "numpy": np.__version__, "edgecnn": edgecnn.__version__,
            "tensorflow": dist_version("tensorflow"), "tf_keras": dist_version("tf_keras")}


def tool_versions(*names: str) -> Dict[str, str]:
    """Installed versions of the named distributions (those not installed are left out)."""
    from edgecnn.core.files import dist_version

    found = {n: dist_version(n) for n in names or ("edgecnn", "tensorflow", "tf_keras", "tf2onnx", "onnx",
                                                   "onnxruntime", "ai-edge-litert", "tensorflow-model-optimization",
                                                   "numpy")}
    return {n: v for n, v in found.items() if v is not None}



"""The hostile-input world shared by the contract tests: one real run and export made by the real
writers (alexnet_tiny_dw, 32x32, 10 classes, fp32 + int8 TFLite), private copies of it per test,
and the builders of hostile model files."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

from click.testing import CliRunner

from edgecnn.cli import cli

RUN_ERR, CONFIG_ERR, MODEL_ERR, EXPORT_ERR, VERIFY_ERR = 7, 5, 11, 9, 10
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- fixtures
def _tiny_cifar(folder: Path, n_train: int = 200, n_test: int = 100) -> Path:
    """A CIFAR-10 python-batches folder of real bundled images (the standard layout)."""
    from edgecnn.data.sample import load_sample

    (xtr, ytr), (xte, yte), labels = load_sample()
    folder.mkdir(parents=True)

    def batch(x, y):
        return {b"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1), b"labels": [int(v) for v in y]}

    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump(batch(xtr[:n_train], ytr[:n_train]), f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch(xte[:n_test], yte[:n_test]), f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [s.encode() for s in labels]}, f)
    return folder


def make_good(base: Path) -> Path:
    """A trained-format run of alexnet_tiny_dw (32x32, 10 classes) on a CIFAR folder of its own,
    written by the real writers, and its export (fp32 + int8 TFLite) made by export_model."""
    import tf_keras

    from edgecnn.data.preprocess import spec_for
    from edgecnn.data.sample import load_sample
    from edgecnn.export import export_model
    from edgecnn.models.registry import create_model
    from edgecnn.contract import dataset_record, load_run, save_model, write_run

    data = _tiny_cifar(base / "data" / "cifar-10-batches-py")
    run_dir = base / "runs" / "alexnet_tiny_dw" / "good"
    run_dir.mkdir(parents=True)
    tf_keras.utils.set_random_seed(0)
    model = create_model("alexnet_tiny_dw", input_shape=(32, 32, 3), num_classes=10)
    labels = load_sample()[2]
    info = {"model": "alexnet_tiny_dw", "model_kwargs": {}, "input_shape": [32, 32, 3], "num_classes": 10,
            "labels": labels, "preprocessing": spec_for((32, 32, 3), source_size=32).to_dict(),
            "recipe": {"name": "test"}, "seed": 0, "trained": True, "metrics": {},
            "dataset": dict(dataset_record(str(data), run_dir), name="cifar10", val_fraction=0.1)}
    save_model(run_dir, info, model)
    write_run(run_dir, info)
    export_model(load_run(run_dir), None, int8=True, onnx=False, calibration=16, max_drop=100.0, echo=lambda s: None)
    return base


def copy_world(good: Path, dst: Path) -> Path:
    """A private copy of the good run, export and data (relative paths keep working)."""
    shutil.copytree(good, dst, symlinks=True)
    return dst


def run_of(world: Path) -> Path:
    return world / "runs" / "alexnet_tiny_dw" / "good"


def digest_tree(root: Path) -> dict:
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def invoke(*args, cwd=None):
    old = os.getcwd()
    try:
        if cwd:
            os.chdir(cwd)
        return CliRunner().invoke(cli, [str(a) for a in args])
    finally:
        os.chdir(old)


def edit_manifest(world: Path, fn):
    p = run_of(world) / "export" / "manifest.json"
    m = json.loads(p.read_text())
    fn(m)
    p.write_text(json.dumps(m))


def edit_run(world: Path, fn):
    p = run_of(world) / "run.json"
    info = json.loads(p.read_text())
    fn(info)
    p.write_text(json.dumps(info))


def set_model_sha(world: Path):
    sha = hashlib.sha256((run_of(world) / "model.keras").read_bytes()).hexdigest()
    edit_run(world, lambda i: i.update(model_sha256=sha))


def int8_name() -> str:
    return "alexnet_tiny_dw_int8.tflite"


# ---------------------------------------------------------------------------- 1. no code from model files
def _lambda_h5(path: Path, marker: Path):
    """An HDF5 Keras model with a Lambda layer that writes ``marker`` when the model is rebuilt."""
    import tf_keras as keras

    code = f"open({str(marker)!r}, 'w').write('ran')"

    def evil(x, _c=code):
        exec(_c)  # noqa: S102 - the hostile payload under test
        return x

    inp = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(evil)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(10, activation="softmax")(x)
    keras.Model(inp, out).save(path, save_format="h5")
    if marker.exists():
        marker.unlink()  # building it ran the Lambda once, here in the test


def _rewrite_keras_config(path: Path, fn):
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    cfg = json.loads(members["config.json"])
    fn(cfg)
    members["config.json"] = json.dumps(cfg).encode()
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)


def _layers(cfg):
    return cfg["config"]["layers"]



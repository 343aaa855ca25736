"""No code from a Keras model file, by construction (edgecnn/contract/keras_files.py).

The two attacks that reached code in safe mode before, each proved live first (Keras itself runs
the payload), then refused by every command that loads a model, in a real process, with a marker
file that must not appear and every file that was there before unchanged:

* a file that is a zip (a harmless config.json) and an HDF5 model with a Lambda at once, under
  any name: tf_keras picks its loader by the file name, and the HDF5 loader ignores safe mode;
* a genuine ``.keras`` zip whose op-layers (``SlicingOpLambda``, ``TFOpLambda``,
  ``ClassMethod``, ``InstanceMethod``, ``InstanceProperty``) name TensorFlow functions that
  write or delete files.

Then the file checks themselves: members, prefix/suffix/comment bytes, zip bombs (nothing left
in the temporary folder), and the allow-list passing every zoo model and Keras application.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from _hostile_world import (MODEL_ERR, REPO, _lambda_h5, _layers, _rewrite_keras_config, digest_tree, edit_manifest,
                            invoke, run_of, set_model_sha)
from _refusals import assert_refused

from edgecnn.contract import keras_files
from edgecnn.errors import ModelFileError


# ---------------------------------------------------------------------------- hostile files
def _harmless_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"name": "x", "layers": []}}))
        z.writestr("model.weights.h5", b"")
    return buf.getvalue()


def polyglot(path: Path, marker: Path) -> Path:
    """A zip from byte 0 whose comment hides an HDF5 Lambda model at the next HDF5 superblock slot."""
    h5 = path.with_name(path.name + ".src.h5")
    _lambda_h5(h5, marker)
    body = h5.read_bytes()
    h5.unlink()
    z = _harmless_zip()
    slot = 512
    while slot < len(z):
        slot *= 2
    pad = slot - len(z)
    path.write_bytes(z[:-2] + struct.pack("<H", pad + len(body)) + b"\0" * pad + body)
    return path


def hdf5_then_zip(path: Path, marker: Path) -> Path:
    """An HDF5 Lambda model with a zip appended (zip readers accept leading data)."""
    h5 = path.with_name(path.name + ".src.h5")
    _lambda_h5(h5, marker)
    path.write_bytes(h5.read_bytes() + _harmless_zip())
    h5.unlink()
    return path


def op_layer_payload(cfg: dict, kind: str, target: Path) -> None:
    """Turn the first layer after the input into an op-layer naming a file-writing or -deleting
    TensorFlow function (``target`` is what it would write or delete)."""
    layer = _layers(cfg)[1]
    name = layer["config"]["name"]
    base = {"name": name, "trainable": True, "dtype": "float32"}
    if kind in ("SlicingOpLambda", "TFOpLambda"):
        fn = "io.write_file" if kind == "SlicingOpLambda" else "io.gfile.rmtree"
        layer.update(class_name=kind, registered_name=kind, module="tf_keras.src.layers.core.tf_op_layer",
                     config=dict(base, function=fn))
        layer["inbound_nodes"] = [[[_layers(cfg)[0]["config"]["name"], 0, 0, {"contents": str(target)}]]]
    elif kind == "ClassMethod":
        layer.update(class_name=kind, registered_name=kind, module="tf_keras.src.layers.core.tf_op_layer",
                     config=dict(base, cls_symbol="io.gfile.GFile", method_name="write"))
    else:  # InstanceMethod / InstanceProperty
        layer.update(class_name=kind, registered_name=kind, module="tf_keras.src.layers.core.tf_op_layer",
                     config=dict(base, attr_name="__class__"))


def test_the_polyglot_payload_is_live_for_keras_itself(tmp_path):
    """The control: tf_keras, in safe mode, runs the polyglot's Lambda when the file is called .h5."""
    import tf_keras

    marker = tmp_path / "marker"
    poly = polyglot(tmp_path / "poly.h5", marker)
    assert zipfile.is_zipfile(poly)
    assert keras_files.hdf5_offsets(poly) and keras_files.file_kind(poly) == "polyglot"
    try:
        tf_keras.models.load_model(poly, compile=False, safe_mode=True)
    except Exception:  # noqa: BLE001 - only whether the payload ran matters here
        pass
    assert marker.exists()


@pytest.mark.parametrize("name", ["poly.h5", "poly.keras", "poly.zip", "poly"])
def test_a_zip_hdf5_polyglot_is_refused_under_any_name(tmp_path, name):
    marker = tmp_path / "marker"
    poly = polyglot(tmp_path / name, marker)
    for load in (lambda: keras_files.load_safely(poly), lambda: keras_files.read_config(poly)):
        with pytest.raises(ModelFileError, match="HDF5"):
            load()
    assert not marker.exists()


def _import_args(world: Path, model: Path, tmp_path: Path):
    data = world / "data" / "cifar-10-batches-py"
    return ["import", model, "--data", data, "--preprocess", "cifar10", "--runs-dir", tmp_path / "newruns"]


def _subprocess(args, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    p = subprocess.run([sys.executable, "-m", "edgecnn.cli", *map(str, args)], capture_output=True, text=True,
                       env=env, timeout=300, cwd=tmp_path)
    assert "Traceback" not in p.stderr and p.stderr.count("Error:") == 1, p.stderr
    assert not any((tmp_path / "tmp").iterdir()), "a temporary file was left behind"
    return p


@pytest.mark.parametrize("builder", [polyglot, hdf5_then_zip], ids=["zip-first", "hdf5-first"])
@pytest.mark.parametrize("name", ["poly.h5", "poly.keras"])
def test_import_of_a_polyglot_runs_nothing_in_a_real_process(world, tmp_path, builder, name):
    marker = tmp_path / "marker"
    poly = builder(tmp_path / name, marker)
    before = digest_tree(world)
    p = _subprocess(_import_args(world, poly, tmp_path), tmp_path)
    assert p.returncode == MODEL_ERR, p.stderr
    assert "HDF5" in p.stderr
    assert not marker.exists() and not (tmp_path / "newruns").exists()
    assert digest_tree(world) == before


@pytest.mark.parametrize("command", ["eval", "verify", "export"])
def test_a_polyglot_in_a_run_or_manifest_runs_nothing(world, tmp_path, command):
    import hashlib

    marker = tmp_path / "marker"
    run = run_of(world)
    if command == "verify":
        poly = polyglot(run / "export" / "ref.h5", marker)
        edit_manifest(world, lambda m: m["keras"].update(
            model_file="ref.h5", model_sha256=hashlib.sha256(poly.read_bytes()).hexdigest()))
        args = ["verify", run / "export"]
    else:
        polyglot(run / "model.keras", marker)
        set_model_sha(world)
        args = ["eval", run] if command == "eval" else ["export", run, "--no-onnx", "--out", tmp_path / "o"]
    before = digest_tree(world)
    assert_refused(invoke(*args), MODEL_ERR, "HDF5")
    assert not marker.exists() and digest_tree(world) == before


# ---------------------------------------------------------------------------- op-layers
OP_KINDS = ["SlicingOpLambda", "TFOpLambda", "ClassMethod", "InstanceMethod", "InstanceProperty"]


def _op_world(world: Path, kind: str, tmp_path: Path):
    victim = tmp_path / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "keep.txt").write_text("keep")
    _rewrite_keras_config(run_of(world) / "model.keras", lambda cfg: op_layer_payload(cfg, kind, victim))
    set_model_sha(world)
    return victim


def _command_args(command: str, world: Path, tmp_path: Path):
    run = run_of(world)
    return {"import": _import_args(world, run / "model.keras", tmp_path),
            "eval": ["eval", run],
            "verify": ["verify", run / "export"],
            "benchmark": ["benchmark", run, "--runtime", "keras", "--runs", 2, "--in-process", "--out", tmp_path / "b"],
            "export": ["export", run, "--no-onnx", "--out", tmp_path / "o"]}[command]


@pytest.mark.parametrize("kind", OP_KINDS)
def test_op_layers_calling_file_functions_are_refused_before_keras(world, tmp_path, kind):
    victim = _op_world(world, kind, tmp_path)
    before = digest_tree(world)
    assert_refused(invoke(*_command_args("eval", world, tmp_path)), MODEL_ERR, kind)
    assert (victim / "keep.txt").read_text() == "keep" and digest_tree(world) == before


@pytest.mark.parametrize("command", ["import", "eval", "verify", "benchmark", "export"])
def test_every_command_that_loads_a_model_refuses_a_file_writing_op_layer_in_a_real_process(world, tmp_path, command):
    victim = _op_world(world, "SlicingOpLambda", tmp_path)
    before = digest_tree(world)
    p = _subprocess(_command_args(command, world, tmp_path), tmp_path)
    assert p.returncode == MODEL_ERR, p.stderr
    assert "io.write_file" in p.stderr
    assert (victim / "keep.txt").read_text() == "keep" and len(list(victim.iterdir())) == 1
    assert digest_tree(world) == before


def test_a_tf_op_outside_the_allow_list_is_refused_by_name(world, tmp_path):
    def evil(cfg):
        op_layer_payload(cfg, "TFOpLambda", tmp_path)
        _layers(cfg)[1]["config"]["function"] = "py_function"
    _rewrite_keras_config(run_of(world) / "model.keras", evil)
    set_model_sha(world)
    assert_refused(invoke("eval", run_of(world)), MODEL_ERR, "py_function")


@pytest.mark.parametrize("edit, words", [
    (lambda c: _layers(c)[1].update(class_name="TextVectorization"), ["TextVectorization", "list"]),
    (lambda c: _layers(c)[1].update(module="keras.utils", class_name="get_file"), ["get_file", "list"]),
    (lambda c: _layers(c)[-1]["config"].update(activation="deserialize"), ["activation", "deserialize"]),
    (lambda c: _layers(c)[-1]["config"].update(activation={"module": "keras.activations", "class_name": "function",
                                                             "config": "get", "registered_name": "get"}),
     ["function", "get"]),
    (lambda c: _layers(c)[1].update(registered_name="mypkg>Evil"), ["custom object", "--custom-objects"]),
    (lambda c: _layers(c)[1].update(class_name="__typespec__"), ["__typespec__"]),
])
def test_the_class_allow_list(world, edit, words):
    _rewrite_keras_config(run_of(world) / "model.keras", edit)
    set_model_sha(world)
    assert_refused(invoke("eval", run_of(world)), MODEL_ERR, *words)


# ---------------------------------------------------------------------------- the file itself
def _good_keras(world: Path) -> Path:
    return run_of(world) / "model.keras"


def _members(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _write(path: Path, members: dict, compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as z:
        for n, b in members.items():
            z.writestr(n, b)
    return path


@pytest.mark.parametrize("change, words", [
    (lambda m: m.update({"assets/vocab.txt": b"x"}), ["assets/vocab.txt"]),
    (lambda m: m.update({"../evil.py": b"x"}), ["../evil.py"]),
    (lambda m: m.pop("model.weights.h5"), ["model.weights.h5"]),
    (lambda m: m.pop("config.json"), ["config.json"]),
])
def test_members_must_be_what_a_keras_file_holds(world, tmp_path, change, words):
    m = _members(_good_keras(world))
    change(m)
    bad = _write(tmp_path / "bad.keras", m)
    with pytest.raises(ModelFileError) as e:
        keras_files.load_safely(bad)
    for w in words:
        assert w in e.value.message


@pytest.mark.parametrize("where", ["prefix", "suffix", "comment"])
def test_bytes_outside_the_zip_are_refused(world, tmp_path, where):
    raw = _good_keras(world).read_bytes()
    bad = tmp_path / "bad.keras"
    if where == "prefix":
        bad.write_bytes(b"#!/bin/sh\n" + raw)
    elif where == "suffix":
        bad.write_bytes(raw + b"trailing")
    else:
        bad.write_bytes(raw[:-2] + struct.pack("<H", 5) + b"hello")
    with pytest.raises(ModelFileError, match="plain|HDF5"):
        keras_files.read_config(bad)


def test_a_zip_bomb_is_refused_before_anything_is_unpacked(world, tmp_path, monkeypatch):
    """A 64 MiB run of zeros compresses ~1000-fold: refused from the zip's directory, and the
    private temporary folder is gone afterwards."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    m = _members(_good_keras(world))
    m["model.weights.h5"] = b"\0" * (64 << 20)
    bomb = _write(tmp_path / "bomb.keras", m, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(ModelFileError, match="zip bomb"):
        keras_files.load_safely(bomb)
    assert not any(tmp.iterdir())


def test_a_member_longer_than_its_entry_says_is_refused_while_copying(world, tmp_path, monkeypatch):
    """The sizes in the zip's directory are not trusted: the copy stops at the recorded size."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    path = _write(tmp_path / "liar.keras", _members(_good_keras(world)))
    raw = bytearray(path.read_bytes())
    pos = raw.find(b"PK\x01\x02")
    while pos >= 0:  # the weights' central-directory entry: record 16 bytes fewer than it holds
        name_len = struct.unpack_from("<H", raw, pos + 28)[0]
        if bytes(raw[pos + 46:pos + 46 + name_len]) == b"model.weights.h5":
            size = struct.unpack_from("<I", raw, pos + 24)[0]
            struct.pack_into("<I", raw, pos + 24, size - 16)
            break
        pos = raw.find(b"PK\x01\x02", pos + 4)
    assert pos >= 0
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError):
        keras_files.load_safely(path)
    assert not any(tmp.iterdir())


def test_a_good_model_loads_and_leaves_no_temporary_files(world, tmp_path, monkeypatch):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    copy = tmp_path / "model_renamed.h5"  # a plain .keras zip under any name loads as the zip it is
    shutil.copy(_good_keras(world), copy)
    model = keras_files.load_safely(copy)
    assert model.count_params() > 0 and model.output_shape == (None, 10)
    assert not any(tmp.iterdir())


def test_the_allow_list_passes_the_zoo_and_keras_applications():
    """A model of each zoo family and the Keras applications users start from (MobileNetV3's
    hard-swish is 56 TFOpLambda layers) pass the config check as Keras serializes them."""
    import tf_keras
    from tf_keras.src.saving.serialization_lib import serialize_keras_object

    from edgecnn.models.registry import create_model

    models = [create_model(n) for n in ("alexnet_tiny_dw_res", "cmiv4_1", "mobilenetv2_e", "quicknet", "resnet20",
                                        "sepresnet_cifar")]
    models.append(tf_keras.applications.MobileNetV3Small(input_shape=(96, 96, 3), weights=None, classes=3))
    models.append(tf_keras.applications.EfficientNetB0(input_shape=(64, 64, 3), weights=None, classes=3))
    for m in models:
        cfg = json.loads(json.dumps(serialize_keras_object(m)))
        keras_files.check_config(cfg, m.name)

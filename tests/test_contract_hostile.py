"""Hostile and careless inputs to the artifact contract: runs, manifests, model files, paths.

Every case builds its hostile input here (tiny models, generated files) from one real run and
export made by the real writers, and asserts three things: the exit code of its class, a single
one-line ``Error:`` with no traceback, and that the files that were there before (the good run
and export) are byte for byte unchanged. The code-execution cases also prove that no code ran:
the hostile payload would create a marker file, and it must not appear.
(Data-side hostile inputs - archives, images, CIFAR batches, downloads - are in test_data_hostile.py.)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _refusals import assert_refused

from _hostile_world import (CONFIG_ERR, EXPORT_ERR, MODEL_ERR, REPO, RUN_ERR, VERIFY_ERR, _lambda_h5, _layers,
                            _rewrite_keras_config, digest_tree, edit_manifest, edit_run, int8_name, invoke, run_of,
                            set_model_sha)


# ---------------------------------------------------------------------------- 1. no code from model files
@pytest.mark.parametrize("command", ["eval", "export"])
def test_hdf5_lambda_model_in_a_run_never_runs(world, tmp_path, command):
    marker = tmp_path / "marker"
    run = run_of(world)
    h5 = tmp_path / "evil.h5"
    _lambda_h5(h5, marker)
    shutil.copy(h5, run / "model.keras")
    set_model_sha(world)  # the attacker rewrites run.json too
    before = digest_tree(world)
    args = ["eval", run] if command == "eval" else ["export", run, "--no-onnx", "--out", tmp_path / "o"]
    assert_refused(invoke(*args), MODEL_ERR, "HDF5", "--unsafe-load")
    assert not marker.exists()
    assert digest_tree(world) == before


def test_replaced_model_keras_is_refused_by_its_sha256(world, tmp_path):
    marker = tmp_path / "marker"
    _lambda_h5(run_of(world) / "model.keras", marker)  # run.json still records the good model's sha256
    before = digest_tree(world)
    assert_refused(invoke("eval", run_of(world)), RUN_ERR, "sha256")
    assert not marker.exists() and digest_tree(world) == before


def test_manifest_keras_model_file_pointing_at_an_hdf5_model_never_runs(world, tmp_path):
    marker = tmp_path / "marker"
    export = run_of(world) / "export"
    _lambda_h5(export / "evil.h5", marker)
    edit_manifest(world, lambda m: m["keras"].update(model_file="evil.h5",
                                                     model_sha256=hashlib.sha256((export / "evil.h5").read_bytes())
                                                     .hexdigest()))
    before = digest_tree(world)
    assert_refused(invoke("verify", export), MODEL_ERR, "HDF5")
    assert not marker.exists() and digest_tree(world) == before


@pytest.mark.parametrize("ref, words", [
    ("/etc/passwd", ["relative"]),
    ("../../../../evil.keras", ["outside"]),
    ("../../good/../../../evil.keras", ["outside"]),
])
def test_manifest_keras_model_file_outside_its_folder(world, ref, words):
    edit_manifest(world, lambda m: m["keras"].update(model_file=ref))
    before = digest_tree(world)
    assert_refused(invoke("verify", run_of(world)), MODEL_ERR, *words)
    assert digest_tree(world) == before


def test_manifest_keras_model_file_symlinked_out_of_the_run(world, tmp_path):
    outside = tmp_path / "elsewhere.keras"
    shutil.copy(run_of(world) / "model.keras", outside)
    (run_of(world) / "export" / "ref.keras").symlink_to(outside)
    edit_manifest(world, lambda m: m["keras"].update(model_file="ref.keras"))
    before = digest_tree(world)
    assert_refused(invoke("verify", run_of(world)), MODEL_ERR, "outside")
    assert digest_tree(world) == before


def test_keras_zip_with_a_lambda_layer_is_refused_before_loading(world, tmp_path):
    model = run_of(world) / "model.keras"

    def add_lambda(cfg):
        layer = _layers(cfg)[1]
        layer["class_name"] = "Lambda"
        layer["config"]["function"] = {"class_name": "__lambda__", "config": {"code": "...", "defaults": None,
                                                                          "closure": None}}
    _rewrite_keras_config(model, add_lambda)
    set_model_sha(world)
    before = digest_tree(world)
    assert_refused(invoke("eval", run_of(world)), MODEL_ERR, "Lambda")
    assert digest_tree(world) == before


@pytest.mark.parametrize("module", ["evil_mod_import", "os", "subprocess"])
def test_keras_config_naming_foreign_modules_is_refused_before_import(world, tmp_path, monkeypatch, module):
    marker = tmp_path / "marker"
    (tmp_path / "evil_mod_import.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\nrelu = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def evil(cfg):
        dense = [lay for lay in _layers(cfg) if lay["class_name"] == "Dense"][-1]
        dense["config"]["activation"] = {"module": module, "class_name": "function", "config": "relu",
                                         "registered_name": "relu"}
    _rewrite_keras_config(run_of(world) / "model.keras", evil)
    set_model_sha(world)
    before = digest_tree(world)
    assert_refused(invoke("eval", run_of(world)), MODEL_ERR, module)
    assert not marker.exists() and "evil_mod_import" not in sys.modules
    assert digest_tree(world) == before


def test_savedmodel_folder_in_place_of_model_keras(world):
    run = run_of(world)
    (run / "model.keras").unlink()
    (run / "model.keras").mkdir()
    (run / "model.keras" / "saved_model.pb").write_bytes(b"\x08\x01")
    assert_refused(invoke("eval", run), RUN_ERR, "folder")


def test_unsafe_load_is_the_explicit_way_in(world, tmp_path):
    """A plain HDF5 model (no Lambda) of the same architecture loads with --unsafe-load, and only then."""
    from edgecnn.contract import load_run

    run = run_of(world)
    model = load_run(run).load_model()
    model.save(tmp_path / "m.h5", save_format="h5")
    shutil.copy(tmp_path / "m.h5", run / "model.keras")
    set_model_sha(world)
    assert_refused(invoke("eval", run, "--max-images", 20), MODEL_ERR, "--unsafe-load")
    res = invoke("eval", run, "--max-images", 20, "--unsafe-load")
    assert res.exit_code == 0, res.output
    assert "top-1" in res.output


def test_the_code_execution_case_in_a_real_process(world, tmp_path):
    """The same HDF5 attack through the installed command in a fresh process: refused, no marker."""
    marker = tmp_path / "marker"
    _lambda_h5(tmp_path / "evil.h5", marker)
    shutil.copy(tmp_path / "evil.h5", run_of(world) / "model.keras")
    set_model_sha(world)
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.run([sys.executable, "-m", "edgecnn.cli", "eval", str(run_of(world))], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == MODEL_ERR, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.count("Error:") == 1
    assert not marker.exists()


# ---------------------------------------------------------------------------- 2. paths stay inside
@pytest.mark.parametrize("bad_name", ["../escape.tflite", "/etc/passwd.tflite", "sub/x.tflite", ".hidden.tflite"])
@pytest.mark.parametrize("command", ["classify", "bundle", "benchmark"])
def test_artifact_names_that_leave_the_export_folder(world, tmp_path, bad_name, command):
    def rename(m):
        m["artifacts"][bad_name] = m["artifacts"].pop(int8_name())
    edit_manifest(world, rename)
    before = digest_tree(world)
    export = run_of(world) / "export"
    img = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(img)
    args = {"classify": ["classify", export, img],
            "bundle": ["bundle", "android", export, "--app", _app_copy(tmp_path)],
            "benchmark": ["benchmark", export, "--runs", 2, "--in-process", "--out", tmp_path / "b"]}[command]
    assert_refused(invoke(*args), MODEL_ERR, "plain file name")
    assert digest_tree(world) == before


def _app_copy(tmp_path: Path) -> Path:
    app = tmp_path / "app_copy"
    if not app.exists():
        shutil.copytree(REPO / "android_app", app, ignore=shutil.ignore_patterns("build", ".gradle"))
    return app


@pytest.mark.parametrize("command", ["classify", "bundle", "benchmark", "verify"])
def test_an_artifact_symlinked_out_of_its_folder(world, tmp_path, command):
    export = run_of(world) / "export"
    real = tmp_path / "outside.tflite"
    shutil.move(export / int8_name(), real)
    (export / int8_name()).symlink_to(real)
    before = digest_tree(world)
    img = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(img)
    args = {"classify": ["classify", export, img, "--artifact", int8_name()],
            "bundle": ["bundle", "android", export, "--app", _app_copy(tmp_path)],
            "benchmark": ["benchmark", export, "--runs", 2, "--in-process", "--out", tmp_path / "b"],
            "verify": ["verify", export]}[command]
    assert_refused(invoke(*args), MODEL_ERR, "outside")
    assert digest_tree(world) == before


@pytest.mark.parametrize("sha", [None, "", "abc", "0" * 63 + "g", 12345], ids=["null", "empty", "short", "nonhex", "int"])
def test_a_missing_or_malformed_sha256_is_an_error_not_a_skipped_check(world, tmp_path, sha):
    def strip(m):
        if sha is None:
            m["artifacts"][int8_name()].pop("sha256")
        else:
            m["artifacts"][int8_name()]["sha256"] = sha
    edit_manifest(world, strip)
    before = digest_tree(world)
    assert_refused(invoke("classify", run_of(world) / "export", _png(tmp_path)), MODEL_ERR, "sha256")
    assert digest_tree(world) == before


def _png(tmp_path: Path) -> Path:
    from PIL import Image

    p = tmp_path / "img.png"
    Image.new("RGB", (40, 30), (120, 40, 200)).save(p)
    return p


@pytest.mark.parametrize("command", ["classify", "verify", "bundle"])
def test_a_tampered_artifact_is_caught_by_its_sha256(world, tmp_path, command):
    f = run_of(world) / "export" / int8_name()
    data = bytearray(f.read_bytes())
    data[-100] ^= 0xFF  # same size, different bytes
    f.write_bytes(bytes(data))
    before = digest_tree(world)
    args = {"classify": ["classify", f.parent, _png(tmp_path), "--artifact", int8_name()],
            "verify": ["verify", f.parent],
            "bundle": ["bundle", "android", f.parent, "--app", _app_copy(tmp_path)]}[command]
    assert_refused(invoke(*args), MODEL_ERR, "sha256")
    assert digest_tree(world) == before


@pytest.mark.parametrize("name", ["../../escape", "/tmp/abs-run", "..", ".hidden", "a/b"])
def test_train_name_cannot_leave_the_runs_root(tmp_path, name):
    res = invoke("train", "alexnet_tiny_dw", "--name", name, "--runs-dir", tmp_path / "runs", "--epochs", 1)
    assert_refused(res, CONFIG_ERR, "--name")
    assert not (tmp_path / "escape").exists() and not Path("/tmp/abs-run").exists()
    assert not any((tmp_path / "runs").rglob("run.json")) if (tmp_path / "runs").exists() else True


def test_remote_payload_holds_only_listed_artifacts_inside_the_export(world, tmp_path):
    """What `benchmark --remote` would send: the manifest and the artifacts it lists, nothing else."""
    import io
    import tarfile

    from edgecnn.benchmark.remote import _payload

    export = run_of(world) / "export"
    (export / "secret.txt").write_text("not for the board")
    payload, args, files = _payload([str(run_of(world))])
    names = sorted(m.name for m in tarfile.open(fileobj=io.BytesIO(payload)).getmembers())
    assert names == sorted(["r0/good/run.json", "r0/good/export/manifest.json", f"r0/good/export/{int8_name()}",
                            "r0/good/export/alexnet_tiny_dw_fp32.tflite"])
    edit_manifest(world, lambda m: m["artifacts"].__setitem__("../../../../etc/x.tflite",
                                                               m["artifacts"].pop(int8_name())))
    with pytest.raises(Exception) as e:
        _payload([str(run_of(world))])
    assert getattr(e.value, "exit_code", None) == MODEL_ERR


# ---------------------------------------------------------------------------- 3. bounded sizes
@pytest.mark.parametrize("size", [[100000, 100000], [64, 64], [0, 32], [32.5, 32], "32"],
                         ids=["huge", "disagrees", "zero", "float", "string"])
@pytest.mark.parametrize("command", ["classify", "verify", "bundle", "benchmark"])
def test_input_size_must_agree_with_the_model_before_anything_is_allocated(world, tmp_path, size, command):
    edit_manifest(world, lambda m: m["preprocessing"].update(input_size=size))
    before = digest_tree(world)
    export = run_of(world) / "export"
    args = {"classify": ["classify", export, _png(tmp_path)], "verify": ["verify", export],
            "bundle": ["bundle", "android", export, "--app", _app_copy(tmp_path)],
            "benchmark": ["benchmark", export, "--runs", 2, "--in-process", "--out", tmp_path / "b"]}[command]
    assert_refused(invoke(*args), MODEL_ERR, "input_size")
    assert digest_tree(world) == before


@pytest.mark.parametrize("which", ["manifest", "run"])
def test_a_fifo_in_place_of_a_json_file_is_refused_not_waited_on(world, tmp_path, which):
    f = run_of(world) / ("export/manifest.json" if which == "manifest" else "run.json")
    f.unlink()
    os.mkfifo(f)
    res = invoke("verify" if which == "manifest" else "eval", run_of(world))
    assert_refused(res, MODEL_ERR if which == "manifest" else RUN_ERR, "not a regular file")


def test_an_oversized_manifest_is_refused_unread(world, monkeypatch):
    from edgecnn.contract import checks

    run_json = (run_of(world) / "run.json").stat().st_size
    assert (run_of(world) / "export" / "manifest.json").stat().st_size > run_json + 1
    monkeypatch.setattr(checks, "MAX_JSON_BYTES", run_json + 1)
    assert_refused(invoke("verify", run_of(world)), MODEL_ERR, "bytes")


# ---------------------------------------------------------------------------- 4. a failed step damages nothing
@pytest.mark.parametrize("args, code", [
    (["--max-drop", "nan"], (2, CONFIG_ERR)), (["--max-drop", "-1"], (2, CONFIG_ERR)),
    (["--max-drop", "inf"], (2, CONFIG_ERR)), (["--calibration", "0"], (2, CONFIG_ERR)),
])
def test_export_options_are_range_checked_before_any_work(world, tmp_path, args, code):
    before = digest_tree(world)
    res = invoke("export", run_of(world), "--no-onnx", *args)
    assert res.exit_code in code, res.output
    assert "Traceback" not in res.output and res.output.count("Error:") == 1
    assert digest_tree(world) == before


def test_model_args_are_checked_against_the_builder(tmp_path):
    res = invoke("train", "alexnet_tiny_dw", "--model-arg", "alpah=0.5", "--runs-dir", tmp_path / "r", "--epochs", 1)
    assert_refused(res, CONFIG_ERR, "alpah")
    assert not (tmp_path / "r").exists()


def test_a_failed_verification_never_replaces_the_previous_export(world, monkeypatch):
    import edgecnn.export.verify as verify

    export = run_of(world) / "export"
    before = digest_tree(export)
    monkeypatch.setattr(verify, "FP32_TOL", -1.0)  # every fp32 artifact now fails its check
    res = invoke("export", run_of(world), "--no-onnx", "--calibration", 8)
    assert_refused(res, VERIFY_ERR, "unchanged")
    assert digest_tree(export) == before
    rejected = run_of(world) / "export.rejected"
    assert (rejected / "manifest.json").is_file()
    assert json.loads((rejected / "manifest.json").read_text())["artifacts"]["alexnet_tiny_dw_fp32.tflite"][
        "verified"] is False


def test_an_interrupted_export_leaves_no_staging_folder_after_the_next(world):
    export = run_of(world) / "export"
    stale = export / ".export-killed123"
    stale.mkdir()
    (stale / "alexnet_tiny_dw_fp32.tflite").write_bytes(b"half")
    res = invoke("export", run_of(world), "--no-onnx", "--calibration", 8, "--max-drop", "100")
    assert res.exit_code == 0, res.output
    assert not [p for p in export.iterdir() if p.name.startswith(".export-")]


def test_readers_trust_only_what_the_manifest_names(world, tmp_path):
    """A file left from an older export (or half a commit) beside the manifest is never used."""
    export = run_of(world) / "export"
    (export / "alexnet_tiny_dw_fp16.tflite").write_bytes((export / int8_name()).read_bytes())
    assert_refused(invoke("classify", export, _png(tmp_path), "--artifact", "alexnet_tiny_dw_fp16.tflite"),
                   MODEL_ERR, "not listed")


@pytest.mark.parametrize("doc", [
    {"schema": 1, "rows": [{"artifact": "x.tflite"}]},
    {"schema": 1, "rows": [{"artifact": "x", "runtime": "litert", "threads": 1, "batch": 1,
                            "timing": {"latency": {"mean_ms": "fast"}}, "memory": {}}]},
    {"schema": 2, "rows": []},
    [1, 2, 3],
], ids=["row-missing-fields", "latency-string", "schema", "not-object"])
def test_benchmark_merge_validates_every_row_before_writing_anything(world, tmp_path, doc):
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps(doc))
    out = tmp_path / "bench"
    res = invoke("benchmark", run_of(world) / "export", "--runs", 2, "--in-process", "--merge", bad, "--out", out)
    assert_refused(res, 13)
    assert not out.exists()


# ---------------------------------------------------------------------------- 5. self-describing, portable
def test_verify_from_another_directory_uses_the_runs_own_data(world, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = invoke("verify", run_of(world).resolve(), cwd=elsewhere)
    assert res.exit_code == 0, res.output
    m = json.loads((run_of(world) / "export" / "manifest.json").read_text())
    split = m["artifacts"][int8_name()]["verification"]["split"]
    n = m["artifacts"][int8_name()]["verification"]["n"]
    assert split == "cifar10 test" and n == 100  # the run's 100 test images, not the bundled sample's 500


def test_verify_never_falls_back_to_the_sample_when_the_runs_data_is_gone(world):
    edit_run(world, lambda i: i["dataset"].update(data_arg="data/cifar-10-batches-py"))  # as typed, relative
    shutil.move(world / "data", world / "moved")
    before = digest_tree(world)
    assert_refused(invoke("verify", run_of(world)), RUN_ERR, "not here")
    assert digest_tree(world) == before


def test_a_run_moved_with_its_data_still_finds_it(world, tmp_path):
    moved = tmp_path / "moved-world"
    shutil.move(world, moved)
    res = invoke("verify", moved / "runs" / "alexnet_tiny_dw" / "good")
    assert res.exit_code == 0, res.output


def test_run_json_naming_another_model_than_model_keras_holds(world):
    edit_run(world, lambda i: i.update(model="alexnet_tiny"))
    before = digest_tree(world)
    assert_refused(invoke("eval", run_of(world)), RUN_ERR, "architecture")
    assert digest_tree(world) == before


def test_a_positional_model_that_disagrees_with_run(world):
    before = digest_tree(world)
    assert_refused(invoke("export", "quicknet", "--run", run_of(world)), CONFIG_ERR, "disagrees")
    assert digest_tree(world) == before


# ---------------------------------------------------------------------------- 6. no tracebacks
@pytest.mark.parametrize("edit, words", [
    (lambda m: m.update(labels="airplane"), ["labels"]),
    (lambda m: m.update(labels=[]), ["labels"]),
    (lambda m: m.update(artifacts=[]), ["artifacts"]),
    (lambda m: m.update(trained="yes"), ["trained"]),
    (lambda m: m.update(schema=99), ["schema"]),
    (lambda m: m["preprocessing"].update(std=[0, 0, 0]), ["std"]),
    (lambda m: m["preprocessing"].update(mean=[float("nan")] * 3), []),
    (lambda m: m["preprocessing"].update(channels=4), ["channels"]),
    (lambda m: m["artifacts"][int8_name()].update(bytes=-5), ["bytes"]),
    (lambda m: m["artifacts"][int8_name()].update(verified="true"), ["verified"]),
    (lambda m: m["artifacts"][int8_name()].update(inputs=[{"name": "x"}]), ["tensor"]),
    (lambda m: m["artifacts"][int8_name()]["outputs"][0].update(shape=[1, 7]), ["label"]),
    (lambda m: m["artifacts"][int8_name()].update(format="exe"), ["format"]),
    (lambda m: m.pop("preprocessing"), ["missing"]),
    (lambda m: m["labels"].__setitem__(0, "plane\x1b]0;owned\x07"), ["'labels[0]'", "ESC"]),
    (lambda m: m["labels"].__setitem__(0, "plane\nFAKE"), ["'labels[0]'", "line break"]),
    (lambda m: m["labels"].__setitem__(0, ["plane"]), ["'labels[0]' must be a label"]),
    (lambda m: m["preprocessing"].update(std=[1e-320] * 3), ["std", "float32"]),
    (lambda m: m["preprocessing"].update(scale=10 ** 400), ["scale"]),
    (lambda m: m["artifacts"][int8_name()].update(format=["tflite"]), ["format"]),  # found by tests/test_fuzz.py
], ids=["labels-str", "labels-empty", "artifacts-list", "trained-str", "schema", "std-zero", "mean-nan",
        "channels", "bytes", "verified-str", "tensor-keys", "outputs-vs-labels", "format", "no-preprocessing",
        "label-escape", "label-newline", "label-list", "std-denormal", "scale-huge-int", "format-list"])
def test_manifests_with_wrong_field_types(world, tmp_path, edit, words):
    edit_manifest(world, edit)
    before = digest_tree(world)
    assert_refused(invoke("classify", run_of(world) / "export", _png(tmp_path)), MODEL_ERR, *words)
    assert digest_tree(world) == before


@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000, "{\"schema\": 1,", "[1, 2]", "\xff\xfe"],
                         ids=["deep", "truncated", "list", "binary"])
def test_unparseable_manifests(world, tmp_path, text):
    (run_of(world) / "export" / "manifest.json").write_bytes(text.encode("latin1"))
    assert_refused(invoke("classify", run_of(world) / "export", _png(tmp_path)), MODEL_ERR)


@pytest.mark.parametrize("edit, words", [
    (lambda i: i.update(input_shape="32,32,3"), ["input_shape"]),
    (lambda i: i.update(input_shape=[32, 32, 3, 1]), ["input_shape"]),
    (lambda i: i.update(num_classes=11), ["num_classes"]),
    (lambda i: i.update(labels=None), ["labels"]),
    (lambda i: i.update(model="../../etc"), ["model"]),
    (lambda i: i.update(dataset="sample"), ["dataset"]),
    (lambda i: i.update(seed=-1), ["seed"]),
    (lambda i: i.pop("model_sha256"), ["sha256"]),
    (lambda i: i.update(nested=json.loads("[" * 80 + "]" * 80)), ["nested"]),
], ids=["shape-str", "shape-rank", "classes", "labels-null", "model-path", "dataset-str", "seed", "no-sha", "deep"])
def test_run_json_with_wrong_field_types(world, edit, words):
    edit_run(world, edit)
    before = digest_tree(world)
    assert_refused(invoke("eval", run_of(world)), RUN_ERR, *words)
    assert digest_tree(world) == before


@pytest.mark.parametrize("recipe", [{"name": "quick", "epochs": "12"}, {"name": "quick", "epochs": 2, "lr": -1.0},
                                    "quick", {"name": "quick", "epochs": 2, "batch_size": 1e9}],
                         ids=["epochs-str", "lr-negative", "not-object", "batch-float"])
def test_resume_refuses_a_malformed_recorded_recipe(world, recipe):
    edit_run(world, lambda i: i.update(trained=False, recipe=recipe))
    before = digest_tree(world)
    res = invoke("train", "--resume", run_of(world))
    assert res.exit_code in (CONFIG_ERR, RUN_ERR), res.output
    assert "Traceback" not in res.output and res.output.count("Error:") == 1
    assert digest_tree(world) == before


def test_an_output_folder_under_a_file(world, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_refused(invoke("export", run_of(world), "--no-onnx", "--out", blocker / "sub"), EXPORT_ERR, "output folder")


def test_an_over_long_output_path(world, tmp_path):
    """A name the filesystem refuses is the operating system's answer (exit 17), said before any work."""
    from edgecnn.errors import SystemResourceError

    assert_refused(invoke("export", run_of(world), "--no-onnx", "--out", tmp_path / ("x" * 300)),
                   SystemResourceError.exit_code, "too long", "shorter name")


def test_a_runs_dir_that_is_a_file(tmp_path):
    f = tmp_path / "runs"
    f.write_text("x")
    res = invoke("train", "alexnet_tiny_dw", "--runs-dir", f, "--name", "r", "--epochs", 1)
    assert res.exit_code != 0 and "Traceback" not in res.output and res.output.count("Error:") == 1


def test_the_good_world_really_works(world, tmp_path):
    """The fixture itself passes every reader, so each refusal above is caused by its own edit."""
    export = run_of(world) / "export"
    assert invoke("classify", export, _png(tmp_path)).exit_code == 0
    assert invoke("bundle", "android", export, "--app", _app_copy(tmp_path), "--images", 1).exit_code == 0
    res = invoke("benchmark", export, "--runs", 2, "--in-process", "--out", tmp_path / "b")
    assert res.exit_code == 0, res.output
    from edgecnn.contract import resolve

    r = resolve(run_of(world))
    assert r.manifest is not None and r.export_dir == export
    assert np.isfinite(json.loads((export / "manifest.json").read_text())["keras"]["top1"])


# ---------------------------------------------------------------------------- 7. odd values, odd devices
@pytest.mark.parametrize("field", ["format", "precision", "output_kind", "dtype", "data_arg", "model_file", "label"])
@pytest.mark.parametrize("command", ["verify", "classify", "bundle"])
def test_a_manifest_with_a_list_where_a_name_is_expected(world, tmp_path, field, command):
    """A JSON list (unhashable) or object in place of a name ends in one line, never a TypeError."""
    def edit(m):
        a = m["artifacts"][int8_name()]
        if field in ("format", "precision", "output_kind"):
            a[field] = [a[field]]
        elif field == "dtype":
            a["inputs"][0]["dtype"] = {"x": a["inputs"][0]["dtype"]}
        elif field == "data_arg":
            m["dataset"]["data_arg"] = [m["dataset"]["data_arg"]]
        elif field == "model_file":
            m["keras"]["model_file"] = [m["keras"]["model_file"]]
        else:
            m["labels"][0] = [m["labels"][0]]
    edit_manifest(world, edit)
    before = digest_tree(world)
    export = run_of(world) / "export"
    args = {"verify": ["verify", export], "classify": ["classify", export, _png(tmp_path)],
            "bundle": ["bundle", "android", export, "--app", _app_copy(tmp_path)]}[command]
    res = invoke(*args)
    assert res.exit_code in (MODEL_ERR, RUN_ERR, 15), res.output
    assert_refused(res, res.exit_code)
    assert digest_tree(world) == before


@pytest.mark.parametrize("command", ["verify", "classify", "bundle"])
def test_an_export_whose_input_size_disagrees_with_its_model(world, tmp_path, command):
    """The manifest says 64x64 everywhere (preprocessing and tensors agree with each other), the
    model and the artifacts take 32x32: refused before anything is fed (not `Cannot set tensor`)."""
    def edit(m):
        m["preprocessing"]["input_size"] = [64, 64]
        m["keras"]["preprocessing"]["input_size"] = [64, 64]  # the Keras reference's spec too
        for a in m["artifacts"].values():
            a["inputs"][0]["shape"] = [1, 64, 64, 3]
    edit_manifest(world, edit)
    before = digest_tree(world)
    export = run_of(world) / "export"
    args = {"verify": ["verify", run_of(world)], "classify": ["classify", export, _png(tmp_path)],
            "bundle": ["bundle", "android", export, "--app", _app_copy(tmp_path)]}[command]
    res = invoke(*args)
    assert_refused(res, 15 if command == "bundle" else MODEL_ERR, "64")
    assert digest_tree(world) == before


@pytest.mark.parametrize("opt", ["PKCS11Provider=/tmp/evil.so", "SecurityKeyProvider=/tmp/evil.so",
                                 "KnownHostsCommand=/usr/bin/id", "Include=/tmp/other_config", "Match=exec id",
                                 "ProxyCommand=nc %h %p", "LocalCommand=id", "PermitLocalCommand=yes",
                                 "StrictHostKeyChecking=no", "Port=22 ProxyCommand=x", "ProxyJump=-oProxyCommand=x",
                                 "ForwardAgent=yes", "LocalForward=8080 localhost:80"])
def test_ssh_options_are_an_allow_list(world, tmp_path, monkeypatch, opt):
    """An option ssh would use to load a library or run a command here is refused before ssh runs
    (a stand-in `ssh` first on PATH would leave a marker)."""
    bin_dir, marker = tmp_path / "bin", tmp_path / "ssh-ran"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f"#!/bin/sh\ntouch {marker}\nexit 255\n")
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    before = digest_tree(world)
    res = invoke("benchmark", run_of(world) / "export", "--remote", "pi@raspberrypi.local", "--ssh-option", opt,
                 "--out", tmp_path / "b")
    assert_refused(res, CONFIG_ERR, "--ssh-option")
    assert not marker.exists() and not (tmp_path / "b").exists() and digest_tree(world) == before


def test_allowed_ssh_options_reach_ssh():
    from edgecnn.benchmark.remote import ssh_command

    cmd = ssh_command("pi@raspberrypi.local", "true",
                      ssh_options=["UserKnownHostsFile=/tmp/kh", "port 2222", "ServerAliveInterval=5",
                                   "ProxyJump=me@gateway:22"])
    for o in ("UserKnownHostsFile=/tmp/kh", "Port=2222", "ServerAliveInterval=5", "ProxyJump=me@gateway:22"):
        assert o in cmd
    assert cmd.index("StrictHostKeyChecking=yes") < cmd.index("UserKnownHostsFile=/tmp/kh")


@pytest.mark.parametrize("frame", ["None", "np.zeros(5, np.uint8)", "np.zeros((0, 4, 3), np.uint8)"],
                         ids=["none", "flat", "empty"])
def test_a_camera_that_returns_no_frame(world, tmp_path, frame):
    """OpenCV's read() can say ok and give no image (a busy or half-attached camera). A stand-in
    cv2 (no camera here) returns such a frame to the real `edgecnn classify --camera` process."""
    fake = tmp_path / "fakecam"
    fake.mkdir()
    (fake / "cv2.py").write_text(
        "import numpy as np\nCAP_PROP_FRAME_WIDTH, CAP_PROP_FRAME_HEIGHT = 3, 4\n"
        "class VideoCapture:\n"
        "    def __init__(self, index): pass\n"
        "    def isOpened(self): return True\n"
        "    def set(self, *a): return True\n"
        f"    def read(self): return True, {frame}\n"
        "    def release(self): pass\n")
    before = digest_tree(world)
    env = dict(os.environ, PYTHONPATH=f"{fake}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    r = subprocess.run([sys.executable, "-m", "edgecnn.cli", "classify", str(run_of(world) / "export"), "--camera",
                        "--frames", "2"], capture_output=True, text=True, env=env, timeout=300)
    out = r.stdout + r.stderr
    errors = [s for s in out.splitlines() if s.startswith("Error:")]
    assert r.returncode == 6 and len(errors) == 1 and "Traceback" not in out, out
    assert "camera 0 returned no image" in errors[0]
    assert digest_tree(world) == before

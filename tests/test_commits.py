"""All or nothing, tried on real processes: an export, a bundle and an import are stopped with a real
SIGKILL at named instants of their commit (``EDGECNN_PAUSE_AT``, edgecnn.core.commit.pause_point),
and the folder on disk is then the old one or the new one, whole: every sha256 as its manifest or
bundle spec records. Two exports of one run wait for each other instead of eating each other's
staging; the next command that takes the lock removes what a killed one left. Exports add up: a new
export keeps (and verifies again) the artifacts it does not write, or is refused unless --clean."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _hostile_world import REPO, digest_tree, int8_name, invoke, run_of
from _refusals import assert_refused

CLI = [sys.executable, "-m", "edgecnn.cli"]
EXPORT_ERR = 9
FP32, FP16 = "alexnet_tiny_dw_fp32.tflite", "alexnet_tiny_dw_fp16.tflite"
NEW_EXPORT = ["--no-onnx", "--fp16", "--calibration", "8", "--max-drop", "100"]  # fp32 + fp16 written, int8 kept


# ---------------------------------------------------------------------------- a process stopped at an instant
class Paused:
    """``edgecnn ARGS`` in its own process, stopped at the pause point ``point``."""

    def __init__(self, args, point: str, where: Path, env=None):
        self.point, self.dir = point, where / f"pause-{point}-{time.monotonic_ns()}"
        self.dir.mkdir(parents=True)
        full_env = dict(os.environ, EDGECNN_PAUSE_AT=point, EDGECNN_PAUSE_DIR=str(self.dir), **(env or {}))
        self.proc = subprocess.Popen(CLI + [str(a) for a in args], env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def wait(self, timeout: float = 600) -> "Paused":
        deadline = time.monotonic() + timeout
        while not (self.dir / f"{self.point}.paused").exists():
            if self.proc.poll() is not None:
                pytest.fail(f"ended (exit {self.proc.returncode}) before {self.point}:\n{self.proc.stdout.read()}")
            assert time.monotonic() < deadline, f"never reached {self.point}"
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        assert self.proc.returncode == -signal.SIGKILL

    def go(self) -> str:
        (self.dir / f"{self.point}.go").touch()
        out, _ = self.proc.communicate(timeout=600)
        assert self.proc.returncode == 0, out
        return out


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _leftovers(folder: Path, name: str) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def _whole_export(export: Path) -> dict:
    """The manifest, after checking that every artifact it lists is there with its sha256."""
    from edgecnn.contract import read_manifest

    m = read_manifest(export, check_files=True)
    assert set(m["artifacts"]) <= {p.name for p in export.iterdir()}
    return m


# ---------------------------------------------------------------------------- export
@pytest.mark.parametrize("point, state", [("export-staged", "old"), ("commit-before-swap", "old"),
                                          ("commit-after-swap", "new")])
def test_an_export_killed_at_any_instant_leaves_the_old_or_the_new_export_whole(world, tmp_path, point, state):
    run = run_of(world)
    export = run / "export"
    before, int8_bytes = digest_tree(export), (export / int8_name()).read_bytes()
    Paused(["export", run, *NEW_EXPORT], point, tmp_path).wait().kill()
    if state == "old":
        assert digest_tree(export) == before
    else:
        m = _whole_export(export)
        assert set(m["artifacts"]) == {FP32, FP16, int8_name()}
        assert (export / int8_name()).read_bytes() == int8_bytes and m["artifacts"][int8_name()]["verified"]
    assert _leftovers(run, "export")  # what the killed one left beside it (its staging or the old folder)...
    res = invoke("verify", run, "--max-drop", 100)  # ...goes with the next command that takes the lock
    assert res.exit_code == 0, res.output
    assert _leftovers(run, "export") == []
    assert set(_whole_export(export)["artifacts"]) == ({FP32, int8_name()} if state == "old" else
                                                       {FP32, FP16, int8_name()})


def test_without_the_exchange_a_kill_between_the_two_renames_is_rolled_back(world, tmp_path):
    """Where the filesystem cannot exchange two folders (FAT, NFS), the fallback's two renames leave
    the old export under a hidden name for an instant; the next holder of the lock puts it back."""
    from edgecnn.core import commit

    run = run_of(world)
    export = run / "export"
    before = digest_tree(export)
    Paused(["export", run, *NEW_EXPORT], "commit-between-renames", tmp_path, env={"EDGECNN_NO_EXCHANGE": "1"}) \
        .wait().kill()
    assert not export.exists() and [n for n in _leftovers(run, "export") if ".old-" in n]
    with commit.locked(export):
        pass
    assert digest_tree(export) == before and _leftovers(run, "export") == []


def test_two_exports_of_one_run_wait_for_each_other(world, tmp_path):
    """The second export waits (and says for which pid) while the first stages; neither touches the
    other's staging folder, and the run ends with the second's export, whole."""
    run = run_of(world)
    first = Paused(["export", run, "--no-onnx", "--calibration", "8", "--max-drop", "100"], "export-staged",
                   tmp_path).wait()
    stage = [p for p in run.iterdir() if p.name.startswith(".export.stage-")]
    assert len(stage) == 1
    second = subprocess.Popen(CLI + ["export", str(run), *NEW_EXPORT], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    lines: list = []
    reader = threading.Thread(target=lambda: lines.extend(second.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 600
    while not any("waiting" in s for s in lines):
        assert second.poll() is None, "".join(lines)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert f"pid {first.proc.pid}" in next(s for s in lines if "waiting" in s)
    assert stage[0].is_dir() and (stage[0] / FP32).is_file()  # the first one's staging, untouched
    first.go()
    assert second.wait(timeout=600) == 0, "".join(lines)
    reader.join(timeout=60)
    assert set(_whole_export(run / "export")["artifacts"]) == {FP32, FP16, int8_name()}
    assert _leftovers(run, "export") == []


# ---------------------------------------------------------------------------- exports add up
def test_a_new_export_keeps_what_it_does_not_replace_and_verifies_it_again(world):
    """`export RUN` without --int8 after an int8 export: the int8 artifact stays, listed and verified
    again (against this export's reference model and held-out split), byte for byte; classify still
    finds it. A file of yours in the folder stays too."""
    run = run_of(world)
    export = run / "export"
    old = json.loads((export / "manifest.json").read_text())
    int8_bytes = (export / int8_name()).read_bytes()
    (export / "NOTES.txt").write_text("mine")
    res = invoke("export", run, "--no-onnx", "--calibration", 8, "--max-drop", 100)
    assert res.exit_code == 0, res.output
    assert "kept from the previous export" in res.output and int8_name() in res.output
    m = _whole_export(export)
    assert set(m["artifacts"]) == {FP32, int8_name()}
    entry = m["artifacts"][int8_name()]
    assert (export / int8_name()).read_bytes() == int8_bytes and entry["sha256"] == old["artifacts"][int8_name()]["sha256"]
    assert entry["verified"] and entry["carried_from"]["created"] == old["created"]
    assert entry["verification"]["n"] == m["keras"]["n"]  # verified in this export's own run
    assert (export / "NOTES.txt").read_text() == "mine"
    from edgecnn.device.classify import resolve_artifact

    assert resolve_artifact(export)[0].name == int8_name()  # classify's default did not switch to fp32


def test_clean_replaces_the_whole_export(world):
    run = run_of(world)
    export = run / "export"
    (export / "NOTES.txt").write_text("mine")
    res = invoke("export", run, "--no-onnx", "--calibration", 8, "--max-drop", 100, "--clean")
    assert res.exit_code == 0, res.output
    assert set(_whole_export(export)["artifacts"]) == {FP32}
    assert sorted(p.name for p in export.iterdir()) == [FP32, "manifest.json"]


@pytest.mark.parametrize("damage, words", [
    ("labels", ["labels", "--clean"]),
    ("tampered", ["sha256", "--clean"]),
    ("manifest", ["cannot be added to", "--clean"]),
], ids=["another-model", "tampered-artifact", "damaged-manifest"])
def test_an_export_that_cannot_keep_the_old_artifacts_is_refused_without_clean(world, damage, words):
    """Never a silent deletion: artifacts that cannot join the new export (another model's, a
    changed file, an unreadable manifest) stop it before any conversion, unless --clean."""
    run = run_of(world)
    export = run / "export"
    p = export / "manifest.json"
    m = json.loads(p.read_text())
    if damage == "labels":
        m["labels"][0] = "not-" + m["labels"][0]
        p.write_text(json.dumps(m))
    elif damage == "tampered":
        (export / int8_name()).write_bytes(b"\0" * len((export / int8_name()).read_bytes()))
    else:
        p.write_text("{")
    before = digest_tree(run)
    assert_refused(invoke("export", run, "--no-onnx", "--calibration", 8, "--max-drop", 100), EXPORT_ERR, *words)
    assert digest_tree(run) == before and _leftovers(run, "export") == []
    res = invoke("export", run, "--no-onnx", "--calibration", 8, "--max-drop", 100, "--clean")
    assert res.exit_code == 0, res.output
    assert set(_whole_export(export)["artifacts"]) == {FP32}


def test_an_export_never_replaces_the_current_folder(world, tmp_path):
    run = run_of(world)
    here = tmp_path / "here"
    here.mkdir()
    old = os.getcwd()
    try:
        os.chdir(here)
        res = invoke("export", run, "--no-onnx", "--out", here)
    finally:
        os.chdir(old)
    assert_refused(res, EXPORT_ERR, "current folder")
    assert list(here.iterdir()) == []


# ---------------------------------------------------------------------------- bundle
def _app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    shutil.copytree(REPO / "android_app", app, ignore=shutil.ignore_patterns("build", ".gradle", "assets"))
    return app


def _whole_bundle(assets: Path) -> dict:
    spec = json.loads((assets / "edgecnn.json").read_text())
    assert _sha(assets / spec["model_file"]) == spec["sha256"]
    assert (assets / spec["labels_file"]).is_file()
    assert all((assets / i["file"]).is_file() for i in spec["images"])
    assert sorted(p.name for p in (assets / "images").glob("*.png")) == sorted(
        Path(i["file"]).name for i in spec["images"])
    return spec


@pytest.mark.parametrize("point, state", [("bundle-staged", "old"), ("commit-before-swap", "old"),
                                          ("commit-after-swap", "new")])
def test_a_bundle_killed_at_any_instant_leaves_the_old_or_the_new_bundle_whole(world, tmp_path, point, state):
    export = run_of(world) / "export"
    app = _app(tmp_path)
    assert invoke("bundle", "android", export, "--app", app, "--artifact", "fp32", "--images", 2).exit_code == 0
    assets = app / "app" / "src" / "main" / "assets"
    (assets / "fonts").mkdir()
    (assets / "fonts" / "mine.ttf").write_bytes(b"font")  # an asset of the app's own
    before = digest_tree(assets)
    Paused(["bundle", "android", export, "--app", app, "--artifact", "int8", "--images", 3], point, tmp_path) \
        .wait().kill()
    if state == "old":
        assert digest_tree(assets) == before
    else:
        spec = _whole_bundle(assets)
        assert spec["artifact"] == int8_name() and len(spec["images"]) == 3
        assert (assets / "fonts" / "mine.ttf").read_bytes() == b"font"
    main = assets.parent
    res = invoke("bundle", "android", export, "--app", app, "--artifact", "fp32", "--images", 1)
    assert res.exit_code == 0, res.output
    assert _leftovers(main, "assets") == [] and not [p for p in assets.iterdir() if p.name.startswith(".")]
    assert _whole_bundle(assets)["artifact"] == FP32 and (assets / "fonts" / "mine.ttf").read_bytes() == b"font"


def test_hidden_folders_older_bundles_left_are_removed(world, tmp_path):
    export = run_of(world) / "export"
    app = _app(tmp_path)
    assets = app / "app" / "src" / "main" / "assets"
    (assets / ".bundle-old-x1y2").mkdir(parents=True)  # what a killed bundle of an older version left
    (assets / ".bundle-old-x1y2" / "model.tflite").write_bytes(b"old")
    assert invoke("bundle", "android", export, "--app", app, "--images", 1).exit_code == 0
    assert not (assets / ".bundle-old-x1y2").exists()
    _whole_bundle(assets)


# ---------------------------------------------------------------------------- import
@pytest.mark.parametrize("point, state", [("import-staged", "none"), ("commit-after-swap", "new")])
def test_an_import_killed_at_any_instant_leaves_no_run_or_the_whole_run(world, tmp_path, point, state):
    runs = tmp_path / "imports"
    args = ["import", run_of(world) / "model.keras", "--data", world / "data" / "cifar-10-batches-py", "--preprocess",
            "unit", "--name", "mine", "--run-name", "r1", "--runs-dir", runs, "--max-test-images", 20]
    Paused(args, point, tmp_path).wait().kill()
    run = runs / "mine" / "r1"
    if state == "none":
        assert not run.exists()
        res = invoke(*args)  # the same import again: it takes the lock and removes the killed one's staging
        assert res.exit_code == 0, res.output
    info = json.loads((run / "run.json").read_text())
    assert info["model_sha256"] == _sha(run / "model.keras") and info["model"] == "mine"
    # No staging folder; a SIGKILLed holder's empty lock file may stay (reused by the next one).
    assert [n for n in _leftovers(runs / "mine", "r1") if n != ".r1.lock"] == []


# ---------------------------------------------------------------------------- the primitives
def test_the_exchange_swaps_two_folders_in_one_step(tmp_path):
    from edgecnn.core import commit

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "new").write_text("1")
    (b / "old").write_text("2")
    if not commit.exchange(a, b):
        pytest.skip(f"this filesystem cannot exchange two folders: the fallback (tested above) is used")
    assert [p.name for p in b.iterdir()] == ["new"] and [p.name for p in a.iterdir()] == ["old"]


def test_long_target_names_keep_their_lock_and_staging_names_short(tmp_path):
    from edgecnn.core import commit

    target = tmp_path / ("x" * 250)
    with commit.locked(target):
        with commit.staged(target) as stage:
            (stage / "f").write_text("1")
            commit.swap_in(stage, target)
    assert (target / "f").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]

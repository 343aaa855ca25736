"""One boundary for the operating system, tried for real: a disk that fills up (a small tmpfs in a
private mount namespace: real ENOSPC, and TensorFlow's ResourceExhaustedError from SaveV2), a
file-size limit (RLIMIT_FSIZE: real EFBIG), read-only folders (chattr +i as root, whom permissions
do not stop; chmod otherwise), names too long, and a bug. Each ends in one ``Error:`` line naming
the path and what to free or change (exit 17; a bug: exit 1 with the ``-v`` command), and every
file that was there before is unchanged (sha256); a training run keeps its last checkpoint and
resumes, or is removed when it never had one."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _hostile_world import REPO, digest_tree, int8_name, invoke, run_of
from _refusals import assert_refused

from edgecnn.errors import SystemResourceError

OS_ERR = SystemResourceError.exit_code
CLI = [sys.executable, "-m", "edgecnn.cli"]
DRIVER = Path(__file__).with_name("_small_disk.py")
TRAIN = ["train", "alexnet_tiny_dw", "--input-shape", "32,32,3", "--epochs", "2", "--batch-size", "32",
         "--max-train-images", "64", "--max-test-images", "20", "--runs-dir", "{disk}", "--name", "full", "--quiet"]


def assert_one_line(rc: int, out: str, code: int, *words):
    """The same checks as ``_refusals.assert_refused``, for a process's exit code and output."""
    errors = [line for line in out.splitlines() if line.startswith("Error:")]
    assert rc == code and len(errors) == 1 and "Traceback" not in out, f"exit {rc}:\n{out}"
    for w in words:
        assert w.lower() in errors[0].lower(), errors[0]
    return errors[0]


# ---------------------------------------------------------------------------- a disk that fills up
@functools.lru_cache(maxsize=1)
def _namespaces() -> str:
    """'' when a private mount namespace with a tmpfs can be made here, else why not."""
    if not shutil.which("unshare") or not shutil.which("mount"):
        return "no unshare/mount (util-linux) here"
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                        "mount -t tmpfs -o size=64k tmpfs /mnt 2>&1 || mount -t tmpfs -o size=64k tmpfs /tmp"],
                       capture_output=True, text=True)
    return "" if r.returncode == 0 else f"user and mount namespaces are not available here ({r.stderr.strip()[:120]})"


def on_small_disk(job: dict, tmp_path: Path) -> dict:
    why = _namespaces()
    if why:
        pytest.skip(f"a full disk needs a small tmpfs of our own: {why}")
    job = dict(job, disk=str(tmp_path / "disk"))
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", sys.executable, str(DRIVER),
                        json.dumps(job, default=str)], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _no_staging(entries) -> bool:
    return not [e for e in entries if ".stage-" in e or ".old-" in e]


@pytest.mark.parametrize("where", ["run", "out"])
def test_export_on_a_full_disk(good, tmp_path, where):
    """The run (and its export) on the full disk; or the run elsewhere and ``--out`` an export on it."""
    common = ["--no-onnx", "--fp16", "--calibration", "8", "--max-drop", "100"]
    job = ({"copy": str(good), "args": ["export", "{disk}/w/runs/alexnet_tiny_dw/good", *common]} if where == "run" else
           {"copy": str(run_of(good) / "export"), "args": ["export", run_of(good), "--out", "{disk}/w", *common]})
    res = on_small_disk(dict(job, kind="command", size="4m", leave=48 << 10), tmp_path)
    assert_one_line(res["rc"], res["out"], OS_ERR, "no space left", "free space", str(tmp_path / "disk"),
                    "nothing in")
    assert res["after"] == res["before"] and _no_staging(res["entries"])


def test_bundle_on_a_full_disk(good, tmp_path):
    app = tmp_path / "app"
    shutil.copytree(REPO / "android_app", app, ignore=shutil.ignore_patterns("build", ".gradle", "assets"))
    export = run_of(good) / "export"
    assert invoke("bundle", "android", export, "--app", app, "--artifact", "fp32", "--images", 1).exit_code == 0
    res = on_small_disk({"kind": "command", "size": "2m", "copy": str(app), "leave": 16 << 10,
                         "args": ["bundle", "android", export, "--app", "{disk}/w", "--artifact", "int8"]}, tmp_path)
    assert_one_line(res["rc"], res["out"], OS_ERR, "no space left")
    assert res["after"] == res["before"] and _no_staging(res["entries"])


def test_import_on_a_full_disk(good, tmp_path):
    res = on_small_disk({"kind": "command", "size": "1m", "leave": 32 << 10,
                         "args": ["import", run_of(good) / "model.keras", "--data", good / "data" / "cifar-10-batches-py",
                                  "--preprocess", "unit", "--name", "mine", "--runs-dir", "{disk}/runs",
                                  "--max-test-images", "20"]}, tmp_path)
    assert_one_line(res["rc"], res["out"], OS_ERR, "no space left")
    assert res["after"] == res["before"] == {} and res["entries"] == []  # no run, not even its folders


def test_training_on_a_full_disk_keeps_its_last_checkpoint_and_resumes(tmp_path):
    """The disk fills up during epoch 2: TensorFlow's SaveV2 fails (ResourceExhaustedError); the
    run keeps epoch 1's checkpoint, says how to continue, and does once space is freed."""
    res = on_small_disk({"kind": "train", "size": "24m", "leave": 64 << 10, "args": TRAIN}, tmp_path)
    line = assert_one_line(res["rc"], res["out"], OS_ERR, "no space left", "keeps its last checkpoint (1 epoch",
                           "--resume")
    assert "ckpt" in line  # names the file TensorFlow could not write
    assert res["state"]["epochs_completed"] == 1 and not res["state"]["trained"]
    assert "checkpoints/backup/chief/checkpoint" in res["checkpoints"] and not [c for c in res["checkpoints"] if "_temp" in c]
    assert res["resume_rc"] == 0, res["resume_out"]
    assert res["final"]["trained"] and res["final"]["epochs_completed"] == 2


def test_a_new_training_run_that_never_had_a_checkpoint_is_removed(tmp_path):
    res = on_small_disk({"kind": "command", "size": "256k", "leave": 48 << 10, "args": TRAIN}, tmp_path)
    assert_one_line(res["rc"], res["out"], OS_ERR, "no space left", "was removed")
    assert not [e for e in res["entries"] if e.startswith("alexnet_tiny_dw/full")]


# ---------------------------------------------------------------------------- a file-size limit
def _fsize_limit(limit: int):
    def pre():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # writes beyond: EFBIG (Python ignores SIGXFSZ)
    return pre


@pytest.mark.parametrize("command", ["export", "bundle"])
def test_a_file_size_limit_ends_in_one_line_and_changes_nothing(world, tmp_path, command):
    run = run_of(world)
    app = tmp_path / "app"
    shutil.copytree(REPO / "android_app", app, ignore=shutil.ignore_patterns("build", ".gradle", "assets"))
    args = {"export": ["export", run, "--no-onnx", "--fp16", "--calibration", "8", "--max-drop", "100"],
            "bundle": ["bundle", "android", run / "export", "--app", app, "--artifact", "fp32"]}[command]
    before = digest_tree(tmp_path)
    r = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, preexec_fn=_fsize_limit(16 << 10))
    assert_one_line(r.returncode, r.stdout + r.stderr, OS_ERR, "EFBIG", "ulimit -f")
    assert digest_tree(tmp_path) == before
    assert not [p for p in (run, app / "app" / "src" / "main") for q in p.iterdir() if q.name.startswith(".")]


# ---------------------------------------------------------------------------- read-only folders
@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` made unwritable: chmod 0o555, or for root (whom permissions do not stop) the
    immutable attribute (chattr +i); skipped, saying why, where neither holds."""
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(mode)
        return
    if not shutil.which("chattr"):
        pytest.skip("running as root, whom folder permissions do not stop, and no chattr to set +i here")
    r = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"running as root and chattr +i is refused here ({r.stderr.strip()[:120]})")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_export_into_a_read_only_run_folder(world):
    run = run_of(world)
    before = digest_tree(world)
    with read_only(run):
        res = invoke("export", run, "--no-onnx", "--calibration", 8, "--max-drop", 100)
    assert_refused(res, OS_ERR, str(run), "writable")
    assert digest_tree(world) == before


def test_export_whose_old_export_folder_cannot_be_replaced(world):
    """Everything is converted and verified, then the swap is refused: the old export stays whole."""
    if os.geteuid() != 0:
        pytest.skip("a folder that cannot be renamed needs chattr +i (root); permissions allow a rename")
    run = run_of(world)
    before = digest_tree(world)
    with read_only(run / "export"):
        res = invoke("export", run, "--no-onnx", "--calibration", 8, "--max-drop", 100)
    assert_refused(res, OS_ERR, "export", "not permitted")
    assert digest_tree(world) == before and not [p for p in run.iterdir() if p.name.startswith(".")]


def test_bundle_into_a_read_only_app(world, tmp_path):
    app = tmp_path / "app"
    shutil.copytree(REPO / "android_app", app, ignore=shutil.ignore_patterns("build", ".gradle", "assets"))
    export = run_of(world) / "export"
    assert invoke("bundle", "android", export, "--app", app, "--artifact", "fp32", "--images", 2).exit_code == 0
    before = digest_tree(app)
    with read_only(app / "app" / "src" / "main"):
        res = invoke("bundle", "android", export, "--app", app, "--artifact", "int8", "--images", 3)
    assert_refused(res, OS_ERR, "src/main")
    assert digest_tree(app) == before


def test_import_into_a_read_only_runs_folder(good, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    with read_only(runs):
        res = invoke("import", run_of(good) / "model.keras", "--data", good / "data" / "cifar-10-batches-py",
                     "--preprocess", "unit", "--name", "mine", "--runs-dir", runs, "--max-test-images", 20)
    assert_refused(res, OS_ERR, str(runs))
    assert list(runs.iterdir()) == []


def test_train_into_a_read_only_runs_folder(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    with read_only(runs):
        res = invoke("train", "alexnet_tiny_dw", "--input-shape", "32,32,3", "--epochs", 1, "--max-train-images", 32,
                     "--max-test-images", 10, "--runs-dir", runs, "--name", "r", "--quiet")
    assert_refused(res, OS_ERR, str(runs))
    assert list(runs.iterdir()) == []


# ---------------------------------------------------------------------------- names too long
def test_a_long_artifact_name_gets_an_op_profile_whose_name_fits(world, tmp_path):
    """op_profile_<artifact>_<runtime>.json of a 240-character artifact would pass the 255-byte
    limit (ENAMETOOLONG); the derived name is shortened, with a hash of the whole."""
    art = tmp_path / ("m" * 240 + ".tflite")
    shutil.copy(run_of(world) / "export" / int8_name(), art)
    res = invoke("benchmark", art, "--runs", 2, "--warmup", 1, "--in-process", "--op-profile", "--out", tmp_path / "b")
    assert res.exit_code == 0, res.output
    profiles = list((tmp_path / "b").glob("op_profile_*.json"))
    assert len(profiles) == 1 and len(profiles[0].name.encode()) <= 200 and "~" in profiles[0].name


@pytest.mark.parametrize("command", ["benchmark", "import"])
def test_a_name_too_long_for_the_filesystem(world, tmp_path, command):
    long = tmp_path / ("n" * 300)
    before = digest_tree(world)
    args = {"benchmark": ["benchmark", run_of(world) / "export", "--runs", 2, "--in-process", "--out", long],
            "import": ["import", run_of(world) / "model.keras", "--data", world / "data" / "cifar-10-batches-py",
                       "--preprocess", "unit", "--name", "mine", "--runs-dir", long, "--max-test-images", 20]}[command]
    assert_refused(invoke(*args), OS_ERR, "too long", "shorter name")
    assert digest_tree(world) == before and sorted(p.name for p in tmp_path.iterdir()) == ["w"]


# ---------------------------------------------------------------------------- a bug
def test_a_bug_is_one_line_with_the_command_that_shows_its_traceback(world, tmp_path, monkeypatch):
    import edgecnn.device.classify as classify

    def broken(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(classify, "classify", broken)
    png = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(png)
    export = run_of(world) / "export"
    res = invoke("classify", export, png)
    line = assert_one_line(res.exit_code, res.output, 1, "unexpected ZeroDivisionError", "division by zero")
    assert f"edgecnn -v classify {export} {png}" in line
    verbose = invoke("-v", "classify", export, png)
    assert verbose.exit_code == 1 and "Traceback" in verbose.output and "in broken" in verbose.output
    assert [s for s in verbose.output.splitlines() if s.startswith("Error:")][0].startswith("Error: unexpected")

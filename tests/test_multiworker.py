"""Multi-worker training: two real `edgecnn train --strategy multiworker` processes on 127.0.0.1,
each with its own TF_CONFIG (as a TFJob or Ray Train sets it), training together over gRPC.

Each worker's TMPDIR is a folder of the test, so a temporary folder a worker leaves behind is seen.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _ports import free_ports

TRAIN = ["train", "alexnet_tiny_dw", "--input-shape", "32,32,3", "--batch-size", "32", "--max-test-images", "40",
         "--strategy", "multiworker", "--name", "mw"]
ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 240  # TensorFlow's import and first trace in two processes, on a loaded 2-core machine


def _env(task: int, hosts, **extra) -> dict:
    """This checkout's edgecnn, and the TF_CONFIG of worker ``task`` in a cluster of ``hosts``."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                TF_CONFIG=json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": task}}),
                **extra)


def _start_job(tmp: Path, runs: Path, args, tag: str):
    """Both workers of a two-worker cluster, ports picked afresh (a restarted job gets new ones)."""
    hosts = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for i in range(2):
        env = _env(i, hosts, TMPDIR=str(tmp / "tmp"))
        log = open(tmp / f"{tag}-worker{i}.log", "wb")
        procs.append((subprocess.Popen([sys.executable, "-m", "edgecnn.cli", *TRAIN, *args, "--runs-dir", str(runs)],
                                       env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), log))
    return procs


def _wait(procs, timeout):
    end = time.monotonic() + timeout
    try:
        for p, _ in procs:
            p.wait(timeout=max(1, end - time.monotonic()))
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    return [p.returncode for p, _ in procs]


def _output(tmp, tag, i) -> str:
    return (tmp / f"{tag}-worker{i}.log").read_text(errors="replace")


def _weights_sha(text: str) -> str:
    line = [ln for ln in text.splitlines() if "weights sha256 " in ln]
    assert line, text[-2000:]
    return line[-1].split("weights sha256 ", 1)[1].split(";")[0].strip()


def _leftovers(tmp: Path):
    return sorted(p.name for p in (tmp / "tmp").iterdir() if p.name.startswith("edgecnn-"))


_SHARD_PROBE = """
import json, sys
import numpy as np
import tensorflow as tf
from edgecnn.data.tfdata import make_dataset
from edgecnn.data.preprocess import PreprocessSpec
from edgecnn.train.fit import make_strategy, shard_per_worker

strategy = make_strategy("multiworker")
x, y = np.zeros((64, 8, 8, 3), np.uint8), np.arange(64)
ds = make_dataset(x, y, PreprocessSpec(input_size=(8, 8)), batch_size=16, training=True, seed=0)
seen = []
for batch in strategy.experimental_distribute_dataset(shard_per_worker(ds)):
    seen += strategy.experimental_local_results(batch)[0][1].numpy().tolist()
print("SEEN " + json.dumps(seen))
"""


def test_each_worker_trains_on_its_own_share_of_every_batch():
    """The training pipeline as _fit shards it, distributed over two real workers: disjoint
    halves of each epoch that together cover every image once."""
    hosts = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for i in range(2):
        procs.append(subprocess.Popen([sys.executable, "-c", _SHARD_PROBE], env=_env(i, hosts), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=DEADLINE_S)[0] for p in procs]
    seen = []
    for out in outs:
        line = [ln for ln in out.splitlines() if ln.startswith("SEEN ")]
        assert line, out[-2000:]
        seen.append(json.loads(line[0][5:]))
    assert len(seen[0]) == len(seen[1]) == 32
    assert not set(seen[0]) & set(seen[1]) and sorted(seen[0] + seen[1]) == list(range(64))


@pytest.fixture
def job_dirs(tmp_path):
    (tmp_path / "tmp").mkdir()
    return tmp_path, tmp_path / "runs"


def test_two_workers_train_one_epoch_and_only_the_chief_writes_the_run(job_dirs):
    tmp, runs = job_dirs
    t0 = time.monotonic()
    rcs = _wait(_start_job(tmp, runs, ["--epochs", "1", "--max-train-images", "160"], "fit"), DEADLINE_S)
    wall = time.monotonic() - t0
    assert rcs == [0, 0], _output(tmp, "fit", 0)[-2000:] + _output(tmp, "fit", 1)[-2000:]
    run_dir = runs / "alexnet_tiny_dw" / "mw"
    for f in ("run.json", "model.keras", "history.csv", "training_curves.png", "checkpoints/state.json"):
        assert (run_dir / f).is_file(), f
    info = json.loads((run_dir / "run.json").read_text())
    assert info["trained"] and info["epochs_completed"] == 1 and info["num_replicas"] == 2
    assert info["cluster"]["workers"] == 2 and info["cluster"]["task"] == {"type": "worker", "index": 0}
    # Both workers end with the same weights, and they are the chief's saved ones.
    chief, worker = _weights_sha(_output(tmp, "fit", 0)), _weights_sha(_output(tmp, "fit", 1))
    assert chief == worker == info["cluster"]["weights_sha256"]
    assert "the chief writes" in _output(tmp, "fit", 1) and str(run_dir) not in _output(tmp, "fit", 1).splitlines()
    # No stray folders: one run, only the chief's backup, no worker temporary folder left.
    assert [p.name for p in runs.iterdir()] == ["alexnet_tiny_dw"] and \
        [p.name for p in (runs / "alexnet_tiny_dw").iterdir()] == ["mw"]
    assert [p.name for p in (run_dir / "checkpoints" / "backup").iterdir()] == ["chief"]
    assert _leftovers(tmp) == []
    print(f"two-worker job: {wall:.1f} s wall")


def test_killed_worker_then_restarted_job_resumes_from_the_last_checkpoint(job_dirs):
    """Worker 1 is SIGKILLed mid-epoch as soon as epoch 1 is on disk; the chief stops with one
    error line; the whole job is started again with the same command and continues from the
    chief's checkpoint, no epoch lost or repeated."""
    tmp, runs = job_dirs
    epochs, steps = 3, 10  # 320 images / global batch 32
    args = ["--epochs", str(epochs), "--max-train-images", "320"]
    run_dir = runs / "alexnet_tiny_dw" / "mw"

    def epochs_on_disk() -> int:
        try:
            return json.loads((run_dir / "run.json").read_text())["epochs_completed"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return 0

    procs = _start_job(tmp, runs, args, "first")
    deadline = time.monotonic() + DEADLINE_S
    try:
        while epochs_on_disk() < 1:
            if any(p.poll() is not None for p, _ in procs):
                pytest.fail("a worker exited before the kill:\n" + _output(tmp, "first", 0)[-2000:])
            if time.monotonic() > deadline:
                pytest.fail(f"no epoch of {run_dir} completed within {DEADLINE_S} s")
            time.sleep(0.02)
        os.kill(procs[1][0].pid, signal.SIGKILL)
        procs[0][0].wait(timeout=120)  # the chief notices the lost peer by itself
    finally:
        rcs = _wait(procs, 10)
    assert rcs[1] == -signal.SIGKILL and rcs[0] not in (0, None)
    chief_out = _output(tmp, "first", 0)
    assert "Error: The 2-worker job stopped" in chief_out and "Traceback" not in chief_out, chief_out[-2000:]
    killed_after = epochs_on_disk()
    assert 1 <= killed_after < epochs and not (run_dir / "model.keras").exists()

    rcs = _wait(_start_job(tmp, runs, args, "again"), DEADLINE_S)
    assert rcs == [0, 0], _output(tmp, "again", 0)[-2000:] + _output(tmp, "again", 1)[-2000:]
    info = json.loads((run_dir / "run.json").read_text())
    start = info["resumes"][0]["from_epoch"]
    assert start in (killed_after, killed_after + 1)
    assert f"Resumed at epoch {start + 1}" in _output(tmp, "again", 0)
    assert info["trained"] and info["epochs_completed"] == epochs
    hist = (run_dir / "history.csv").read_text().strip().splitlines()
    assert [line.split(",")[0] for line in hist[1:]] == [str(e) for e in range(epochs)]
    state = json.loads((run_dir / "checkpoints" / "state.json").read_text())
    assert state["optimizer_iterations"] == epochs * steps
    assert _weights_sha(_output(tmp, "again", 1)) == info["cluster"]["weights_sha256"]
    assert [p.name for p in (run_dir / "checkpoints" / "backup").iterdir()] == ["chief"]
    assert _leftovers(tmp) == []  # the killed worker's folder was removed by its restart

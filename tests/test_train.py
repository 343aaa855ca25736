"""Training and evaluation: metrics on a hand-computed case, a complete run directory from the
library and the CLI, and a real SIGKILL mid-run followed by a resume."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgecnn  # noqa: F401
from edgecnn.cli import cli
from edgecnn.errors import InvalidConfigError, RunError
from edgecnn.train.evaluate import confusion_matrix, macro_f1, per_class_accuracy, top_k_accuracy
from edgecnn.train.recipes import get_recipe
from edgecnn.contract import find_latest_run, load_run
from edgecnn.train.fit import stratified_kfold, train

TINY = dict(input_shape=(32, 32, 3), max_train_images=160, max_test_images=60, batch_size=32, verbose=0,
            echo=lambda *a: None)


def test_metrics_hand_computed():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 0, 2])
    cm = confusion_matrix(y, p, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    np.testing.assert_allclose(per_class_accuracy(cm), [0.5, 1.0, 0.5])
    # F1: class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp1 fp0 fn1 -> 2/3
    assert macro_f1(y, p, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    scores = np.array([[.5, .3, .2], [.2, .5, .3], [.1, .6, .3], [.3, .4, .3], [.6, .1, .3], [.2, .3, .5]])
    assert top_k_accuracy(y, scores, 1) == pytest.approx(4 / 6)
    # top-2 misses only row 1 ({1, 2} without 0); row 3's tie .3/.3 goes to the lower index 0
    assert top_k_accuracy(y, scores, 2) == pytest.approx(5 / 6)
    assert top_k_accuracy([2], [[.3, .4, .3]], 2) == 0.0
    assert macro_f1(y, scores) == pytest.approx(macro_f1(y, p))
    assert macro_f1([0, 0], [0, 0], 5) == 1.0  # classes absent from labels and predictions do not count


def test_recipes_and_overrides():
    r = get_recipe("sepresnet", batch_size=64)
    assert (r.batch_size, r.weight_decay, r.total_steps, r.lr_factors) == (64, 1e-3, 80000, (1.0, 0.1, 0.01))
    assert get_recipe("sepresnet", epochs=3).total_steps is None
    assert get_recipe("structure_e").epochs == 300
    with pytest.raises(InvalidConfigError, match="quick"):
        get_recipe("quik")
    with pytest.raises(InvalidConfigError, match="optimizer"):
        get_recipe("quick", optimizer="adagrad")
    folds = stratified_kfold(np.repeat(np.arange(4), 9), 3, seed=0)
    assert all(np.bincount(folds[np.repeat(np.arange(4), 9) == c]).tolist() == [3, 3, 3] for c in range(4))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    run = train("alexnet_tiny_dw", runs_dir=runs, run_name="lib", epochs=1, **TINY)
    return runs, run


def test_library_run_directory_is_complete(trained):
    runs, run = trained
    d = run.path
    assert d == runs / "alexnet_tiny_dw" / "lib"
    for f in ("run.json", "model.keras", "history.csv", "training_curves.png", "checkpoints/state.json"):
        assert (d / f).is_file(), f
    assert any((d / "logs").rglob("events.out.tfevents.*"))
    info = json.loads((d / "run.json").read_text())
    for key in ("schema", "model", "model_kwargs", "run_name", "created", "dataset", "input_shape", "num_classes",
                "labels", "preprocessing", "recipe", "seed", "versions", "trained", "epochs_completed", "metrics",
                "history_csv"):
        assert key in info, key
    assert info["trained"] and info["epochs_completed"] == 1 and info["dataset"]["num_test"] == 60
    assert set(info["metrics"]) == {"top1", "top5", "macro_f1"}
    assert set(info["versions"]) >= {"python", "tensorflow", "tf_keras", "numpy", "edgecnn"}
    assert find_latest_run("alexnet_tiny_dw", runs) == d
    loaded = load_run(d)
    model = loaded.load_model()
    from edgecnn.data import load_dataset
    from edgecnn.data.preprocess import preprocess

    ds = load_dataset("sample", loaded.input_shape, max_test=60)
    probs = model.predict(preprocess(ds.x_test, loaded.spec), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)  # softmax outputs
    assert np.mean(probs.argmax(1) == ds.y_test) == pytest.approx(info["metrics"]["top1"])
    with pytest.raises(RunError, match="already trained"):
        train("alexnet_tiny_dw", runs_dir=runs, run_name="lib", epochs=1, **TINY)


def test_eval_cli_matches_run_metrics(trained):
    runs, run = trained
    res = CliRunner().invoke(cli, ["eval", str(run.path), "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.output[res.output.index("{"):])
    assert m["top1"] == pytest.approx(run.info["metrics"]["top1"])
    assert np.sum(m["confusion_matrix"]) == 60 and (run.path / "confusion_matrix.png").stat().st_size > 1000
    res = CliRunner().invoke(cli, ["eval", "no_such_run_dir/x"])
    assert res.exit_code == RunError.exit_code


def test_cli_train_sigkill_mid_run_then_resume(tmp_path):
    """A real `edgecnn train` process, SIGKILLed as soon as its first epoch is on disk, resumes from
    the last completed epoch: no epoch lost or repeated, the optimizer's step count restored."""
    epochs, batches = 4, 10  # 320 images / batch 32
    cmd = [sys.executable, "-m", "edgecnn.cli", "train", "alexnet_tiny_dw", "--input-shape", "32,32,3",
           "--epochs", str(epochs), "--batch-size", "32", "--max-train-images", "320", "--max-test-images", "40",
           "--runs-dir", str(tmp_path), "--name", "crash", "--quiet"]
    run_dir = tmp_path / "alexnet_tiny_dw" / "crash"

    def epochs_on_disk() -> int:  # run.json is written atomically, last thing of each epoch
        try:
            return json.loads((run_dir / "run.json").read_text())["epochs_completed"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return 0

    deadline = time.monotonic() + 300  # TensorFlow's import and first trace, on a loaded machine
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        while epochs_on_disk() < 1:
            if proc.poll() is not None:
                pytest.fail(f"training exited ({proc.returncode}) before it was killed:\n"
                            f"{proc.stdout.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no epoch of {run_dir} completed within 300 s")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    info = json.loads((run_dir / "run.json").read_text())
    killed_after = info["epochs_completed"]
    assert not info["trained"] and 1 <= killed_after < epochs, info
    assert not (run_dir / "model.keras").exists()

    logs = []
    run = train(resume=run_dir, verbose=0, echo=logs.append)
    # 0-based epoch to start from: every completed epoch restored (the checkpoint of an epoch is
    # written just before its run.json, so a kill between the two restores one more).
    start = run.info["resumes"][0]["from_epoch"]
    assert start in (killed_after, killed_after + 1)
    assert any(f"Resumed at epoch {start + 1}" in line for line in logs), logs
    assert run.info["trained"] and run.info["epochs_completed"] == epochs
    hist = (run_dir / "history.csv").read_text().strip().splitlines()
    assert [line.split(",")[0] for line in hist[1:]] == [str(e) for e in range(epochs)]
    state = json.loads((run_dir / "checkpoints" / "state.json").read_text())
    assert state["optimizer_iterations"] == epochs * batches


def test_mixed_precision_refused_without_gpu():
    import tensorflow as tf

    from edgecnn.train.fit import _check_mixed_precision

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    with pytest.raises(InvalidConfigError, match="needs a GPU"):
        _check_mixed_precision(True)

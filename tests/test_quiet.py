"""What a user sees: every line a command prints is edgecnn's own; ``edgecnn -v`` shows the rest.

Each command runs as a real subprocess (the noise comes from C++ writing to the process's file
descriptors, which an in-process runner never sees), in the environment of a user who set
nothing: no TF_CPP_MIN_LOG_LEVEL.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# What TensorFlow, absl, CUDA, the TFLite converter, LiteRT and Python's warnings print.
NOISE = re.compile("|".join([
    r"^WARNING: All log messages before absl",    # absl, before it is initialised
    r"^[IWEF]\d{4} ",                             # absl/glog lines: I0000 ..., E0000 ... cuInit
    r"cuInit|cuda|oneDNN|cpu_feature_guard",      # TF start-up
    r"^INFO: Created TensorFlow Lite",            # LiteRT's delegate, on every interpreter
    r"fully_quantize|inference_type",             # the TFLite converter's settings
    r"^WARNING:(tensorflow|absl|root)",           # Python logging of the dependencies
    r"\w+Warning: ",                              # Python warnings (UserWarning, DeprecationWarning, ...)
    r"^\s+warnings\.warn\(",                      # ... and the source line printed under them
    r"site-packages/",                            # anything else that names a dependency's file
]), re.M)


def noise_lines(text: str) -> list:
    """The lines of ``text`` that a dependency printed (empty when all are edgecnn's own)."""
    return [line for line in text.splitlines() if NOISE.search(line)]


def user_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def edgecnn(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "edgecnn.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=user_env(), timeout=timeout)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    from _tiny_export import build_tiny_export, write_test_images

    root = tmp_path_factory.mktemp("quiet")
    return build_tiny_export(root / "export"), write_test_images(root / "images", 2)


def test_noise_pattern_catches_what_the_dependencies_print():
    seen = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795890464.644878   29633 port.cc:153] oneDNN custom operations are on.
E0000 00:00:1795890467.033999   29633 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
/x/site-packages/tensorflow/lite/python/convert.py:846: UserWarning: Statistics for quantized inputs
  warnings.warn(
fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32
WARNING:tensorflow:5 out of the last 5 calls to <function> triggered tf.function retracing."""
    assert len(noise_lines(seen)) == len(seen.splitlines())
    ours = """WARNING: No trained run of 'quicknet' found: exporting FRESH (untrained) weights
wrote quicknet_int8.tflite (3659.9 KiB)
  ok   quicknet_fp32.tflite: top-1 10.00%, agreement 100.0% [litert 2.3.0 (XNNPACK)]
Error: /tmp/x/export: 1 artifact(s) failed verification"""
    assert noise_lines(ours) == []


def test_models_prints_the_table_and_nothing_else_in_under_3_s():
    t = time.perf_counter()
    p = edgecnn("models")
    wall = time.perf_counter() - t
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert p.stdout.splitlines()[0].split()[:3] == ["model", "input", "params"]
    assert wall <= 3.0 * 2, f"edgecnn models took {wall:.1f} s"  # target 3 s; 2x for a loaded CI machine


@pytest.mark.parametrize("command", [
    ["inspect", "{int8}"],
    ["classify", "{export}", "{image}"],
    ["classify", "{export}", "{image}", "--json"],
    ["benchmark", "{int8}", "--runs", "3", "--warmup", "1", "--out", "{tmp}/bench", "--in-process"],
], ids=lambda c: c[0] + ("-json" if "--json" in c else ""))
def test_device_commands_print_only_edgecnns_lines(export, tmp_path, command):
    d, images = export
    fill = {"export": d, "int8": d / "tiny_int8.tflite", "image": images[0], "tmp": tmp_path}
    p = edgecnn(*[a.format(**fill) for a in command], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert noise_lines(p.stdout + p.stderr) == [], p.stdout + p.stderr


def test_verbose_shows_what_the_runtime_prints(export, tmp_path):
    """The same command with -v: LiteRT's own line is there, so the quiet run above hid it."""
    d, images = export
    p = edgecnn("-v", "classify", d, images[0], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "INFO: Created TensorFlow Lite XNNPACK delegate" in p.stdout + p.stderr


def test_errors_stay_one_line(tmp_path):
    p = edgecnn("classify", tmp_path / "missing", tmp_path / "x.png", cwd=tmp_path)
    assert p.returncode != 0 and p.stderr.startswith("Error: ") and len(p.stderr.strip().splitlines()) == 1


def test_help_is_fast():
    best = min(_timed(edgecnn, "--help") for _ in range(3))
    assert best <= 0.2 * 3, f"edgecnn --help took {best:.2f} s"  # target 0.2 s; 3x for a loaded CI machine


def _timed(fn, *args) -> float:
    t = time.perf_counter()
    assert fn(*args).returncode == 0
    return time.perf_counter() - t


def test_progress_bar_draws_on_the_users_stderr_while_native_output_is_silenced():
    """int8 calibration runs inside the converter call, where descriptors 1 and 2 are on /dev/null."""
    code = """if True:
        import os
        from edgecnn.core import progress
        from edgecnn.core import quiet
        progress.on_terminal = lambda: True  # as if stdout and stderr were a terminal
        with quiet.native_silenced():
            os.write(2, b"native noise\\\\n")
            with progress.bar(length=3, label="calibrating int8") as bar:
                bar.update(3)
        """
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=user_env(), timeout=60)
    assert p.returncode == 0, p.stderr
    assert "calibrating int8" in p.stderr and "native noise" not in p.stderr


def test_no_progress_bar_off_a_terminal_or_with_json(monkeypatch):
    import click

    from edgecnn.core import progress

    assert not progress.active()  # pytest captures stdout and stderr: not a terminal
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    assert progress.active()
    with click.Context(click.Command("x"), obj=None) as ctx:
        ctx.params["as_json"] = True
        assert not progress.active()
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    with progress.bar(range(3), label="x") as items:  # the silent stand-in iterates and updates alike
        assert list(items) == [0, 1, 2]
        items.update(1)

"""The Pi side: `edgecnn classify`, raspi/install.sh, and that none of it needs TensorFlow."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn.measure import runtime
from edgecnn.device.classify import Classifier, RollingFPS, camera_frames, classify_files, read_image
from edgecnn.data.preprocess import PreprocessSpec, fit_image, normalize
from edgecnn.errors import DataError, ModelFileError, RuntimeNotAvailableError

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "edgecnn.cli"]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    from _tiny_export import build_tiny_export, write_test_images

    root = tmp_path_factory.mktemp("pi")
    d = build_tiny_export(root / "export")
    return d, write_test_images(root / "images", 4)


def test_classify_uses_the_manifest_spec_labels_and_int8_artifact(export):
    d, images = export
    clf = Classifier(d)
    assert clf.path.name == "tiny_int8.tflite" and clf.labels[3] == "cat"
    preds = list(classify_files(clf, images, k=3))
    assert [p.image for p in preds] == [str(i) for i in images]
    # The same numbers as the runtime facade on the manifest's preprocessing, done by hand.
    man = json.loads((d / "manifest.json").read_text())
    spec = PreprocessSpec.from_dict(man["preprocessing"])
    x = normalize(np.stack([fit_image(np.asarray(Image.open(i).convert("RGB")), spec) for i in images]), spec)
    want = runtime.load(d / "tiny_int8.tflite").run(x, batch_size=1)
    for p, w in zip(preds, want):
        assert p.top[0]["index"] == int(np.argmax(w))
        assert p.top[0]["label"] == clf.labels[int(np.argmax(w))]
        assert p.top[0]["score"] == pytest.approx(float(w.max()))
        assert len(p.top) == 3 and p.top[0]["score"] >= p.top[1]["score"] >= p.top[2]["score"]


@pytest.fixture(scope="module")
def trained_export(tmp_path_factory):
    from _tiny_export import build_tiny_export

    return build_tiny_export(tmp_path_factory.mktemp("trained") / "export", precisions=("fp32",), train_epochs=20)


@pytest.mark.parametrize("orientation", ["landscape", "portrait"])
def test_a_non_square_photo_is_fitted_not_refused(trained_export, tmp_path, orientation):
    """Real CIFAR-10 test images that the trained fixture classifies correctly, each framed in
    noise to 57x32 (short side the model's 32) and enlarged 3x to 171x96: fitting the photo
    (short side to 32, centre crop) gives back exactly the real image, so each photo must be
    classified as its true CIFAR-10 label, with the score of the real image classified directly."""
    from edgecnn.data.sample import load_sample

    d = trained_export
    spec = PreprocessSpec.from_dict(json.loads((d / "manifest.json").read_text())["preprocessing"])
    _, (x_test, y_test), labels = load_sample()
    direct = runtime.load(d / "tiny_fp32.tflite").run(normalize(x_test[:60], spec), batch_size=1)
    right = [i for i in range(60) if int(np.argmax(direct[i])) == int(y_test[i])][:8]
    assert len({int(y_test[i]) for i in right}) >= 4, "the fixture should tell several classes apart"
    rng = np.random.default_rng(0)
    photos = []
    for i in right:
        frame = rng.integers(0, 256, (32, 57, 3), dtype=np.uint8)
        frame[:, 12:44] = x_test[i]  # the centre 32 columns of 57: (57 - 32) // 2 = 12 .. 43
        if orientation == "portrait":
            frame = np.ascontiguousarray(frame.transpose(1, 0, 2))
            frame[12:44, :] = x_test[i]
        photo = tmp_path / f"photo_{i}_{labels[int(y_test[i])]}.png"  # lossless: this is about geometry
        Image.fromarray(frame.repeat(3, axis=0).repeat(3, axis=1)).save(photo)
        photos.append(photo)
    got = list(classify_files(Classifier(d), photos, k=1))
    for i, p in zip(right, got):
        assert p.top[0]["label"] == labels[int(y_test[i])], p.image
        assert p.top[0]["score"] == pytest.approx(float(direct[i].max()), abs=1e-6), p.image


def test_classify_refuses_what_it_cannot_trust(export, tmp_path):
    d, images = export
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(d / "tiny_int8.tflite", lonely)
    with pytest.raises(ModelFileError, match="manifest"):
        Classifier(lonely / "tiny_int8.tflite")
    bad = tmp_path / "bad"
    shutil.copytree(d, bad)
    data = (bad / "tiny_int8.tflite").read_bytes()
    (bad / "tiny_int8.tflite").write_bytes(data[: len(data) // 2])  # a half-finished copy
    with pytest.raises(ModelFileError, match="sha256"):
        Classifier(bad)
    with pytest.raises(ModelFileError, match="not listed"):
        Classifier(d, artifact="nope_int8.tflite")
    (tmp_path / "x.png").write_bytes(b"not an image")
    with pytest.raises(DataError):
        read_image(tmp_path / "x.png")


def test_classify_cli_json_and_exit_codes(export, tmp_path):
    d, images = export
    r = subprocess.run(CLI + ["classify", str(d), "--json", "-k", "2"] + [str(i) for i in images],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [ln["image"] for ln in lines[:-1]] == [str(i) for i in images]
    assert all(len(ln["top"]) == 2 for ln in lines[:-1])
    assert lines[-1]["summary"]["images"] == 4 and lines[-1]["summary"]["artifact"] == "tiny_int8.tflite"
    r = subprocess.run(CLI + ["classify", str(d), str(tmp_path / "missing.png")], capture_output=True, text=True)
    assert r.returncode == DataError.exit_code and "Traceback" not in r.stderr
    r = subprocess.run(CLI + ["classify", str(tmp_path)] + [str(images[0])], capture_output=True, text=True)
    assert r.returncode == ModelFileError.exit_code and "manifest" in r.stderr


def test_camera_is_refused_clearly_where_no_camera_library_exists(export):
    import importlib.util

    if importlib.util.find_spec("picamera2") or importlib.util.find_spec("cv2"):
        pytest.skip("a camera library is installed here; the refusal path cannot be shown")
    with pytest.raises(RuntimeNotAvailableError, match="picamera2.*OpenCV"):
        camera_frames()
    r = subprocess.run(CLI + ["classify", str(export[0]), "--camera"], capture_output=True, text=True)
    assert r.returncode == RuntimeNotAvailableError.exit_code and "python3-picamera2" in r.stderr


def test_device_side_never_imports_tensorflow(export):
    d, images = export
    code = (
        "import sys\n"
        "from edgecnn.cli import cli\n"
        f"cli.main(['classify', {str(d)!r}, {str(images[0])!r}], standalone_mode=False)\n"
        "import edgecnn.device.classify, edgecnn.benchmark.remote, edgecnn.benchmark.harness\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras'))\n"
        "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-1500:]


def test_raspi_classify_script_is_the_same_command(export):
    d, images = export
    r = subprocess.run([sys.executable, str(REPO / "raspi" / "classify.py"), str(d), str(images[0])],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert str(images[0]) in r.stdout and "FPS" in r.stdout


def test_rolling_fps_is_over_the_last_frames():
    f = RollingFPS(window=3)
    assert f.tick(0.0) == 0.0
    assert f.tick(1.0) == pytest.approx(1.0)
    for t in (1.5, 2.0, 2.5):
        v = f.tick(t)
    assert v == pytest.approx(2.0)  # the slow first second has left the window


def _fake_uname(tmp_path, machine):
    b = tmp_path / "bin"
    b.mkdir(exist_ok=True)
    (b / "uname").write_text(f"#!/bin/sh\necho {machine}\n")
    (b / "uname").chmod(0o755)
    return dict(os.environ, PATH=f"{b}:{os.environ['PATH']}")


@pytest.mark.parametrize("machine", ["armv7l", "armv6l"])
def test_install_sh_refuses_32bit_os_and_names_the_fallback(tmp_path, machine):
    r = subprocess.run(["bash", str(REPO / "raspi" / "install.sh"), "--venv", str(tmp_path / "v")],
                       capture_output=True, text=True, env=_fake_uname(tmp_path, machine))
    assert r.returncode == 1
    assert "32-bit" in r.stderr and "tflite-runtime" in r.stderr
    assert "Python <= 3.11" in r.stderr and "numpy < 2" in r.stderr
    assert not (tmp_path / "v").exists()


def test_install_sh_refuses_bad_arguments_before_touching_anything(tmp_path):
    sh = str(REPO / "raspi" / "install.sh")
    r = subprocess.run(["bash", sh, "--venv", str(tmp_path / "v"), "--bogus"], capture_output=True, text=True)
    assert r.returncode == 1 and "unknown option" in r.stderr
    r = subprocess.run(["bash", sh, "--venv", str(tmp_path / "v"), str(tmp_path / "nope.whl")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "does not exist" in r.stderr
    assert not (tmp_path / "v").exists()
    assert subprocess.run(["bash", sh, "--help"], capture_output=True, text=True).stdout.startswith("Light edgecnn")


@pytest.mark.parametrize("script", ["raspi/install.sh", "tools/arm_check.sh", "tools/ci_setup.sh"])
def test_shell_scripts_parse_and_pass_shellcheck(script):
    assert subprocess.run(["bash", "-n", str(REPO / script)]).returncode == 0
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed (apt-get install shellcheck): only bash -n was checked")
    r = subprocess.run(["shellcheck", "-S", "warning", str(REPO / script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout

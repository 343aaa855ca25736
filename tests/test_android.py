"""The sample Android app and `edgecnn bundle android`.

No Android SDK here, so: the golden vectors that tie the app's Java pre/postprocessing to Python
(JUnit checks the Java side in `make java-test`; this checks Python still writes the same bytes),
the project files parse and say what they must, every resource and asset the Java code names
exists, and `bundle` writes what the app loads (read back by the app's own Java Spec/Preprocess
classes when a JDK is installed) and refuses what the app cannot run.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgecnn  # noqa: F401
from edgecnn.device import bundle
from edgecnn.cli import cli
from edgecnn.data.preprocess import PreprocessSpec, preprocess, quantize
from edgecnn.errors import BundleError

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "android_app"
MAIN = APP / "app" / "src" / "main"
JAVA = MAIN / "java" / "dev" / "edgecnn" / "sample"
GOLDEN = APP / "app" / "src" / "test" / "resources" / "golden"
ANDROID_NS = "{http://schemas.android.com/apk/res/android}"
# org.json as Android ships it, from Debian's libandroid-json-java (the Makefile's java-test uses it too)
ORG_JSON_JAR = Path("/usr/share/java/com.android.json.jar")

sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(Path(__file__).parent))


# ---------------------------------------------------------------------------- golden vectors
def test_python_reproduces_the_committed_golden_files():
    import make_golden
    from PIL import Image

    files = make_golden.golden_files()
    committed = sorted(str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*") if p.is_file())
    assert committed == sorted(files), "golden folder out of date: run tools/make_golden.py"
    for rel, data in files.items():
        on_disk = (GOLDEN / rel).read_bytes()
        if rel.endswith(".png"):  # compare pixels: PNG compression may differ between Pillow versions
            a, b = (np.asarray(Image.open(io.BytesIO(d))) for d in (data, on_disk))
            assert a.shape == b.shape and np.array_equal(a, b), rel
        else:
            assert data == on_disk, f"{rel}: Python no longer produces the committed golden bytes"


def test_golden_set_covers_cifar_and_non_square_resize_crop():
    cases = json.loads((GOLDEN / "preprocess.json").read_text())["cases"]
    from PIL import Image

    sizes = {c["image"]: Image.open(GOLDEN / c["image"]).size for c in cases}
    assert (32, 32) in sizes.values()
    big = [s for s in sizes.values() if s[0] != s[1] and max(s) > 32]
    assert big, "needs a larger non-square image so resize + crop is exercised"
    assert any(c["spec"]["crop_fraction"] < 1 for c in cases)
    assert any(c["spec"]["channels"] == 1 for c in cases)


# ---------------------------------------------------------------------------- project files
def test_manifest_declares_no_permissions_and_a_launcher_activity():
    root = ET.parse(MAIN / "AndroidManifest.xml").getroot()
    perms = [e.get(ANDROID_NS + "name") for e in root.iter("uses-permission")]
    assert "android.permission.INTERNET" not in perms
    assert perms == [], f"the app needs no permissions, found {perms}"
    acts = root.find("application").findall("activity")
    launcher = [a for a in acts if any(c.get(ANDROID_NS + "name") == "android.intent.category.LAUNCHER"
                                       for c in a.iter("category"))]
    assert len(launcher) == 1
    name = launcher[0].get(ANDROID_NS + "name").lstrip(".")
    assert (JAVA / f"{name}.java").is_file()


def test_gradle_files_state_sdk_levels_nocompress_and_litert():
    app = (APP / "app" / "build.gradle.kts").read_text()
    assert re.search(r"\bminSdk\s*=\s*\d+", app)
    assert re.search(r"\btargetSdk\s*=\s*\d+", app)
    assert re.search(r"\bcompileSdk\s*=\s*\d+", app)
    assert re.search(r'noCompress\s*\+=\s*"tflite"', app)
    assert 'implementation("com.google.ai.edge.litert:litert:' in app
    assert 'namespace = "dev.edgecnn.sample"' in app
    settings = (APP / "settings.gradle.kts").read_text()
    assert 'include(":app")' in settings and "google()" in settings
    assert "com.android.application" in (APP / "build.gradle.kts").read_text()
    props = (APP / "gradle" / "wrapper" / "gradle-wrapper.properties").read_text()
    assert re.search(r"distributionUrl=.*gradle-[\d.]+-bin\.zip", props)
    assert "app/src/main/assets/" in (APP / ".gitignore").read_text()


def test_every_resource_the_java_code_names_exists():
    java = "\n".join(p.read_text() for p in JAVA.rglob("*.java"))
    layouts = {p.stem for p in (MAIN / "res" / "layout").glob("*.xml")}
    ids = set()
    for p in (MAIN / "res" / "layout").glob("*.xml"):
        ids |= set(re.findall(r'android:id="@\+id/(\w+)"', p.read_text()))
    strings = {e.get("name") for e in ET.parse(MAIN / "res" / "values" / "strings.xml").getroot().iter("string")}
    used = {kind: set(re.findall(rf"(?<!android\.)\bR\.{kind}\.(\w+)", java)) for kind in ("layout", "id", "string")}
    assert used["layout"] and used["id"] and used["string"]
    assert used["layout"] <= layouts, used["layout"] - layouts
    assert used["id"] <= ids, used["id"] - ids
    assert used["string"] <= strings, used["string"] - strings
    for p in (MAIN / "res").rglob("*.xml"):  # @string/ references in resources and the manifest
        for ref in re.findall(r"@string/(\w+)", p.read_text()):
            assert ref in strings, f"{p.name}: @string/{ref}"
    for ref in re.findall(r'"@string/(\w+)"', (MAIN / "AndroidManifest.xml").read_text()):
        assert ref in strings
    # The one asset name compiled into the app is the bundle spec's; all others come from inside it.
    assert re.search(rf'ASSET_NAME\s*=\s*"{re.escape(bundle.SPEC_NAME)}"', java)
    literals = set(re.findall(r'"([\w./-]+\.(?:json|tflite|txt|png))"', java))
    assert literals == {bundle.SPEC_NAME}, literals


# ---------------------------------------------------------------------------- bundle
def _convert(model, int8_io=None, calib=None):
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if calib is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    return conv.convert()


def _entry(path: Path, precision: str, verified: bool = True) -> dict:
    """A manifest entry for a TFLite file, as the export writer makes it (tensors read from the file)."""
    from _tiny_export import _tensor
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.contract import artifact_entry

    it = Interpreter(model_path=str(path))
    e = artifact_entry(path, "tflite", precision, [_tensor(d) for d in it.get_input_details()],
                       [_tensor(d) for d in it.get_output_details()])
    e.update(verification={"passed": verified}, verified=verified)
    return e


def _add_artifact(export: Path, name: str, data: bytes, precision: str, verified: bool = True):
    from edgecnn.contract import read_manifest, write_manifest

    (export / name).write_bytes(data)
    m = read_manifest(export)
    m["artifacts"][name] = _entry(export / name, precision, verified)
    write_manifest(export, m)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """A real run dir: int8 (int8 I/O) and fp32 from the shared fixture; beside it, an export of an
    int8 model with float I/O (floatio/), and the TFLite files of a two-input model and an
    NCHW-shaped one (odd/), which no valid manifest can list."""
    from _tiny_export import build_tiny_export
    import tf_keras as keras

    from edgecnn.data.preprocess import normalize, spec_for
    from edgecnn.data.sample import load_sample

    run = tmp_path_factory.mktemp("runs") / "tiny" / "r1"
    build_tiny_export(run / "export")
    floatio = build_tiny_export(run.parent / "floatio", precisions=("fp32",))
    (xtr, _), _, _ = load_sample()
    calib = normalize(xtr[:16], spec_for((32, 32, 3)))

    keras.utils.set_random_seed(1)
    inp = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inp)
    out = keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    _add_artifact(floatio, "tiny_int8floatio.tflite", _convert(keras.Model(inp, out), False, calib), "int8")

    odd = run.parent / "odd"
    odd.mkdir()
    a, b = keras.Input((32, 32, 3), batch_size=1), keras.Input((32, 32, 3), batch_size=1)
    y = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    (odd / "tiny_twoin.tflite").write_bytes(_convert(keras.Model([a, b], keras.layers.Dense(10)(y))))
    c = keras.Input((3, 32, 32), batch_size=1)
    z = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(c))
    (odd / "tiny_nchw.tflite").write_bytes(_convert(keras.Model(c, z)))
    return run


@pytest.fixture
def app_copy(tmp_path):
    """The project files of android_app (no assets), so bundling never touches the checkout."""
    dst = tmp_path / "android_app"
    shutil.copytree(APP, dst, ignore=shutil.ignore_patterns("assets", "build", ".gradle", "test"))
    return dst


def _java_reads_bundle(assets: Path, tmp: Path) -> dict:
    """Run the app's own Spec/Preprocess classes on the bundle (BundleCheck); fails naming a missing JDK or
    org.json (make test-deps installs both)."""
    if not shutil.which("javac"):
        pytest.fail("no JDK: `make test-deps` installs one (Debian's default-jdk-headless)", pytrace=False)
    if not ORG_JSON_JAR.is_file():
        pytest.fail(f"no {ORG_JSON_JAR} (org.json, as Android ships it): `make test-deps` installs "
                    f"Debian's libandroid-json-java", pytrace=False)
    out = tmp / "classes"
    srcs = [str(p) for p in (JAVA / "core").glob("*.java")]
    test_core = APP / "app" / "src" / "test" / "java" / "dev" / "edgecnn" / "sample" / "core"
    srcs += [str(test_core / "Golden.java"), str(test_core / "BundleCheck.java")]
    subprocess.run(["javac", "-nowarn", "-cp", str(ORG_JSON_JAR), "-d", str(out)] + srcs, check=True,
                   capture_output=True)
    r = subprocess.run(["java", "-cp", f"{out}:{ORG_JSON_JAR}", "dev.edgecnn.sample.core.BundleCheck", str(assets)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    images = {}
    for line in r.stdout.splitlines():
        parts = line.split(" ")
        if parts[0] == "image":
            images[parts[1]] = {"true": parts[2], "label_txt": parts[3], "sha256": parts[4]}
        elif parts[0] == "source":  # where the app took labels and preprocessing from
            images["__source__"] = line.split(" ", 1)[1]
    return images


def _python_input_sha(png: Path, doc: dict) -> str:
    from PIL import Image

    spec = PreprocessSpec.from_dict(doc["preprocessing"])
    x = preprocess([np.asarray(Image.open(png))], spec)
    t = doc["input"]
    data = x.astype("<f4").tobytes() if t["dtype"] == "float32" else \
        quantize(x, t["scale"], t["zero_point"], np.dtype(t["dtype"])).tobytes()
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("where, artifact, dtype", [(".", "int8", "int8"),
                                                    ("../floatio", "tiny_int8floatio.tflite", "float32")])
def test_bundle_writes_what_the_app_loads(export_dir, app_copy, tmp_path, where, artifact, dtype):
    lines = []
    target = export_dir / where
    doc = bundle.bundle_android(target, app=app_copy, artifact=artifact, images=4, echo=lines.append)
    export = target / "export" if where == "." else target
    assets = app_copy / bundle.ASSETS
    spec = json.loads((assets / bundle.SPEC_NAME).read_text())
    assert spec == {k: v for k, v in doc.items() if k != "assets"}
    manifest = json.loads((export / "manifest.json").read_text())
    entry = manifest["artifacts"][spec["artifact"]]
    assert (assets / spec["model_file"]).read_bytes() == (export / spec["artifact"]).read_bytes()
    assert spec["sha256"] == entry["sha256"]
    assert (assets / spec["labels_file"]).read_text().splitlines() == manifest["labels"]
    assert spec["preprocessing"] == manifest["preprocessing"]
    assert spec["input"]["dtype"] == dtype and spec["input"]["shape"] == [1, 32, 32, 3]
    assert spec["output"]["shape"] == [1, len(manifest["labels"])]
    assert len(spec["images"]) == 4 and len({i["label"] for i in spec["images"]}) == 4
    for img in spec["images"]:
        assert (assets / img["file"]).is_file()
        assert manifest["labels"][img["label_index"]] == img["label"]
    assert any(str(assets / bundle.SPEC_NAME) in line for line in lines)  # says what went where

    # The app's Java reads this bundle and feeds exactly the tensor Python's preprocessing gives.
    java = _java_reads_bundle(assets, tmp_path)
    assert java.pop("__source__") == "bundle spec"  # these files carry no metadata: the bundle's spec
    assert set(java) == {i["file"] for i in spec["images"]}
    for f, got in java.items():
        assert got["true"] == got["label_txt"]
        assert got["sha256"] == _python_input_sha(assets / f, spec), f"{f}: Java input tensor differs from Python"


def test_bundle_again_replaces_old_images(export_dir, app_copy):
    bundle.bundle_android(export_dir, app=app_copy, images=6, echo=lambda s: None)
    bundle.bundle_android(export_dir / "export", app=app_copy, images=2, echo=lambda s: None)
    pngs = sorted(p.name for p in (app_copy / bundle.ASSETS / "images").glob("*.png"))
    assert len(pngs) == 2


def _one_line_error(args, code=BundleError.exit_code):
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == code, r.output
    lines = [s for s in r.output.splitlines() if s.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    return lines[0]


@pytest.mark.parametrize("odd, words", [("tiny_twoin.tflite", "has 2 inputs"), ("tiny_nchw.tflite", "looks NCHW")])
def test_bundle_checks_the_model_itself_not_only_its_manifest(export_dir, app_copy, tmp_path, odd, words):
    """A good model's manifest entry whose file was swapped for one the app cannot run (and the
    sha256 updated to match): the tensors the runtime reports are checked too."""
    export = tmp_path / "export"
    shutil.copytree(export_dir / "export", export)
    m = json.loads((export / "manifest.json").read_text())
    data = (export_dir.parent / "odd" / odd).read_bytes()
    (export / "tiny_fp32.tflite").write_bytes(data)
    m["artifacts"]["tiny_fp32.tflite"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    (export / "manifest.json").write_text(json.dumps(m))
    msg = _one_line_error(["bundle", "android", str(export), "--app", str(app_copy), "--artifact", "fp32"])
    assert words in msg
    assert not (app_copy / bundle.ASSETS / bundle.SPEC_NAME).exists()


@pytest.mark.parametrize("odd, words", [("tiny_twoin.tflite", "exactly one tensor"),
                                        ("tiny_nchw.tflite", "disagrees with the preprocessing input_size")])
def test_a_manifest_listing_a_model_the_app_cannot_run_is_refused(export_dir, app_copy, tmp_path, odd, words):
    export = tmp_path / "export"
    shutil.copytree(export_dir / "export", export)
    shutil.copy(export_dir.parent / "odd" / odd, export / odd)
    m = json.loads((export / "manifest.json").read_text())
    m["artifacts"][odd] = _entry(export / odd, "fp32")
    (export / "manifest.json").write_text(json.dumps(m))
    msg = _one_line_error(["bundle", "android", str(export), "--app", str(app_copy), "--artifact", odd], code=11)
    assert words in msg
    assert not (app_copy / bundle.ASSETS / bundle.SPEC_NAME).exists()


def test_bundle_refuses_an_unknown_precision(export_dir, app_copy):
    msg = _one_line_error(["bundle", "android", str(export_dir), "--app", str(app_copy), "--artifact", "int4"])
    assert "No TFLite artifact 'int4'" in msg


def test_bundle_refuses_unverified_and_tampered_artifacts(export_dir, app_copy, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(export_dir / "export", export)
    m = json.loads((export / "manifest.json").read_text())
    m["artifacts"]["tiny_int8.tflite"]["verified"] = False
    m["artifacts"]["tiny_int8.tflite"]["verification"]["passed"] = False
    (export / "manifest.json").write_text(json.dumps(m))
    msg = _one_line_error(["bundle", "android", str(export), "--app", str(app_copy)])
    assert "not verified" in msg

    with open(export / "tiny_fp32.tflite", "ab") as f:
        f.write(b"\0")
    msg = _one_line_error(["bundle", "android", str(export), "--app", str(app_copy), "--artifact", "fp32"], code=11)
    assert "sha256" in msg
    assert not (app_copy / bundle.ASSETS).exists()


def test_bundle_refuses_a_wrong_run_or_app(export_dir, tmp_path):
    assert "no manifest.json" in _one_line_error(["bundle", "android", str(tmp_path), "--app", str(APP)])
    assert "not the edgecnn Android app" in _one_line_error(
        ["bundle", "android", str(export_dir), "--app", str(tmp_path)])

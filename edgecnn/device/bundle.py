"""``edgecnn bundle android``: put a verified TFLite artifact into the sample Android app.

Reads only an export folder (``manifest.json`` + artifacts), never the training run's internals.
Into ``<app>/app/src/main/assets/`` it writes:

    model.tflite    the chosen artifact, byte for byte (sha256 checked against the manifest)
    labels.txt      one label per line, in class-index order
    edgecnn.json    the bundle spec the app reads (the one asset name the Java code knows):
                    preprocessing, input/output tensors, output kind, file names, sample images
    images/*.png    a few real test images with true labels: from the model's own dataset (its
                    manifest's held-out split) when its classes are not CIFAR-10's, else the bundled sample

The app supports NHWC input of 1 or 3 channels, batch 1, one float32/int8/uint8 input and one
float32/int8/uint8 output of shape [1, num_classes]; anything else, an unverified artifact, or a
file that does not match its manifest (its bytes, its tensors, or the labels and preprocessing of
its own TFLite Metadata, which the app reads first) is refused with a one-line ``BundleError``. The artifact's
tensors are read from the model itself when a TFLite runtime is installed, not only from the
manifest. The assets folder is replaced as a whole, in one rename (edgecnn.core.commit): the app
sees the old bundle or the new one, never a spec naming files that are not there.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import List, Optional

import numpy as np

from edgecnn.core.text import shown
from edgecnn.errors import BundleError, RuntimeNotAvailableError, did_you_mean

ASSETS = Path("app") / "src" / "main" / "assets"
SPEC_NAME = "edgecnn.json"  # android_app/.../core/Spec.java ASSET_NAME
MODEL_NAME = "model.tflite"
LABELS_NAME = "labels.txt"
IMAGES_DIR = "images"
SCHEMA = 1
PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
DTYPES = ("float32", "int8", "uint8")
OUTPUT_KINDS = ("probabilities", "logits")


def find_export(run):
    """(export folder, validated manifest) of a run dir, an export dir or a model name."""
    from edgecnn.contract import refuse_artifact, resolve

    refuse_artifact(run, "bundle", BundleError)
    if not Path(str(run)).exists() and "/" in str(run):
        raise BundleError(f"{run} does not exist: give a run dir (runs/<model>/<run>) or its export/ folder")
    r = resolve(run, error=BundleError)
    if r.manifest is None:
        raise BundleError(f"No manifest.json in {r.export_dir or r.run_dir or run}: run `edgecnn export` first")
    return r.export_dir, r.manifest


def select_artifact(manifest: dict, artifact: str, where: Path) -> str:
    """The artifact file name for a precision (int8, fp32, ...) or an exact file name."""
    arts = manifest["artifacts"]
    tflite = [n for n, a in arts.items() if a.get("format") == "tflite" or n.endswith(".tflite")]
    if artifact in arts:
        if artifact not in tflite:
            raise BundleError(f"{artifact} is not a TFLite artifact: the Android app runs .tflite files only")
        return artifact
    matches = [n for n in tflite if arts[n].get("precision") == artifact]
    if len(matches) == 1:
        return matches[0]
    choices = sorted({arts[n].get("precision") for n in tflite} - {None}) + sorted(tflite)
    if not matches:
        raise BundleError(f"No TFLite artifact '{artifact}' in {where}.{did_you_mean(artifact, choices)} "
                          f"Available: {', '.join(choices) or 'none'}")
    raise BundleError(f"Several TFLite artifacts have precision '{artifact}' in {where} "
                      f"({', '.join(sorted(matches))}): give the file name with --artifact")


def check_tensors(inputs: List[dict], outputs: List[dict], spec: dict, num_labels: int, what: str) -> None:
    """Raise BundleError unless the app can feed and read these tensors (rules of Spec.java)."""
    if len(inputs) != 1:
        raise BundleError(f"{what} has {len(inputs)} inputs; the Android app feeds exactly one image tensor")
    if len(outputs) != 1:
        raise BundleError(f"{what} has {len(outputs)} outputs; the Android app reads exactly one [1, classes] tensor")
    if spec.get("layout", "NHWC") != "NHWC":
        raise BundleError(f"{what}: preprocessing layout {spec.get('layout')} is not supported; the app feeds NHWC")
    h, w = (int(v) for v in spec["input_size"])
    c = int(spec.get("channels", 3))
    if c not in (1, 3):
        raise BundleError(f"{what}: {c} channels is not supported; the app feeds 1 (gray) or 3 (RGB)")
    i, o = inputs[0], outputs[0]
    shape = [int(v) for v in i["shape"]]
    if shape != [1, h, w, c]:
        layout = " (looks NCHW)" if len(shape) == 4 and shape[1] in (1, 3) and shape[2:] == [h, w] else ""
        raise BundleError(f"{what}: input shape {shape}{layout} is not [1, {h}, {w}, {c}] (NHWC, batch 1, as the "
                          f"preprocessing spec says)")
    oshape = [int(v) for v in o["shape"]]
    if oshape != [1, num_labels]:
        raise BundleError(f"{what}: output shape {oshape} is not [1, {num_labels}] ([1, num_classes] for "
                          f"{num_labels} labels)")
    for name, t in (("input", i), ("output", o)):
        if t["dtype"] not in DTYPES:
            raise BundleError(f"{what}: {name} dtype {t['dtype']} is not supported by the app "
                              f"({', '.join(DTYPES)})")
        if t["dtype"] != "float32" and not float(t.get("scale") or 0) > 0:
            raise BundleError(f"{what}: {name} is {t['dtype']} without a quantization scale")


def _model_tensors(path: Path) -> Optional[tuple]:
    """(inputs, outputs) as the TFLite runtime reports them, or None without a runtime."""
    from edgecnn.measure import runtime

    try:
        r = runtime.load(path, backend="auto", threads=1)
    except RuntimeNotAvailableError:
        return None
    return [t.to_dict() for t in r.inputs], [t.to_dict() for t in r.outputs]


def _same_tensors(a: List[dict], b: List[dict]) -> bool:
    def key(t):
        q = (round(float(t.get("scale") or 0), 9), int(t.get("zero_point") or 0)) if t["dtype"] != "float32" else ()
        return [int(v) for v in t["shape"]], t["dtype"], q
    return len(a) == len(b) and all(key(x) == key(y) for x, y in zip(a, b))


def _test_split(manifest: dict, export_dir: Path):
    """(uint8 images, labels, names) of the held-out split the manifest records, or None without one."""
    from edgecnn.data.datasets import load_dataset
    from edgecnn.errors import EdgecnnError
    from edgecnn.contract import manifest_dataset

    rec = manifest.get("dataset")
    if not isinstance(rec, dict) or rec.get("data_arg") in (None, "sample"):
        return None
    spec = manifest["preprocessing"]
    try:
        kw = manifest_dataset(manifest, export_dir)
        ds = load_dataset(kw.pop("source"), (*spec["input_size"], spec.get("channels", 3)), **kw)
    except EdgecnnError:
        return None
    return ds.x_test, ds.y_test, list(ds.labels)


def _sample_images(n: int, labels: List[str], manifest: Optional[dict] = None,
                   export_dir: Optional[Path] = None) -> list:
    """n real test images, one per class in turn: (png, name, label, index). From the held-out split
    of the model's own dataset when its classes are not CIFAR-10's and the data is here, else from
    the bundled CIFAR-10 sample."""
    from PIL import Image

    from edgecnn.data.sample import load_sample

    _, (x, y), names = load_sample()
    if manifest is not None and list(labels) != list(names):
        own = _test_split(manifest, Path(export_dir))
        if own is not None and len(own[0]):
            x, y, names = own
    by_class = [np.flatnonzero(y == c) for c in range(len(names))]
    picked = []
    for r in range(max(len(b) for b in by_class)):  # one per class in turn, in test-split order
        picked.extend(int(b[r]) for b in by_class if r < len(b))
    picked = picked[:n]
    out = []
    for k, i in enumerate(picked):
        label = names[int(y[i])]
        buf = io.BytesIO()
        img = x[i][:, :, 0] if x[i].ndim == 3 and x[i].shape[2] == 1 else x[i]  # PIL saves gray as HxW
        Image.fromarray(img).save(buf, format="PNG")
        name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in label)[:40]
        out.append((buf.getvalue(), f"{k:02d}_{name}.png", label, labels.index(label) if label in labels else None))
    return out


# A phone's big cores are Cortex-A76/A77/A78-class: of the board table's cores the Pi 5's A76 is the
# nearest (no phone target is emulated: no published figure for such a core grounds one yet).
PHONE_PROXY = "pi5"


def default_artifact(manifest: dict):
    """(artifact, note): what the export recommends for the phone's nearest core, else int8."""
    rec = (manifest.get("recommended") or {}).get(PHONE_PROXY)
    if rec and manifest["artifacts"].get(rec["artifact"], {}).get("format") == "tflite":
        return rec["artifact"], (f"using {rec['artifact']}, recommended for {PHONE_PROXY} (Cortex-A76, the nearest "
                                 f"emulated core to a phone's): {rec['reason']}")
    return "int8", None


def bundle_android(run, app="android_app", artifact: Optional[str] = None, images: int = 10, echo=print) -> dict:
    """Copy a verified TFLite artifact, labels, the bundle spec and sample images into the app.

    Returns the bundle spec written to ``assets/edgecnn.json`` (with ``assets`` added: the folder).
    """
    export_dir, manifest = find_export(run)
    app = Path(app)
    if not (app / "app" / "build.gradle.kts").is_file():
        raise BundleError(f"{app} is not the edgecnn Android app (no app/build.gradle.kts): pass --app android_app")
    if images < 0:
        raise BundleError(f"--images must be >= 0, got {images}")

    if artifact is None:
        artifact, note = default_artifact(manifest)
        if note:
            echo(note)
    name = select_artifact(manifest, artifact, export_dir)
    entry = manifest["artifacts"][name]
    if entry.get("verified") is not True:
        passed = (entry.get("verification") or {}).get("passed")
        raise BundleError(f"{name} is not verified (verification passed={passed}); only verified artifacts are "
                          f"bundled: run `edgecnn export` with verification and fix what it reports")
    from edgecnn.contract import artifact_path

    src = artifact_path(export_dir, manifest, name)  # inside the export, size and sha256 checked
    data = src.read_bytes()
    if data[4:8] != b"TFL3":
        raise BundleError(f"{src} is not a TFLite flatbuffer")
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise BundleError(f"{src} changed while it was read; bundle again")

    labels = [str(s) for s in manifest["labels"]]
    if any("\n" in s or "\r" in s for s in labels):
        raise BundleError("a label contains a line break; labels.txt holds one label per line")
    spec = dict(manifest["preprocessing"])
    inputs, outputs = entry.get("inputs") or [], entry.get("outputs") or []
    check_tensors(inputs, outputs, spec, len(labels), name)
    actual = _model_tensors(src)
    if actual is None:
        echo("note: no TFLite runtime installed here; tensors checked from the manifest only")
    else:
        check_tensors(actual[0], actual[1], spec, len(labels), f"{name} (as loaded)")
        if not (_same_tensors(actual[0], inputs) and _same_tensors(actual[1], outputs)):
            raise BundleError(f"{name}: the model's tensors {actual[0][0]['dtype']}{actual[0][0]['shape']} -> "
                              f"{actual[1][0]['dtype']}{actual[1][0]['shape']} differ from its manifest entry: "
                              f"re-export")
        inputs, outputs = actual
    kind = entry.get("output_kind", "probabilities")
    if kind not in OUTPUT_KINDS:
        raise BundleError(f"{name}: output_kind '{kind}' is not supported ({', '.join(OUTPUT_KINDS)})")
    _check_own_metadata(src, labels, spec, inputs[0], kind, name)

    from edgecnn.contract import run_of_export

    run_dir = run_of_export(export_dir)
    assets = app / ASSETS
    samples = _sample_images(images, labels, manifest, export_dir)
    doc = {
        "schema": SCHEMA,
        "model": manifest["model"],
        "run": run_dir.name if run_dir is not None else "",
        "artifact": name,
        "precision": entry["precision"],
        "sha256": digest,
        "model_file": MODEL_NAME,
        "labels_file": LABELS_NAME,
        "preprocessing": spec,
        "input": _tensor(inputs[0]),
        "output": _tensor(outputs[0]),
        "output_kind": kind,
        "images": [{"file": f"{IMAGES_DIR}/{f}", "label": label, "label_index": idx} for _, f, label, idx in samples],
    }
    files = {MODEL_NAME: data, LABELS_NAME: ("\n".join(labels) + "\n").encode("utf-8")}
    files.update({f"{IMAGES_DIR}/{fname}": png for png, fname, _, _ in samples})
    files[SPEC_NAME] = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    _replace_bundle(assets, files, echo)
    echo(f"{src} -> {assets / MODEL_NAME} ({len(data)} bytes)")
    echo(f"{len(labels)} labels -> {assets / LABELS_NAME}")
    for _, fname, label, _ in samples:
        echo(f"sample test image ({shown(label, 80)}) -> {assets / IMAGES_DIR / fname}")
    echo(f"bundle spec -> {assets / SPEC_NAME}")
    echo(f"Bundled {name} ({entry['precision']}, input {doc['input']['dtype']}{doc['input']['shape']}, "
         f"{len(labels)} classes) into {assets}; open {app} in Android Studio and run the app.")
    return dict(doc, assets=str(assets))


def _check_own_metadata(src: Path, labels: List[str], spec: dict, tensor: dict, kind: str, name: str) -> None:
    """The app reads labels and preprocessing from a model's own TFLite Metadata when it has some
    (core/ModelMetadata.java): they must be the manifest's, else BundleError."""
    from edgecnn.contract.model_metadata import describe, same_input
    from edgecnn.data.preprocess import PreprocessSpec
    from edgecnn.errors import ModelFileError

    try:
        d = describe(src)
    except ModelFileError as e:
        raise BundleError(e.message) from None
    if d is None:
        return
    if d.labels not in (None, labels) or d.output_kind != kind or (
            d.preprocessing is not None and not same_input(d.spec(), PreprocessSpec.from_dict(spec), tensor)):
        raise BundleError(f"{name}: its own TFLite Metadata (labels, preprocessing or output kind), which the app "
                          f"reads, disagrees with its manifest; re-export it.")


def _replace_bundle(assets: Path, files: dict, echo=None) -> None:
    """Swap the whole assets folder in, all or nothing (edgecnn.core.commit): under a lock on it,
    the new bundle is written into a staging folder beside it, the files there that are not a
    bundle's (assets of your own) are carried over by hard link, and one rename exchanges the two
    folders. The app sees the old bundle or the new one, whole, whatever stops this command."""
    from edgecnn.core import commit

    if assets.is_symlink() or (assets.exists() and not assets.is_dir()):
        raise BundleError(f"{assets}: not a folder (a file or a symlink); the app's assets must be a folder")
    with commit.locked(assets, echo=echo):
        with commit.staged(assets) as stage:
            (stage / IMAGES_DIR).mkdir()
            for rel, payload in files.items():
                with open(stage / rel, "wb") as f:
                    f.write(payload)
            commit.pause_point("bundle-staged")
            if assets.is_dir():
                try:
                    commit.carry_over(assets, stage, skip=_bundle_owns)
                except OverflowError as e:
                    raise BundleError(f"{e}: the app's assets folder holds more than a bundle") from None
            commit.swap_in(stage, assets)


def _bundle_owns(rel: str) -> bool:
    """The files a bundle writes (replaced as a whole), and what older versions left in hidden
    folders; everything else in the assets folder is yours and carried over."""
    parts = rel.split("/")
    if len(parts) == 1:
        return rel in (SPEC_NAME, MODEL_NAME, LABELS_NAME) or rel.startswith(".bundle-old-")
    return parts[0] == IMAGES_DIR and len(parts) == 2 and rel.endswith(".png")


def _tensor(t: dict) -> dict:
    return {"name": str(t.get("name", "")), "shape": [int(v) for v in t["shape"]], "dtype": t["dtype"],
            "scale": float(t.get("scale") or 0.0), "zero_point": int(t.get("zero_point") or 0)}


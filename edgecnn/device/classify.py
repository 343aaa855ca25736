"""Classify image files or a live camera stream with an exported model: the device side.

Reads an export folder (``<model>_<precision>.tflite`` + ``manifest.json``), whose manifest gives
the labels and the preprocessing spec and says the artifact was verified; or a lone .tflite /
.onnx that describes itself (TFLite Metadata, ONNX metadata_props: ``contract.model_metadata``),
used unverified; or a file without either, with ``--labels`` and ``--preprocess``. Nothing is
re-derived by hand. Decode with PIL, then ``fit_image`` / ``normalize``
(edgecnn.data.preprocess), then ``runtime.load(...).run``.

Never imports TensorFlow: this runs on a Raspberry Pi with the light install (numpy, pillow,
click, ai-edge-litert). The camera libraries (picamera2, OpenCV) are imported only for
``--camera``.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence

import numpy as np

from edgecnn.measure import runtime
from edgecnn.data.preprocess import PreprocessSpec, fit_image, normalize, softmax, top_k
from edgecnn.core.options import Options
from edgecnn.core.text import shown
from edgecnn.errors import DataError, ModelFileError, RuntimeNotAvailableError, VerificationError

# The export folder may hold several precisions; on a device the int8 one is the point.
PREFERENCE = ("int8", "dynamic", "fp16", "fp32")


@dataclasses.dataclass
class Prediction:
    image: str
    top: List[dict]  # [{"index", "label", "score"}], best first
    ms: float  # decode + preprocess + inference, this image
    fps: float  # rolling, over the last frames

    def to_dict(self) -> dict:
        return {"image": self.image, "top": self.top, "ms": round(self.ms, 3), "fps": round(self.fps, 2)}

    def format(self) -> str:
        """One line; labels and the image name from files are shown escaped (``core.text.shown``)."""
        best = ", ".join(f"{shown(t['label'], 80)} {t['score']:.3f}" for t in self.top)
        return f"{shown(self.image)}: {best}  [{self.ms:.1f} ms, {self.fps:.1f} FPS rolling]"


class RollingFPS:
    """Frames per second over the last ``window`` frames (what a live stream actually sustains)."""

    def __init__(self, window: int = 30):
        self._t = collections.deque(maxlen=window + 1)

    def tick(self, now: Optional[float] = None) -> float:
        self._t.append(time.perf_counter() if now is None else now)
        if len(self._t) < 2 or self._t[-1] <= self._t[0]:
            return 0.0
        return (len(self._t) - 1) / (self._t[-1] - self._t[0])



def resolve_artifact(target, artifact: Optional[str] = None, manifest: Optional[str] = None):
    """(artifact path, manifest dict, manifest entry, note) for an export folder, run folder or
    model file.

    A folder: the named ``artifact``, else the one its manifest recommends for this board
    (``default_artifact``; ``note`` says so), else the best TFLite (verified first, then int8
    first). A file: the manifest beside it, or ``manifest``; a file with neither gives
    ``(path, None, None, None)`` (it may describe itself). Everything goes through the artifact
    contract (``edgecnn.contract``): the manifest is validated, the artifact must lie inside its export
    folder and match its sha256, so a truncated copy (a half-finished scp to the Pi) or a swapped
    file fails here, not with odd predictions.
    """
    from edgecnn import contract

    target = Path(target)
    if not target.exists():
        raise ModelFileError(f"{target} does not exist: give an export folder (with manifest.json) or a .tflite file")
    if manifest:
        # A manifest from elsewhere describes the file beside ``target`` by name, size and sha256.
        man = contract.read_manifest(Path(manifest))
        folder = target.parent if target.is_file() else target
        if target.is_file():
            if artifact and artifact != target.name:
                raise ModelFileError(f"--artifact {artifact} contradicts the model file {target}")
            artifact = target.name
    else:
        r = contract.resolve(target, error=ModelFileError)
        if r.manifest is None:
            if r.artifact is None:
                raise ModelFileError(f"No manifest in {target}: export the model first ('edgecnn export').")
            if artifact and artifact != r.artifact.name:
                raise ModelFileError(f"--artifact {artifact} contradicts the model file {target}")
            return r.artifact, None, None, None
        man, folder = r.manifest, r.export_dir
        if r.artifact is not None:
            if artifact and artifact != r.artifact.name:
                raise ModelFileError(f"--artifact {artifact} contradicts the model file {target}")
            artifact = r.artifact.name
    arts = man["artifacts"]
    note = None
    if artifact:
        name = artifact
    else:
        name, note = default_artifact(man, folder)
    path = contract.artifact_path(folder, man, name)
    return path, man, arts[name], note


def default_artifact(man: dict, folder: Path):
    """(name, note): the artifact the export recommends for the board this runs on (or "host" on
    anything else), with the line that says so; else the best TFLite (verified first, then int8
    first) and no note."""
    from edgecnn.measure.machine import this_board

    arts = man["artifacts"]
    recs = man.get("recommended") or {}
    here = this_board() or "host"
    rec = recs.get(here)
    if rec and arts[rec["artifact"]]["format"] == "tflite" and (folder / rec["artifact"]).is_file():
        return rec["artifact"], f"using {rec['artifact']}, recommended for {here}: {shown(rec['reason'], 400)}"
    present = [n for n, a in arts.items() if a["format"] == "tflite" and (folder / n).is_file()]
    if not present:
        raise ModelFileError(f"{folder} has no .tflite artifact listed in its manifest: run `edgecnn export`")
    present.sort(key=lambda n: (not arts[n]["verified"],
                                PREFERENCE.index(arts[n]["precision"]) if arts[n]["precision"] in PREFERENCE
                                else len(PREFERENCE), n))
    return present[0], None


class Classifier:
    """An exported model with its labels and preprocessing, ready for uint8 RGB images.

    ``source`` says where they came from: "manifest", the file's own metadata ("TFLite Metadata",
    "ONNX metadata_props"), or "--labels/--preprocess"."""

    def __init__(self, target, *, artifact: Optional[str] = None, manifest: Optional[str] = None,
                 backend: str = "auto", threads: int = 1, xnnpack: bool = True, reference: bool = False,
                 labels_file: Optional[str] = None, preprocess: Optional[str] = None):
        self.path, self.manifest, self.entry, self.note = resolve_artifact(target, artifact, manifest)
        self.runner = runtime.load(self.path, backend=backend, threads=threads, xnnpack=xnnpack,
                                   reference=reference)
        if self.manifest is not None:
            if labels_file or preprocess:
                raise ModelFileError(f"{self.path} has a manifest, which gives its labels and preprocessing: leave "
                                     f"out --labels and --preprocess (they are for a model file without one).")
            from edgecnn.contract import check_loaded_tensors

            self.labels: List[str] = [str(s) for s in self.manifest["labels"]]
            self.spec = PreprocessSpec.from_dict(self.manifest["preprocessing"])
            check_loaded_tensors(self.runner.inputs, self.runner.outputs, self.entry, str(self.path))
            kind, self.source = self.entry.get("output_kind", "probabilities"), "manifest"
        else:
            self.labels, self.spec, kind, self.source = _self_described(self.path, self.runner, labels_file, preprocess)
        self.runner.resize(1)
        self._probabilities = kind == "probabilities"

    @property
    def verified(self) -> bool:
        return bool((self.entry or {}).get("verified", False))

    def scores(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 images (any size, RGB) -> (N, classes) probabilities."""
        x = normalize(np.stack([fit_image(np.asarray(im, np.uint8), self.spec) for im in images]), self.spec)
        out = self.runner.run(x, batch_size=1)
        return out if self._probabilities else softmax(out)

    def top(self, scores: np.ndarray, k: int = 3) -> List[dict]:
        return [{"index": int(i), "label": self.labels[i] if i < len(self.labels) else str(i),
                 "score": float(scores[i])} for i in top_k(scores, k)]


def _self_described(path: Path, runner, labels_file: Optional[str], preprocess: Optional[str]):
    """(labels, spec, output kind, source) of a model file without a manifest: from its metadata,
    ``--labels`` and ``--preprocess`` taking precedence; one line naming them when neither says."""
    from edgecnn.contract.model_metadata import describe
    from edgecnn.data.labels import read_labels_file
    from edgecnn.data.preprocess import parse_preprocess

    d = describe(path)
    labels = read_labels_file(labels_file) if labels_file else (d.labels if d else None)
    spec = None
    shape = tuple(runner.input.shape)
    if preprocess:
        if len(shape) != 4 or shape[3] not in (1, 3):
            raise ModelFileError(f"{path}: input {list(shape)} is not an NHWC image; --preprocess cannot describe it.")
        spec = parse_preprocess(preprocess, shape[1:3], shape[3])
    elif d is not None and d.preprocessing is not None:
        spec = d.spec()
    missing = [flag for flag, v in (("--labels FILE", labels), ("--preprocess SPEC", spec)) if v is None]
    if missing:
        why = f"its {d.source} does not say ({d.note})" if d is not None else "it carries no metadata"
        raise ModelFileError(f"{path}: no manifest beside it and {why}: give {' and '.join(missing)} (one label per "
                             f"line in output order; a preset such as unit or imagenet, or scale=...,mean=...,std=...).")
    n = int(np.prod(runner.output.shape[1:]))
    if len(labels) != n:
        raise ModelFileError(f"{path}: {len(labels)} labels for {n} output scores.")
    if (tuple(spec.input_size), spec.channels) != (tuple(shape[1:3]), shape[3] if len(shape) == 4 else None):
        raise ModelFileError(f"{path}: its input {list(shape)} does not take the preprocessing's "
                             f"{list(spec.input_size)} x {spec.channels} images.")
    source = d.source if d is not None and not (labels_file and preprocess) else "--labels/--preprocess"
    return labels, spec, (d.output_kind if d is not None else "probabilities"), source


def read_image(path) -> np.ndarray:
    """An image file -> uint8 HxWx3 RGB (PIL decodes; EXIF orientation is not applied).

    Through ``edgecnn.data.limits.load_image``: a FIFO or device is refused without being opened,
    decompression bombs and images over its pixel cap are DataErrors, like any undecodable file."""
    import os

    from edgecnn.data import limits

    if not os.path.lexists(path):
        raise DataError(f"Image not found: {path}")
    return limits.load_image(path, "RGB")


def classify_files(clf: Classifier, images: Iterable, k: int = 3, fps_window: int = 30) -> Iterator[Prediction]:
    """One Prediction per image file, in order, with a rolling FPS over decode+preprocess+inference."""
    fps = RollingFPS(fps_window)
    fps.tick()
    for img in images:
        t0 = time.perf_counter()
        scores = clf.scores([read_image(img)])[0]
        t1 = time.perf_counter()
        yield Prediction(str(img), clf.top(scores, k), (t1 - t0) * 1e3, fps.tick(t1))


# ---------------------------------------------------------------------------- camera
def camera_frames(index: int = 0, size=(320, 240), prefer: str = "auto") -> Iterator[np.ndarray]:
    """uint8 RGB frames from the Pi camera (picamera2) or a USB camera (OpenCV), forever.

    picamera2 comes from Raspberry Pi OS's apt (python3-picamera2) and is only importable from a
    venv made with --system-site-packages (raspi/install.sh --camera does that).
    """
    errors = []
    if prefer in ("auto", "picamera2"):
        try:
            from picamera2 import Picamera2  # noqa: F401
        except ImportError as e:
            errors.append(f"picamera2: {e}")
        else:
            return _picamera2_frames(size)
    if prefer in ("auto", "opencv"):
        try:
            import cv2  # noqa: F401
        except ImportError as e:
            errors.append(f"OpenCV: {e}")
        else:
            return _opencv_frames(index, size)
    raise RuntimeNotAvailableError(
        "No camera library: install picamera2 for the Pi camera (sudo apt install python3-picamera2, then "
        "raspi/install.sh --camera) or OpenCV for a USB camera (pip install opencv-python-headless). "
        f"Tried {'; '.join(errors)}")


def _picamera2_frames(size):
    from picamera2 import Picamera2

    try:
        cam = Picamera2()
    except (IndexError, RuntimeError) as e:  # IndexError: no camera attached
        raise DataError(f"picamera2 found no usable camera ({e}): check the ribbon cable and `rpicam-hello`") from None
    # picamera2's "BGR888" is R,G,B in memory (libcamera names formats by the word order).
    cam.configure(cam.create_preview_configuration(main={"size": tuple(size), "format": "BGR888"}))
    cam.start()

    def gen():
        try:
            while True:
                yield _rgb(cam.capture_array("main"), "the Pi camera")
        finally:
            cam.stop()
            cam.close()
    return gen()


def _opencv_frames(index, size):
    import cv2

    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        cap.release()
        raise DataError(f"OpenCV could not open camera {index} (/dev/video{index}): is a USB camera attached?")
    cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])

    def gen():
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    raise DataError(f"camera {index} stopped delivering frames")
                yield _rgb(frame, f"camera {index}", bgr=True)  # OpenCV gives BGR
        finally:
            cap.release()
    return gen()


def _rgb(frame, source: str, bgr: bool = False) -> np.ndarray:
    """A camera frame as uint8 HxWx3 RGB; a missing or malformed frame (a camera that answers
    without an image: None, an empty or 1-D array) is one DataError, not a TypeError later."""
    shape = getattr(frame, "shape", None)
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] < 3 or 0 in frame.shape:
        got = "nothing" if frame is None else f"{type(frame).__name__} of shape {shape}"
        raise DataError(f"{source} returned no image ({got}); check that it is connected, enabled and not in use by "
                        f"another program.")
    rgb = frame[:, :, 2::-1] if bgr else frame[:, :, :3]
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def classify_stream(clf: Classifier, frames: Iterable[np.ndarray], k: int = 3, max_frames: int = 0,
                    fps_window: int = 30) -> Iterator[Prediction]:
    """One Prediction per frame (``image`` is 'frame N'); stops after ``max_frames`` if > 0."""
    fps = RollingFPS(fps_window)
    fps.tick()
    for n, frame in enumerate(frames, 1):
        t0 = time.perf_counter()
        scores = clf.scores([_rgb(frame, "the camera")])[0]
        t1 = time.perf_counter()
        yield Prediction(f"frame {n}", clf.top(scores, k), (t1 - t0) * 1e3, fps.tick(t1))
        if max_frames and n >= max_frames:
            break


# ---------------------------------------------------------------------------- the command's loop
@dataclasses.dataclass(frozen=True)
class ClassifyOptions(Options):
    """Which artifact (default: the export's int8, else fp32) and manifest, or for a model file
    without one its labels file and preprocessing (default: its own metadata); on which runtime
    and threads (XNNPACK on, or the reference kernels), the top-k, and the camera stream (index,
    frames, print every Nth) or files; JSON lines instead of text."""

    artifact: Optional[str] = None
    manifest: Optional[str] = None
    labels_file: Optional[str] = dataclasses.field(default=None, metadata={"flag": "--labels"})
    preprocess: Optional[str] = None
    backend: str = "auto"
    threads: int = 1
    xnnpack: bool = True
    reference: bool = False
    k: int = 3
    camera: bool = False
    camera_index: int = 0
    frames: int = 0
    every: int = 1
    as_json: bool = False
    strict: bool = False

    def check(self) -> None:
        for name, least in (("threads", 1), ("k", 1), ("every", 1), ("frames", 0), ("camera_index", 0)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < least:
                self._bad(name, f"must be an integer >= {least}")


def trust_problem(clf: Classifier) -> Optional[str]:
    """Why the predictions of ``clf`` are not to be trusted (one line), or None: an artifact that
    did not pass verification, or the weights of a model that was never trained."""
    if clf.manifest is None:  # a lone file: nothing records a verification of it
        return f"{clf.path.name}: no manifest beside it, so not known to be verified"
    problems = []
    if not clf.verified:
        v = clf.entry.get("verification") or {}
        problems.append("not verified" + (f" ({v['reason']})" if v.get("reason") else " (never checked)"))
    if not clf.manifest.get("trained", False):
        problems.append("untrained weights (fresh, never fitted: its labels are noise)")
    return f"{clf.path.name}: {' and '.join(problems)}" if problems else None


def classify(target, images: Sequence = (), options: Optional[ClassifyOptions] = None, *,
             echo: Callable[[str], None] = print, warn: Optional[Callable[[str], None]] = None,
             **overrides) -> dict:
    """``edgecnn classify``: one line per image (or every ``every``-th camera frame) to ``echo``,
    plain or JSON, then a summary line; returns the summary. Ctrl-C ends a stream cleanly, with
    the summary of what was classified. ``warn`` hears, in one line, that the artifact is not
    verified or its model not trained (``trust_problem``); ``strict`` refuses such an artifact."""
    o = ClassifyOptions.make(options, **overrides)
    clf = Classifier(target, artifact=o.artifact, manifest=o.manifest, backend=o.backend, threads=o.threads,
                     xnnpack=o.xnnpack, reference=o.reference, labels_file=o.labels_file, preprocess=o.preprocess)
    if clf.note and warn is not None:
        warn(clf.note)
    if warn is not None and clf.manifest is None:
        warn(f"note: {clf.path.name} has no manifest beside it (not verified): labels and preprocessing from "
             f"{clf.source}")
    doubt = trust_problem(clf)
    if doubt and o.strict:
        raise VerificationError(f"{doubt}; refused (--strict).")
    if doubt and warn is not None and clf.manifest is not None:
        warn(f"warning: {doubt} (--strict refuses it)")
    if o.camera:
        preds = classify_stream(clf, camera_frames(o.camera_index), o.k, max_frames=o.frames)
    else:
        preds = classify_files(clf, images, o.k)
    n = 0
    last = None
    try:
        for n, p in enumerate(preds, 1):
            last = p
            if o.camera and n % o.every:
                continue
            echo(json.dumps(p.to_dict()) if o.as_json else p.format())
    except KeyboardInterrupt:
        pass
    summary = {"artifact": clf.path.name, "runtime": clf.runner.backend, "threads": o.threads, "images": n,
               "fps": round(last.fps, 2) if last else 0.0}
    echo(json.dumps({"summary": summary}) if o.as_json else
         f"{n} {'frames' if o.camera else 'images'}, {clf.path.name} on {clf.runner.backend}, "
         f"{summary['fps']:.1f} FPS (rolling, incl. decode and preprocessing)")
    return summary

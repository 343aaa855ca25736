"""MediaPipe's ImageClassifier against ``edgecnn classify`` on the TFLite files of an export.

    .venv/bin/python tools/mediapipe_agreement.py EXPORT_DIR [--data PATH] [--artifacts a.tflite,b.tflite]

For each .tflite of the export: MediaPipe (its own virtualenv, ``make test-deps``; the file as it
is, labels and normalization from its TFLite Metadata) and edgecnn's classifier (the manifest's
preprocessing, LiteRT) classify the same real images: the test split of ``--data`` (default: the
bundled CIFAR-10 sample's 500), at the model's input size so that neither side resizes. Prints a
markdown table: images, top-1 agreement (equal scores count as agreeing: either index is the
top-1), the largest score difference, each side's top-1 accuracy, and MediaPipe's label names.
``compare`` is what tests/test_clients.py asserts with.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MP_PYTHON = Path(os.environ.get("EDGECNN_MEDIAPIPE_PYTHON", ROOT / ".venv-mediapipe" / "bin" / "python"))


def compare(mp_rows: list, ours: np.ndarray, labels: list, y=None) -> dict:
    """MediaPipe's rows (tools/mediapipe_classify.py) against edgecnn's scores (N, classes)."""
    agree = ties = 0
    diff = 0.0
    names_ok = True
    for row, s in zip(mp_rows, ours):
        mine = int(np.lexsort((np.arange(len(s)), -np.asarray(s, np.float64)))[0])  # ties: the lower index
        theirs = int(row["top1"])
        diff = max(diff, max(abs(float(a) - float(b)) for a, b in zip(row["scores"], s)))
        names_ok &= row["label"] == labels[theirs]
        if theirs == mine:
            agree += 1
        elif row["scores"][theirs] == row["scores"][mine]:
            ties += 1
    out = {"images": len(mp_rows), "agree": agree, "ties": ties, "max_score_diff": diff, "label_names_match": names_ok,
           "classes_predicted": len({int(np.argmax(s)) for s in ours})}
    if y is not None:
        out["top1_edgecnn"] = float(np.mean(np.argmax(ours, 1) == y))
        out["top1_mediapipe"] = float(np.mean([r["top1"] for r in mp_rows] == np.asarray(y)))
    return out


def mediapipe(model: Path, x: np.ndarray, workdir: Path) -> dict:
    np.savez(workdir / "images.npz", x=x)
    out = workdir / "mp.json"
    r = subprocess.run([str(MP_PYTHON), str(ROOT / "tools" / "mediapipe_classify.py"), str(model),
                        str(workdir / "images.npz"), str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"MediaPipe on {model.name}: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
    return json.loads(out.read_text())


def main() -> int:
    from edgecnn.data.datasets import load_dataset
    from edgecnn.device.classify import Classifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", type=Path)
    ap.add_argument("--data", default="sample", help="sample, or a dataset PATH whose test split is used")
    ap.add_argument("--artifacts", default=None, help="comma-separated .tflite names (default: every one)")
    a = ap.parse_args()
    m = json.loads((a.export / "manifest.json").read_text())
    names = a.artifacts.split(",") if a.artifacts else [n for n in m["artifacts"] if n.endswith(".tflite")]
    h, w = m["preprocessing"]["input_size"]
    ds = load_dataset(a.data, (h, w, m["preprocessing"].get("channels", 3)))
    x, y = ds.x_test, np.asarray(ds.y_test)
    print(f"MediaPipe vs edgecnn classify: {len(x)} test images of {ds.name}, export {a.export}\n")
    print("| artifact | input | images | top-1 agreement | equal-score ties | max score diff | top-1 edgecnn | "
          "top-1 MediaPipe | MediaPipe label names |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for name in names:
        clf = Classifier(a.export, artifact=name, backend="litert")
        ours = np.concatenate([clf.scores([img]) for img in x])
        with tempfile.TemporaryDirectory() as tmp:
            mp = mediapipe(a.export / name, x, Path(tmp))
        c = compare(mp["images"], ours, m["labels"], y)
        print(f"| {name} | {clf.runner.input.dtype} | {c['images']} | {c['agree'] + c['ties']}/{c['images']} | "
              f"{c['ties']} | {c['max_score_diff']:.1e} | {100 * c['top1_edgecnn']:.2f}% | "
              f"{100 * c['top1_mediapipe']:.2f}% | {'the run labels' if c['label_names_match'] else 'DIFFERENT'} |")
    print(f"\nMediaPipe {mp['mediapipe']}, head name '{mp['head_name']}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())

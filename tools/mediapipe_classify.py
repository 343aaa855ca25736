"""MediaPipe's ImageClassifier on a model file, as an app using MediaPipe runs it: the labels,
normalization and colour space come from the file's TFLite Metadata, nothing else is given.

    .venv-mediapipe/bin/python tools/mediapipe_classify.py MODEL.tflite IMAGES.npz OUT.json

IMAGES.npz holds ``x``, uint8 RGB images (N, H, W, 3). OUT.json gets, per image, the score of
every class index, the top category's index and name, and MediaPipe's version and head name.
Runs in MediaPipe's own virtualenv (``make test-deps`` makes it; no TensorFlow, no edgecnn):
tests/test_clients.py compares its answers with ``edgecnn classify``. A model MediaPipe refuses
exits 3 with its message on stderr.
"""
import json
import sys

import numpy as np


def main(model: str, images: str, out: str) -> int:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    with np.load(images) as z:
        x = z["x"]
    try:
        clf = vision.ImageClassifier.create_from_options(
            vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model)))
    except Exception as e:  # noqa: BLE001 - what MediaPipe says about the file is the result
        print(f"MediaPipe refused {model}: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    rows = []
    with clf:
        for img in x:
            result = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(img)))
            head = result.classifications[0]
            cats = head.categories
            scores = [None] * (max(c.index for c in cats) + 1)
            for c in cats:
                scores[c.index] = float(c.score)
            rows.append({"top1": int(cats[0].index), "label": cats[0].category_name, "scores": scores})
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"mediapipe": mp.__version__, "head_name": head.head_name, "images": rows}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))

"""Measure edgecnn.export.compress on a quickly trained small model: the table in notes/compress.md.

Trains MODEL from scratch on the bundled real CIFAR-10 sample (2,000 train images), then runs
each compression recipe on a copy of it (fine-tuning on the same 2,000 images) and measures on
the 500 bundled test images:

- zipped weights: ZIP_DEFLATED archive of the Keras weights file (save_weights .h5), TFMOT's measure;
- int8 TFLite: Optimize.DEFAULT + 200 representative training images (float in/out), its bytes,
  its zipped bytes, and its top-1 in ai_edge_litert;
- top-1 of the Keras model before and after.

    .venv/bin/python tools/compress_table.py --model alexnet_tiny_dw --train-epochs 40 --ft-epochs 2 \
        --out notes/compress_alexnet_tiny_dw.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import edgecnn  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

RECIPES = {
    "prune 0.5": dict(prune=0.5),
    "prune 0.8": dict(prune=0.8),
    "cluster 16 (k-means++)": dict(cluster=16),
    "cluster 8 (linear)": dict(cluster=8, cluster_init="LINEAR"),
    "qat": dict(qat=True),
    "prune 0.5 + cluster 16 + qat": dict(prune=0.5, cluster=16, qat=True),
}


def _int8(model, calib, val):
    from edgecnn.export.compress_report import int8_measure

    return int8_measure(model, calib, val)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="alexnet_tiny_dw")
    ap.add_argument("--model-kw", default="{}", help="JSON builder kwargs, e.g. '{\"width_multiplier\": 0.5}'")
    ap.add_argument("--train-epochs", type=int, default=40,
                    help="BN moving variances start at 1 and decay by 0.99 a step; far fewer than ~1,000 "
                         "steps leave inference-mode BN wrong for this model (see notes/compress.md)")
    ap.add_argument("--ft-epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3, help="training learning rate (fine-tuning uses lr/10)")
    ap.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated subset of: " + ", ".join(RECIPES))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import tf_keras

    from edgecnn.data.preprocess import preprocess, spec_for
    from edgecnn.data.sample import load_sample
    from edgecnn.export import compress
    from edgecnn.registry import create_model

    tf_keras.utils.set_random_seed(0)
    (xtr, ytr), (xte, yte), _ = load_sample()
    shape = (32, 32, 3)
    spec = spec_for(shape)
    train, val = (preprocess(xtr, spec), ytr), (preprocess(xte, spec), yte)
    model = create_model(args.model, input_shape=shape, num_classes=10, **json.loads(args.model_kw))
    model.compile(tf_keras.optimizers.Adam(args.lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    t = time.time()
    model.fit(*train, epochs=args.train_epochs, batch_size=64, verbose=2)
    base = {"params": int(model.count_params()), "train_seconds": round(time.time() - t, 1),
            "accuracy": compress.accuracy(model, val), "zipped_bytes": compress.zipped_size(model),
            "int8_tflite_ptq": _int8(model, train[0], val)}
    print("base", base, flush=True)

    # Control: the same fine-tuning with no compression, so that a row's gain or loss is not
    # mistaken for the extra epochs' effect.
    t = time.time()
    ctrl = tf_keras.models.clone_model(model)
    ctrl.set_weights(model.get_weights())
    ctrl.compile(tf_keras.optimizers.Adam(args.lr / 10), "sparse_categorical_crossentropy")
    ctrl.fit(*train, epochs=args.ft_epochs, batch_size=64, verbose=0)
    rows = [{"recipe": "fine-tune only (control)", "seconds": round(time.time() - t, 1),
             "accuracy": compress.accuracy(ctrl, val), "zipped_bytes": compress.zipped_size(ctrl),
             "int8_tflite": _int8(ctrl, train[0], val), "report": None}]
    print(rows[0]["recipe"], {k: v for k, v in rows[0].items() if k != "report"}, flush=True)
    for name in [r.strip() for r in args.recipes.split(",") if r.strip()]:
        t = time.time()
        out, report = compress.compress_model(model, train_data=train, val_data=val, epochs=args.ft_epochs,
                                              batch_size=64, learning_rate=args.lr / 10, **RECIPES[name])
        last = report["steps"][-1]
        row = {"recipe": name, "seconds": round(time.time() - t, 1), "accuracy": last["accuracy_after"],
               "zipped_bytes": compress.zipped_size(out), "int8_tflite": _int8(out, train[0], val),
               "report": report}
        print(name, {k: v for k, v in row.items() if k != "report"}, flush=True)
        rows.append(row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": args.model, "model_kw": json.loads(args.model_kw),
                                          "train_epochs": args.train_epochs, "ft_epochs": args.ft_epochs,
                                          "base": base, "rows": rows}, indent=1) + "\n")
    print(_markdown(base, rows))


def _markdown(base, rows) -> str:
    lines = ["| recipe | top-1 Keras | zipped weights .h5 | int8 TFLite bytes | int8 TFLite zipped | int8 top-1 |",
             "|---|---|---|---|---|---|"]
    b8 = base["int8_tflite_ptq"]
    lines.append(f"| baseline (float; int8 = PTQ) | {base['accuracy']:.3f} | {base['zipped_bytes']:,} | "
                 f"{b8['bytes']:,} | {b8['zipped_bytes']:,} | {b8['accuracy']:.3f} |")
    for r in rows:
        i8 = r["int8_tflite"]
        note = " (QAT: float + ranges)" if "qat" in r["recipe"] else ""
        lines.append(f"| {r['recipe']} | {r['accuracy']:.3f} | {r['zipped_bytes']:,}{note} | {i8['bytes']:,} | "
                     f"{i8['zipped_bytes']:,} | {i8['accuracy']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""A tiny real export folder for device-side tests: TFLite files from TensorFlow's own converter
and a manifest.json in the export contract's format. Tests may use TensorFlow; the code under
test (classify, benchmark on the device) must not."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecnn.data.preprocess import normalize, spec_for
from edgecnn.data.sample import load_sample

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _tensor(d) -> dict:
    q = d.get("quantization", (0.0, 0))
    return {"name": d["name"], "shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
            "scale": float(q[0]), "zero_point": int(q[1])}


def build_tiny_export(out_dir, precisions=("int8", "fp32"), model_name: str = "tiny", seed: int = 0,
                      train_epochs: int = 0) -> Path:
    """``train_epochs`` > 0 fits the model on the bundled training sample first (Adam, batch 64), so
    that its predictions depend on the image: about 30% test top-1 after 20 epochs."""
    import tensorflow as tf
    import tf_keras as keras

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    inp = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inp, out, name=model_name)
    spec = spec_for((32, 32, 3))
    (xtr, ytr), _, _ = load_sample()
    calib = normalize(xtr[:32], spec)
    if train_epochs:
        model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
        model.fit(normalize(xtr, spec), ytr, batch_size=64, epochs=train_epochs, verbose=0, shuffle=True)

    from edgecnn.contract import artifact_entry, new_manifest, write_manifest

    manifest = new_manifest(model_name, run=None, trained=bool(train_epochs), labels=LABELS, preprocessing=spec.to_dict(),
                            tools={}, dataset={"data_arg": "sample", "data_path": None})
    for precision in precisions:
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        if precision == "int8":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        data = conv.convert()
        name = f"{model_name}_{precision}.tflite"
        (out_dir / name).write_bytes(data)
        interp = tf.lite.Interpreter(model_content=data)
        entry = artifact_entry(out_dir / name, "tflite", precision, [_tensor(d) for d in interp.get_input_details()],
                               [_tensor(d) for d in interp.get_output_details()])
        entry.update(verification={"passed": True, "note": "test fixture"}, verified=True)
        manifest["artifacts"][name] = entry
    write_manifest(out_dir, manifest)
    return out_dir


def write_test_images(out_dir, n: int = 4) -> list:
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _, (x, y), labels = load_sample()
    paths = []
    for i in range(n):
        p = out_dir / f"img{i}_{labels[int(y[i])]}.png"
        Image.fromarray(x[i]).save(p)
        paths.append(p)
    return paths

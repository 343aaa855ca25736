"""The int8 export tools/arm_check.sh uses: a trained run's model.keras (or, with a model name,
fresh weights with re-estimated BatchNorm statistics) -> int8 TFLite (edgecnn.export.tflite,
calibrated on the bundled training sample) + manifest.json written by the contract's own writer.

    .venv/bin/python tools/int8_tflite.py RUN_DIR_OR_MODEL OUT_DIR

What it serves: the same file must give the same top-1 on x86-64 and arm64. Fresh weights
give ten equal probabilities whatever the image (BatchNormalization's initial moving statistics,
mean 0 and variance 1, are far from the real activations), so every top-1 would be a tie and the
check would prove nothing; two epochs of training on the bundled sample did not change that.
So for fresh weights the BN moving statistics are first re-estimated from 256 bundled training
images (one forward pass in training mode with momentum 0; no labels, no weight changes), which
gives image-dependent outputs. No accuracy is claimed ("verified": false).
"""
import sys
from pathlib import Path

import edgecnn  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)


def recalibrate_bn(model, x) -> int:
    """Set every BatchNormalization's moving mean/variance to the statistics of batch ``x``."""
    import tf_keras

    bns = [layer for layer in model.layers if isinstance(layer, tf_keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in bns]
    for layer in bns:
        layer.momentum = 0.0
    model(x, training=True)  # eager: the moving statistics are assigned in this call
    for layer, m in zip(bns, saved):
        layer.momentum = m
    return len(bns)


def main(source: str, out_dir: str) -> Path:
    from edgecnn import contract
    from edgecnn.measure import runtime
    from edgecnn.data.preprocess import preprocess, spec_for
    from edgecnn.data.sample import load_sample
    from edgecnn.export.tflite import export_tflite
    from edgecnn.models.registry import create_model

    (xtr, _), _, labels = load_sample()
    if Path(source).is_dir():
        run = contract.load_run(source)
        model, model_name, spec, labels = run.load_model(), run.model_name, run.spec, run.labels
        run_name = run.path.name
    else:
        model, model_name, run_name = create_model(source), source, "untrained-bn-recalibrated"
        spec = spec_for(tuple(int(v) for v in model.input_shape[1:]), source_size=32)
        recalibrate_bn(model, preprocess(xtr[:256], spec))
    calib = preprocess(xtr[:200], spec)
    out = Path(out_dir)
    name = f"{model_name}_int8.tflite"
    path = export_tflite(model, out / name, "int8", calibration=calib)
    r = runtime.load(path)
    data = path.read_bytes()
    manifest = contract.new_manifest(model_name, run=None, trained=Path(source).is_dir(), labels=labels,
                                 preprocessing=spec.to_dict(), tools=contract.tool_versions(),
                                 dataset={"data_arg": "sample", "data_path": None})
    manifest["source"] = run_name
    entry = contract.artifact_entry(path, "tflite", "int8", r.inputs, r.outputs)
    entry["verification"] = {"passed": False, "reason": "arm-check export: no accuracy claimed"}
    manifest["artifacts"][name] = entry
    contract.write_manifest(out, manifest)
    print(f"wrote {path} ({len(data)} bytes) and {out / 'manifest.json'}")
    return path


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

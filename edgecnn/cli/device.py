"""``edgecnn classify``, ``bundle`` and ``inspect``: the device side (no TensorFlow)."""
from __future__ import annotations

import json

import click

from edgecnn.cli.group import cli
from edgecnn.cli.options import classify_runtime, labels_option, preprocess_option, runtime_help


@cli.command("classify")
@click.argument("target", type=click.Path())
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--artifact", default=None,
              help="Artifact file name in the export folder (default: the one its manifest recommends for this board, "
                   "or for host on a PC; else the int8 TFLite).")
@click.option("--manifest", default=None, type=click.Path(), help="manifest.json, when it is not beside the model.")
@labels_option("from the manifest, else the model file's own metadata")
@preprocess_option("from the manifest, else the model file's own metadata")
@click.option("--runtime", "backend", default="auto", show_default=True, callback=classify_runtime,
              help=f"{runtime_help(('tflite', 'onnx'), auto=True)}.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64), help="Interpreter threads.")
@click.option("--no-xnnpack", is_flag=True, help="TFLite builtin kernels instead of the XNNPACK delegate.")
@click.option("--reference-kernels", is_flag=True,
              help="TFLite portable reference kernels (slow; the same integer arithmetic on every CPU). A debugging aid: "
                   "LiteRT aborts in them on degenerate quantization (e.g. int8 models of untrained weights).")
@click.option("-k", "--top-k", "k", default=3, show_default=True, type=click.IntRange(1, 1000),
              help="Labels per image.")
@click.option("--camera", is_flag=True,
              help="Classify the live camera stream (picamera2, else OpenCV) instead of files.")
@click.option("--camera-index", default=0, show_default=True, type=click.IntRange(0),
              help="OpenCV camera index (/dev/videoN).")
@click.option("--frames", default=0, show_default=True, type=click.IntRange(0),
              help="With --camera: stop after N frames (0: until Ctrl-C).")
@click.option("--every", default=1, show_default=True, type=click.IntRange(1),
              help="With --camera: print every Nth frame.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image or frame, then a summary line.")
@click.option("--strict", is_flag=True,
              help="Refuse an artifact that did not pass verification or whose model was never trained (default: "
                   "a one-line warning).")
def classify_command(target, images, no_xnnpack, reference_kernels, **options):
    """Classify image files (or the --camera stream) with an export folder, or a .tflite/.onnx file.

    A file beside its manifest is used as verified; a lone file that carries metadata (TFLite
    Metadata, ONNX metadata_props) gives its own labels and preprocessing; a file without either
    needs --labels and --preprocess. Prints the top-k labels and a rolling FPS. Needs only the
    light install (no TensorFlow).
    """
    from edgecnn.device.classify import ClassifyOptions, classify

    if options["camera"] == bool(images):
        raise click.UsageError("give image files, or --camera, not both" if options["camera"]
                               else "give image files or --camera")
    o = ClassifyOptions.from_cli(**options, xnnpack=not no_xnnpack, reference=reference_kernels)
    classify(target, images, o, echo=click.echo, warn=lambda s: click.echo(s, err=True))


@cli.group("bundle")
def bundle_group():
    """Put a verified export into a device-side app (android)."""


@bundle_group.command("android")
@click.argument("run", type=click.Path())
@click.option("--app", default="android_app", show_default=True, type=click.Path(),
              help="The sample Android app (the folder holding app/build.gradle.kts).")
@click.option("--artifact", default=None,
              help="Precision (int8, fp32, fp16, dynamic) or the artifact's file name in the export folder "
                   "(default: the one the export recommends for pi5, the nearest emulated core to a phone's; else int8).")
@click.option("--images", default=10, show_default=True, type=click.IntRange(0, 100),
              help="Sample test images (real CIFAR-10, with true labels) to bundle.")
def bundle_android_command(run, app, artifact, images):
    """Copy a verified .tflite, labels, the preprocessing/tensor spec and sample images into the app's assets.

    RUN is a run dir (runs/<model>/<run>) or its export/ folder. Refuses unverified artifacts and
    tensors the app cannot feed (it needs NHWC, batch 1, one input, one [1, classes] output).
    """
    from edgecnn.device.bundle import bundle_android

    bundle_android(run, app=app, artifact=artifact, images=images, echo=click.echo)




# ---------------------------------------------------------------------------- inspect
@cli.command("inspect")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per artifact (with every op in order).")
def inspect_command(artifacts, as_json):
    """Where the bytes of a .tflite file go, the ops it runs, and what a .tflite or .onnx says about itself.

    For each .tflite: constant tensors by type, quantization scales and zero points (a vector
    shared by several tensors counted once), named metadata, associated files, and the rest
    (graph, names, padding), each with its share of the file; then the op counts. For each file:
    its metadata (TFLite Metadata, ONNX metadata_props) as a device reads it: labels,
    preprocessing, output kind. Needs no TensorFlow.
    """
    from edgecnn.errors import ModelFileError
    from edgecnn.measure.anatomy import describe_file, format_breakdown, format_description, tflite_breakdown
    from edgecnn.measure.runtime import model_format

    for path in artifacts:
        fmt = model_format(path) if path.endswith((".tflite", ".onnx")) else None
        if fmt not in ("tflite", "onnx"):
            raise ModelFileError(f"edgecnn inspect reads .tflite and .onnx files; got '{path}'")
        info = describe_file(path)
        if fmt == "tflite":
            b = dict(tflite_breakdown(path), self_description=info["self_description"])
            click.echo(json.dumps(b) if as_json else format_breakdown(b) + "\n" + format_description(info))
        else:
            click.echo(json.dumps(info) if as_json else
                       f"{info['file']}: {info['bytes']:,} bytes, ONNX\n" + format_description(info))

"""Write the golden vectors that tie the Android app's Java pre/postprocessing to edgecnn's Python.

    python tools/make_golden.py [--out android_app/app/src/test/resources/golden]

Inputs (PNG images cut from the bundled real CIFAR-10 test split, raw output tensors) and the
expected results of ``edgecnn.data.preprocess`` on them (fitted uint8 image, float32 input
tensor, int8 and uint8 quantized tensors, top-5 with scores) go into the Java test resources, and
tiny runnable .tflite models with TFLite Metadata (written by edgecnn's writer) with what edgecnn's
reader says they carry (labels, the preprocessing derived from them, the input tensor of an image).
JUnit (``make java-test``) checks Java reproduces them; tests/test_android.py checks Python still
does. Everything is deterministic, numpy plus the light install's TFLite schema and flatbuffers
(no TensorFlow); binaries are little-endian.
"""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np

from edgecnn.data import preprocess as pp
from edgecnn.data.sample import load_sample
from edgecnn.core.files import atomic_write_bytes, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "android_app" / "app" / "src" / "test" / "resources" / "golden"

# Quantization parameters of typical int8/uint8 CIFAR inputs, as float32 values.
INT8_Q = (float(np.float32(0.0188)), -6)
UINT8_Q = (float(np.float32(0.0188)), 122)


def _pattern(h, w, c):
    """A fixed texture added to upsampled images so that interpolation is not trivially flat."""
    yy, xx, cc = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    return (yy * 7 + xx * 13 + cc * 5) % 23


def golden_images() -> dict:
    """name -> uint8 array (HxWx3 or HxW), all from real CIFAR-10 test images."""
    (_, _), (x, _), _ = load_sample()
    wide = np.concatenate([x[1], x[2]], axis=1).repeat(2, axis=0).repeat(2, axis=1)  # 64x128
    wide = ((wide.astype(np.int64) + _pattern(*wide.shape)) % 256).astype(np.uint8)[3:60, 11:112]  # 57x101
    tall = np.concatenate([x[5], x[6]], axis=0).repeat(2, axis=0).repeat(2, axis=1)  # 128x64
    tall = ((tall.astype(np.int64) + _pattern(*tall.shape)) % 256).astype(np.uint8)[20:90, 7:52]  # 70x45
    return {
        "cifar_32x32": x[0],
        "luma_32x32": _luma_edge_colours(),
        "wide_101x57": wide,
        "tall_45x70": tall,
        "small_27x20": x[3][5:25, 2:29],
        "gray_32x32": x[4][:, :, 1],
    }


def _luma_edge_colours() -> np.ndarray:
    """A 32x32 RGB image of the colours whose gray value depends on how r*0.299 + g*0.587 + b*0.114
    is evaluated in float32 (plain products and sums, FMA chain, one exact sum): the RGB->gray
    step has to be reproduced exactly, not just closely. Found with elementwise numpy only."""
    w = np.array([0.299, 0.587, 0.114], np.float32)
    half = np.float32(0.5)
    g, b = (a.ravel() for a in np.meshgrid(np.arange(256), np.arange(256), indexing="ij"))
    found = []
    for r in range(256):
        rf, gf, bf = np.float32(r), g.astype(np.float32), b.astype(np.float32)
        plain = rf * w[0] + gf * w[1] + bf * w[2]
        acc = np.float32(rf * w[0]).astype(np.float64)
        acc = (gf.astype(np.float64) * np.float64(w[1]) + acc).astype(np.float32).astype(np.float64)
        fma = (bf.astype(np.float64) * np.float64(w[2]) + acc).astype(np.float32)
        exact = (np.float64(r) * np.float64(w[0]) + gf.astype(np.float64) * np.float64(w[1])
                 + bf.astype(np.float64) * np.float64(w[2])).astype(np.float32)
        rounded = [np.floor(v + half) for v in (plain, fma, exact)]
        hit = (rounded[0] != rounded[1]) | (rounded[1] != rounded[2])
        found.extend((r, int(gg), int(bb)) for gg, bb in zip(g[hit], b[hit]))
    colours = np.array(found[:1024] + found[:max(0, 1024 - len(found))], np.uint8)
    return colours.reshape(32, 32, 3)


def golden_specs() -> dict:
    return {
        "rgb32": pp.spec_for((32, 32, 3)),
        "rgb24_crop": pp.spec_for((24, 24, 3), source_size=32),
        "gray32": pp.spec_for((32, 32, 1)),
        "wide28x40": pp.PreprocessSpec(input_size=(28, 40), crop_fraction=0.875, mean=pp.IMAGENET_MEAN,
                                       std=pp.IMAGENET_STD),
    }


# resize_bilinear alone, at sizes where float vs double coordinate arithmetic changes a pixel.
RESIZES = [("cifar_32x32", 13, 29), ("cifar_32x32", 7, 9), ("small_27x20", 50, 88)]

# (image, spec): square identity, crop only, down-scale + crop (wide and tall), up-scale, gray->RGB,
# RGB->gray (luma), and a non-square model input.
CASES = [
    ("cifar_32x32", "rgb32"), ("cifar_32x32", "rgb24_crop"), ("wide_101x57", "rgb32"),
    ("tall_45x70", "rgb24_crop"), ("small_27x20", "rgb32"), ("gray_32x32", "rgb32"),
    ("cifar_32x32", "gray32"), ("luma_32x32", "gray32"), ("wide_101x57", "gray32"), ("wide_101x57", "wide28x40"),
    ("small_27x20", "wide28x40"),
]


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _quantize_vectors() -> dict:
    """Values that land exactly on .5 after division (half-even rounding) and past the clip range."""
    x = np.array([0.125, 0.375, 0.625, -0.125, -0.375, -0.625, 1.0, 31.875, -32.125, 40.0, -40.0, 1e-8],
                 np.float32)
    cases = []
    for dtype, scale, zp in (("int8", 0.25, 3), ("uint8", 0.25, 128), ("int8", INT8_Q[0], INT8_Q[1])):
        q = pp.quantize(x, scale, zp, np.dtype(dtype))
        cases.append({"dtype": dtype, "scale": scale, "zero_point": zp, "x": [float(v) for v in x],
                      "expected": [int(v) for v in q]})
    return {"cases": cases}


def _postprocess_vectors() -> dict:
    rng = np.random.default_rng(7)
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    raw = [
        ("probabilities ties float32", "float32", 0.0, 0, "probabilities",
         f32([0.1, 0.3, 0.05, 0.3, 0.05, 0.1, 0.02, 0.03, 0.05, 0.0])),
        ("signed zero tie float32", "float32", 0.0, 0, "probabilities", f32([-0.0, 0.0, 0.5, 0.25, 0.25, 0.0])),
        ("int8 probabilities", "int8", 1.0 / 256, -128, "probabilities",
         np.array([-128, 50, 50, -10, 127, -128, 0, 0, 3, 50], np.int8)),
        ("uint8 probabilities", "uint8", float(np.float32(1 / 255)), 0, "probabilities",
         np.array([0, 200, 13, 13, 255, 1, 200, 0, 40, 7], np.uint8)),
        ("float32 logits", "float32", 0.0, 0, "logits", f32(np.round(rng.normal(0, 3, 10), 2))),
        ("int8 logits", "int8", float(np.float32(0.1)), 5, "logits",
         np.array([5, 40, -20, 40, 127, -128, 6, 90, 90, 0], np.int8)),
        ("100-class probabilities float32", "float32", 0.0, 0, "probabilities",
         f32(np.round(rng.dirichlet(np.full(100, 0.3)), 3))),
    ]
    cases = []
    for name, dtype, scale, zp, kind, t in raw:
        s = pp.dequantize(t, scale, zp) if dtype != "float32" else t.astype(np.float32)
        if kind == "logits":
            s = pp.softmax(s)
        top = pp.top_k(s, 5)
        cases.append({"name": name, "dtype": dtype, "scale": scale, "zero_point": zp, "output_kind": kind,
                      "tensor": [float(v) if dtype == "float32" else int(v) for v in t],
                      "top5": [int(i) for i in top], "scores": [float(s[i]) for i in top],
                      "exact": kind == "probabilities"})
    return {"cases": cases}


# ---------------------------------------------------------------------------- self-describing models
# (name, input dtype, spec, output kind): a uint8 camera input as edgecnn exports it (crop 0.875 in
# its edgecnn.json), a float input with per-channel ImageNet normalization, a float input with one
# global mean/std (MediaPipe's kind), and the first model without metadata.
METADATA_MODELS = [
    ("camera_uint8", "uint8", ("unit", 0.875), "probabilities"),
    ("imagenet_float", "float32", ("imagenet", 1.0), "logits"),
    ("mobilenet_float", "float32", ("keras-mobilenet", 1.0), "probabilities"),
]
METADATA_LABELS = ["red", "green", "blue"]


def _tiny_tflite(dtype: str, h: int = 32, w: int = 32, c: int = 3) -> bytes:
    """A runnable TFLite model written with the schema's object API (no TensorFlow): the mean of
    each channel, [1, h, w, c] -> [1, c] (DEQUANTIZE first for a uint8 input of scale 1/255)."""
    import flatbuffers

    from edgecnn.export.compact import schema

    fb = schema()

    def tensor(shape, ttype, name, buffer=0, quant=None):
        t = fb.TensorT()
        t.shape, t.type, t.name, t.buffer = list(shape), ttype, name, buffer
        if quant is not None:
            t.quantization = fb.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [quant[0]], [quant[1]]
        return t

    def opcode(code):
        o = fb.OperatorCodeT()
        o.builtinCode, o.deprecatedBuiltinCode, o.version = code, min(code, 127), 1
        return o

    def op(index, inputs, outputs, options=None):
        o = fb.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = index, list(inputs), list(outputs)
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = fb.BuiltinOptions.ReducerOptions, options
        return o

    empty, axes = fb.BufferT(), fb.BufferT()
    axes.data = np.array([1, 2], "<i4").view(np.uint8)
    mean_options = fb.ReducerOptionsT()
    mean_options.keepDims = False
    g = fb.SubGraphT()
    g.name = "main"
    codes = [opcode(fb.BuiltinOperator.MEAN)]
    if dtype == "uint8":
        g.tensors = [tensor([1, h, w, c], fb.TensorType.UINT8, "image", quant=(float(np.float32(1 / 255)), 0)),
                     tensor([1, h, w, c], fb.TensorType.FLOAT32, "unit"),
                     tensor([2], fb.TensorType.INT32, "axes", 1), tensor([1, c], fb.TensorType.FLOAT32, "scores")]
        codes.append(opcode(fb.BuiltinOperator.DEQUANTIZE))
        g.operators = [op(1, [0], [1]), op(0, [1, 2], [3], mean_options)]
    else:
        g.tensors = [tensor([1, h, w, c], fb.TensorType.FLOAT32, "image"),
                     tensor([2], fb.TensorType.INT32, "axes", 1), tensor([1, c], fb.TensorType.FLOAT32, "scores")]
        g.operators = [op(0, [0, 1], [2], mean_options)]
    g.inputs, g.outputs = [0], [len(g.tensors) - 1]
    m = fb.ModelT()
    m.version, m.description, m.operatorCodes, m.subgraphs, m.buffers = 3, "edgecnn golden", codes, [g], [empty, axes]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def golden_models(images: dict) -> dict:
    """relative path -> bytes: the self-describing models, the bare one, metadata.json with what
    edgecnn's reader says each file carries, and the input tensor of a golden image under it."""
    from edgecnn.contract.model_metadata import describe_bytes
    from edgecnn.contract.tflite_metadata import model_io
    from edgecnn.export.metadata import ClassifierInfo, with_tflite_metadata

    files, cases = {}, []
    for name, dtype, (preset, crop), kind in METADATA_MODELS:
        spec = pp.parse_preprocess(preset, (32, 32), 3)
        spec = pp.PreprocessSpec(**dict(spec.to_dict(), input_size=(32, 32), crop_fraction=crop))
        info = ClassifierInfo(name=name, labels=METADATA_LABELS, spec=spec, output_kind=kind,
                              description=f"golden model {name}", version="1", author="edgecnn tests",
                              license="CC0-1.0", precision="int8" if dtype == "uint8" else "fp32")
        data = with_tflite_metadata(_tiny_tflite(dtype), info, name)
        d = describe_bytes(data, name)
        derived = d.spec()
        tin = model_io(data)["input"]
        x = pp.preprocess([images["wide_101x57"]], derived)[0]
        tensor = x.astype("<f4").tobytes() if dtype == "float32" else pp.quantize(x, tin["scale"], tin["zero_point"],
                                                                                 np.uint8).tobytes()
        files[f"models/{name}.tflite"] = data
        files[f"tensors/wide_101x57__{name}.input"] = tensor
        cases.append({"model": f"models/{name}.tflite", "labels": d.labels, "output_kind": d.output_kind,
                      "name": d.name, "author": d.author, "license": d.license, "normalization": d.normalization,
                      "preprocessing": d.preprocessing, "image": "images/wide_101x57.png",
                      "input": {"dtype": tin["dtype"], "scale": tin["scale"], "zero_point": tin["zero_point"],
                                "file": f"tensors/wide_101x57__{name}.input"}})
    files["models/bare_uint8.tflite"] = _tiny_tflite("uint8")
    files["metadata.json"] = _json({"cases": cases, "bare": "models/bare_uint8.tflite"})
    return files


def golden_files() -> dict:
    """relative path -> bytes: everything the golden folder holds."""
    files = {}
    images = golden_images()
    for name, img in images.items():
        files[f"images/{name}.png"] = _png(img)
    specs = golden_specs()
    cases = []
    for image, spec_name in CASES:
        spec = specs[spec_name]
        name = f"{image}__{spec_name}"
        fitted = pp.fit_image(images[image], spec)
        x = pp.preprocess([images[image]], spec)[0]
        q8 = pp.quantize(x, INT8_Q[0], INT8_Q[1], np.int8)
        u8 = pp.quantize(x, UINT8_Q[0], UINT8_Q[1], np.uint8)
        files[f"tensors/{name}.fitted.u8"] = np.ascontiguousarray(fitted).tobytes()
        files[f"tensors/{name}.f32"] = x.astype("<f4").tobytes()
        files[f"tensors/{name}.int8"] = q8.tobytes()
        files[f"tensors/{name}.uint8"] = u8.tobytes()
        cases.append({"name": name, "image": f"images/{image}.png", "spec": spec.to_dict(),
                      "fitted": f"tensors/{name}.fitted.u8", "float32": f"tensors/{name}.f32",
                      "int8": {"file": f"tensors/{name}.int8", "scale": INT8_Q[0], "zero_point": INT8_Q[1]},
                      "uint8": {"file": f"tensors/{name}.uint8", "scale": UINT8_Q[0], "zero_point": UINT8_Q[1]}})
    resizes = []
    for image, h, w in RESIZES:
        rel = f"tensors/{image}__resize_{h}x{w}.u8"
        files[rel] = np.ascontiguousarray(pp.resize_bilinear(images[image], h, w)).tobytes()
        resizes.append({"image": f"images/{image}.png", "height": h, "width": w, "expected": rel})
    files["preprocess.json"] = _json({"cases": cases, "resizes": resizes})
    files["quantize.json"] = _json(_quantize_vectors())
    files["postprocess.json"] = _json(_postprocess_vectors())
    files.update(golden_models(images))
    return files


def _json(obj) -> bytes:
    return (json.dumps(obj, indent=1) + "\n").encode("utf-8")


def write_golden(out: Path = DEFAULT_OUT) -> list:
    out = Path(out)
    written = []
    for rel, data in golden_files().items():
        target = out / rel
        if rel.endswith(".json"):
            atomic_write_text(target, data.decode("utf-8"))
        else:
            atomic_write_bytes(target, data)
        written.append(target)
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="golden folder (the Java test resources)")
    args = ap.parse_args()
    written = write_golden(args.out)
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} golden files ({total / 1024:.0f} KiB) to {args.out}")


if __name__ == "__main__":
    main()

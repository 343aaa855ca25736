"""Preprocessing spec, runtime facade and atomic writes: the pieces every stage shares."""
import os
import subprocess
import sys

import numpy as np
import pytest

from edgecnn.data.preprocess import (PreprocessSpec, dequantize, fit_image, preprocess, quantize, resize_bilinear,
                                     spec_for, top_k)
from edgecnn.errors import ModelFileError, RuntimeNotAvailableError
from edgecnn.core.files import atomic_path, atomic_write_json, read_json


def test_spec_roundtrip_and_crop_fraction():
    s = spec_for((24, 24, 3), source_size=32)
    assert s.crop_fraction == 0.75
    assert PreprocessSpec.from_dict(s.to_dict()) == s


def test_cifar_image_is_untouched_by_fit_and_centre_cropped_for_24():
    img = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    assert np.array_equal(fit_image(img, spec_for((32, 32, 3))), img)
    assert np.array_equal(fit_image(img, spec_for((24, 24, 3), source_size=32)), img[4:28, 4:28])


def test_fit_image_resizes_non_square_to_shorter_side_then_crops():
    img = np.zeros((60, 90, 3), np.uint8)
    img[:, 45:] = 200
    out = fit_image(img, spec_for((32, 32, 3)))
    assert out.shape == (32, 32, 3)
    assert out[:, 0].max() == 0 and out[:, -1].min() == 200


def test_resize_bilinear_constant_and_identity():
    img = np.full((7, 5, 3), 77, np.uint8)
    assert np.all(resize_bilinear(img, 13, 3) == 77)
    assert np.array_equal(resize_bilinear(img, 7, 5), img)


def test_normalize_and_quantize_roundtrip():
    s = spec_for((32, 32, 3))
    x = preprocess(np.full((1, 32, 32, 3), 255, np.uint8), s)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0, 0], (1.0 - np.array(s.mean)) / np.array(s.std), rtol=1e-6)
    q = quantize(np.array([0.5, 1.5, 2.5, -300.0]), 1.0, 0)
    assert q.tolist() == [0, 2, 2, -128]  # half-to-even, clipped
    np.testing.assert_allclose(dequantize(q, 0.5, -1), [0.5, 1.5, 1.5, -63.5])


def test_top_k_breaks_ties_by_lower_index():
    assert top_k(np.array([0.1, 0.5, 0.5, 0.2]), 3).tolist() == [1, 2, 3]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "a.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    atomic_write_json(target, {"x": np.float32(1.5)})
    assert read_json(target) == {"x": 1.5}


def test_runtime_rejects_bad_files(tmp_path):
    from edgecnn.measure import runtime

    with pytest.raises(ModelFileError, match="not found"):
        runtime.load(tmp_path / "missing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all, just text")
    with pytest.raises(ModelFileError):
        runtime.load(junk)
    with pytest.raises(RuntimeNotAvailableError, match="Unknown runtime"):
        runtime.load(junk, backend="litrt")


def test_light_modules_do_not_import_tensorflow():
    code = ("import sys, edgecnn.measure.runtime, edgecnn.data.preprocess, edgecnn.data.sample, edgecnn.errors, edgecnn.core.files;"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

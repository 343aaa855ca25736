"""Hostile data: every input is built here (tiny files under tmp_path) and must end in a one-line
DataError (exit 6) or a one-line usage error (exit 2), in bounded time and memory, leaving
nothing half-made and nothing that was there before changed.

Classes: tar bombs and tricks; image bombs and non-regular files; CIFAR batches with hostile
content; the download (verified, atomic; urlopen is replaced, no network); option ranges;
unwritable, full or over-long output paths.
"""
import contextlib
import errno
import hashlib
import io
import os
import pickle
import signal
import struct
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import edgecnn  # noqa: F401
from edgecnn.device.classify import read_image as classify_read_image
from edgecnn.data import cifar, folders, limits
from edgecnn.data import load_dataset
from edgecnn.errors import DataError

ROOT = os.geteuid() == 0


# ---------------------------------------------------------------------------- helpers
def _one_line(exc_info, match=None):
    msg = str(exc_info.value.message)
    assert "\n" not in msg and msg
    if match:
        assert exc_info.match(match), msg
    return msg


def _snapshot(root: Path) -> dict:
    """Every entry under root: a file's sha256, 'dir', or its kind; FIFOs are never opened."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "special"
    return out


@contextlib.contextmanager
def _deadline(seconds=20):
    """A test that would block on a FIFO fails instead of hanging the suite."""
    def boom(*_):
        raise TimeoutError("blocked: a FIFO or device was opened")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _cli(args, env=None):
    from edgecnn.cli import cli

    return CliRunner().invoke(cli, args, env=env)


def _cli_error(result, code):
    out = result.output
    assert "Traceback" not in out, out
    errs = [line for line in out.splitlines() if line.startswith("Error:")]
    assert len(errs) == 1, out
    assert result.exit_code == code, (result.exit_code, out, result.exception)
    return errs[0]


def _tar_bytes(members, compress="gz"):
    """members: [(TarInfo, bytes or None)] -> archive bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:" + compress if compress else "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name, size=0, type=tarfile.REGTYPE, **kw):
    info = tarfile.TarInfo(name)
    info.size, info.type = size, type
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def _gz_of_raw_tar(raw: bytes) -> bytes:
    import gzip

    return gzip.compress(raw, compresslevel=1)


def _batch_dict(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"t", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, n)], b"filenames": [b"f%d.png" % i for i in range(n)]}


NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def _cifar10_folder(root: Path, n=4) -> Path:
    root.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        with open(root / name, "wb") as f:
            pickle.dump(_batch_dict(n, seed=i), f, protocol=2)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": NAMES, b"num_vis": 3072}, f, protocol=2)
    return root


def _cifar10_targz(path: Path, tmp: Path) -> bytes:
    folder = _cifar10_folder(tmp / "src" / "cifar-10-batches-py")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return path.read_bytes()


def _png_header(width, height) -> bytes:
    """A PNG whose IHDR declares width x height; PIL checks the pixel count at open, before decoding."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def small_caps(monkeypatch):
    """Caps low enough that a bomb is a few kilobytes to build and milliseconds to refuse."""
    monkeypatch.setattr(cifar, "MAX_EXTRACT_BYTES", 1 << 20)
    monkeypatch.setattr(cifar, "RATIO_FLOOR_BYTES", 64 << 10)
    monkeypatch.setattr(cifar, "MAX_COMPRESSION_RATIO", 20)
    monkeypatch.setattr(cifar, "MAX_MEMBERS", 50)


# ---------------------------------------------------------------------------- 1. archives
def _pax_bomb():
    # A PAX extended header that claims 4 MB: tarfile reads such headers whole into memory.
    raw = _info("././@PaxHeader", 4 << 20, tarfile.XHDTYPE).tobuf(tarfile.USTAR_FORMAT)
    return _gz_of_raw_tar(raw + b"\0" * (4 << 20) + b"\0" * 1024)


def _declared_8gb():
    # A member whose header claims 8 GB, followed by three bytes: refused from the header alone.
    raw = _info("cifar-10-batches-py/data_batch_1", 8 * 2**30 - 1).tobuf(tarfile.USTAR_FORMAT)
    return _gz_of_raw_tar(raw + b"abc")


ARCHIVES = {
    "header_declares_8GB": (_declared_8gb, "8,589,934,591 bytes declared"),
    "gzip_of_zeros_over_size_cap": (lambda: _tar_bytes([(_info("z/zeros", 3 << 20), b"\0" * (3 << 20))]),
                                    "decompression bomb"),
    "gzip_ratio_bomb": (lambda: _tar_bytes([(_info("z/zeros", 900 << 10), b"\0" * (900 << 10))]), r"more than 20x"),
    "bzip2_ratio_bomb": (lambda: _tar_bytes([(_info("z/zeros", 900 << 10), b"\0" * (900 << 10))], "bz2"),
                         r"more than 20x"),
    "pax_header_bomb": (_pax_bomb, "decompression bomb"),
    "too_many_members": (lambda: _tar_bytes([(_info(f"m/{i}", 1), b"x") for i in range(60)]), "more than 50 members"),
    "absolute_path": (lambda: _tar_bytes([(_info("/tmp/edgecnn-abs", 1), b"x")]), "outside"),
    "dotdot_inside_name": (lambda: _tar_bytes([(_info("a/../../escaped", 1), b"x")]), "outside"),
    "hardlink": (lambda: _tar_bytes([(_info("a/f", 1), b"x"), (_info("a/h", type=tarfile.LNKTYPE, linkname="a/f"), None)]),
                 "link"),
    "char_device": (lambda: _tar_bytes([(_info("a/zero", type=tarfile.CHRTYPE, devmajor=1, devminor=5), None)]),
                    "special"),
    "fifo_member": (lambda: _tar_bytes([(_info("a/pipe", type=tarfile.FIFOTYPE), None)]), "special"),
    "locked_folder_then_bomb": (lambda: _tar_bytes([(_info("d", type=tarfile.DIRTYPE, mode=0), None),
                                                    (_info("d/f", 1), b"x"),
                                                    (_info("d/zeros", 3 << 20), b"\0" * (3 << 20))]),
                                "decompression bomb"),
    "truncated_gzip": (lambda: _tar_bytes([(_info("a/f", 50000), os.urandom(50000))])[:3000], "cannot extract"),
    "not_an_archive": (lambda: b"PK\x03\x04 this is a zip, or nothing at all" * 10, "cannot extract"),
}


@pytest.mark.parametrize("case", sorted(ARCHIVES))
def test_hostile_archive_is_refused_and_leaves_nothing(tmp_path, small_caps, case):
    build, match = ARCHIVES[case]
    archive = tmp_path / "in" / "evil.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(build())
    dest = tmp_path / "in" / "evil-extracted"
    dest.mkdir()
    (dest / "keep.txt").write_text("extracted earlier")
    before = _snapshot(tmp_path)
    with pytest.raises(DataError) as e:
        cifar.extract_archive(archive, dest)
    _one_line(e, match)
    assert _snapshot(tmp_path) == before  # no partial folder, dest untouched
    assert not Path("/tmp/edgecnn-abs").exists()


def test_bomb_archive_via_cli_train(tmp_path, small_caps):
    archive = tmp_path / "cifar.tar.gz"
    archive.write_bytes(_declared_8gb())
    before = _snapshot(tmp_path)
    r = _cli(["train", "quicknet", "--data", str(archive), "--runs-dir", str(tmp_path / "runs")])
    assert "decompression bomb" in _cli_error(r, 6)
    assert _snapshot(tmp_path) == before  # no runs/, no cifar-extracted/


@pytest.mark.parametrize("via_link", [False, True], ids=["fifo", "symlink_to_fifo"])
def test_archive_that_is_a_fifo_is_not_opened(tmp_path, via_link):
    fifo = tmp_path / "pipe.tar.gz"
    os.mkfifo(fifo)
    path = fifo
    if via_link:
        path = tmp_path / "link.tar.gz"
        path.symlink_to(fifo)
    with _deadline(), pytest.raises(DataError) as e:
        load_dataset(str(path))
    _one_line(e, "FIFO")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({fifo.name, path.name})


def _interrupt_extraction_at(monkeypatch, n: int) -> None:
    """A Ctrl-C while the ``n``-th archive member is extracted (the real extraction up to then)."""
    real, calls = cifar._extract_member, []

    def flaky(tar, m, dest):
        calls.append(m.name)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(tar, m, dest)

    monkeypatch.setattr(cifar, "_extract_member", flaky)


def test_interrupted_extraction_leaves_no_folder(tmp_path, monkeypatch):
    archive = tmp_path / "c.tar.gz"
    _cifar10_targz(archive, tmp_path)
    _interrupt_extraction_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        cifar.extract_archive(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tar.gz", "src"]


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EACCES], ids=["ENOSPC", "EROFS", "EACCES"])
def test_write_error_during_extraction_names_the_path(tmp_path, monkeypatch, err):
    archive = tmp_path / "c.tar.gz"
    _cifar10_targz(archive, tmp_path)

    def failing(tar, m, dest):
        raise OSError(err, os.strerror(err), str(dest / m.name))

    monkeypatch.setattr(cifar, "_extract_member", failing)
    with pytest.raises(DataError) as e:
        cifar.extract_archive(archive, tmp_path / "out")
    msg = _one_line(e, os.strerror(err))
    assert "cifar-10-batches-py" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tar.gz", "src"]


def test_member_name_too_long(tmp_path):
    archive = tmp_path / "long.tar"
    archive.write_bytes(_tar_bytes([(_info("d/" + "n" * 300, 1), b"x")], compress=None))
    with pytest.raises(DataError) as e:
        cifar.extract_archive(archive, tmp_path / "out")
    _one_line(e, "too long")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.tar"]


# ---------------------------------------------------------------------------- 2. images
def _img_folder(root: Path, n=3):
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def _tiff_named_png(path):
    Image.new("RGB", (8, 8)).save(path, format="TIFF")


IMAGES = {
    # name: (build(path), match); each file is dropped into a class folder as cat/x.png
    "pil_decompression_bomb_error": (lambda p: p.write_bytes(_png_header(20000, 20000)), "decompression bomb"),
    "pil_decompression_bomb_warning": (lambda p: p.write_bytes(_png_header(10000, 10000)), "decompression bomb"),
    "over_our_pixel_cap": (lambda p: p.write_bytes(_png_header(8000, 8000)), "more than the 50,000,000"),
    "fifo": (lambda p: os.mkfifo(p), "FIFO"),
    "symlink_to_char_device": (lambda p: p.symlink_to("/dev/zero"), "character device"),
    "dangling_symlink": (lambda p: p.symlink_to(p.parent / "gone.png"), "No such file"),
    "tiff_under_png_name": (_tiff_named_png, "not a readable image"),
    "truncated_png": (lambda p: p.write_bytes(_png_header(64, 64)[:40]), "not a readable image"),
    # 100,000 pixels in a few hundred bytes; fitted to 16x16 it would be resized to 16 x 1,600,000 floats x 3
    "extreme_aspect_strip": (lambda p: Image.new("RGB", (100_000, 1)).save(p), "aspect ratio is too extreme"),
}


@pytest.mark.parametrize("case", sorted(IMAGES))
def test_hostile_image_in_a_folder(tmp_path, case):
    build, match = IMAGES[case]
    root = _img_folder(tmp_path / "imgs")
    bad = root / "cat" / "x.png"
    build(bad)
    before = _snapshot(tmp_path)
    with _deadline():
        with pytest.raises(DataError) as e:
            load_dataset(str(root), (16, 16, 3))
        assert str(bad) in _one_line(e, match)
        ds = load_dataset(str(root), (16, 16, 3), skip_bad=True)  # --skip-bad-images: skipped and counted
    assert ds.skipped == [str(bad)] and len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 6
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("case", ["pil_decompression_bomb_error", "fifo", "symlink_to_char_device", "truncated_png",
                                  "extreme_aspect_strip"])
def test_hostile_image_to_classify(tmp_path, case):
    from edgecnn.data.preprocess import fit_image, spec_for

    build, match = IMAGES[case]
    bad = tmp_path / "x.png"
    build(bad)
    with _deadline(), pytest.raises(DataError) as e:
        fit_image(classify_read_image(bad), spec_for((32, 32, 3)))  # what Classifier.scores does with it
    _one_line(e, match)


def test_image_file_over_byte_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_IMAGE_BYTES", 100)
    p = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(p)
    with pytest.raises(DataError) as e:
        folders.read_image(p, None)
    _one_line(e, "more than the 100 an image may have")


def test_image_folder_too_big_for_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    root = _img_folder(tmp_path / "imgs")
    monkeypatch.setattr(limits, "MEMORY_BUDGET", 5 * 16 * 16 * 3)  # 6 images need 6 x 768 bytes
    monkeypatch.setattr(limits, "load_image", lambda *a, **k: pytest.fail("decoded an image first"))
    with pytest.raises(DataError) as e:
        load_dataset(str(root), (16, 16, 3))
    _one_line(e, r"6 images \(such as .*\.png\) at 16x16x3 \(4,608 bytes\) need .* memory budget")


def test_hostile_image_via_cli_train(tmp_path):
    root = _img_folder(tmp_path / "imgs")
    (root / "dog" / "bomb.png").write_bytes(_png_header(20000, 20000))
    before = _snapshot(tmp_path)
    r = _cli(["train", "quicknet", "--data", str(root), "--runs-dir", str(tmp_path / "runs")])
    assert "bomb.png" in _cli_error(r, 6)
    assert _snapshot(tmp_path) == before


def _tiny_imagenet(root: Path):
    rng = np.random.default_rng(0)
    for w in ("n01", "n02"):
        (root / "train" / w / "images").mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "train" / w / "images" / "a.JPEG")
    (root / "val" / "images").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "val" / "images" / "v.JPEG")
    (root / "val" / "val_annotations.txt").write_text("v.JPEG\tn01\n")
    return root


@pytest.mark.parametrize("case", ["annotation_path_escape", "words_txt_fifo", "annotations_not_utf8"])
def test_hostile_tiny_imagenet_text_files(tmp_path, case):
    root = _tiny_imagenet(tmp_path / "tiny")
    if case == "annotation_path_escape":
        (root / "val" / "val_annotations.txt").write_text("../../../etc/passwd\tn01\n")
        match = "not a file name"
    elif case == "words_txt_fifo":
        os.mkfifo(root / "words.txt")
        match = "FIFO"
    else:
        (root / "val" / "val_annotations.txt").write_bytes(b"v.JPEG\tn01\n\xff\xfe\n")
        match = "not UTF-8"
    with _deadline(), pytest.raises(DataError) as e:
        load_dataset(str(root), (32, 32, 3))
    _one_line(e, match)


def _idx(dims, payload=b"", gz=True):
    raw = b"\0\0\x08" + bytes([len(dims)]) + struct.pack(">" + "I" * len(dims), *dims) + payload
    import gzip

    return gzip.compress(raw, compresslevel=1) if gz else raw


@pytest.mark.parametrize("case, data, match", [pytest.param(*p, id=p[0]) for p in [
    ("header_declares_3TB", _idx((4_000_000_000, 28, 28), b"\0" * 100), "more than the"),
    ("gzip_longer_than_header", _idx((2, 2, 2), b"\0" * 100_000), "holds more bytes"),
    ("five_dimensions", _idx((1, 1, 1, 1, 1), b"\0"), "1 to 4 dimensions"),
    ("truncated_header", _idx((10, 28, 28))[:12], "truncated|cannot read"),
]])
def test_hostile_idx_file(tmp_path, case, data, match):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(data)
    with pytest.raises(DataError) as e:
        folders.read_idx(p)
    _one_line(e, match)


# ---------------------------------------------------------------------------- 3. CIFAR batches
def _deep_list_pickle(depth=100_000) -> bytes:
    # {'data': [[[[...]]]] nested depth deep, 'labels': []}, written opcode by opcode (pickle.dump
    # itself would hit the recursion limit).
    key = lambda s: b"X" + struct.pack("<I", len(s)) + s.encode()  # noqa: E731
    return (b"\x80\x02}" + key("data") + b"]" * depth + b"a" * (depth - 1) + b"s"
            + key("labels") + b"]s.")


def _bytes8_pickle(n) -> bytes:
    # a bytes object that declares n bytes (BINBYTES8) but holds three
    return b"\x80\x04}\x8c\x04data\x8e" + struct.pack("<Q", n) + b"abc"


def _lying_ndarray_pickle() -> bytes:
    # an ndarray pickle whose shape claims 2**30 x 3072 over 6 KB of data
    s = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=2)
    return s.replace(b"K\x02M\x00\x0c\x86", b"J\x00\x00\x00\x40M\x00\x0c\x86", 1)


def _with(**kw):
    d = _batch_dict()
    for k, v in kw.items():
        d[k.encode()] = v
    return pickle.dumps(d, protocol=2)


BATCHES = {
    "data_is_a_string": (lambda: _with(data="x" * 3072), "string values"),
    "data_float_nan": (lambda: _with(data=np.full((4, 3072), np.nan)), "floating-point"),
    "data_float_integral": (lambda: _with(data=np.ones((4, 3072), np.float64)), "floating-point"),
    "data_int16_out_of_range": (lambda: _with(data=np.full((4, 3072), 300, np.int16)), "outside 0..255"),
    "data_bytes_dtype": (lambda: _with(data=np.array([b"ab"] * 4)), "bytes values"),
    "data_wrong_row_size": (lambda: _with(data=np.zeros((4, 100), np.uint8)), r"shape \(4, 100\)"),
    "data_empty": (lambda: _with(data=np.zeros((0, 3072), np.uint8), labels=[]), r"shape \(0, 3072\)"),
    "data_ragged_lists": (lambda: _with(data=[[1, 2], [3]]), "not a regular array"),
    "data_absurd_nesting": (lambda: _deep_list_pickle(), "not a regular array|nested too deeply"),
    "data_declares_8GB": (lambda: _bytes8_pickle(2**33), "truncated"),
    "data_declares_2_60_bytes": (lambda: _bytes8_pickle(2**60), "declares more data than memory holds"),
    "bytes_call_with_size": (lambda: b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x40\x85R.", r"unexpected bytes\(int\)"),
    "ndarray_shape_lies": (_lying_ndarray_pickle, "not a readable CIFAR batch"),
    "labels_strings": (lambda: _with(labels=["cat"] * 4), "string values"),
    "labels_negative": (lambda: _with(labels=[0, -1, 2, 3]), r"run -1\.\.3"),
    "labels_beyond_classes": (lambda: _with(labels=[0, 1, 2, 10]), r"run 0\.\.10, expected 0\.\.9"),
    "labels_nan": (lambda: _with(labels=[0.0, float("nan"), 1.0, 2.0]), "floating-point"),
    "labels_2_to_the_70": (lambda: _with(labels=[0, 1, 2, 2**70]), "mixed or object"),
    "labels_wrong_length": (lambda: _with(labels=[0, 1]), "4 images but 2 labels"),
    "not_a_dict": (lambda: pickle.dumps([1, 2, 3], protocol=2), "expected a dict"),
    "unknown_global": (lambda: b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.", "builtins.eval"),
}


@pytest.mark.parametrize("case", sorted(BATCHES))
def test_hostile_cifar_batch(tmp_path, case):
    build, match = BATCHES[case]
    root = _cifar10_folder(tmp_path / "cifar-10-batches-py")
    (root / "data_batch_3").write_bytes(build())
    before = _snapshot(tmp_path)
    with pytest.raises(DataError) as e:
        load_dataset(str(root), (32, 32, 3))
    assert "data_batch_3" in _one_line(e, match)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("case, names, match", [pytest.param(*p, id=p[0]) for p in [
    ("names_not_a_list", 7, "list of 2 to"),
    ("one_name", [b"only"], "list of 2 to"),
    ("names_not_utf8", [b"\xff\xfe", b"b"], "not UTF-8"),
    ("fewer_names_than_labels", [b"a", b"b"], r"expected 0\.\.1 for 2 classes"),
]])
def test_hostile_cifar_meta(tmp_path, case, names, match):
    root = _cifar10_folder(tmp_path / "c")
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names}, f, protocol=2)
    with pytest.raises(DataError) as e:
        cifar.load_cifar(root)
    _one_line(e, match)


@pytest.mark.parametrize("case", ["fifo", "symlink_to_dev_zero", "over_size_cap"])
def test_cifar_batch_that_is_not_a_file(tmp_path, monkeypatch, case):
    root = _cifar10_folder(tmp_path / "c")
    (root / "test_batch").unlink()
    if case == "fifo":
        os.mkfifo(root / "test_batch")
        match = "FIFO"
    elif case == "symlink_to_dev_zero":
        (root / "test_batch").symlink_to("/dev/zero")
        match = "character device"
    else:
        (root / "test_batch").write_bytes(b"\0" * 5000)
        monkeypatch.setattr(limits, "MAX_BATCH_BYTES", 4096)
        match = "more than the 4,096"
    with _deadline(), pytest.raises(DataError) as e:
        cifar.load_cifar(root)
    _one_line(e, match)


# ---------------------------------------------------------------------------- 4. download
class _Response(io.BytesIO):
    def __init__(self, data, length=None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data) if length is None else length)}


@pytest.fixture
def fake_net(monkeypatch, tmp_path):
    """urlopen replaced: serves the bytes in state['data'] (or raises state['error']); counts calls."""
    state = {"calls": 0, "length": None, "error": None}

    def urlopen(url, timeout=None):
        state["calls"] += 1
        if state["error"]:
            raise state["error"]
        return _Response(state["data"], state["length"])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    archive = tmp_path / "build" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    state["good"] = state["data"] = _cifar10_targz(archive, tmp_path / "build")
    monkeypatch.setitem(cifar.MD5, "cifar10", hashlib.md5(state["good"]).hexdigest())
    return state


def test_download_checksum_mismatch_leaves_nothing(tmp_path, fake_net):
    good = fake_net["good"]
    fake_net["data"] = good[:100] + bytes([good[100] ^ 1]) + good[101:]  # one bit flipped
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as e:
        cifar.download("cifar10", cache)
    _one_line(e, "checksum mismatch")
    assert list(cache.iterdir()) == []


def test_download_good_archive_once(tmp_path, fake_net, capsys):
    cache = tmp_path / "cache"
    folder = cifar.download("cifar10", cache)
    assert capsys.readouterr().err == ""  # no progress bar when stderr is not a terminal
    assert folder == cache / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir()) == sorted(cifar.REQUIRED["cifar10"])
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    fake_net["error"] = AssertionError("downloaded twice")
    assert cifar.download("cifar10", cache) == folder
    assert fake_net["calls"] == 1


def test_download_progress_in_bytes_on_a_terminal(tmp_path, fake_net, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    err = Tty()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr("sys.stdout", Tty())
    cifar.download("cifar10", tmp_path / "cache")
    total = len(fake_net["good"]) / 1e6
    assert f"{total:.1f}/{total:.1f} MB" in err.getvalue() and "Downloading cifar-10-python.tar.gz" in err.getvalue()
    assert "Extracting cifar-10-python.tar.gz" in err.getvalue()


def test_no_progress_bar_when_stdout_is_not_a_terminal(tmp_path, fake_net, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    err = Tty()
    monkeypatch.setattr("sys.stderr", err)  # a terminal, but the output goes to a file or a pipe
    cifar.download("cifar10", tmp_path / "cache")
    assert err.getvalue() == ""


def test_download_interrupted_extraction_is_not_a_dataset(tmp_path, fake_net, monkeypatch):
    cache = tmp_path / "cache"
    real = cifar._extract_member
    _interrupt_extraction_at(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        cifar.download("cifar10", cache)
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-python.tar.gz"]  # verified archive only
    monkeypatch.setattr(cifar, "_extract_member", real)
    assert cifar.missing_files(cifar.download("cifar10", cache), "cifar10") == []  # and the next run completes


@pytest.mark.parametrize("case", ["truncated_transfer", "network_down", "announced_too_big", "endless_body",
                                  "trickling_server"])
def test_download_failures_leave_nothing(tmp_path, fake_net, monkeypatch, case):
    if case == "endless_body":  # no Content-Length, and more bytes than any CIFAR archive
        monkeypatch.setattr(cifar, "MAX_DOWNLOAD_BYTES", 3 << 20)
        fake_net["data"], fake_net["length"] = b"\0" * (4 << 20), 0
        match = "more than 3,145,728 bytes"
    elif case == "trickling_server":
        monkeypatch.setattr(cifar, "MAX_DOWNLOAD_SECONDS", -1)
        match = "not done; giving up"
    elif case == "truncated_transfer":
        fake_net["data"], fake_net["length"] = fake_net["good"][:1000], len(fake_net["good"])
        match = "stopped at 1,000"
    elif case == "network_down":
        fake_net["error"] = urllib.error.URLError("Name or service not known")
        match = "Cannot download .*Name or service not known"
    else:
        fake_net["data"], fake_net["length"] = b"", 10 << 30
        match = "announces 10,737,418,240 bytes"
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as e:
        cifar.download("cifar10", cache)
    _one_line(e, match)
    assert list(cache.iterdir()) == []


def test_download_checksum_mismatch_via_cli(tmp_path, fake_net):
    fake_net["data"] = b"\x1f\x8b not the dataset"
    cache = tmp_path / "cache"
    r = _cli(["train", "quicknet", "--data", "cifar10", "--runs-dir", str(tmp_path / "runs")],
             env={"EDGECNN_DATA": str(cache)})
    assert "checksum mismatch" in _cli_error(r, 6)
    assert list(cache.iterdir()) == [] and not (tmp_path / "runs").exists()


def test_incomplete_cache_folder_is_not_taken_for_a_dataset(tmp_path, fake_net):
    cache = tmp_path / "cache"
    _cifar10_folder(cache / "cifar-10-batches-py")
    (cache / "cifar-10-batches-py" / "data_batch_5").unlink()
    before = _snapshot(cache)
    with pytest.raises(DataError) as e:
        cifar.download("cifar10", cache)
    _one_line(e, "incomplete dataset .*data_batch_5")
    assert _snapshot(cache) == before and fake_net["calls"] == 0


# ---------------------------------------------------------------------------- 5. output paths
def _readonly_dir(tmp_path):
    if ROOT:
        if not Path("/sys").is_dir():
            pytest.skip("running as root and no /sys: no folder that refuses writes")
        return Path("/sys/edgecnn-hostile-test")  # sysfs: EPERM even for root
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    return d / "cache"


@pytest.mark.parametrize("case", ["read_only", "over_long", "parent_is_a_file"])
def test_unusable_cache_dir(tmp_path, fake_net, case):
    if case == "read_only":
        cache, match = _readonly_dir(tmp_path), "Operation not permitted|Permission denied"
    elif case == "over_long":
        cache, match = tmp_path / ("x" * 300), "too long"
    else:
        (tmp_path / "file").write_text("x")
        cache, match = tmp_path / "file" / "cache", "Not a directory"
    with pytest.raises(DataError) as e:
        cifar.download("cifar10", cache)
    assert str(cache) in _one_line(e, match)
    assert fake_net["calls"] == 0


def test_unwritable_extraction_folder(tmp_path, monkeypatch):
    archive = tmp_path / "c.tar.gz"
    _cifar10_targz(archive, tmp_path)
    dest = _readonly_dir(tmp_path) / "out"
    with pytest.raises(DataError) as e:
        cifar.extract_archive(archive, dest)
    _one_line(e, "Operation not permitted|Permission denied|No such file")


# ---------------------------------------------------------------------------- 6. options
OPTIONS = {
    "export_max_drop_nan": ["export", "quicknet", "--max-drop", "nan"],
    "export_max_drop_inf": ["export", "quicknet", "--max-drop", "inf"],
    "export_max_drop_negative": ["export", "quicknet", "--max-drop", "-1"],
    "export_calibration_zero": ["export", "quicknet", "--calibration", "0"],
    "export_prune_nan": ["export", "quicknet", "--prune", "nan"],
    "export_cluster_one": ["export", "quicknet", "--cluster", "1"],
    "verify_max_drop_nan": ["verify", "x", "--max-drop", "nan"],
    "pipeline_max_drop_inf": ["pipeline", "quicknet", "--max-drop", "inf"],
    "pipeline_epochs_zero": ["pipeline", "quicknet", "--epochs", "0"],
    "pipeline_max_train_negative": ["pipeline", "quicknet", "--max-train-images", "-5"],
    "eval_max_images_zero": ["eval", "x", "--max-images", "0"],
    "train_seed_negative": ["train", "quicknet", "--seed", "-1"],
    "train_input_shape_zero_side": ["train", "quicknet", "--input-shape", "0,32,3"],
    "train_input_shape_zero_channels": ["train", "quicknet", "--input-shape", "32,32,0"],
    "train_input_shape_two_dims": ["train", "quicknet", "--input-shape", "32,32"],
    "train_input_shape_huge": ["train", "quicknet", "--input-shape", "99999,99999,3"],
    "train_epochs_zero": ["train", "quicknet", "--epochs", "0"],
    "train_batch_size_zero": ["train", "quicknet", "--batch-size", "0"],
    "train_max_train_images_zero": ["train", "quicknet", "--max-train-images", "0"],
    "train_max_test_images_zero": ["train", "quicknet", "--max-test-images", "0"],
    "train_folds_zero": ["train", "quicknet", "--folds", "0"],
    "train_lr_nan": ["train", "quicknet", "--lr", "nan"],
    "train_val_fraction_one": ["train", "quicknet", "--val-fraction", "1"],
    "benchmark_seconds_nan": ["benchmark", "x.tflite", "--seconds", "nan"],
    "benchmark_seconds_zero": ["benchmark", "x.tflite", "--seconds", "0"],
    "benchmark_seconds_inf": ["benchmark", "x.tflite", "--seconds", "inf"],
    "benchmark_runs_zero": ["benchmark", "x.tflite", "--runs", "0"],
    "benchmark_warmup_negative": ["benchmark", "x.tflite", "--warmup", "-1"],
    "benchmark_batch_zero": ["benchmark", "x.tflite", "--batch", "0"],
    "bundle_images_too_many": ["bundle", "android", "x", "--images", "101"],
    "classify_frames_negative": ["classify", "x", "--camera", "--frames", "-1"],
}


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_option_out_of_range_is_a_usage_error_before_any_work(tmp_path, case):
    args = OPTIONS[case]
    value = args[-1]
    if args[0] in ("train", "pipeline", "export"):
        args = args + ["--runs-dir", str(tmp_path / "runs")]
    cwd = os.getcwd()
    os.chdir(tmp_path)  # anything a command would write lands here
    try:
        line = _cli_error(_cli(args), 2)
    finally:
        os.chdir(cwd)
    assert repr(value) in line or value in line, line
    assert list(tmp_path.iterdir()) == []


def test_unknown_family_did_you_mean():
    line = _cli_error(_cli(["models", "--family", "quiknet"]), 2)
    assert "unknown family 'quiknet'" in line and "Did you mean: quicknet?" in line


# ---------------------------------------------------------------------------- 7. the preprocessing spec a manifest carries
@pytest.mark.parametrize("case, change, match", [pytest.param(*p, id=p[0]) for p in [
    ("crop_fraction_tiny", {"crop_fraction": 1e-9}, "crop_fraction"),  # fit_image would resize to 3e10 pixels
    ("input_side_huge", {"input_size": [10**6, 32]}, "input_size"),
    ("std_zero", {"std": [0.0, 0.2, 0.2]}, "std must be > 0"),
    ("mean_wrong_length", {"mean": [0.5]}, "mean must be 3"),
    ("scale_nan", {"scale": "nan"}, "scale must be a finite"),
    ("channels_four", {"channels": 4}, "channels must be 1 or 3"),
    ("input_size_missing", {"input_size": None}, "input_size"),
]])
def test_hostile_preprocessing_spec(case, change, match):
    from edgecnn.data.preprocess import PreprocessSpec, spec_for

    d = dict(spec_for((32, 32, 3)).to_dict(), **change)
    with pytest.raises(DataError) as e:
        PreprocessSpec.from_dict(d)
    _one_line(e, match)
    assert isinstance(e.value, ValueError)  # classify's manifest check turns it into a ModelFileError

"""Datasets: real CIFAR files and images, and crafted bad ones (hostile pickle, escaping tar,
empty class, corrupt jpg, inconsistent batches); the tf.data pipeline against the one spec."""
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import edgecnn  # noqa: F401
from edgecnn.data import load_dataset
from edgecnn.data.cifar import extract_archive, load_cifar, read_batch
from edgecnn.data.preprocess import preprocess
from edgecnn.data.sample import load_sample
from edgecnn.errors import DataError

SUBSET = Path("/work/shared/data/cifar10-subset/cifar-10-batches-py")


@pytest.fixture(scope="module")
def sample():
    return load_sample()


def _write_batch(path, x, y, **extra):
    d = {b"batch_label": b"test", b"labels": [int(v) for v in y],
         b"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1), b"filenames": [b"f%d.png" % i for i in range(len(x))]}
    d.update(extra)
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


def _cifar_folder(root: Path, sample, n_train=60, n_test=30):
    (x_tr, y_tr), (x_te, y_te), names = sample
    root.mkdir(parents=True)
    _write_batch(root / "data_batch_1", x_tr[:n_train // 2], y_tr[:n_train // 2])
    _write_batch(root / "data_batch_2", x_tr[n_train // 2:n_train], y_tr[n_train // 2:n_train])
    _write_batch(root / "test_batch", x_te[:n_test], y_te[:n_test])
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in names], b"num_vis": 3072}, f, protocol=2)
    return root


def test_sample_dataset_splits(sample):
    ds = load_dataset("sample", (32, 32, 3), val_fraction=0.1, seed=0)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape[1:] == (32, 32, 3)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (1800, 200, 500)
    assert np.bincount(ds.y_val, minlength=10).tolist() == [20] * 10  # stratified
    assert ds.labels[0] == "airplane" and ds.num_classes == 10
    spec = ds.spec((24, 24, 3))
    assert spec.crop_fraction == 0.75 and spec.input_size == (24, 24)
    small = load_dataset("sample", (32, 32, 3), max_train=100, max_test=40)
    assert (len(small.x_train), len(small.x_test)) == (100, 40)


def test_cifar_folder_and_targz_roundtrip(tmp_path, sample):
    root = _cifar_folder(tmp_path / "cifar-10-batches-py", sample)
    (x_tr, y_tr), (x_te, y_te), names, _ = load_cifar(root)
    np.testing.assert_array_equal(x_tr, sample[0][0][:60])
    np.testing.assert_array_equal(y_te, sample[1][1][:30])
    assert names == sample[2]
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="cifar-10-batches-py")
    (x2, _), _, _, _ = load_cifar(archive)
    np.testing.assert_array_equal(x2, x_tr)
    ds = load_dataset(str(root), (32, 32, 3), val_fraction=0.0)
    assert ds.name == "cifar10" and len(ds.x_train) == 60 and ds.source_size == 32


@pytest.mark.skipif(not SUBSET.exists(), reason="shared CIFAR-10 subset not on this machine")
def test_real_cifar_subset_batches():
    x, y = read_batch(SUBSET / "test_batch")
    assert x.shape == (800, 32, 32, 3) and x.dtype == np.uint8 and set(np.unique(y)) == set(range(10))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_is_refused_without_running(tmp_path, sample):
    root = _cifar_folder(tmp_path / "c", sample)
    marker = tmp_path / "pwned"
    with open(root / "data_batch_2", "wb") as f:
        pickle.dump({b"data": _Payload(marker), b"labels": []}, f, protocol=2)
    # The payload is live: a plain pickle.load would run it.
    live = tmp_path / "live"
    pickle.loads(pickle.dumps(_Payload(live)))
    assert live.exists()
    with pytest.raises(DataError, match=r"data_batch_2.*os|data_batch_2.*posix|system"):
        load_cifar(root)
    assert not marker.exists()


def test_inconsistent_batch_names_file(tmp_path, sample):
    root = _cifar_folder(tmp_path / "c", sample)
    x = sample[0][0][:10]
    _write_batch(root / "data_batch_2", x, [1, 2, 3])
    with pytest.raises(DataError, match=r"data_batch_2: 10 images but 3 labels"):
        load_cifar(root)
    with open(root / "data_batch_2", "wb") as f:
        f.write(b"\x80\x02}q\x00(X\x04")  # truncated pickle
    with pytest.raises(DataError, match="data_batch_2"):
        load_cifar(root)


def test_tar_escaping_paths_and_links_are_refused(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(DataError, match="outside"):
        extract_archive(bad, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    link = tmp_path / "link.tar"
    with tarfile.open(link, "w") as tar:
        info = tarfile.TarInfo("cifar/data_batch_1")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DataError, match="link"):
        extract_archive(link, tmp_path / "out2")
    assert not (tmp_path / "out2" / "cifar" / "data_batch_1").exists()


def _image_folder(root: Path, sample, per_class=6, classes=(0, 1, 2), fmt="png"):
    (x, y), _, names = sample
    for c in classes:
        d = root / names[c]
        d.mkdir(parents=True, exist_ok=True)
        for i, idx in enumerate(np.flatnonzero(y == c)[:per_class]):
            Image.fromarray(x[idx]).resize((40, 48)).save(d / f"{i}.{fmt}")
    return root


def test_image_folder_split_and_fit(tmp_path, sample):
    root = _image_folder(tmp_path / "imgs", sample)
    (root / "airplane" / "README.txt").write_text("ignored: not an image suffix")
    ds = load_dataset(str(root), (32, 32, 3), val_fraction=0.34, seed=1)
    assert ds.labels == ["airplane", "automobile", "bird"]
    # one folder of classes: test (0.2 of each class) held out first, validation (0.34 of the rest)
    assert np.bincount(ds.y_test).tolist() == [1, 1, 1] and np.bincount(ds.y_val).tolist() == [2, 2, 2]
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 18
    assert ds.x_train.shape[1:] == (32, 32, 3) and ds.source_size is None
    again = load_dataset(str(root), (32, 32, 3), val_fraction=0.34, seed=1)
    np.testing.assert_array_equal(again.y_val, ds.y_val)
    np.testing.assert_array_equal(again.x_test, ds.x_test)
    tv = tmp_path / "tv"
    _image_folder(tv / "train", sample, per_class=4, fmt="jpg")
    _image_folder(tv / "val", sample, per_class=2, fmt="jpg")
    ds2 = load_dataset(str(tv), (32, 32, 3))
    # val/ without test/ is the test split; validation is carved from train/ (never from test)
    assert (len(ds2.x_train), len(ds2.x_val), len(ds2.x_test)) == (9, 3, 6)
    assert ds2.sources["test"].startswith("val/") and "train/" in ds2.sources["val"]


def test_image_folder_errors_name_the_file(tmp_path, sample):
    root = _image_folder(tmp_path / "imgs", sample)
    (root / "empty_class").mkdir()
    with pytest.raises(DataError, match=r"empty_class.*no images"):
        load_dataset(str(root), (32, 32, 3))
    (root / "empty_class").rmdir()
    bad = root / "bird" / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.raises(DataError, match="corrupt.jpg"):
        load_dataset(str(root), (32, 32, 3))
    ds = load_dataset(str(root), (32, 32, 3), skip_bad=True)
    assert ds.skipped == [str(bad)] and len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 18
    with pytest.raises(DataError, match="no class subfolders"):
        load_dataset(str(tmp_path / "imgs" / "bird"), (32, 32, 3))


def test_tiny_imagenet_layout(tmp_path, sample):
    (x, y), _, _ = sample
    root = tmp_path / "tiny"
    wnids = ["n01443537", "n01629819"]
    lines = []
    for c, w in enumerate(wnids):
        d = root / "train" / w / "images"
        d.mkdir(parents=True)
        for i, idx in enumerate(np.flatnonzero(y == c)[:3]):
            Image.fromarray(x[idx]).resize((64, 64)).save(d / f"{w}_{i}.JPEG")
        vimg = root / "val" / "images"
        vimg.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[np.flatnonzero(y == c)[5]]).resize((64, 64)).save(vimg / f"val_{c}.JPEG")
        lines.append(f"val_{c}.JPEG\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (root / "words.txt").write_text("n01443537\tgoldfish, Carassius auratus\nn01629819\tEuropean fire salamander\n")
    ds = load_dataset(str(root), (32, 32, 3), val_fraction=0.34)
    assert ds.name == "tiny_imagenet" and ds.labels == ["goldfish", "European fire salamander"]
    assert ds.y_test.tolist() == [0, 1] and len(ds.x_train) == 4 and ds.x_train.shape[1:] == (32, 32, 3)
    Image.fromarray(x[0]).save(root / "train" / wnids[0] / "images" / "small.JPEG")  # 32x32: not Tiny ImageNet
    with pytest.raises(DataError, match=r"small.JPEG: image is 32x32"):
        load_dataset(str(root), (32, 32, 3))


def test_unknown_data_name():
    with pytest.raises(DataError, match="cifar10"):
        load_dataset("cifar1O", (32, 32, 3))


def test_pipeline_eval_equals_spec_and_train_is_seeded(sample):
    from edgecnn.data.tfdata import Augment, make_dataset

    (x, y), _, _ = sample
    x, y = x[:40], y[:40]
    ds = load_dataset("sample", (32, 32, 3), max_train=10)
    for shape in ((32, 32, 3), (24, 24, 3), (40, 40, 3)):
        spec = ds.spec(shape)
        got = np.concatenate([b[0].numpy() for b in make_dataset(x, y, spec, batch_size=16)])
        np.testing.assert_array_equal(got, preprocess(x, spec))  # bit-exact, resize and crops included
    spec = ds.spec((24, 24, 3))
    aug = Augment(crop_pad=2, flip=True, brightness=63.0, contrast=(0.2, 1.8))

    def first(seed):
        return next(iter(make_dataset(x, y, spec, batch_size=8, training=True, augment=aug, seed=seed)))

    a, b, c = first(3), first(3), first(4)
    assert a[0].shape == (8, 24, 24, 3) and a[0].dtype.name == "float32"
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    assert not np.array_equal(a[0].numpy(), c[0].numpy())


# ---------------------------------------------------------------------------- folder layouts
def _split_folders(root: Path, sample, names: dict, per_class: dict):
    """root/<folder name>/<class>/ for each split role (names: role -> folder name as written),
    each image a distinct real CIFAR-10 image (disjoint across splits, so a merge shows)."""
    (x, y), _, labels = sample
    used = 0
    for role, folder in names.items():
        for c in (0, 1, 2):
            d = root / folder / labels[c]
            d.mkdir(parents=True)
            for i, idx in enumerate(np.flatnonzero(y == c)[used:used + per_class[role]]):
                Image.fromarray(x[idx]).save(d / f"{role}{i}.png")
        used += per_class[role]
    return root


def _rows(a: np.ndarray) -> set:
    return {r.tobytes() for r in a}


@pytest.mark.parametrize("names", [
    {"train": "train", "test": "test"},
    {"train": "Train", "val": "Validation", "test": "TEST"},
    {"train": "train", "val": "valid", "test": "test"},
    {"train": "TRAIN", "val": "val"},
], ids=lambda n: "+".join(n.values()))
def test_split_folders_are_read_as_splits_in_any_case(tmp_path, sample, names):
    per = {"train": 6, "val": 2, "test": 3}
    root = _split_folders(tmp_path / "mydata", sample, names, per)
    ds = load_dataset(str(root), (32, 32, 3), seed=0)
    assert ds.labels == ["airplane", "automobile", "bird"]  # the real classes, not train/test
    x_tr, x_va, x_te = _rows(ds.x_train), _rows(ds.x_val), _rows(ds.x_test)
    assert not (x_tr & x_va or x_tr & x_te or x_va & x_te)  # three disjoint splits
    assert ds.sources["train"] == names["train"] + "/"
    if "test" in names:
        assert ds.sources["test"] == names["test"] + "/" and len(ds.x_test) == 9
    else:  # val/ alone is the test split; validation comes from train/
        assert ds.sources["test"].startswith(names["val"] + "/") and len(ds.x_test) == 6
    if "val" in names and "test" in names:
        assert ds.sources["val"] == names["val"] + "/" and len(ds.x_val) == 6
    else:
        assert ds.sources["val"].startswith("seeded 0.1 of " + names["train"] + "/")
    # every image of train/ (and of a validation folder beside test/) is in train or validation
    assert len(ds.x_train) + len(ds.x_val) == 18 + (6 if "test" in names and "val" in names else 0)
    assert ds.describe().startswith("mydata, 3 classes: train ")


def test_one_folder_of_classes_gives_three_disjoint_seeded_splits(tmp_path, sample):
    root = _image_folder(tmp_path / "flat", sample, per_class=20)
    ds = load_dataset(str(root), (32, 32, 3), val_fraction=0.1, seed=3)
    x_tr, x_va, x_te = _rows(ds.x_train), _rows(ds.x_val), _rows(ds.x_test)
    assert len(x_tr) + len(x_va) + len(x_te) == 60 and not (x_tr & x_va or x_tr & x_te or x_va & x_te)
    assert np.bincount(ds.y_test).tolist() == [4, 4, 4] and np.bincount(ds.y_val).tolist() == [2, 2, 2]
    assert "seeded 0.2" in ds.sources["test"] and "seeded 0.1" in ds.sources["val"]
    other = load_dataset(str(root), (32, 32, 3), val_fraction=0.1, seed=4, test_fraction=0.3)
    assert len(other.x_test) == 18 and _rows(other.x_test) != x_te
    np.testing.assert_array_equal(load_dataset(str(root), (32, 32, 3), val_fraction=0.1, seed=3).x_test, ds.x_test)


def test_nested_class_folders_are_refused_with_the_layouts_understood(tmp_path, sample):
    # mydata/photos/<class>/...: the old reader made one class "photos" of every image under it
    root = tmp_path / "mydata"
    _image_folder(root / "photos", sample)
    _image_folder(root / "more", sample)
    with pytest.raises(DataError, match=r"class folder 'more' holds folders of images \(airplane/, automobile/, "
                                        r"bird/\); edgecnn never merges nested.*Layouts understood: DATA/<class>"):
        load_dataset(str(root), (32, 32, 3))
    # a split's class folder with subfolders too
    split = _split_folders(tmp_path / "s", sample, {"train": "train", "test": "test"}, {"train": 4, "test": 2})
    (split / "train" / "bird" / "extra").mkdir()
    Image.fromarray(sample[0][0][0]).save(split / "train" / "bird" / "extra" / "x.png")
    with pytest.raises(DataError, match="'bird' holds folders of images"):
        load_dataset(str(split), (32, 32, 3))


@pytest.mark.parametrize("folders, words", [
    (("train", "val", "validation"), "val/ and validation/ both hold the val split"),
    (("test",), "no train/ folder"),
    (("train", "test", "cats"), "split folders .* and other folders \\(cats/\\)"),
])
def test_ambiguous_split_layouts_are_refused(tmp_path, sample, folders, words):
    root = tmp_path / "d"
    for f in folders:
        _image_folder(root / f, sample, per_class=2)
    with pytest.raises(DataError, match=words):
        load_dataset(str(root), (32, 32, 3))


def test_train_reads_a_train_test_folder_and_prints_where_each_split_came_from(tmp_path, sample):
    from click.testing import CliRunner

    from edgecnn.cli import cli

    root = _split_folders(tmp_path / "mydata", sample, {"train": "train", "test": "test"}, {"train": 8, "test": 4})
    res = CliRunner().invoke(cli, ["train", "alexnet_tiny_dw", "--data", str(root), "--input-shape", "32,32,3",
                                   "--epochs", "1", "--batch-size", "8", "--runs-dir", str(tmp_path / "runs"),
                                   "--name", "r", "--quiet"])
    assert res.exit_code == 0, res.output
    assert ("data: mydata, 3 classes: train 21 (train/), validation 3 (seeded 0.1 of train/ (seed 0)), test 12 "
            "(test/)") in res.output
    info = __import__("json").loads((tmp_path / "runs" / "alexnet_tiny_dw" / "r" / "run.json").read_text())
    assert info["labels"] == ["airplane", "automobile", "bird"] and info["dataset"]["num_test"] == 12
    assert info["dataset"]["sources"] == {"train": "train/", "test": "test/", "val": "seeded 0.1 of train/ (seed 0)"}

"""``load_dataset(name_or_path, input_shape=...)``: every dataset as uint8 train/val/test arrays.

Sources (``--data``):

    sample               the bundled real CIFAR-10 sample (2,000 train / 500 test); offline default
    cifar10, cifar100    the standard download (cached in $EDGECNN_DATA or ~/.cache/edgecnn)
    fashion_mnist        Debian's dataset-fashion-mnist IDX files under /usr/share
    PATH                 a CIFAR-10/100 python-batches folder or .tar.gz; a folder with one
                         subfolder per class (or train/ + val/ [+ test/]); a Tiny ImageNet folder

Splits: ``test`` is the dataset's test split (CIFAR's test_batch, Fashion-MNIST's t10k, a test/
folder); a dataset whose only held-out split is a validation split (train/ + val/ folders, Tiny
ImageNet, whose test labels are secret) uses it as test; one folder of class folders holds out a
seeded, stratified ``test_fraction`` as test. ``val`` is the dataset's own validation split where
it has one besides its test split (train/ + val/ + test/), otherwise a seeded, stratified
``val_fraction`` of the training images. So the test split is never the one training picks its
checkpoint on, and the three splits are disjoint. ``Dataset.sources`` says where each came from.
CIFAR and Fashion-MNIST arrays keep their native size (the training pipeline crops them); image
folders are fitted to the model input at load time.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from edgecnn.data.preprocess import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec, spec_for
from edgecnn.errors import DataError, did_you_mean

CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
FASHION_MEAN = (0.2860,)
FASHION_STD = (0.3530,)
NAMED = ("sample", "cifar10", "cifar100", "fashion_mnist")
TEST_FRACTION = 0.2  # held out as test from a folder of class folders (it has no test split of its own)


@dataclasses.dataclass
class Dataset:
    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: List[str]
    mean: Tuple[float, ...] = CIFAR10_MEAN
    std: Tuple[float, ...] = CIFAR10_STD
    source_size: Optional[int] = None  # native side of a fixed-size dataset (32 for CIFAR)
    skipped: List[str] = dataclasses.field(default_factory=list)
    split: str = ""
    sources: dict = dataclasses.field(default_factory=dict)  # {"train"|"val"|"test": where it came from}

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def spec(self, input_shape: Sequence[int]) -> PreprocessSpec:
        """The one preprocessing spec for a model input on this dataset."""
        c = int(input_shape[2])
        mean, std = self.mean, self.std
        if c == 3 and len(mean) == 1:
            mean, std = mean * 3, std * 3
        return spec_for(input_shape, mean=mean, std=std, source_size=self.source_size)

    def split_arrays(self, split: str) -> Tuple[np.ndarray, np.ndarray]:
        if split not in ("train", "val", "test"):
            raise DataError(f"Unknown split '{split}'; one of train, val, test.")
        return getattr(self, f"x_{split}"), getattr(self, f"y_{split}")

    def info(self) -> dict:
        return {"name": self.name, "source": self.source, "num_train": int(len(self.x_train)),
                "num_val": int(len(self.x_val)), "num_test": int(len(self.x_test)), "split": self.split,
                "sources": dict(self.sources), "skipped_images": len(self.skipped)}

    def describe(self) -> str:
        """One line: each split's size and where it came from."""
        parts = [f"{what} {len(getattr(self, 'x_' + key)):,} ({self.sources.get(key, '?')})"
                 for key, what in (("train", "train"), ("val", "validation"), ("test", "test"))]
        return f"{self.name}, {self.num_classes} classes: " + ", ".join(parts)


def data_cache_dir() -> Path:
    return Path(os.environ.get("EDGECNN_DATA") or Path.home() / ".cache" / "edgecnn")


def _subset(x, y, n: Optional[int], seed: int):
    """A seeded, class-balanced-in-expectation subset of n items (all when n is None or >= len)."""
    if n is None or n >= len(x):
        return x, y
    if n <= 0:
        raise DataError(f"A limit must be a positive number of images; received {n}.")
    idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
    return x[idx], y[idx]


def _reorder(ds: Dataset, classes: Sequence[str]) -> None:
    """Renumber ``ds``'s labels to the order of ``classes`` (the same names, maybe reordered)."""
    classes = [str(c) for c in classes]
    if sorted(classes) != sorted(ds.labels) or len(set(classes)) != len(classes):
        missing = sorted(set(ds.labels) - set(classes))
        extra = sorted(set(classes) - set(ds.labels))
        raise DataError(f"{ds.source}: its classes differ from the model's labels (only in the data: "
                        f"{', '.join(missing[:5]) or '-'}; only in the labels: {', '.join(extra[:5]) or '-'}).")
    if classes == list(ds.labels):
        return
    position = {name: i for i, name in enumerate(classes)}
    new = np.asarray([position[name] for name in ds.labels], np.int64)
    for split in ("train", "val", "test"):
        y = getattr(ds, f"y_{split}")
        if y is not None:
            setattr(ds, f"y_{split}", new[np.asarray(y, np.int64)])
    ds.labels = classes


MAX_LABEL_CHARS = 256  # as the artifact contract's labels (edgecnn.contract.checks)


def _check_class_names(ds: "Dataset") -> None:
    """Class names become the labels every later stage prints and the manifest carries: a name with a
    control character (a folder named with ESC or a line break) or too long is refused here, by name."""
    from edgecnn.core.text import describe_char, shown, unwanted_char

    for name in ds.labels:
        name = str(name)
        ch = unwanted_char(name)
        if ch is not None or not 1 <= len(name) <= MAX_LABEL_CHARS:
            why = f"holds {describe_char(ch)}" if ch is not None else f"has {len(name)} characters (1 to {MAX_LABEL_CHARS})"
            raise DataError(f"{ds.source}: class '{shown(name, 80)}' {why}; rename it.")


def load_dataset(name_or_path="sample", input_shape: Sequence[int] = (32, 32, 3), *, val_fraction: float = 0.1,
                 seed: int = 0, max_train: Optional[int] = None, max_test: Optional[int] = None,
                 skip_bad: bool = False, classes: Optional[Sequence[str]] = None,
                 test_fraction: float = TEST_FRACTION) -> Dataset:
    """Load a dataset by name or path. See the module docstring for the sources and splits.

    ``classes``: the class names in the order of a model's outputs (an imported model trained
    elsewhere): the labels are renumbered to that order by name, and a dataset whose class names
    differ from them is refused.
    """
    from edgecnn.data import cifar, folders, limits

    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction must be in [0, 1); received {val_fraction}.")
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must be in (0, 1); received {test_fraction}.")
    name = str(name_or_path)
    input_shape = tuple(int(v) for v in input_shape)
    if name == "sample":
        from edgecnn.data.sample import SAMPLE_PATH, load_sample

        (x_tr, y_tr), (x_te, y_te), labels = load_sample()
        ds = Dataset("cifar10_sample", str(SAMPLE_PATH), x_tr, y_tr, None, None, x_te, y_te, labels, source_size=32)
    elif name in ("cifar10", "cifar100"):
        root = cifar.download(name, data_cache_dir())
        (x_tr, y_tr), (x_te, y_te), labels, root = cifar.load_cifar(root, name)
        ds = Dataset(name, str(root), x_tr, y_tr, None, None, x_te, y_te, labels, source_size=32)
    elif name == "fashion_mnist":
        d = folders.load_fashion_mnist()
        ds = Dataset(name, str(d["root"]), *d["train"], None, None, *d["test"], d["labels"], FASHION_MEAN,
                     FASHION_STD, source_size=28)
    else:
        path = Path(name).expanduser()
        try:
            os.stat(path)
        except FileNotFoundError:
            pass
        except OSError as e:  # too long, not a directory on the way, permissions, symlink loop
            raise limits.os_error(path, e, "use it as --data") from None
        if not path.exists():
            raise DataError(f"--data '{name}': no such file or folder, and not a dataset name "
                            f"({', '.join(NAMED)}).{did_you_mean(name, NAMED)}")
        if not path.is_dir():
            limits.check_regular(path, "dataset archive")  # a FIFO or device is refused, not opened
        if path.is_file() or any((path / f).exists() for f in ("data_batch_1", "test_batch", "meta", *cifar.FOLDERS.values())):
            (x_tr, y_tr), (x_te, y_te), labels, root = cifar.load_cifar(path)
            variant = "cifar100" if len(labels) == 100 else "cifar10"
            mean, std = (CIFAR100_MEAN, CIFAR100_STD) if variant == "cifar100" else (CIFAR10_MEAN, CIFAR10_STD)
            ds = Dataset(variant, str(root.resolve()), x_tr, y_tr, None, None, x_te, y_te, labels, mean, std,
                         source_size=32)
        elif (path / folders.FASHION_FILES["train"][0]).exists():
            d = folders.load_fashion_mnist(path)
            ds = Dataset("fashion_mnist", str(path.resolve()), *d["train"], None, None, *d["test"], d["labels"],
                         FASHION_MEAN, FASHION_STD, source_size=28)
        else:
            spec = spec_for(input_shape, mean=IMAGENET_MEAN, std=IMAGENET_STD)
            if folders.is_tiny_imagenet(path):
                d = folders.load_tiny_imagenet(path, spec, skip_bad=skip_bad)
                # Tiny ImageNet's test labels are secret: its val/ is our test; val comes from train.
                ds = Dataset("tiny_imagenet", str(path.resolve()), d["x_train"], d["y_train"], None, None,
                             d["x_val"], d["y_val"], d["labels"], IMAGENET_MEAN, IMAGENET_STD,
                             skipped=d["skipped"], split="val/ as test; val from train",
                             sources={"train": "train/", "test": "val/ (test labels are not public)"})
            else:
                d = folders.load_image_folder(path, spec, seed=seed, test_fraction=test_fraction, skip_bad=skip_bad)
                ds = Dataset(path.name, str(path.resolve()), d["x_train"], d["y_train"], d["x_val"], d["y_val"],
                             d["x_test"], d["y_test"], d["labels"], IMAGENET_MEAN, IMAGENET_STD,
                             skipped=d["skipped"], sources=d["sources"], split="folders")
    if len(ds.labels) < 2:
        raise DataError(f"{ds.source}: {len(ds.labels)} class found; a classifier needs at least 2.")
    _check_class_names(ds)
    if classes is not None:
        _reorder(ds, classes)
    ds.sources.setdefault("train", "train split")
    ds.sources.setdefault("test", "test split")
    if ds.x_val is None:
        if val_fraction > 0:
            from edgecnn.data.folders import stratified_split

            keep, held = stratified_split(ds.y_train, val_fraction, seed)
            ds.x_val, ds.y_val = ds.x_train[held], ds.y_train[held]
            ds.x_train, ds.y_train = ds.x_train[keep], ds.y_train[keep]
            ds.sources["val"] = f"seeded {val_fraction:g} of {ds.sources['train']} (seed {seed})"
        else:
            ds.x_val, ds.y_val = ds.x_train[:0], ds.y_train[:0]
            ds.sources["val"] = "none (val_fraction 0)"
        ds.split = ds.split or f"val = seeded stratified {val_fraction} of train (seed {seed})"
    if ds.split == "folders":  # an image folder: where each split came from
        ds.split = "; ".join(f"{k}: {ds.sources[k]}" for k in ("train", "val", "test"))
    ds.x_train, ds.y_train = _subset(ds.x_train, ds.y_train, max_train, seed)
    if max_train is not None:
        ds.x_val, ds.y_val = _subset(ds.x_val, ds.y_val, max(1, int(round(max_train * max(val_fraction, 0.1)))), seed)
    ds.x_test, ds.y_test = _subset(ds.x_test, ds.y_test, max_test, seed)
    if ds.skipped:
        import click

        click.echo(f"warning: skipped {len(ds.skipped)} unreadable image(s), e.g. {ds.skipped[0]}", err=True)
    return ds

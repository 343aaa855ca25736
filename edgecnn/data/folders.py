"""The user's own images: a folder per class, the Tiny ImageNet layout, Fashion-MNIST IDX files.

Image folders hold ``.jpg``, ``.jpeg``, ``.png`` (and ``.bmp``/``.webp``) files; other files
(README, .DS_Store, ...) are ignored. A file with an image suffix that cannot be decoded is
*refused* with a DataError naming it, and so is a FIFO, socket or device under an image name, a
decompression bomb and an image over ``limits.MAX_IMAGE_PIXELS``, unless ``skip_bad=True``
(``--skip-bad-images``): then it is skipped and counted, and the count is reported in the
dataset's ``skipped`` field.

Every image is fitted to the model's input with ``edgecnn.data.preprocess.fit_image`` at load
time, so the arrays are uniform uint8 and the one preprocessing spec stays the only resize.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from edgecnn.data import limits
from edgecnn.data.preprocess import PreprocessError, PreprocessSpec, fit_image
from edgecnn.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _is_image(p: Path) -> bool:
    # By name only: a FIFO, device or dangling link named like an image is then refused (or
    # skipped with skip_bad) by read_image, not silently left out or waited on.
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and not p.is_dir()


def read_image(path, spec: Optional[PreprocessSpec], *, expect_size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Decode one file to uint8 RGB (or L for 1-channel specs) and fit it to the spec.

    Non-regular files, decompression bombs and images over ``limits.MAX_IMAGE_PIXELS`` are
    refused with a DataError before anything big is allocated (see edgecnn.data.limits)."""
    arr = limits.load_image(path, "L" if spec is not None and spec.channels == 1 else "RGB",
                            expect_size=expect_size)
    try:
        return fit_image(arr, spec) if spec is not None else arr
    except PreprocessError as e:  # e.g. an aspect ratio no centre crop of the input can take
        raise DataError(f"{path}: {e.message}") from None


def _read_many(items: List[Tuple[Path, int]], spec, skip_bad: bool, expect_size=None):
    need = len(items) * int(np.prod(spec.input_size)) * spec.channels
    limits.check_memory(need, f"{len(items):,} images (such as {items[0][0]}) at {spec.input_size[0]}x"
                              f"{spec.input_size[1]}x{spec.channels} ({need:,} bytes)",
                        "use fewer images (--max-train-images, --max-test-images) or a smaller input")
    xs, ys, skipped = [], [], []
    for p, y in items:
        try:
            xs.append(read_image(p, spec, expect_size=expect_size))
            ys.append(y)
        except DataError:
            if not skip_bad:
                raise
            skipped.append(str(p))
    if not xs:
        return np.zeros((0,) + tuple(spec.input_size) + (spec.channels,), np.uint8), np.zeros((0,), np.int64), skipped
    return np.stack(xs), np.asarray(ys, np.int64), skipped


# Split folders, by their lower-case names: the role each gives its images.
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
LAYOUTS = ("Layouts understood: DATA/<class>/<images> (one folder of class folders: seeded validation and test "
           "splits are held out), or DATA/train/<class>/<images> with any of val/, valid/, validation/ and test/ "
           "beside it (names in any case; val/ without test/ is the test split, validation then comes from train/).")


def _subfolders(root: Path) -> List[Path]:
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as e:
        raise limits.os_error(root, e, "list this folder") from None


# Folders inside a class folder are searched for images (a class folder holding folders of images
# is refused) this deep and this many files, no more, without recursion (a tree nested thousands of
# levels deep ended in a RecursionError, a folder of millions of files in minutes).
MAX_DEPTH = 32
MAX_FILES = 5_000_000


def walk_files(root: Path) -> List[Path]:
    """Every entry under ``root`` that is not a folder, found without recursion; folder symlinks
    are not followed (as ``Path.rglob``). A tree deeper than MAX_DEPTH or with more than MAX_FILES
    entries is refused."""
    out: List[Path] = []
    stack = [(Path(root), 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            raise limits.os_error(folder, e, "list this folder") from None
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                if depth + 1 > MAX_DEPTH:
                    raise DataError(f"{entry.path}: folders nested more than {MAX_DEPTH} levels below {root}; "
                                    f"an image dataset is not that deep.")
                stack.append((Path(entry.path), depth + 1))
            else:
                out.append(Path(entry.path))
                if len(out) > MAX_FILES:
                    raise DataError(f"{root}: more than {MAX_FILES:,} files; refused.")
    return out


def class_folders(root: Path) -> List[Path]:
    if not root.is_dir():
        raise DataError(f"{root}: not a folder.")
    classes = _subfolders(root)
    if not classes:
        raise DataError(f"{root}: no class subfolders; expected one subfolder of images per class. {LAYOUTS}")
    return classes


def split_folders(root: Path) -> Dict[str, Path]:
    """{"train": Path, "val": Path, "test": Path} (those present) when ``root`` holds split folders
    (``train/`` with any of ``val/``, ``valid/``, ``validation/``, ``test/``, in any case), {} when it
    holds class folders. A mix of the two, two folders for one split, or a split without train/ is
    refused: guessing would read a split as a class."""
    subs = _subfolders(root)
    roles: Dict[str, List[Path]] = {}
    for p in subs:
        if p.name.lower() in SPLIT_NAMES:
            roles.setdefault(SPLIT_NAMES[p.name.lower()], []).append(p)
    if not roles:
        return {}
    for role, found in roles.items():
        if len(found) > 1:
            raise DataError(f"{root}: {' and '.join(p.name + '/' for p in found)} both hold the {role} split; keep "
                            f"one. {LAYOUTS}")
    if "train" not in roles:
        have = ", ".join(p.name + "/" for ps in roles.values() for p in ps)
        raise DataError(f"{root}: holds {have} but no train/ folder. {LAYOUTS}")
    other = [p.name + "/" for p in subs if p.name.lower() not in SPLIT_NAMES]
    if other:
        raise DataError(f"{root}: holds split folders ({', '.join(p.name + '/' for ps in roles.values() for p in ps)}) "
                        f"and other folders ({', '.join(other[:3])}{' ...' if len(other) > 3 else ''}); is it a "
                        f"dataset of splits or of classes? {LAYOUTS}")
    return {role: found[0] for role, found in roles.items()}


def _class_images(folder: Path) -> List[Path]:
    """The images directly inside a class folder; a class folder that holds folders of images is
    refused (they would be other classes, or another layout, merged into this one)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        raise limits.os_error(folder, e, "list this folder") from None
    nested = []
    for sub in (e for e in entries if e.is_dir() and not e.name.startswith(".")):
        if any(_is_image(f) for f in walk_files(sub)):
            nested.append(sub.name + "/")
    if nested:
        raise DataError(f"{folder}: the class folder '{folder.name}' holds folders of images ({', '.join(nested[:3])}"
                        f"{' ...' if len(nested) > 3 else ''}); edgecnn never merges nested folders into one class. "
                        f"{LAYOUTS}")
    return [f for f in entries if _is_image(f)]


def list_class_images(root: Path, class_names: Optional[List[str]] = None) -> Tuple[List[Tuple[Path, int]], List[str]]:
    """[(file, label)] and the class names of a folder with one subfolder of images per class."""
    folders = class_folders(root)
    names = class_names or [p.name for p in folders]
    index = {n: i for i, n in enumerate(names)}
    items = []
    for folder in folders:
        if folder.name not in index:
            raise DataError(f"{folder}: class '{folder.name}' is not among the training classes {names[:10]}...; "
                            f"every split folder must hold the same class folders as train/.")
        files = _class_images(folder)
        if not files:
            raise DataError(f"{folder}: class '{folder.name}' has no images (.jpg/.png); add images or remove "
                            f"the folder.")
        items += [(f, index[folder.name]) for f in files]
    return items, names


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): ``fraction`` of every class held out, at least one per class."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    y = np.asarray(y)
    order = np.argsort(y, kind="stable")  # each class's indices in order, as flatnonzero(y == c) gives them
    classes, starts = np.unique(y[order], return_index=True)
    for c, lo, hi in zip(classes, starts, [*starts[1:], len(y)]):
        idx = rng.permutation(order[lo:hi])
        n = int(round(len(idx) * fraction)) if fraction > 0 else 0
        if fraction > 0 and len(idx) > 1:
            n = min(max(n, 1), len(idx) - 1)
        held.append(idx[:n])
        keep.append(idx[n:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def load_image_folder(root, spec: PreprocessSpec, *, seed: int, test_fraction: float, skip_bad: bool = False) -> Dict:
    """A folder of class folders, or of split folders (``split_folders``). Returns the arrays of the
    splits the folder has (``x_val`` None without one), and ``sources``: where each split came from.
    One folder of classes (or train/ alone) gives train and a seeded, stratified ``test_fraction``
    test split; validation is then carved from train by the caller, never from test."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder.")
    splits = split_folders(root)
    train_dir = splits.get("train", root)
    tr_items, names = list_class_images(train_dir)
    x_tr, y_tr, skipped = _read_many(tr_items, spec, skip_bad)
    where = (train_dir.name + "/") if splits else "the class folders"
    out = dict(x_val=None, y_val=None, labels=names, sources={"train": where})
    held = {}
    for role in ("val", "test"):
        if role in splits:
            items, _ = list_class_images(splits[role], names)
            x, y, s = _read_many(items, spec, skip_bad)
            held[role] = (x, y, splits[role].name + "/")
            skipped += s
    if "test" not in held and "val" in held:  # the folder's only held-out split is the test split
        held["test"] = held.pop("val")
        held["test"] = held["test"][:2] + (f"{held['test'][2]} (no test/ folder)",)
    if "test" not in held:
        keep, te = stratified_split(y_tr, test_fraction, seed)
        held["test"] = (x_tr[te], y_tr[te], f"seeded {test_fraction:g} of {where} (seed {seed})")
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    if "val" in held:
        out.update(x_val=held["val"][0], y_val=held["val"][1])
        out["sources"]["val"] = held["val"][2]
    out.update(x_train=x_tr, y_train=y_tr, x_test=held["test"][0], y_test=held["test"][1], skipped=skipped)
    out["sources"]["test"] = held["test"][2]
    if len(x_tr) == 0:
        raise DataError(f"{root}: no readable training images.")
    return out


def is_tiny_imagenet(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "val" / "val_annotations.txt").is_file()


def load_tiny_imagenet(root, spec: PreprocessSpec, *, skip_bad: bool = False) -> Dict:
    """``train/<wnid>/images/*.JPEG`` and ``val/images`` + ``val/val_annotations.txt``; 64x64 only."""
    root = Path(root)
    wnids = [p.name for p in class_folders(root / "train")]
    if (root / "wnids.txt").exists():  # a FIFO or device under the name is refused, not skipped
        listed = [w.strip() for w in limits.read_text(root / "wnids.txt").split() if w.strip()]
        if sorted(listed) != sorted(wnids):
            raise DataError(f"{root / 'wnids.txt'} lists {len(listed)} classes but train/ has {len(wnids)} folders.")
    index = {w: i for i, w in enumerate(wnids)}
    items = []
    for w in wnids:
        folder = root / "train" / w / "images"
        files = sorted(p for p in folder.glob("*") if _is_image(p)) if folder.is_dir() else []
        if not files:
            raise DataError(f"{folder}: class '{w}' has no images.")
        items += [(f, index[w]) for f in files]
    val_items = []
    ann = root / "val" / "val_annotations.txt"
    for n, line in enumerate(limits.read_text(ann).splitlines(), 1):
        parts = line.split("\t")
        if not line.strip():
            continue
        if len(parts) < 2 or parts[1] not in index:
            raise DataError(f"{ann}:{n}: expected '<file>\\t<wnid>...' with a wnid from train/; got {line[:80]!r}.")
        if parts[0] in ("", ".", "..") or "/" in parts[0] or "\\" in parts[0]:
            raise DataError(f"{ann}:{n}: '{parts[0][:80]}' is not a file name in val/images/; refusing paths.")
        val_items.append((root / "val" / "images" / parts[0], index[parts[1]]))
    words = {}
    if (root / "words.txt").exists():
        for line in limits.read_text(root / "words.txt", errors="replace").splitlines():
            if "\t" in line:
                k, v = line.split("\t", 1)
                words[k] = v.split(",")[0].strip()
    names = [words.get(w, w) for w in wnids]
    x_tr, y_tr, s1 = _read_many(items, spec, skip_bad, expect_size=(64, 64))
    x_va, y_va, s2 = _read_many(val_items, spec, skip_bad, expect_size=(64, 64))
    return dict(x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va, labels=names, skipped=s1 + s2, wnids=wnids)


FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot"]
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def find_fashion_mnist() -> Path:
    for base in (Path("/usr/share/dataset-fashion-mnist"), Path("/usr/share/fashion-mnist"),
                 Path("/usr/share/datasets/fashion-mnist")):
        if (base / FASHION_FILES["train"][0]).is_file():
            return base
    for p in Path("/usr/share").glob("*fashion*mnist*/**/train-images-idx3-ubyte.gz"):
        return p.parent
    raise DataError("Fashion-MNIST not found under /usr/share; install Debian's dataset-fashion-mnist package "
                    "(apt-get install dataset-fashion-mnist) or pass --data PATH to a folder of the four .gz files.")


def read_idx(path) -> np.ndarray:
    """An unsigned-byte IDX file (optionally .gz): the header's sizes are checked before the data
    is read, and no more than they announce is decompressed (a .gz of zeros stays a small read)."""
    path = Path(path)
    try:
        with limits.open_regular(path, "IDX file") as raw:
            f = gzip.GzipFile(fileobj=raw, mode="rb") if path.suffix == ".gz" else raw
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] != 0x08 or not 1 <= head[3] <= 4:
                raise DataError(f"{path}: not an unsigned-byte IDX file of 1 to 4 dimensions.")
            ndim = head[3]
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) != 4 * ndim:
                raise DataError(f"{path}: the IDX header is truncated.")
            dims = struct.unpack(">" + "I" * ndim, dims_raw)
            n = int(np.prod(dims, dtype=object))
            if n > limits.MAX_IDX_BYTES:
                raise DataError(f"{path}: header declares {dims} = {n:,} bytes, more than the {limits.MAX_IDX_BYTES:,} "
                                f"an IDX file may hold.")
            data = f.read(n + 1)
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise limits.os_error(path, e, "read this IDX file") from None
        raise DataError(f"{path}: cannot read ({type(e).__name__}: {e}).") from None
    if len(data) != n:
        raise DataError(f"{path}: header says {dims} but holds {'more' if len(data) > n else len(data)} bytes; "
                        f"the file is truncated or corrupt.")
    return np.frombuffer(data, np.uint8).reshape(dims)


def load_fashion_mnist(root=None) -> Dict:
    root = Path(root) if root else find_fashion_mnist()
    out = {}
    for split, (xi, yi) in FASHION_FILES.items():
        x, y = read_idx(root / xi), read_idx(root / yi).astype(np.int64)
        if x.ndim != 3 or y.ndim != 1:
            raise DataError(f"{root / xi}: expected N x H x W images and N labels, found shapes {x.shape} and "
                            f"{y.shape}.")
        if len(x) != len(y):
            raise DataError(f"{root / xi}: {len(x)} images but {root / yi} has {len(y)} labels.")
        if y.size and y.max() >= len(FASHION_LABELS):
            raise DataError(f"{root / yi}: label {y.max()} but Fashion-MNIST has {len(FASHION_LABELS)} classes.")
        out[split] = (x[..., None], y)
    return dict(train=out["train"], test=out["test"], labels=FASHION_LABELS, root=root)

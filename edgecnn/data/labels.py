"""Class names as text: one label per line (``labels.txt``), from a user's file or from the
labels file a model carries inside it. Both are untrusted input: bounded, UTF-8, no empty or
repeated names."""
from __future__ import annotations

from pathlib import Path
from typing import List

from edgecnn.core.text import describe_char, unwanted_char
from edgecnn.errors import DataError

MAX_LABELS_FILE = 4 << 20
MAX_LABELS = 100_000
MAX_LABEL_BYTES = 1024


def parse_labels(raw: bytes, where: str, error=DataError) -> List[str]:
    """One label per line (a BOM, CR line ends and blank lines at the end allowed) -> the names."""
    try:
        lines = raw.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise error(f"{where}: the labels file is not UTF-8 text.") from None
    while lines and not lines[-1].strip():
        lines.pop()
    labels = [s.strip() for s in lines]
    if not labels:
        raise error(f"{where}: the labels file is empty.")
    if len(labels) > MAX_LABELS:
        raise error(f"{where}: {len(labels)} labels; at most {MAX_LABELS}.")
    if any(not s for s in labels):
        raise error(f"{where}: line {labels.index('') + 1} of the labels file is empty; one label per line.")
    for i, s in enumerate(labels):
        bad = unwanted_char(s)
        if bad is not None:
            raise error(f"{where}: line {i + 1} of the labels file holds {describe_char(bad)}; a label is printable text.")
    if any(len(s.encode("utf-8")) > MAX_LABEL_BYTES for s in labels):
        raise error(f"{where}: a label longer than {MAX_LABEL_BYTES} bytes.")
    if len(set(labels)) != len(labels):
        raise error(f"{where}: the labels file names a class twice.")
    return labels


def read_labels_file(path) -> List[str]:
    """One label per line from a regular file of bounded size."""
    from edgecnn.data.limits import read_bytes

    return parse_labels(read_bytes(Path(path), "labels file", MAX_LABELS_FILE), str(path))

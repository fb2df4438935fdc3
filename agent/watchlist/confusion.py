"""OCR confusion classes: characters a recogniser mistakes for one another.

A read is folded to one representative per class, and separators are dropped
(a misread series letter moves the dashes canonicalisation puts in), so
``AB-0I8-CD`` and ``AB-018-CD`` share the key ``48018C0``. The matcher, not the
reader, decides what a fold means: a folded match is labelled fuzzy and needs a
more confident read.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

CONFUSION_CLASSES: Final[tuple[str, ...]] = (
    "0ODQ",
    "1IL",
    "8B",
    "5S",
    "2Z",
    "6G",
    "7T",
    "4A",
)
"""Each group folds to its first character."""

PLATE_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

_FOLD: Final = {ord(ch): group[0] for group in CONFUSION_CLASSES for ch in group} | {ord("-"): None}

FOLDED_ALPHABET: Final[bytes] = bytes(sorted(set(PLATE_ALPHABET.translate(_FOLD).encode())))
"""The characters a folded key is made of (25: digits and the letters no class folds)."""

FOLD_TABLE: Final[npt.NDArray[np.uint8]] = np.arange(256, dtype=np.uint8)
"""Byte-wise fold for numpy arrays; ``-`` maps to 0 and is squeezed out by :func:`fold_rows`."""
for _group in CONFUSION_CLASSES:
    FOLD_TABLE[np.frombuffer(_group.encode(), np.uint8)] = ord(_group[0])
FOLD_TABLE[ord("-")] = 0
_DASH: Final = ord("-")
_BLOCK: Final = 1 << 15


def fold(plate: str) -> str:
    """The confusion-class key of a canonical plate text (separators dropped)."""
    return plate.translate(_FOLD)


def fold_rows(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Fold ``(n, width)`` zero-padded plate bytes row-wise; dashes removed, rows left-aligned.

    Works in blocks of rows so the temporaries stay a few megabytes for any ``n``.
    """
    out = FOLD_TABLE[rows]
    for lo in range(0, len(out), _BLOCK):
        block = out[lo : lo + _BLOCK]
        dashed = np.flatnonzero((rows[lo : lo + _BLOCK] == _DASH).any(axis=1))
        if len(dashed):
            sub = block[dashed]  # dashes already folded to 0, like the padding
            order = np.argsort(sub == 0, axis=1, kind="stable")  # characters first, in order
            block[dashed] = np.take_along_axis(sub, order, axis=1)
    return out

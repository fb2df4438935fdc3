"""OCR confusion classes: characters a recogniser mistakes for one another.

A read is folded to one representative per class, so ``AB-0I8-CD`` and
``AB-018-CD`` share a key. The matcher, not the reader, decides what a fold
means: a folded match is labelled fuzzy and needs a more confident read.
"""

from __future__ import annotations

CONFUSION_CLASSES: tuple[str, ...] = ("0ODQ", "1IL", "8B", "5S", "2Z", "6G", "7T", "4A")

_FOLD = {ord(ch): group[0] for group in CONFUSION_CLASSES for ch in group}


def fold(plate: str) -> str:
    """The confusion-class key of a canonical plate text."""
    return plate.translate(_FOLD)

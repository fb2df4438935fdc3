"""Glyph remixing: new real-looking plates from the real Moroccan training crops.

The real training set has only about 300 distinct Moroccan plates, and the
recogniser learns them by heart (97 % on them, 70 % on held-out plates). The
data set labels a box per character (``chars.csv``), so a training crop can be
re-lettered: the digits of one group (serial, region) are shuffled among their
own boxes, some glyphs are swapped for the same kind of glyph cut from another
training plate (its brightness and contrast matched to the box it lands in),
and the series letter for another series letter. The plate keeps its real
paper, lighting, blur, font and perspective; only the text changes, and the
label follows. Used at training time only, on training plates only (never on
the held-out ones).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

Array = np.ndarray[Any, Any]

_ARABIC = "\u0623\u0628\u062f\u0647\u0648\u0637\u064a"


@dataclass(frozen=True)
class Glyph:
    char: str
    line: int
    box: tuple[int, int, int, int]  # x, y, w, h in the stored image's pixels


def load_char_boxes(datasets: Path, folder: str = "moroccan-plates-ocr") -> dict[Path, list[Glyph]]:
    """Per image (absolute path): its labelled glyphs in reading order (line, then x)."""
    root = datasets / folder
    sizes: dict[str, tuple[float, float]] = {}
    with (root / "manifest.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r.get("img_w"):
                sizes[r["image"]] = (float(r["img_w"]), float(r["img_h"]))
    found: dict[Path, list[tuple[str, int, tuple[float, float, float, float]]]] = {}
    with (root / "chars.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            box = (float(r["x"]), float(r["y"]), float(r["w"]), float(r["h"]))
            found.setdefault(root / r["image"], []).append((r["char"], int(r["line"]), box))
    out: dict[Path, list[Glyph]] = {}
    for path, glyphs in found.items():
        rel = str(path.relative_to(root))
        if rel not in sizes:
            continue
        glyphs.sort(key=lambda g: (g[1], g[2][0]))
        out[path] = [Glyph(c, line, _int_box(b)) for c, line, b in glyphs]
    return {p: _scaled(p, g, sizes[str(p.relative_to(root))]) for p, g in out.items()}


def _int_box(b: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    return round(b[0]), round(b[1]), max(1, round(b[2])), max(1, round(b[3]))


def _scaled(path: Path, glyphs: list[Glyph], size: tuple[float, float]) -> list[Glyph]:
    """Boxes are labelled in the original photo's pixels; the stored image may be smaller."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return []
    s = img.shape[1] / size[0]
    return [
        Glyph(g.char, g.line, _int_box((g.box[0] * s, g.box[1] * s, g.box[2] * s, g.box[3] * s)))
        for g in glyphs
    ]


class GlyphBank:
    """Glyph patches cut from the training plates, by kind (a digit, or an Arabic letter)."""

    def __init__(self) -> None:
        self.patches: dict[str, list[Array]] = {}

    def add(self, image: Array, glyphs: list[Glyph]) -> None:
        for g in glyphs:
            patch = _cut(image, g.box)
            if patch is not None and (g.char.isdigit() or g.char in _ARABIC):
                self.patches.setdefault(g.char, []).append(patch)

    def pick(self, char: str, rng: np.random.Generator) -> Array | None:
        options = self.patches.get(char)
        return options[int(rng.integers(len(options)))] if options else None


def _cut(image: Array, box: tuple[int, int, int, int]) -> Array | None:
    x, y, w, h = box
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(image.shape[1], x + w), min(image.shape[0], y + h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def _match(patch: Array, target: Array) -> Array:
    """``patch`` resized to ``target`` with its per-channel mean and spread."""
    h, w = target.shape[:2]
    resized = cv2.resize(patch, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    t = target.astype(np.float32)
    src_mean, src_std = resized.mean(axis=(0, 1)), resized.std(axis=(0, 1)) + 1e-3
    dst_mean, dst_std = t.mean(axis=(0, 1)), t.std(axis=(0, 1)) + 1e-3
    out = (resized - src_mean) / src_std * dst_std + dst_mean
    return np.clip(out, 0, 255).astype(np.uint8)


def _groups(glyphs: list[Glyph]) -> list[list[int]]:
    """Index runs of consecutive digits on the same line (serial, region...)."""
    runs: list[list[int]] = []
    for i, g in enumerate(glyphs):
        prev = glyphs[i - 1] if i else None
        if g.char.isdigit() and prev is not None and prev.char.isdigit() and prev.line == g.line:
            runs[-1].append(i)
        elif g.char.isdigit():
            runs.append([i])
    return runs


def remix(
    image: Array,
    glyphs: list[Glyph],
    bank: GlyphBank,
    rng: np.random.Generator,
    swap_share: float = 0.12,
) -> tuple[Array, list[str]] | None:
    """A re-lettered copy of a plate and its new characters, one string per line.

    Digits are shuffled inside their group (same font and light: seamless); on
    a level plate a few are swapped for another plate's digit and the series
    letter, a third of the time, for another series letter (pasted glyphs show
    their patch: kept rare so the labels stay honest). Returns ``None`` when the
    plate has no usable glyph boxes.
    """
    if not glyphs:
        return None
    chars = _new_chars(glyphs, rng, swap_share)
    out = _paint(image, glyphs, chars, bank, rng)
    if out is None:
        return None
    lines: dict[int, str] = {}
    for g, c in zip(glyphs, chars, strict=True):
        lines[g.line] = lines.get(g.line, "") + c
    return out, [lines[k] for k in sorted(lines)]


def _new_chars(glyphs: list[Glyph], rng: np.random.Generator, swap_share: float) -> list[str]:
    """The plate's new characters, box by box (see :func:`remix`)."""
    level = _level(glyphs)
    chars = [g.char for g in glyphs]
    for run in _groups(glyphs):
        order = [chars[i] for i in run]
        rng.shuffle(order)
        for i, c in zip(run, order, strict=True):
            chars[i] = c
        for i in run:
            if level and rng.random() < swap_share:
                chars[i] = str(int(rng.integers(10)))
    for i, c in enumerate(chars):
        if level and c in _ARABIC and rng.random() < 0.3:
            chars[i] = _ARABIC[int(rng.integers(len(_ARABIC)))]
    return chars


def _paint(
    image: Array, glyphs: list[Glyph], chars: list[str], bank: GlyphBank, rng: np.random.Generator
) -> Array | None:
    """``image`` with each box showing its new character; None if a glyph is missing."""
    out = image.copy()
    for g, new in zip(glyphs, chars, strict=True):
        target = _cut(image, g.box)
        if target is None:
            return None
        if new == g.char and rng.random() < 0.7:
            continue  # unchanged glyph: keep the original pixels
        source = _same_plate_patch(image, glyphs, new) if rng.random() < 0.6 else None
        if source is None:
            source = bank.pick(new, rng)
        if source is None:
            return None
        x, y = max(0, g.box[0]), max(0, g.box[1])
        out[y : y + target.shape[0], x : x + target.shape[1]] = _match(source, target)
    return out


def _level(glyphs: list[Glyph]) -> bool:
    """True when each line's glyph boxes sit level (a pasted upright glyph fits)."""
    for line in {g.line for g in glyphs}:
        tops = np.array([g.box[1] for g in glyphs if g.line == line], np.float32)
        heights = np.array([g.box[3] for g in glyphs if g.line == line], np.float32)
        if tops.size > 1 and float(np.ptp(tops)) > 0.25 * float(heights.mean()):
            return False
    return True


def _same_plate_patch(image: Array, glyphs: list[Glyph], char: str) -> Array | None:
    """The glyph ``char`` from this very plate, when it has one (same font and light)."""
    for g in glyphs:
        if g.char == char:
            return _cut(image, g.box)
    return None

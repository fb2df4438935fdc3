"""Bare strokes the recogniser skipped: an ``I`` or a plain ``1`` put back where the strip
shows one and no emitted character explains it.

Why: the commonest error left on European plates is a bare vertical stroke dropped
(``BIA / KY73`` read ``BAKY73``, ``TW13 / TED`` read ``TW3TED``, ``CIN / 78A6`` read
``CN78A6``). The model learnt to skip an ``I``-like stroke (the dividers of Moroccan
plates; French SIV plates have no ``I``) and gives it under 1 % where it drops a clear
one, so no decoding brings it back and training with more ``I`` did not beat the seeds'
spread (models/recogniser.md, "Candidate 4.6" and "Bare strokes").

The strip the model saw (its ``H x W`` grey input) still shows the stroke. A stroke is put
back only when all of these hold, each against a failure seen on real plates:

- the read holds no Arabic letter (a Moroccan plate's dividers are bars too);
- the strip is dark characters on light paper (ink under :data:`MAX_INK` of the line);
- the bar is a connected blob of ink as tall as the line's glyphs and aligned with them
  (top and bottom within :data:`ALIGN` of the glyph height: a plate's frame or a band's
  edge is taller), thin (:data:`MAX_STROKE_WIDTH`), clear of the strip's ends;
- no emitted character's time step lies over it (:data:`EXPLAINED_PX`);
- it lies between two emitted characters and between two other glyphs of its own line,
  each at least :data:`MIN_GAP_PX` away (a ``D`` whose stem came apart from its bowl,
  ``B97TWD`` -> ``B97TWID``, fails this); or it ends its line (:meth:`_Blobs.ends_line`:
  ``BA215A`` for ``BA215AI``, ``V868807`` for ``VI868807``), no farther from the line's
  last (or first) glyph than :data:`LINE_END_GAP` of the glyph height, a column of paper
  between them even at Otsu's threshold (the second leg of a night ``H`` whose bar the
  stricter threshold broke is joined to the first), and clear of its line's end
  (:data:`LINE_END_CLEAR`: a plate's frame stands farther out, or at the strip's edge);
- on a two-line composite, it is clear of the gap between the halves (the plate's side
  edges land there) and its neighbours are in its own half;
- it is the only such bar of the strip, or one of two that stand side by side: no glyph
  and no emitted character between them, a character's spacing apart (:data:`PAIR_GAP`:
  ``BT II AHV`` read ``BTAHV``, ``X II UME`` read ``XUME``; on the real sets no other pair
  passes every check).

The stroke is ``1`` between digits, ``I`` between letters, else whichever makes a plate of
a known layout (``I`` when neither does); ``0``/``O`` and ``1``/``I`` fold together for the
matcher and the figures anyway. The read's confidence is left as the model gave it.
Pure numpy/OpenCV on the 32 x 128 strip; most reads leave after one connected-components
pass.
"""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from agent.reader.layout import GAP_FRACTION
from agent.reader.plate_text import has_arabic_letter, is_known_plate

Gray = npt.NDArray[np.uint8]

INK_THRESHOLD: Final = 0.7
"""Ink is darker than this share of the strip's Otsu threshold: stricter than Otsu itself,
so that a thin stroke squeezed against its neighbour (``CIN`` in a two-line composite)
comes apart from it."""
GLYPH_MIN_HEIGHT: Final = 0.35
"""A glyph blob is at least this share of the strip's height (and at most 0.6 of it wide)."""
MAX_STROKE_WIDTH: Final = 0.25
"""A bare stroke is at most this share of its height wide (at least :data:`MIN_STROKE_PX`)."""
MIN_STROKE_PX: Final = 4
"""A stroke this many strip pixels wide is thin at any height: on a plate whose glyphs are
13 px tall in the strip the resize spreads an ``I`` over 4 columns (``EMOTION`` read
``EM0T0N``); a glyph's bowl or two legs stay wider."""
ALIGN: Final = 0.15
"""A stroke's top and bottom lie within this share of the glyph height of the glyphs'."""
MAX_INK: Final = 0.45
"""Above this share of ink in the glyph band the strip is light on dark: no stroke looked for."""
EXPLAINED_PX: Final = 3
"""An emitted character within this many strip pixels of a bar explains it."""
MIN_GAP_PX: Final = 2
"""A stroke stands at least this many strip pixels clear of its neighbouring glyphs."""
HALF_EDGE_PX: Final = 4
"""On a two-line composite, a bar within this many pixels of the gap is a side edge."""
LINE_END_GAP: Final = 0.6
"""A stroke ending its line stands at most this share of the glyph height from the line's
last (or first) glyph: a character's spacing, where a plate's frame stands farther out."""
PAIR_GAP: Final = 0.6
"""Two bare strokes side by side stand at most this share of the glyph height apart (and at
least :data:`MIN_GAP_PX`): a character's spacing, as for a stroke ending its line."""
LINE_END_CLEAR: Final = 0.1
"""A stroke ending its line stands at least this share of the glyph height clear of the
line's end in the strip (the strip's edge, or a composite's gap)."""


def skipped_strokes(
    strip: Gray, tokens: str, steps: list[int], time_steps: int, *, two_line: bool = False
) -> tuple[int, ...]:
    """The time steps of the bare strokes of ``strip`` that no emitted character explains
    (see the module docstring): none, the one, or a pair side by side (:meth:`_Blobs.pair`).
    ``tokens`` were emitted at ``steps`` of ``time_steps``; ``two_line``: the strip is a
    two-line composite."""
    if not tokens or len(steps) != len(tokens) or has_arabic_letter(tokens):
        return ()
    blobs = _Blobs(strip)
    if not blobs.thin.any() or blobs.glyph.sum() < 3:
        return ()
    scale = blobs.width / time_steps
    centres = (np.asarray(steps, np.float64) + 0.5) * scale
    unexplained = [int(i) for i in np.flatnonzero(blobs.thin) if not blobs.under(int(i), centres)]
    line = blobs.line() if unexplained else None
    if line is None:
        return ()
    found = [i for i in unexplained if blobs.stands_alone(i, centres, line, two_line)]
    if len(found) > 2 or (len(found) == 2 and not blobs.pair(found[0], found[1], centres, line)):
        return ()
    return tuple(sorted(int((blobs.x[i] + blobs.w[i] / 2) / scale) for i in found))


class _Blobs:
    """The ink blobs of a strip (connected components of the pixels darker than
    :data:`INK_THRESHOLD` of its Otsu threshold), and the line their glyphs stand on."""

    def __init__(self, strip: Gray) -> None:
        self.height, self.width = strip.shape
        otsu, _ = cv2.threshold(strip, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
        self.strip, self.otsu = strip, otsu
        _, self.ink = cv2.threshold(strip, otsu * INK_THRESHOLD, 1, cv2.THRESH_BINARY_INV)
        _n, _labels, stats, _centres = cv2.connectedComponentsWithStatsWithAlgorithm(
            self.ink, 8, cv2.CV_16U, cv2.CCL_SPAGHETTI
        )
        self.x, self.y, self.w, self.h = stats[1:, :4].T
        x, y, w, h = self.x, self.y, self.w, self.h
        self.glyph = (
            (h >= GLYPH_MIN_HEIGHT * self.height) & (w <= 0.6 * self.height) & (y > 0)
        ) & (y + h < self.height)
        self.thin = (
            self.glyph & (w <= np.maximum(MIN_STROKE_PX, MAX_STROKE_WIDTH * h)) & (x > 0)
        ) & (x + w < self.width)

    def under(self, i: int, centres: npt.NDArray[np.float64]) -> bool:
        """True when an emitted character's centre lies over blob ``i`` (within
        :data:`EXPLAINED_PX`)."""
        left, right = self.x[i] - EXPLAINED_PX, self.x[i] + self.w[i] + EXPLAINED_PX
        return bool(((centres >= left) & (centres <= right)).any())

    def line(self) -> tuple[float, float] | None:
        """The glyphs' line (their median top and bottom row); None when the strip is
        light on dark there (mostly ink)."""
        top = float(np.median(self.y[self.glyph]))
        bottom = float(np.median((self.y + self.h)[self.glyph]))
        band = self.ink[int(top) : int(bottom)]
        return (top, bottom) if bottom > top and float(band.mean()) <= MAX_INK else None

    def stands_alone(
        self,
        i: int,
        centres: npt.NDArray[np.float64],
        line: tuple[float, float],
        two_line: bool,
    ) -> bool:
        """True when blob ``i`` is aligned with the ``line``'s glyphs and either between two
        emitted characters and two other glyphs of its line, clear of both, or at its line's
        end (:meth:`ends_line`); clear of a composite's gap."""
        left, right = int(self.x[i]), int(self.x[i] + self.w[i])
        top, bottom = line
        tolerance = ALIGN * (bottom - top)
        if abs(self.y[i] - top) > tolerance or abs(self.y[i] + self.h[i] - bottom) > tolerance:
            return False
        others = self.glyph.copy()
        span = (0, self.width)
        if two_line:
            half = (self.width - max(2, round(self.width * GAP_FRACTION))) // 2
            if left < self.width - half + HALF_EDGE_PX and right > half - HALF_EDGE_PX:
                return False
            in_left = left < self.width / 2
            others &= (self.x < self.width / 2) == in_left
            centres = centres[(centres < self.width / 2) == in_left]
            span = (0, half) if in_left else (self.width - half, self.width)
        if not centres.size:
            return False
        others[i] = False
        before = left - (self.x + self.w)[others & (self.x + self.w <= left + 1)]
        after = self.x[others & (self.x >= right - 1)] - right
        if centres.min() < left and centres.max() > right:
            return bool(before.size and after.size and min(before.min(), after.min()) >= MIN_GAP_PX)
        last = bool(centres.max() < left)  # every emitted character before it
        return self.ends_line(left, right, before, after, line=line, span=span, last=last)

    def pair(
        self, i: int, j: int, centres: npt.NDArray[np.float64], line: tuple[float, float]
    ) -> bool:
        """True when blobs ``i`` and ``j`` stand side by side: no other glyph and no emitted
        character between them, :data:`MIN_GAP_PX` to :data:`PAIR_GAP` of the glyph height
        apart (``II`` or ``11``, both skipped)."""
        first, second = (i, j) if self.x[i] < self.x[j] else (j, i)
        left, right = int(self.x[first] + self.w[first]), int(self.x[second])
        if not MIN_GAP_PX <= right - left <= PAIR_GAP * (line[1] - line[0]):
            return False
        inside = self.glyph & (self.x >= left) & (self.x + self.w <= right)
        return not inside.any() and not ((centres > left) & (centres < right)).any()

    def ends_line(
        self,
        left: int,
        right: int,
        before: npt.NDArray[np.int32],
        after: npt.NDArray[np.int32],
        *,
        line: tuple[float, float],
        span: tuple[int, int],
        last: bool,
    ) -> bool:
        """True when the bar over columns ``left``-``right`` of its line (``span`` of the
        strip) stands right after the line's last glyph (``last``: every emitted character
        is before it) or right before its first (``before`` / ``after``: the gaps to the
        glyphs on each side; none on its other side), at least :data:`MIN_GAP_PX` and at most
        :data:`LINE_END_GAP` of the glyph height from it, with a column of paper between
        them at Otsu's threshold, and :data:`LINE_END_CLEAR` of the glyph height clear of
        the line's end."""
        height = line[1] - line[0]
        if last and before.size and not after.size:
            gap, clear = int(before.min()), span[1] - right
            between = (left - gap, left)
        elif not last and after.size and not before.size:
            gap, clear = int(after.min()), left - span[0]
            between = (right, right + gap)
        else:
            return False
        if not MIN_GAP_PX <= gap <= LINE_END_GAP * height or clear < LINE_END_CLEAR * height:
            return False
        band = self.strip[int(line[0]) : int(line[1]) + 1, between[0] : between[1]]
        return bool((band > self.otsu).all(axis=0).any())


def with_stroke(tokens: str, steps: list[int], step: int) -> tuple[str, list[int]]:
    """``tokens`` and ``steps`` with a bare stroke put back at time ``step``: ``1`` between
    digits, ``I`` between letters, else the one that makes a plate of a known layout."""
    k = sum(1 for s in steps if s < step)
    neighbours = [c for c in (tokens[k - 1 : k], tokens[k : k + 1]) if c]
    digits = [c.isdigit() for c in neighbours]
    if all(digits):
        stroke = "1"
    elif not any(digits):
        stroke = "I"
    else:
        stroke = next((c for c in "1I" if is_known_plate(tokens[:k] + c + tokens[k:])), "I")
    return tokens[:k] + stroke + tokens[k:], [*steps[:k], step, *steps[k:]]

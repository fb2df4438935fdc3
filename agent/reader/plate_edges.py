"""Snap a loose plate box to the plate itself, found from its row of characters.

Why: on large plates (a close photo, 250-500 px wide) the detector's box often holds
the plate with its holder and a band of the car around it, half as tall again as the
plate: an IoU with the plate of 0.4-0.5, though the plate is read right
(models/detector.md, "Where the Moroccan scene misses lie"). The plate's characters
show where it is: a row of dark glyphs of one height, on a light paper that ends at
the plate's border. :func:`snap_to_plate` finds that row, then the connected light
paper around it (parted from a car as light as itself by the plate's outline,
:data:`OUTLINE_CANNY`; for a tilted plate, found with the region turned level,
:func:`_tilted_paper`), and returns the paper's rectangle (with a European plate's blue
band) widened by a border of :data:`BORDER` glyph heights, when the detector's box was
loose around it. Pure image
logic (OpenCV, numpy), no model: the reader calls it for plates already read
(``reader.still_snap_boxes``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from agent.frames import Image
from agent.reader.detector import widen_over_blue
from agent.reader.percentiles import percentiles
from agent.reads import Box, box_iou

SEARCH_MARGIN = 0.15
"""The plate is looked for in the box widened by this share of its size on each side
(a box a little inside the plate still finds its edges)."""
MIN_ASPECT = 1.0
"""Only boxes wider than tall are snapped. A two-line plate's box is snapped too: the paper
found around its larger row of characters holds both rows."""
MIN_WIDTH_PX = 100
"""Smaller boxes are kept as they are: their glyphs, a few pixels tall, threshold too
unevenly to trace the paper (and a loose box around a small plate still overlaps it)."""
GLYPH_HEIGHT = (0.15, 0.9)
"""A glyph is this share of the searched region's height (smallest, largest)."""
SAME_ROW = 0.25
"""Glyphs of one row differ in height, and in the height of their centre, by at most
this share of a glyph's height."""
MIN_GLYPHS = 3
THRESHOLD_BLOCKS = (2, 4)
"""Adaptive thresholds over blocks of the region's height divided by these: a large block
keeps thin strokes, a small one parts glyphs that touch the plate's border."""
THRESHOLD_OFFSETS = (10, 20)
AdaptiveThresholds = tuple[tuple[int, int], ...]
ADAPTIVE_THRESHOLDS: AdaptiveThresholds = tuple(
    itertools.product(THRESHOLD_BLOCKS, THRESHOLD_OFFSETS)
)
"""(block divisor, offset) of each adaptive threshold tried in turn for rows of glyphs:
every pair (:func:`text_rows`, the tilted rows, and :func:`row_tilt` in photos and crops)."""
QUICK_SLOPE_THRESHOLDS: AdaptiveThresholds = ((4, 20),)
"""The one :func:`row_tilt` tries in a video frame, a quarter of the time: the held-out
Moroccan scenes read as video frames and levelled, 239 of 299 exact against 240 with
every pair (233-236 with each of the other three alone; models/recogniser.md,
"Levelled plates")."""
MIN_CONTRAST = 30
"""Paper and ink (85th and 10th percentile of the text row) at least this far apart."""
PAPER_LEVELS = (0.6, 0.75, 0.85)
"""Paper is lighter than ink + this share of (paper - ink); a higher level is tried only
when the paper at a lower one runs into the frame around the plate (a light car)."""
PAPER_SOLID = 0.75
"""The paper, its glyphs closed, fills at least this share of its rectangle."""
OUTLINE_CANNY = (30, 90)
OUTLINE_WIDTH = 3
"""When the paper runs into a car as light as itself at every level of
:data:`PAPER_LEVELS`, the edges of Canny at these thresholds, widened to this many pixels,
are taken out of the light region: the plate's outline parts paper and car."""
ROW_SLACK = 0.2
"""The text row may stick out of the paper by this many glyph heights (a glyph touching
the border)."""
BORDER = 0.2
"""The plate's border around its paper, in glyph heights (the frame the labels include)."""
FITS_IOU = 0.6
"""A box overlapping the snapped plate this much already fits it and is kept as it is."""
MIN_WIDTH = 0.6
"""A snapped plate narrower than this share of the box is a part of the plate (uneven
light cuts the paper): the box is kept."""


class TextRow(NamedTuple):
    """A row of glyphs in region pixels: its extent, glyph height and glyph count."""

    x0: int
    y0: int
    x1: int
    y1: int
    glyph_h: float
    glyphs: int


def snap_to_plate(frame: Image, box: Box) -> Box:
    """``box`` (x, y, w, h in ``frame``), or the plate's own box when the plate's paper is
    found around a row of glyphs and ``box`` is loose around it (see the module doc)."""
    _x, _y, w, h = box
    if w < MIN_ASPECT * h or w < MIN_WIDTH_PX:
        return box
    region = _search_region(frame, box)
    if region is None:
        return box
    gray, x0, y0 = region
    found = _level_paper(gray) or _tilted_paper(gray)
    if found is None:
        return box
    (px0, py0, px1, py1), glyph_h = found
    # A European plate's blue band is part of the plate, not of its light paper.
    px, py, pw, ph = widen_over_blue(frame, (x0 + px0, y0 + py0, px1 - px0, py1 - py0))
    border = BORDER * glyph_h
    sx0, sy0 = max(0, round(px - border)), max(0, round(py - border))
    sx1 = min(frame.shape[1], round(px + pw + border))
    sy1 = min(frame.shape[0], round(py + ph + border))
    snapped = (sx0, sy0, sx1 - sx0, sy1 - sy0)
    if box_iou(snapped, box) >= FITS_IOU or snapped[2] < MIN_WIDTH * w:
        return box
    return snapped


Paper = tuple[tuple[int, int, int, int], float]
"""The paper's rectangle (x0, y0, x1, y1 in the searched region) and its glyph height."""


def _papers(gray: npt.NDArray[np.uint8], min_height: float = GLYPH_HEIGHT[0]) -> Iterator[Paper]:
    """The paper around each level row of glyphs of ``gray`` (:func:`text_rows`) that has
    one, the rows with the most glyphs first."""
    for row in text_rows(gray, min_height):
        paper = paper_rect(gray, row)
        if paper is not None:
            yield paper, row.glyph_h


def _level_paper(gray: npt.NDArray[np.uint8]) -> Paper | None:
    """The paper around the first level row of glyphs of ``gray`` that has one."""
    return next(_papers(gray), None)


TILTED_MIN_GLYPH = 0.07
"""A tilted plate's glyphs are at least this share of the searched region's height: its
upright box is loose around it, so they are a smaller share than a level plate's."""
TILTED_DEGREES = (3.0, 30.0)
"""A row of glyphs sloping by this many degrees (least, most) is looked at turned level."""
TILTED_SLOPES = 3
"""At most this many slopes are tried, the rows with the most glyphs first (a grille's
bars slope too)."""


def _tilted_paper(gray: npt.NDArray[np.uint8]) -> Paper | None:
    """The upright envelope of the paper around a sloping row of glyphs, found with the
    region turned level about its centre (corners filled black: never paper), or None.
    Why: a close plate tilted by a few degrees is boxed by its upright envelope, whose
    level rows hold no row of glyphs of one height."""
    height, width = gray.shape
    for degrees in _row_slopes(gray, TILTED_MIN_GLYPH):
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
        level = np.asarray(
            cv2.warpAffine(
                gray,
                turn,
                (width, height),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            ),
            np.uint8,
        )
        back = cv2.invertAffineTransform(turn)
        for (a, b, c, d), glyph_h in _papers(level, TILTED_MIN_GLYPH):
            corners = np.array([[a, b], [c, b], [c, d], [a, d]], np.float64)
            mapped = corners @ back[:, :2].T + back[:, 2]
            ex0, ey0 = np.floor(mapped.min(axis=0))
            ex1, ey1 = np.ceil(mapped.max(axis=0))
            if ex0 < 1 or ey0 < 1 or ex1 >= width - 1 or ey1 >= height - 1:
                continue
            return (int(ex0), int(ey0), int(ex1), int(ey1)), glyph_h
    return None


def tilted_rows(
    frame: Image, box: Box, thresholds: AdaptiveThresholds = ADAPTIVE_THRESHOLDS
) -> list[float]:
    """Slopes (degrees, falling to the right positive) of the rows of glyphs of a tilted
    plate in ``box``, as :func:`snap_to_plate` finds them (glyphs from
    :data:`TILTED_MIN_GLYPH` of the searched region's height, tilted by
    :data:`TILTED_DEGREES`; the most glyphs first, at most :data:`TILTED_SLOPES`).
    Why: the box of a plate tilted by 15-25 degrees is its upright envelope, about twice
    as tall as the plate, whose glyphs are too small a share of it for :func:`row_tilt`."""
    region = _search_region(frame, box)
    if region is None:
        return []
    return _row_slopes(region[0], TILTED_MIN_GLYPH, thresholds)


def _row_slopes(
    gray: npt.NDArray[np.uint8],
    min_glyph: float,
    thresholds: AdaptiveThresholds = ADAPTIVE_THRESHOLDS,
) -> list[float]:
    """Slopes (degrees, falling to the right positive) of the straight rows of glyphs of
    one height in ``gray`` tilted by :data:`TILTED_DEGREES`, the most glyphs first, at
    least a degree apart (at most :data:`TILTED_SLOPES`)."""
    found: list[tuple[int, float]] = []
    for block, offset in _threshold_blocks(gray, thresholds):
        stats = _glyph_stats(gray, block, offset, min_glyph)
        if stats is not None:
            found += _straight_rows(stats)
    found.sort(key=lambda f: -f[0])
    slopes: list[float] = []
    for _n, degrees in found:
        if TILTED_DEGREES[0] <= abs(degrees) <= TILTED_DEGREES[1] and all(
            abs(degrees - s) > 1.0 for s in slopes
        ):
            slopes.append(degrees)
    return slopes[:TILTED_SLOPES]


def _straight_rows(stats: Glyphs) -> list[tuple[int, float]]:
    """(glyphs, degrees) of each straight row of glyphs of one height among ``stats``, at
    any slope. Each row is grown from the free glyph with the most free glyphs of its
    height, dropping the glyph furthest from the fitted line until the rest lie on it
    (:data:`TILT_ROW_STRAIGHT`); a glyph belongs to one row at most."""
    gx, gy, gw, gh = stats
    cx, cy = gx + gw / 2, gy + gh / 2
    same = np.abs(gh[None, :] - gh[:, None]) <= SAME_ROW * gh[:, None]
    used = np.zeros(len(gx), bool)
    rows: list[tuple[int, float]] = []
    for seed in np.argsort(-same.sum(axis=1)):
        members = np.flatnonzero(same[seed] & ~used)
        while not used[seed] and members.size >= TILT_ROW_MIN_GLYPHS:
            if float(np.ptp(cx[members])) <= 0.0:
                break
            slope, intercept = np.polyfit(cx[members], cy[members], 1)
            off = np.abs(cy[members] - (slope * cx[members] + intercept))
            if float(off.max()) <= TILT_ROW_STRAIGHT * float(np.median(gh[members])):
                used[members] = True
                rows.append((int(members.size), float(np.degrees(np.arctan(slope)))))
                break
            members = np.delete(members, int(off.argmax()))
    return rows


def _search_region(frame: Image, box: Box) -> tuple[npt.NDArray[np.uint8], int, int] | None:
    """The grey pixels of ``box`` widened by :data:`SEARCH_MARGIN` (clipped to the frame)
    and their top-left corner in ``frame``; None when too small to hold a row of glyphs."""
    x, y, w, h = box
    mx, my = round(SEARCH_MARGIN * w), round(SEARCH_MARGIN * h)
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(frame.shape[1], x + w + mx), min(frame.shape[0], y + h + my)
    if x1 - x0 < 16 or y1 - y0 < 8:
        return None
    gray = np.asarray(cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY), np.uint8)
    return gray, x0, y0


def _threshold_blocks(
    gray: npt.NDArray[np.uint8], thresholds: AdaptiveThresholds = ADAPTIVE_THRESHOLDS
) -> Iterator[tuple[int, int]]:
    """(block size in pixels, offset) of each of ``thresholds`` for ``gray``: the block its
    height divided by the divisor, odd, at least 3."""
    for divisor, offset in thresholds:
        yield max(3, (gray.shape[0] // divisor) | 1), offset


def text_rows(gray: npt.NDArray[np.uint8], min_height: float = GLYPH_HEIGHT[0]) -> list[TextRow]:
    """Rows of glyphs in ``gray``, the most glyphs first (one per threshold that finds one);
    a glyph is at least ``min_height`` of the height of ``gray``."""
    rows: list[TextRow] = []
    for block, offset in _threshold_blocks(gray):
        row = _text_row(gray, block, offset, min_height)
        if row is not None and row not in rows:
            rows.append(row)
    rows.sort(key=lambda r: (r.glyphs, r.glyph_h), reverse=True)
    return rows


Glyphs = tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
]


def _glyph_stats(
    gray: npt.NDArray[np.uint8], block: int, offset: int, min_height: float = GLYPH_HEIGHT[0]
) -> Glyphs | None:
    """x, y, width and height of the glyph-like dark blobs of ``gray`` under one adaptive
    threshold, clear of its edges (None when fewer than :data:`MIN_GLYPHS`)."""
    height, width = gray.shape
    ink = cv2.adaptiveThreshold(
        gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, offset
    )
    _n, _labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    bx, by, bw, bh, area = (stats[1:, i].astype(np.float64) for i in range(5))
    glyph = (
        (bh >= min_height * height)
        & (bh <= GLYPH_HEIGHT[1] * height)
        & (bw <= 1.2 * bh)
        & (bw >= 0.08 * bh)
        & (bx > 0)
        & (by > 0)
        & (bx + bw < width)
        & (by + bh < height)
        & (area >= 0.15 * bw * bh)
    )
    if int(glyph.sum()) < MIN_GLYPHS:
        return None
    return bx[glyph], by[glyph], bw[glyph], bh[glyph]


def _text_row(
    gray: npt.NDArray[np.uint8], block: int, offset: int, min_height: float = GLYPH_HEIGHT[0]
) -> TextRow | None:
    """The largest row of glyph-like dark blobs of one height in ``gray``, if any."""
    stats = _glyph_stats(gray, block, offset, min_height)
    if stats is None:
        return None
    gx, gy, gw, gh = stats
    centre = gy + gh / 2
    same = (np.abs(gh[None, :] - gh[:, None]) <= SAME_ROW * gh[:, None]) & (
        np.abs(centre[None, :] - centre[:, None]) <= SAME_ROW * gh[:, None]
    )
    members = same[int(same.sum(axis=1).argmax())]
    if int(members.sum()) < MIN_GLYPHS:
        return None
    return TextRow(
        int(gx[members].min()),
        int(np.median(gy[members])),
        int((gx + gw)[members].max()),
        int(np.median((gy + gh)[members])),
        float(np.median(gh[members])),
        int(members.sum()),
    )


def paper_rect(gray: npt.NDArray[np.uint8], row: TextRow) -> tuple[int, int, int, int] | None:
    """The rectangle (x0, y0, x1, y1 in ``gray``) of the light paper around ``row``, if
    one is found clear of the region's edges (see :data:`PAPER_LEVELS`)."""
    band = gray[row.y0 : row.y1, row.x0 : row.x1]
    if band.size == 0:
        return None
    paper, ink = percentiles(band, (85, 10))
    if paper - ink < MIN_CONTRAST:
        return None
    thresholds = [ink + level * (paper - ink) for level in PAPER_LEVELS]
    found, touches_edge = _paper_at_levels(gray, row, thresholds)
    if found is not None or not touches_edge:
        return found
    # The paper runs into a car as light as itself at every level: the plate's outline,
    # a thin edge all round it, may still part them.
    outline = cv2.Canny(gray, *OUTLINE_CANNY)
    barrier = cv2.dilate(outline, np.ones((OUTLINE_WIDTH, OUTLINE_WIDTH), np.uint8)) > 0
    return _paper_at_levels(gray, row, thresholds, barrier)[0]


def _paper_at_levels(
    gray: npt.NDArray[np.uint8],
    row: TextRow,
    thresholds: list[float],
    barrier: npt.NDArray[np.bool_] | None = None,
) -> tuple[tuple[int, int, int, int] | None, bool]:
    """:func:`_paper_at` at each of ``thresholds`` in turn until the light region stops
    running into the edge of ``gray``: the paper found there (or None), and whether it ran
    into the edge at every threshold."""
    for threshold in thresholds:
        found, touches_edge = _paper_at(gray, row, threshold, barrier)
        if found is not None or not touches_edge:
            return found, False
    return None, True


def _paper_at(
    gray: npt.NDArray[np.uint8],
    row: TextRow,
    threshold: float,
    barrier: npt.NDArray[np.bool_] | None = None,
) -> tuple[tuple[int, int, int, int] | None, bool]:
    """The paper's rectangle at one grey ``threshold`` (or None), and whether the light
    region around the row ran into the edge of ``gray`` (so a higher one may part it);
    pixels of ``barrier`` are never paper."""
    height, width = gray.shape
    is_light = gray > threshold
    if barrier is not None:
        is_light &= ~barrier
    light = is_light.astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(light, connectivity=4)
    # The paper is the light region along the rows just above and below the glyphs.
    gap = max(1, int(0.15 * row.glyph_h))
    above, below = max(0, row.y0 - gap), min(height - 1, row.y1 + gap - 1)
    along = np.concatenate([labels[above, row.x0 : row.x1], labels[below, row.x0 : row.x1]])
    votes = np.bincount(along, minlength=count)
    votes[0] = 0
    best = int(votes.argmax())
    if votes[best] < 0.3 * (row.x1 - row.x0):
        return None, False
    x, y, w, h = (int(v) for v in stats[best, :4])
    if x == 0 or y == 0 or x + w >= width or y + h >= height:
        return None, True
    slack = ROW_SLACK * row.glyph_h
    if not (
        x <= row.x0 + slack
        and y <= row.y0 + slack
        and x + w >= row.x1 - slack
        and y + h >= row.y1 - slack
    ):
        return None, False
    paper = (labels[y : y + h, x : x + w] == best).astype(np.uint8)
    kernel = np.ones((3, max(3, int(row.glyph_h * 0.7)) | 1), np.uint8)
    if float(cv2.morphologyEx(paper, cv2.MORPH_CLOSE, kernel).mean()) < PAPER_SOLID:
        return None, False
    return (x, y, x + w, y + h), False


TILT_ROW_MIN_GLYPHS = 4
TILT_ROW_STRAIGHT = 0.3
"""The glyphs' centres lie within this many glyph heights of their fitted line."""


def row_tilt(
    frame: Image, box: Box, thresholds: AdaptiveThresholds = ADAPTIVE_THRESHOLDS
) -> float | None:
    """The slope, in degrees, of the row of glyphs in ``box`` (positive: falling to the
    right), or None when no row of at least :data:`TILT_ROW_MIN_GLYPHS` glyphs of one
    height lies along a straight line under any of the adaptive ``thresholds`` (the row
    of most glyphs wins). Why: a plate read surely but tilted by 5 degrees or more is
    often read short of a character at its far end; the reader then reads the photo
    turned (``reader.still_tilted_plates``) and the plate levelled (``levelled_plates``)."""
    region = _search_region(frame, box)
    if region is None:
        return None
    gray = region[0]
    best: tuple[int, float] | None = None
    for block, offset in _threshold_blocks(gray, thresholds):
        found = _sloped_row(gray, block, offset)
        if found is not None and (best is None or found[0] > best[0]):
            best = found
    return None if best is None else best[1]


def _sloped_row(gray: npt.NDArray[np.uint8], block: int, offset: int) -> tuple[int, float] | None:
    """(glyphs, degrees) of the largest set of glyph-like blobs of one height whose centres
    lie on a straight line, at any slope, in ``gray``."""
    stats = _glyph_stats(gray, block, offset)
    if stats is None:
        return None
    gx, gy, gw, gh = stats
    same = np.abs(gh[None, :] - gh[:, None]) <= SAME_ROW * gh[:, None]
    members = same[int(same.sum(axis=1).argmax())]
    if int(members.sum()) < TILT_ROW_MIN_GLYPHS:
        return None
    cx, cy = (gx + gw / 2)[members], (gy + gh / 2)[members]
    if float(np.ptp(cx)) <= 0.0:
        return None
    slope, intercept = np.polyfit(cx, cy, 1)
    off_line = float(np.abs(cy - (slope * cx + intercept)).max())
    if off_line > TILT_ROW_STRAIGHT * float(np.median(gh[members])):
        return None
    return int(members.sum()), float(np.degrees(np.arctan(slope)))

"""Straighten a plate seen at an angle: its paper's four corners warped to a rectangle.

Why: a plate crop of a car seen from the side, or of a plate hung askew, holds the
plate as a slanted quadrilateral: its characters shrink towards the far end and its
rows slope. The recogniser learnt plates nearly front on; it drops or confuses the far
characters of such a crop (``8254-H-6`` for ``68254-H-6``) and reads it unsure. The
plate's light paper shows where its corners are: :func:`rectified` finds the light
region across the crop's middle (Otsu's threshold), takes its convex hull's four
corners and warps them to a rectangle of the plate's own size, with margins like those
the recogniser was trained with. Pure image logic (OpenCV, numpy), no model: the reader
reads the rectified crop when its first read is unsure (``reader.still_rectified_plates``).
"""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from agent.frames import Image

RECTIFIED_MARGINS: Final = (0.1, 0.15)
"""Margins around the rectified paper, as shares of its width and height (the recogniser
reads a plate best with some of what surrounds it: the detector's boxes are loose)."""
MIN_PAPER_SHARE: Final = 0.25
"""The paper's hull covers at least this share of the crop, else no plate is straightened
(a dark plate, or a crop mostly of car)."""
CORNER_TOLERANCES: Final = (0.02, 0.03, 0.04, 0.06, 0.08, 0.1)
"""Tolerances, as shares of the hull's perimeter, tried in turn until the hull simplifies
to four corners; failing that, its smallest enclosing rotated rectangle is taken."""
MIN_SIDE_PX: Final = 8
MIN_CONTRAST: Final = 30
"""The light part of the crop is at least this much lighter, on average, than the rest."""


def paper_corners(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32] | None:
    """The four corners (top-left, top-right, bottom-right, bottom-left; x, y) of the light
    paper across the middle of a grey plate crop, or None when none is found."""
    height, width = gray.shape
    if height < MIN_SIDE_PX or width < MIN_SIDE_PX:
        return None
    paper = _paper(gray)
    if paper is None:
        return None
    contours, _ = cv2.findContours(paper, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    if cv2.contourArea(hull) < MIN_PAPER_SHARE * height * width:
        return None
    perimeter = cv2.arcLength(hull, True)
    for tolerance in CORNER_TOLERANCES:
        corners = cv2.approxPolyDP(hull, tolerance * perimeter, True)
        if len(corners) == 4:
            return _clockwise(corners)
    return _clockwise(cv2.boxPoints(cv2.minAreaRect(hull)))


def _paper(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8] | None:
    """A mask (1 inside) of the light region covering most of the crop's middle, under
    Otsu's threshold; None for a crop without light paper and dark ink."""
    height, width = gray.shape
    blurred = cv2.GaussianBlur(gray, (3, 3), 0)
    _level, light = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    is_light = light > 0
    if is_light.all() or not is_light.any():
        return None
    if float(blurred[is_light].mean()) - float(blurred[~is_light].mean()) < MIN_CONTRAST:
        return None  # no paper and ink: a flat crop
    count, labels, _stats, _centres = cv2.connectedComponentsWithStats(light, connectivity=4)
    middle = labels[height // 3 : 2 * height // 3, width // 6 : 5 * width // 6]
    votes = np.bincount(middle.ravel(), minlength=count)
    votes[0] = 0
    paper = int(votes.argmax())
    if votes[paper] == 0:
        return None
    return np.asarray(labels == paper, np.uint8)


def _clockwise(points: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Four points ordered top-left, top-right, bottom-right, bottom-left."""
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    sums, diffs = pts.sum(axis=1), pts[:, 1] - pts[:, 0]
    return np.array(
        [pts[sums.argmin()], pts[diffs.argmin()], pts[sums.argmax()], pts[diffs.argmax()]],
        np.float32,
    )


def rectified(crop: Image) -> Image | None:
    """The plate of a BGR (or grey) plate crop warped front on, with
    :data:`RECTIFIED_MARGINS`; None when its paper's corners are not found."""
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    corners = paper_corners(np.asarray(gray, np.uint8))
    if corners is None:
        return None
    top_left, top_right, bottom_right, bottom_left = corners
    width = max(np.linalg.norm(top_right - top_left), np.linalg.norm(bottom_right - bottom_left))
    height = max(np.linalg.norm(bottom_left - top_left), np.linalg.norm(bottom_right - top_right))
    if width < MIN_SIDE_PX or height < MIN_SIDE_PX:
        return None
    mx, my = RECTIFIED_MARGINS[0] * width, RECTIFIED_MARGINS[1] * height
    target = np.array(
        [[mx, my], [mx + width, my], [mx + width, my + height], [mx, my + height]], np.float32
    )
    warp = cv2.getPerspectiveTransform(corners, target)
    size = (round(width + 2 * mx), round(height + 2 * my))
    out = cv2.warpPerspective(
        crop, warp, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(out, np.uint8)

"""Plate localisation: the ``Detector`` interface and a classical OpenCV detector.

``ContourDetector`` finds light, rectangular, text-bearing regions of plate
shape; it needs no model and is the stand-in until the trained TFLite detector
lands. Steps, on a (by default) half-size grayscale frame:

1. threshold bright pixels at a few levels (plates are white or near-white; a
   higher level separates a plate from a silver or beige body around it);
2. close 1-2 px dark gaps horizontally, so the bars of a Moroccan plate do not
   cut the plate into pieces;
3. external contours -> bounding rectangles kept when their aspect ratio
   (2.5-6.5), size and rectangularity fit a plate;
4. a text check: the region must hold a fair share of dark pixels (characters)
   in its middle rows, which rejects lane markings, sky and white car panels;
5. the box is widened over a blue EU band on either side (French plates);
6. overlapping boxes from the different levels are merged (best score kept).

Regions touching the frame edge are dropped: a cut plate cannot be read whole.

The score in [0, 1] says how plate-like the region is, not a calibrated
probability. Limits: plates on a white body without a dark surround, yellow
(old French rear) plates and night (IR) images are not handled yet.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from agent.frames import Image
from agent.reads import Box


class Detector(Protocol):
    """Finds plates in a BGR frame: boxes in frame pixels with a score in [0, 1]."""

    def detect(self, image: Image) -> list[tuple[Box, float]]: ...


class ContourDetector:
    """Classical plate localiser (threshold, morphology, contours, text check)."""

    def __init__(
        self,
        *,
        thresholds: tuple[int, ...] = (140, 180, 210),
        min_width: int = 48,
        max_width: int = 480,
        min_aspect: float = 2.5,
        max_aspect: float = 6.5,
        scale: float = 0.5,
    ) -> None:
        if not 0.1 <= scale <= 1.0:
            raise ValueError(f"scale must be in [0.1, 1], got {scale}")
        if not thresholds:
            raise ValueError("at least one threshold is needed")
        self.thresholds = thresholds
        self.min_width = min_width
        self.max_width = max_width
        self.min_aspect = min_aspect
        self.max_aspect = max_aspect
        self.scale = scale
        self._kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 1))

    def detect(self, image: Image) -> list[tuple[Box, float]]:
        """Plate boxes (x, y, w, h in ``image`` pixels) and scores, best first."""
        if self.scale < 1.0:
            small = cv2.resize(
                image, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA
            )
        else:
            small = image
        gray = np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        found: list[tuple[Box, float]] = []
        for level in self.thresholds:
            found.extend(self._candidates(image, gray, level))
        return _suppress_overlaps(found)

    def _candidates(
        self, image: Image, gray: npt.NDArray[np.uint8], level: int
    ) -> list[tuple[Box, float]]:
        _, mask = cv2.threshold(gray, level, 255, cv2.THRESH_BINARY)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._kernel)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        found: list[tuple[Box, float]] = []
        inv = 1.0 / self.scale
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if x <= 0 or y <= 0 or x + w >= gray.shape[1] or y + h >= gray.shape[0]:
                continue  # cut by the frame edge: cannot be read whole
            if not self._shape_ok(w * inv, h * inv):
                continue
            rect_fill = cv2.contourArea(contour) / float(w * h)
            if rect_fill < 0.7:
                continue
            text_score = _text_score(gray[y : y + h, x : x + w])
            if text_score <= 0.0:
                continue
            box = (round(x * inv), round(y * inv), round(w * inv), round(h * inv))
            box = _widen_over_blue(image, box)
            found.append((box, float(min(1.0, rect_fill) * text_score)))
        return found

    def _shape_ok(self, w: float, h: float) -> bool:
        if h <= 0 or not self.min_width <= w <= self.max_width:
            return False
        return self.min_aspect <= w / h <= self.max_aspect


def _iou(a: Box, b: Box) -> float:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def _suppress_overlaps(found: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
    """Best first; drop a box overlapping (IoU > 0.3) a better one."""
    found.sort(key=lambda item: item[1], reverse=True)
    kept: list[tuple[Box, float]] = []
    for box, score in found:
        if all(_iou(box, other) <= 0.3 for other, _ in kept):
            kept.append((box, score))
    return kept


def _text_score(region: npt.NDArray[np.uint8]) -> float:
    """How much the middle rows of ``region`` look like dark characters on a light ground.

    "Dark" is relative to the region's own paper level (its 90th percentile), so
    dim and bright plates score alike.
    """
    h = region.shape[0]
    middle = region[h // 4 : h - h // 4]
    if middle.size == 0:
        return 0.0
    paper = float(np.percentile(middle, 90))
    dark = float(np.count_nonzero(middle < paper * 0.6)) / middle.size
    if not 0.08 <= dark <= 0.6:
        return 0.0
    # Peak at ~25% ink, the usual share on a plate; 0.5 at either limit.
    return 1.0 - min(abs(dark - 0.25) / 0.35, 0.5)


def _widen_over_blue(image: Image, box: Box) -> Box:
    """Extend ``box`` left and right over adjoining blue EU-band columns."""
    x, y, w, h = box
    width = image.shape[1]
    limit = max(2, round(0.15 * w))
    rows = image[y + h // 4 : y + h - h // 4]
    if rows.size == 0:
        return box

    def blue_columns(x_from: int, x_to: int, step: int) -> int:
        n = 0
        for cx in range(x_from, x_to, step):
            if not 0 <= cx < width:
                break
            col = rows[:, cx].astype(np.int16)
            if float(np.mean(col[:, 0] - col[:, 2])) < 40:
                break
            n += 1
        return n

    left = blue_columns(x - 1, x - 1 - limit, -1)
    right = blue_columns(x + w, x + w + limit, 1)
    return (x - left, y, w + left + right, h)

"""A plate crop with its coloured emblems painted over in the grey of its paper.

Why: many European plates print coloured marks in or beside their line of characters:
a German plate's two round seals between the district and the letters, a coat of arms
after an Austrian, Slovak or Croatian district, the Swiss and the canton's shields
around a Swiss plate's letters, a Swedish or Polish sticker, Vienna's arms, an Italian
plate's blue side band. In grey, the recogniser reads each as one more character, and
is sure of it (``KL8YA542``, ``SC0949AD``, ``0AG12393``, ``5-KFJ-492``): it learnt plates
without them (models/recogniser.md, "Coloured emblems"). Characters are black (or dark
grey) on a white, grey or yellow plate, so the strongly coloured pixels of a crop whose
paper is not itself coloured are not characters: :func:`blanked_colours` paints them
in the paper's grey, and the reader reads that view too
(``reader.still_blank_colours``). Pure image logic (OpenCV, numpy), no model.
"""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np

from agent.frames import Image
from agent.reader.percentiles import percentile

MIN_SATURATION: Final = 100
"""HSV saturation (0-255) from which a pixel is coloured: the red, blue, green and yellow
of seals, arms and bands; not the grey, white or black of a plate's paper and ink."""
MIN_VALUE: Final = 50
"""Coloured pixels darker than this (HSV value) are left: dark ink reads as saturated
where its hue is noise."""
MAX_COLOURED_SHARE: Final = 0.3
"""A crop more coloured than this is a coloured plate (yellow, a blue or red paper) or a
coloured car around it: nothing is painted."""
PAPER_PERCENTILE: Final = 80
"""The paper's grey: this percentile of the crop's uncoloured pixels (most of a plate
crop is paper; its ink is the darker part)."""
MIN_EMBLEM_SHARE: Final = 0.005
"""An emblem covers at least this share of the crop: smaller coloured specks (a
reflection, JPEG colour noise on ink) are left."""
MIN_EMBLEM_FILL: Final = 0.5
"""An emblem fills at least this share of its bounding box (a seal, a shield, a band); a
streak of colour along a bumper does not."""
MAX_EMBLEM_ASPECT: Final = 5.0
"""An emblem's bounding box is at most this many times as long one way as the other."""
EMBLEM_ROWS: Final = (0.15, 0.85)
"""An emblem's centre lies between these shares of the crop's height: in the plate's
line, not on the car above or below it."""


def coloured_mask(crop: Image) -> np.ndarray:
    """1 where a pixel of the BGR ``crop`` is strongly coloured (see the constants)."""
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    return ((hsv[..., 1] > MIN_SATURATION) & (hsv[..., 2] > MIN_VALUE)).astype(np.uint8)


def emblem_mask(crop: Image) -> np.ndarray | None:
    """1 on the coloured emblems of the BGR ``crop``: the blobs of :func:`coloured_mask`
    large, solid and squat enough, in the plate's line (see the constants); None when there
    is none, or when the crop is more than :data:`MAX_COLOURED_SHARE` coloured."""
    coloured = coloured_mask(crop)
    if coloured.size == 0 or float(coloured.mean()) > MAX_COLOURED_SHARE:
        return None
    height, width = coloured.shape
    count, labels, stats, centres = cv2.connectedComponentsWithStats(coloured, connectivity=8)
    keep = np.zeros(count, bool)
    for i in range(1, count):
        _x, _y, w, h, area = (int(v) for v in stats[i])
        keep[i] = (
            area >= MIN_EMBLEM_SHARE * height * width
            and area >= MIN_EMBLEM_FILL * w * h
            and max(w, h) <= MAX_EMBLEM_ASPECT * min(w, h)
            and EMBLEM_ROWS[0] * height <= centres[i][1] <= EMBLEM_ROWS[1] * height
        )
    if not keep.any():
        return None
    return np.asarray(keep[labels], np.uint8)


def blanked_colours(crop: Image) -> Image | None:
    """``crop`` (BGR) in grey with its coloured emblems (:func:`emblem_mask`), and one pixel
    around them, painted in its paper's grey (BGR again, for the reader's views); None
    when it has none."""
    emblems = emblem_mask(crop)
    if emblems is None:
        return None
    coloured = cv2.dilate(emblems, np.ones((3, 3), np.uint8))
    gray = np.asarray(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), np.uint8)
    calm = gray[coloured == 0]
    if calm.size == 0:
        return None
    gray[coloured > 0] = np.uint8(percentile(calm, PAPER_PERCENTILE))
    return np.asarray(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), np.uint8)

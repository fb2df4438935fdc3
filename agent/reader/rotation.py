"""A frame turned about its centre, and boxes found in it mapped back as upright envelopes.

Why: the detector and recogniser learnt plates nearly level. A plate tilted by 15-25
degrees (a car parked on a slope, a bent bumper, a camera held askew) is boxed by one
line of its characters or not at all, and read partly; in the frame turned the other
way it is level, boxed whole and read (models/detector.md, "Tilted plates"). The
reader maps such a box back to the frame as the upright envelope of the turned
rectangle: the box a labeller draws around a tilted plate. A plate already boxed whose row
of characters slopes is cut out turned level about its own box (:func:`levelled`): the
photo turned by a fixed angle levels only the plates tilted by about as much.
"""

from __future__ import annotations

import math
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from agent.frames import Image
from agent.reads import Box

Affine = npt.NDArray[np.float64]
"""A 2 x 3 affine map of pixel coordinates."""


def turned(frame: Image, degrees: float) -> tuple[Image, Affine]:
    """``frame`` turned ``degrees`` anticlockwise about its centre on a canvas large enough
    for all of it (the corners filled with the frame's edge pixels), and the map from the
    turned canvas's pixels back to ``frame``'s."""
    height, width = frame.shape[:2]
    forward = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(forward[0, 0]), abs(forward[0, 1])
    out_w, out_h = round(height * sin + width * cos), round(height * cos + width * sin)
    forward[0, 2] += out_w / 2 - width / 2
    forward[1, 2] += out_h / 2 - height / 2
    canvas = cv2.warpAffine(
        frame, forward, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(canvas, np.uint8), np.asarray(cv2.invertAffineTransform(forward), np.float64)


def upright_envelope(box: Box, back: Affine, width: int, height: int) -> Box:
    """The upright box around ``box`` (in the turned canvas) once mapped by ``back``,
    clipped to a ``width`` x ``height`` frame."""
    x, y, w, h = box
    corners = np.array([[x, y, 1], [x + w, y, 1], [x, y + h, 1], [x + w, y + h, 1]], np.float64)
    mapped = corners @ back.T
    x0, y0 = np.maximum(mapped.min(axis=0), 0.0)
    x1, y1 = np.minimum(mapped.max(axis=0), (width, height))
    return (round(x0), round(y0), max(1, round(x1 - x0)), max(1, round(y1 - y0)))


LEVEL_MIN_HEIGHT: Final = 0.35
"""A levelled plate's crop is at least this share of its box's height tall."""


def levelled(frame: Image, box: Box, degrees: float, margins: tuple[float, float]) -> Image:
    """The plate in ``box`` whose row of characters slopes by ``degrees`` (positive: falling
    to the right), turned level about the box's centre and cut out with ``margins`` (shares
    of its length and height on each side). Its length is the box's width run along the
    slope; its height what the box's height leaves beside the slope's rise (at least
    :data:`LEVEL_MIN_HEIGHT` of it). Only the crop's own pixels are computed, whatever
    the frame's size."""
    x, y, w, h = box
    slope = math.radians(abs(degrees))
    length = w / max(math.cos(slope), 0.5)
    height = max(h - length * math.sin(slope), LEVEL_MIN_HEIGHT * h)
    out_w = max(2, round(length * (1 + 2 * margins[0])))
    out_h = max(2, round(height * (1 + 2 * margins[1])))
    forward = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), degrees, 1.0)
    forward[0, 2] -= x + w / 2 - out_w / 2
    forward[1, 2] -= y + h / 2 - out_h / 2
    crop = cv2.warpAffine(
        frame, forward, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(crop, np.uint8)

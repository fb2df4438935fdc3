"""Two-line plates: how a square-ish plate crop is shown to the one-line recogniser.

The recogniser reads one row of characters (a ``H x W`` strip, CTC along the
width). A two-line plate (Moroccan imports and motorcycles: series letter and
region on top, serial below) is cut at the gap between its lines; the top line
goes to the left half of the strip and the bottom line to the right half, with
a blank gap between. The model is trained on exactly this composite
(models/train_recogniser.py calls the same function), so its tokens come out
as "top line, then bottom line", and :func:`split_by_position` uses where each
token was emitted to tell which line it came from.

Pure numpy/OpenCV, no model: shared by training and the runtime.
"""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from agent.reader.percentiles import percentile

Gray = npt.NDArray[np.uint8]

TWO_LINE_MAX_ASPECT: Final = 2.6
"""Crops narrower than this (width / height) may be two-line plates and are also
read as such; one-line plates with the runtime margins are about 3.5-4.5 wide."""

MOPED_SERIAL_DIGITS: Final = 6
"""Motorcycle serials have six digits; car serials at most five."""

GAP_FRACTION: Final = 1 / 16
"""Width of the blank gap between the two halves, as a share of the strip width."""

_SPLIT_BAND: Final = (0.36, 0.64)  # where the line gap is looked for, as shares of the height


def maybe_two_line(width: int, height: int) -> bool:
    """True when a crop of this size is square enough to be a two-line plate."""
    return height > 0 and width / height < TWO_LINE_MAX_ASPECT


def split_row(gray: Gray) -> int:
    """The row between the two lines: the brightest row (plate paper, no ink) near the middle.

    The row profile is smoothed over 3 rows so that the thin divider line drawn
    between the lines of Moroccan plates does not win over the paper around it.
    """
    h = int(gray.shape[0])
    lo, hi = round(h * _SPLIT_BAND[0]), round(h * _SPLIT_BAND[1])
    if hi - lo < 3:
        return h // 2
    profile = gray[lo:hi].mean(axis=1, dtype=np.float32)
    smooth = np.convolve(profile, np.ones(3, np.float32) / 3, mode="same")
    smooth[0], smooth[-1] = profile[0], profile[-1]  # no zero padding at the band edges
    return lo + int(np.argmax(smooth))


def two_line_composite(gray: Gray, height: int, width: int, out: Gray | None = None) -> Gray:
    """A ``height x width`` strip: the crop's top line left, its bottom line right.

    ``out``, when given, is written in place (the recogniser's input buffer).
    The gap takes the brightness of the plate paper (75th percentile) so it reads as blank.
    """
    if gray.ndim != 2 or gray.shape[0] < 4 or gray.shape[1] < 2:
        raise ValueError(f"two-line crop must be a 2-D image of at least 4 x 2, got {gray.shape}")
    strip = np.empty((height, width), np.uint8) if out is None else out
    row = split_row(gray)
    gap = max(2, round(width * GAP_FRACTION))
    half = (width - gap) // 2
    strip[:, half : width - half] = np.uint8(percentile(gray, 75))
    # Column slices of the strip are not contiguous: OpenCV cannot resize into them.
    strip[:, :half] = cv2.resize(gray[:row], (half, height), interpolation=cv2.INTER_AREA)
    strip[:, width - half :] = cv2.resize(gray[row:], (half, height), interpolation=cv2.INTER_AREA)
    return strip


def split_by_position(tokens: str, steps: list[int], time_steps: int) -> tuple[str, str]:
    """``(top, bottom)``: the tokens emitted in the left and the right half of the strip."""
    if len(tokens) != len(steps):
        raise ValueError(f"{len(tokens)} tokens but {len(steps)} positions")
    middle = time_steps / 2
    top = "".join(t for t, s in zip(tokens, steps, strict=True) if s < middle)
    bottom = "".join(t for t, s in zip(tokens, steps, strict=True) if s >= middle)
    return top, bottom


def logical_raw(top: str, bottom: str) -> str:
    """The one-line raw token order of a two-line plate read.

    Car plate (series letter and region on top, serial below): ``serial letter
    region`` (``"ب26"`` over ``"45498"`` -> ``"45498ب26"``), as a one-line plate
    reads. Motorcycle (region only on top): ``region|serial`` (``"8|013353"``),
    the shared data sets' spelling. Anything else: top then bottom.

    The series letter may stand either side of the region on the top line
    (``"26ب"`` over ``"45498"`` gives ``"45498ب26"`` too). Over a six-digit
    serial (motorcycles only) the top line's letters are dropped: the
    coloured sticker beside a motorcycle's region number reads as a round
    Arabic letter (``"21"`` and heh over ``"082851"`` gives ``"21|082851"``).
    A Latin top line (square European plates: ``"M AB"`` over ``"1234"``) reads
    top then bottom: ``"MAB1234"``.
    """
    top_digits = "".join(ch for ch in top if ch.isdigit())
    if top_digits and len(bottom) == MOPED_SERIAL_DIGITS and bottom.isdigit():
        return f"{top_digits}|{bottom}"
    letters = [ch for ch in top if not ch.isdigit()]
    if len(letters) == 1 and not letters[0].isascii() and bottom.isdigit():
        return bottom + letters[0] + top_digits
    if top and bottom.isdigit() and not top[0].isdigit() and (top == "WW" or not top.isascii()):
        return bottom + top  # a Moroccan top line (letter first, or WW): serial first
    if top.isdigit() and bottom.isdigit():
        return f"{top}|{bottom}"
    return top + bottom


def label_tokens(top: str, bottom: str) -> str:
    """The training label of a two-line composite: what the strip shows, left to right."""
    return top + bottom

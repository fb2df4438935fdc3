"""Area down-scaling by block matrix products, for the detector's letterbox.

Why: OpenCV's ``INTER_AREA`` is fast for whole-number ratios (1920 x 1080 -> 384 x 216)
but takes a slow general path for others. A 1280 x 720 frame, the sample clip's and a
common camera mode, goes to the detector's 384 x 216 at 10/3 and cost 3.0-3.2 ms of a
frame's 13-15 ms on one core of the dev VM (docs/benchmarks.md). Where each axis' ratio
is a fraction ``p / q`` with a small ``p`` (10 / 3 here), the area weights repeat every
``p`` source pixels, so the resize is two products with small weight blocks, about 1.1 ms,
run band by band of the frame's rows so each band's float copy stays in cache.

The weights are OpenCV's area rule: an output pixel averages the source pixels its
footprint covers, each by the share it covers. The sums run in float32 in another order
than OpenCV's, so a value lying near half a grey level can round the other way: the
result is within one grey level of ``cv2.resize(..., INTER_AREA)`` (a test pins it).
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from agent.frames import Image

MAX_PERIOD: Final = 16
"""Longest run of source pixels after which the weights repeat, per axis: the blocks
grow as its square, and beyond it OpenCV's own path is as fast."""
MAX_PLANS: Final = 4
"""Plans kept (each holds float buffers of its source's width): a camera sends one frame
size; a folder of photos of many sizes must not grow the cache without end."""
BAND_ROWS: Final = 40
"""Source rows converted to float and multiplied at a time (rounded down to a whole number
of periods, at least one): a band of a 1280 x 720 frame, 0.6 MB in float32, stays in the
core's cache from its conversion through both products, where the whole frame's 11 MB did
not. The result is the same to the bit; on the Intel VM of 2026-12-06, 1.64 -> 1.12 ms a
clip frame alone (docs/benchmarks.md)."""

Weights = npt.NDArray[np.float32]


class _Plan(NamedTuple):
    """The weight blocks and work buffers for one source and target shape."""

    rows: Weights  # q_y x p_y
    cols: Weights  # (p_x * channels) x (q_x * channels)
    p_y: int
    p_x: int
    source: npt.NDArray[np.float32]  # band x (W * channels)
    between: npt.NDArray[np.float32]  # band / p_y x q_y x (W * channels)
    result: npt.NDArray[np.float32]  # (h * W / p_x) x (q_x * channels)


def _period(n_src: int, n_dst: int) -> tuple[int, int]:
    """``(p, q)``: every ``p`` source pixels give ``q`` output pixels."""
    g = math.gcd(n_src, n_dst)
    return n_src // g, n_dst // g


def area_block(p: int, q: int) -> Weights:
    """``q x p`` area weights: row ``k`` is output pixel ``k``'s share of each source
    pixel, for the footprint ``[k p / q, (k + 1) p / q)``; each row sums to one."""
    scale = p / q
    block = np.zeros((q, p), np.float64)
    for k in range(q):
        start, end = k * scale, (k + 1) * scale
        for s in range(math.floor(start), min(p, math.ceil(end))):
            block[k, s] = (min(end, s + 1) - max(start, s)) / scale
    return block.astype(np.float32)


class AreaResizer:
    """Area down-scaling into a caller's buffer, with the plans of the shapes it met.

    :meth:`resize` returns False where it has no faster way than OpenCV (whole-number
    ratios, long periods, up-scaling): the caller then uses ``cv2.resize``."""

    def __init__(self, max_period: int = MAX_PERIOD) -> None:
        self.max_period = max_period
        self._plans: dict[tuple[tuple[int, ...], tuple[int, ...]], _Plan | None] = {}

    def resize(self, image: Image, target: Image) -> bool:
        """Write ``image`` (H x W x C uint8) area-scaled into ``target`` (h x w x C uint8)."""
        key = (image.shape, target.shape)
        if key not in self._plans:
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            self._plans[key] = self._plan(image.shape, target.shape)
        plan = self._plans[key]
        if plan is None:
            return False
        height, width, channels = image.shape
        band, p_y = plan.source.shape[0], plan.p_y
        per_row = width // plan.p_x  # column blocks in an output row
        for top in range(0, height, band):  # height and band are whole numbers of periods
            rows = min(band, height - top)
            source, between = plan.source[:rows], plan.between[: rows // p_y]
            np.copyto(source.reshape(rows, width, channels), image[top : top + rows])
            np.matmul(plan.rows, source.reshape(rows // p_y, p_y, -1), out=between)
            first = top // p_y * plan.rows.shape[0] * per_row
            out = plan.result[first : first + between.size // (plan.p_x * channels)]
            np.matmul(between.reshape(-1, plan.p_x * channels), plan.cols, out=out)
        np.rint(plan.result, out=plan.result)
        np.copyto(target, plan.result.reshape(target.shape), casting="unsafe")
        return True

    def _plan(self, src: tuple[int, ...], dst: tuple[int, ...]) -> _Plan | None:
        if len(src) != 3 or len(dst) != 3 or src[2] != dst[2]:
            return None
        (height, width, channels), (h, w) = src, dst[:2]
        if not (0 < h <= height and 0 < w <= width):
            return None
        (p_y, q_y), (p_x, q_x) = _period(height, h), _period(width, w)
        if q_y == 1 and q_x == 1:
            return None  # whole-number ratios: OpenCV's own fast path
        if max(p_y, p_x) > self.max_period:
            return None
        cols = np.kron(area_block(p_x, q_x).T, np.eye(channels, dtype=np.float32))
        band = min(height, p_y * max(1, BAND_ROWS // p_y))
        return _Plan(
            rows=area_block(p_y, q_y),
            cols=np.ascontiguousarray(cols, np.float32),
            p_y=p_y,
            p_x=p_x,
            source=np.empty((band, width * channels), np.float32),
            between=np.empty((band // p_y, q_y, width * channels), np.float32),
            result=np.empty((h * width // p_x, q_x * channels), np.float32),
        )

"""Plate localisation: the ``Detector`` interface, the trained int8 detector and a classical one.

``ModelDetector`` runs ``detector.tflite`` (models/train_detector.py): a small
fully-convolutional CenterNet-style network on the letterboxed, down-scaled
frame, decoded in numpy (see its docstring for the contract).

``ContourDetector`` finds light, rectangular, text-bearing regions of plate
shape; it needs no model (the fallback when no detector model is shipped, and a
reference). Steps, on a (by default) half-size grayscale frame:

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

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from agent.errors import FrameError, ModelError
from agent.frames import Image
from agent.reader.backend import QuantizedModel
from agent.reader.percentiles import percentile
from agent.reader.resample import AreaResizer
from agent.reads import Box, box_inside_share, box_iou


class Detector(Protocol):
    """Finds plates in a BGR frame: boxes in frame pixels with a score in [0, 1]."""

    def detect(self, image: Image) -> list[tuple[Box, float]]: ...


class Look(NamedTuple):
    """A plate box found, its score, and the box it was before the second look."""

    box: Box
    score: float
    first: Box


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
            box = widen_over_blue(image, box)
            found.append((box, float(min(1.0, rect_fill) * text_score)))
        return found

    def _shape_ok(self, w: float, h: float) -> bool:
        if h <= 0 or not self.min_width <= w <= self.max_width:
            return False
        return self.min_aspect <= w / h <= self.max_aspect


def _suppress_overlaps(
    found: list[tuple[Box, float]], *, keep_wholes: bool = False
) -> list[tuple[Box, float]]:
    """Best first; drop a box overlapping (IoU > 0.3) a better one. With ``keep_wholes``
    (after the second look) a box is kept that holds :data:`WHOLE_HOLDS` of a better one and
    is :data:`WHOLE_MIN_WIDER` times as wide or more: the better one may be a part of it."""
    found.sort(key=lambda item: item[1], reverse=True)
    kept: list[tuple[Box, float]] = []
    for box, score in found:
        if all(
            box_iou(box, other) <= 0.3
            or (
                keep_wholes
                and box[2] >= WHOLE_MIN_WIDER * other[2]
                and box_inside_share(other, box) >= WHOLE_HOLDS
            )
            for other, _ in kept
        ):
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
    paper = percentile(middle, 90)
    dark = float(np.count_nonzero(middle < paper * 0.6)) / middle.size
    if not 0.08 <= dark <= 0.6:
        return 0.0
    # Peak at ~25% ink, the usual share on a plate; 0.5 at either limit.
    return 1.0 - min(abs(dark - 0.25) / 0.35, 0.5)


def cast_strength(image: Image) -> float:
    """How far a BGR image's mean colour is from grey: the sum of its channel means'
    pairwise differences over their mean (0 for a grey image; a magenta night frame
    under sodium lamps and tail lights about 2)."""
    blue, green, red, _ = cv2.mean(image)
    spread = abs(red - green) + abs(green - blue) + abs(red - blue)
    return float(spread / max((blue + green + red) / 3, 1.0))


def widen_over_blue(image: Image, box: Box) -> Box:
    """Extend ``box`` left and right over adjoining blue EU-band columns."""
    x, y, w, h = box
    width = image.shape[1]
    limit = max(2, round(0.15 * w))
    rows = image[y + h // 4 : y + h - h // 4]
    if rows.size == 0:
        return box

    def blue_columns(x_from: int, x_to: int, step: int) -> int:
        """Columns from ``x_from`` towards ``x_to`` that are blue, up to the first that is not
        or the frame's edge: blue exceeds red by 40 grey levels on average down the column."""
        stop = max(-1, x_to) if step < 0 else min(width, x_to)
        columns = range(x_from, stop, step)
        if not 0 <= x_from < width or len(columns) == 0:
            return 0
        cols = rows[:, x_from : stop if stop >= 0 else None : step].astype(np.int16)
        blue = (cols[:, :, 0] - cols[:, :, 2]).mean(axis=0) >= 40
        return len(columns) if blue.all() else int(np.argmin(blue))

    left = blue_columns(x - 1, x - 1 - limit, -1)
    right = blue_columns(x + w, x + w + limit, 1)
    return (x - left, y, w + left + right, h)


TILE_ABOVE = 2560
"""Frames wider or taller than this (4K photos and video) get a second, tiled pass:
letterboxed whole into a 640 px wide input, a plate 60 px wide in a 4K frame is
10 px there, too small to find. Smaller frames (up to QHD) get one pass."""
TILE_SCALE = 0.5
"""The tiled pass sees the frame at this scale (as a 1280 x 720 frame is seen whole)."""
TILE_OVERLAP = 0.25
"""Neighbouring tiles overlap by this share of a tile, so a plate up to a quarter
of a tile wide (320 px of a 4K frame) lies whole in one of them."""

GREY_MIN_CAST: Final = 0.5
"""The grey pass runs on frames whose :func:`cast_strength` is at least this. Daylight
frames under a camera's white balance lie at 0.04-0.7 (medians 0.15-0.19 on the held-out
Moroccan, French and mixed photos); the dusk and night dashcam frames the pass was built
for at 0.3-2.8 (night ride median 1.9), and the two night frames whose plates only the
grey pass finds at 0.82 and 1.3. A grey frame (an infrared night camera) is at 0: its
grey pass would see the very input of its colour pass. Thresholds 0.3, 0.5 and 0.8 lost
the same one chance read as video frames (models/detector.md, "Grey pass only under a
colour cast")."""

SECOND_LOOK_MIN_WINDOW: Final = 64
"""Narrowest second-look window (frame pixels): a tiny box still gets some context."""
SECOND_LOOK_BOXES: Final = 4
"""By default only the best this many boxes of a frame get the second look: a photo's
tiles add low-heat boxes that, all looked at again, doubled its time for no plate found."""
ZOOM_INTERPOLATION: Final = cv2.INTER_LINEAR
"""How a second-look window is scaled into the model input. Bilinear, not area: area
interpolation by a factor that is no whole number cost 0.7-1.5 ms per window (more than
the model run), and with bilinear windows the held-out photo figures stayed within one
plate of area's on every set (models/detector.md, runtime)."""
WHOLE_HOLDS: Final = 0.8
WHOLE_MIN_WIDER: Final = 1.3
"""After the second look, a box that holds this share of a surer box and is this many times
as wide is not dropped for overlapping it (:func:`_suppress_overlaps`). A plate wider than
half a tile (a car photographed close in a 1280 px photo) is boxed by a tile only in part,
its serial without its letter, and surer than the whole-frame box of the whole plate,
which that part then dropped. Both are read now, and the reader keeps the whole plate's
read over its part's (``_a_part_read``). Moroccan scenes enlarged 2x: 276 -> 279 of 299
plates read, 296 -> 299 of 313 boxed; every read of the real sets at their own size is the
same (models/detector.md, "A part of a near plate")."""

SECOND_LOOK_IOU: Final = 0.1
"""A box of a second look counts for the plate it zooms on when it overlaps it this much."""


def tile_windows(
    frame_w: int, frame_h: int, tile_w: int, tile_h: int, overlap: float = TILE_OVERLAP
) -> list[tuple[int, int, int, int]]:
    """``(x0, y0, x1, y1)`` windows of at most ``tile_w x tile_h`` covering the frame,
    overlapping by ``overlap`` of a tile, the last ones flush with the far edges."""

    def starts(size: int, tile: int) -> list[int]:
        if size <= tile:
            return [0]
        step = max(1, round(tile * (1 - overlap)))
        out = list(range(0, size - tile, step))
        return [*out, size - tile]

    return [
        (x, y, min(x + tile_w, frame_w), min(y + tile_h, frame_h))
        for y in starts(frame_h, tile_h)
        for x in starts(frame_w, tile_w)
    ]


class ModelDetector:
    """The trained int8 plate detector (``detector.tflite`` and ``detector.json``).

    Contract: input ``1 x H x W x 3`` uint8 BGR, the frame scaled by
    ``s = min(W / frame_w, H / frame_h)`` (area interpolation) into the top-left
    corner of a canvas filled with ``pad_value``; output ``1 x H/4 x W/4 x 5``,
    all in [0, 1] (sigmoid): plate-centre heat, centre offset x and y within the
    4-pixel cell, and log-sizes ``w = min_w * 2 ** (v * octaves)``,
    ``h = min_h * 2 ** (v * octaves)`` in input pixels.

    Decoding: cells whose heat is a 3x3 local maximum and reaches ``threshold``
    (by default the ``threshold`` of the model's JSON) become boxes, mapped back
    to the frame by ``1 / s``; overlapping boxes (IoU > 0.3) keep the best. The
    score is the heat (a plate-centre likelihood, not calibrated).

    Colour casts: with ``grey_pass`` (default) the model also sees the frame
    without its colours, and the boxes of that pass that overlap no box of the
    colour pass (IoU <= 0.3) are added: it only adds plates. The shipped 2.1.0
    was trained on colour frames without casts and misses most plates of dusk
    and night dashcam frames with a magenta or red cast (12 % of the held-out
    rides); the grey pass finds 64 % of them (80 % at night) and loses none on
    the other held-out sets, for twice the detector time (models/detector.md).

    Large frames: when a side of the frame exceeds ``tile_above`` pixels
    (default :data:`TILE_ABOVE`; None: never), a second pass runs the model on
    overlapping windows of the frame seen at :data:`TILE_SCALE` (each window
    ``W / 0.5 x H / 0.5`` frame pixels, :func:`tile_windows`); boxes cut by an
    inner window edge are dropped (the overlap holds them whole elsewhere) and
    both passes' boxes are merged by the same overlap suppression.

    Second look (``zooms``; empty by default; ``reader.zooms`` and ``reader.still_zooms``
    set it for video and photos): each of the best ``look_boxes`` boxes found is
    looked at again through windows centred on it, ``zoom`` times
    its width and of the input's aspect, each letterboxed to the whole input, so
    the plate fills a known share of it. The boxes of those passes that overlap
    the first one (IoU > :data:`SECOND_LOOK_IOU`) are averaged, weighted by their
    heat, into the plate's box. Why: at the whole-frame scale the network often
    boxes only part of a plate (the right-hand segments of a Moroccan plate, the
    characters without the EU band) or a loose region around it; seen larger,
    it boxes the plate whole. Measured with 2.2.0 on photos (IoU 0.5, held-out
    sets, ``models/detector.md``): Moroccan scenes 79.9 -> 88.5 %, dashcam 88.9 ->
    96.7 %, mixed plates 59.5 -> 76.2 %, for one model run per zoom for each of
    the best 4 boxes. Live video, with a 25 ms budget per frame, gets one zoom on
    its best two boxes (Moroccan 79.9 -> 86.3 %, dashcam 84.0 -> 92.3 %). :meth:`looks`
    gives each box with its first box, whose crop the reader reads too.
    """

    def __init__(
        self,
        model_path: Path,
        num_threads: int = 1,
        threshold: float | None = None,
        *,
        refine: bool = True,
        tile_above: int | None = TILE_ABOVE,
        grey_pass: bool = True,
        grey_min_cast: float = GREY_MIN_CAST,
        zooms: tuple[float, ...] = (),
        look_boxes: int = SECOND_LOOK_BOXES,
    ) -> None:
        meta = _load_detector_meta(model_path.with_suffix(".json"))
        if threshold is None:  # the model's own operating point, measured with it
            threshold = float(meta.get("threshold", 0.3))
        self._model = QuantizedModel(model_path, num_threads)
        shape = self._model.input_shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ModelError(f"detector {model_path} must take 1 x H x W x 3, takes {shape}")
        self.stride = int(meta["stride"])
        out = self._model.output_shape
        want = (1, shape[1] // self.stride, shape[2] // self.stride, 5)
        if out != want:
            raise ModelError(f"detector {model_path} outputs {out}, expected {want}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold
        self.version = str(meta.get("version", "unknown"))
        self.input_size: tuple[int, int] = (shape[1], shape[2])  # height, width
        self._min_w = float(meta["min_w"])
        self._min_h = float(meta["min_h"])
        self._octaves = float(meta["octaves"])
        self._input = np.full(shape, int(meta.get("pad_value", 0)), np.uint8)
        self._pad_value = int(meta.get("pad_value", 0))
        self._last_size: tuple[int, int] = (0, 0)
        self._area = AreaResizer()
        self._kernel = np.ones((3, 3), np.uint8)
        self._refiner = ContourDetector(scale=1.0, min_width=24) if refine else None
        self.tile_above = tile_above
        self.grey_pass = grey_pass
        if grey_min_cast < 0.0:
            raise ValueError(f"grey_min_cast must be at least 0, got {grey_min_cast}")
        self.grey_min_cast = grey_min_cast
        self.last_cast = 0.0
        """:func:`cast_strength` of the last whole-frame pass's input (the reader reads a
        frame with no cast, which skipped the grey pass, with more views)."""
        if any(zoom < 1.0 for zoom in zooms):
            raise ValueError(f"second-look zooms must be at least 1, got {zooms}")
        self.zooms = zooms
        self.look_boxes = look_boxes

    def letterbox(
        self, image: Image, interpolation: int = cv2.INTER_AREA, shrink: float = 1.0
    ) -> float:
        """Write ``image`` scaled into the model input (top-left); returns the scale used.

        Area interpolation (default) is how the model was trained; it runs as block matrix
        products where the ratio allows (:class:`AreaResizer`: 1280 x 720 frames in a
        third of OpenCV's time, within one grey level of it); :meth:`_second_look`'s
        windows use bilinear (:data:`ZOOM_INTERPOLATION`). ``shrink`` > 1 scales the image
        that much smaller than the input would hold (the rest is padding), as if it were
        the top-left part of a frame ``shrink`` times as wide and tall."""
        height, width = self.input_size
        fh, fw = image.shape[:2]
        scale = float(min(width / fw, height / fh)) / shrink
        nw, nh = max(1, min(width, round(fw * scale))), max(1, min(height, round(fh * scale)))
        if (nh, nw) != self._last_size:
            self._input[...] = self._pad_value
            self._last_size = (nh, nw)
        target = self._input[0, :nh, :nw]
        if interpolation == cv2.INTER_AREA and self._area.resize(image, target):
            return scale
        resized = cv2.resize(image, (nw, nh), dst=target, interpolation=interpolation)
        if resized is not target and not np.shares_memory(resized, target):
            np.copyto(target, resized)
        return scale

    def detect(self, image: Image) -> list[tuple[Box, float]]:
        """Plate boxes (x, y, w, h in ``image`` pixels) and scores, best first.

        Raises ``FrameError`` for anything but an H x W x 3 uint8 array.
        """
        return [(look.box, look.score) for look in self.looks(image)]

    def looks(
        self,
        image: Image,
        min_score: float = 0.0,
        *,
        tiles: bool = True,
        keep: Callable[[Box], bool] | None = None,
        shrink: float = 1.0,
        whole_frame: bool = True,
        tile_scale: float = TILE_SCALE,
        tile_overlap: float = TILE_OVERLAP,
        zooms: tuple[float, ...] | None = None,
    ) -> list[Look]:
        """Same as :meth:`detect`, each box with the one the whole-frame passes gave before
        the second look (the same box when it had none). Boxes scoring under ``min_score``
        are dropped before the second look (which keeps each box's score), so a caller
        that wants only sure boxes pays for no zoom on the others; so are the boxes that
        ``keep`` rejects, for a caller that wants only some kind of box (dark plates);
        ``tiles=False`` skips the tiled pass of a large frame (far plates) for a caller
        looking for near ones; ``shrink`` > 1 shows the whole-frame passes the image that
        much smaller (:meth:`letterbox`), for plates too large to be found as they are;
        ``whole_frame=False`` runs the tiled pass alone, whatever the frame's size (the small
        plates of a photo the reader reads shrunk), its windows seen at ``tile_scale`` (1:
        at the frame's own resolution, for the far plates of a photo read at its size) and
        overlapping by ``tile_overlap``; ``zooms`` replaces the detector's own second-look
        zooms for this call."""
        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim != 3
            or image.shape[2] != 3
            or min(image.shape[:2]) < 2
        ):
            shape = getattr(image, "shape", None)
            raise FrameError(
                f"detector wants an H x W x 3 uint8 BGR frame, got "
                f"{getattr(image, 'dtype', type(image).__name__)} {shape}"
            )
        passes = (
            self._whole_frame_passes(image, tiles, shrink)
            if whole_frame
            else _suppress_overlaps(self._tiled_pass(image, tile_scale, tile_overlap))
        )
        found = [f for f in passes if f[1] >= min_score]
        if self._refiner is not None:
            found = _suppress_overlaps([(self._refine(image, box), sc) for box, sc in found])
        if keep is not None:
            found = [(box, score) for box, score in found if keep(box)]
        zooms = self.zooms if zooms is None else zooms
        if not zooms:
            return [Look(box, score, box) for box, score in found]
        first = {}
        for rank, (box, score) in enumerate(found[: self.look_boxes]):
            seen = self._second_look(image, box, zooms)
            first[seen] = box
            found[rank] = (seen, score)
        kept = _suppress_overlaps(found, keep_wholes=True)
        return [Look(box, score, first.get(box, box)) for box, score in kept]

    def _second_look(self, image: Image, box: Box, zooms: tuple[float, ...] | None = None) -> Box:
        """The plate's box from passes zoomed on ``box`` (see the class docstring).

        A window clipped by the frame can be the window of another zoom (a large plate's
        zooms all clip to the whole frame): the model runs once for it, and its boxes
        count once per zoom, as if it had run again."""
        x, y, w, h = box
        cx, cy = x + w / 2, y + h / 2
        in_h, in_w = self.input_size
        fh, fw = image.shape[:2]
        weight, total = 0.0, np.zeros(4)
        passes: dict[tuple[int, int, int, int], list[tuple[Box, float]]] = {}
        for zoom in self.zooms if zooms is None else zooms:
            win_w = max(zoom * w, SECOND_LOOK_MIN_WINDOW)
            win_h = win_w * in_h / in_w
            x0, y0 = int(max(0, cx - win_w / 2)), int(max(0, cy - win_h / 2))
            x1, y1 = int(min(fw, cx + win_w / 2)), int(min(fh, cy + win_h / 2))
            if x1 - x0 < 16 or y1 - y0 < 8:
                continue
            window = (x0, y0, x1, y1)
            if window not in passes:
                passes[window] = self._pass(image[y0:y1, x0:x1], ZOOM_INTERPOLATION)
            for (bx, by, bw, bh), score in passes[window]:
                seen = (bx + x0, by + y0, bw, bh)
                if box_iou(seen, box) > SECOND_LOOK_IOU:
                    total += score * np.array(seen, np.float64)
                    weight += score
        if weight <= 0.0:
            return box
        sx, sy, sw, sh = (round(float(v)) for v in total / weight)
        return (sx, sy, sw, sh)

    def _whole_frame_passes(
        self, image: Image, tiles: bool = True, shrink: float = 1.0
    ) -> list[tuple[Box, float]]:
        """The colour pass (the whole frame and, for a large frame, the tiled pass), then
        with ``grey_pass`` the grey one on the same letterboxed frame (its boxes that
        overlap no colour box, IoU <= 0.3: it only adds plates), merged. The grey pass
        reuses the colour pass's input, colours dropped: no second resize of the frame;
        it runs only where that input's :func:`cast_strength` reaches ``grey_min_cast``.
        No grey tiles: they doubled a photo's time for no plate found on the held-out sets."""
        scale = self.letterbox(image, shrink=shrink)
        fw, fh = image.shape[1], image.shape[0]
        colour = self.decode(self._model.invoke(self._input)[0], scale, fw, fh)
        grey: list[tuple[Box, float]] = []
        height, width = self._last_size
        self.last_cast = cast_strength(self._input[0, :height, :width])
        if self.grey_pass and self.last_cast >= self.grey_min_cast:
            canvas = self._input[0]
            cv2.cvtColor(cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR, dst=canvas)
            grey = self.decode(self._model.invoke(self._input)[0], scale, fw, fh)
        if tiles and self.tile_above is not None and max(image.shape[:2]) > self.tile_above:
            colour = _suppress_overlaps(colour + self._tiled_pass(image))
        added = [(b, sc) for b, sc in grey if all(box_iou(b, f) <= 0.3 for f, _ in colour)]
        return _suppress_overlaps(colour + added)

    def _pass(self, image: Image, interpolation: int = cv2.INTER_AREA) -> list[tuple[Box, float]]:
        """The model on the whole of ``image``, letterboxed; boxes in its pixels."""
        scale = self.letterbox(image, interpolation)
        out = self._model.invoke(self._input)[0]
        return self.decode(out, scale, image.shape[1], image.shape[0])

    def _tiled_pass(
        self, image: Image, scale: float = TILE_SCALE, overlap: float = TILE_OVERLAP
    ) -> list[tuple[Box, float]]:
        """The model on windows seen at ``scale``, overlapping by ``overlap`` of a window;
        boxes in frame pixels."""
        height, width = self.input_size
        fh, fw = image.shape[:2]
        tile_w, tile_h = round(width / scale), round(height / scale)
        found: list[tuple[Box, float]] = []
        for x0, y0, x1, y1 in tile_windows(fw, fh, tile_w, tile_h, overlap):
            for (x, y, w, h), score in self._pass(image[y0:y1, x0:x1]):
                cut = (x <= 1 and x0 > 0) or (y <= 1 and y0 > 0)
                cut |= (x + w >= x1 - x0 - 1 and x1 < fw) or (y + h >= y1 - y0 - 1 and y1 < fh)
                if not cut:
                    found.append(((x + x0, y + y0, w, h), score))
        return found

    def _refine(self, image: Image, box: Box) -> Box:
        """Snap a model box to the plate's own edges when a classical contour finds them.

        The network finds plates where thresholds cannot (white bodies, clutter,
        night) but its box edges are a few pixels loose at 1/4 resolution, which
        can cut a character off the crop. Inside a window around the box, the
        :class:`ContourDetector` looks for a bright plate rectangle; the one that
        overlaps the model box most (IoU >= 0.3) replaces it, else the box stays.
        """
        assert self._refiner is not None
        x, y, w, h = box
        x0, y0 = max(0, x - w // 2), max(0, y - h)
        x1, y1 = min(image.shape[1], x + w + w // 2), min(image.shape[0], y + 2 * h)
        if x1 - x0 < 16 or y1 - y0 < 8:
            return box
        best, best_iou = box, 0.3
        for (cx, cy, cw, ch), _ in self._refiner.detect(image[y0:y1, x0:x1]):
            candidate = (cx + x0, cy + y0, cw, ch)
            overlap = box_iou(candidate, box)
            if overlap >= best_iou:
                best, best_iou = candidate, overlap
        return best

    def decode(
        self, out: npt.NDArray[np.float32], scale: float, frame_w: int, frame_h: int
    ) -> list[tuple[Box, float]]:
        """Boxes in frame pixels from the dequantized ``H/4 x W/4 x 5`` output."""
        heat = np.ascontiguousarray(out[:, :, 0])
        peaks = (heat >= self.threshold) & (heat >= cv2.dilate(heat, self._kernel))
        ys, xs = np.nonzero(peaks)
        if ys.size == 0:
            return []
        cell = out[ys, xs]
        cx = (xs + cell[:, 1]) * self.stride
        cy = (ys + cell[:, 2]) * self.stride
        w = self._min_w * np.exp2(cell[:, 3] * self._octaves)
        h = self._min_h * np.exp2(cell[:, 4] * self._octaves)
        inv = 1.0 / scale
        x0 = np.clip((cx - w / 2) * inv, 0, frame_w - 1)
        y0 = np.clip((cy - h / 2) * inv, 0, frame_h - 1)
        x1 = np.clip((cx + w / 2) * inv, 0, frame_w)
        y1 = np.clip((cy + h / 2) * inv, 0, frame_h)
        found: list[tuple[Box, float]] = []
        for i in range(ys.size):
            bw, bh = round(x1[i] - x0[i]), round(y1[i] - y0[i])
            if bw >= 4 and bh >= 2:
                found.append(((round(x0[i]), round(y0[i]), bw, bh), float(cell[i, 0])))
        return _suppress_overlaps(found)


def _load_detector_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"model metadata {path} not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"model metadata {path} is unreadable: {exc}") from exc
    keys = ("stride", "min_w", "min_h", "octaves")
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), int | float) for k in keys):
        raise ModelError(f"model metadata {path} lacks one of {', '.join(keys)}")
    return meta

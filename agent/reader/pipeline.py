"""The on-device plate reader: detector -> crop -> recogniser -> canonical text.

``ModelPlateReader`` implements :class:`agent.reader.base.PlateReader`. The
detector is the trained int8 ``detector.tflite`` when it is in ``models_dir``
(:class:`~agent.reader.detector.ModelDetector`), else the classical
:class:`~agent.reader.detector.ContourDetector`; ``[reader] detector`` in the
configuration picks one explicitly. For each plate the detector finds, the
crop (box plus a small margin, the margins the recogniser was trained with) is
read by the int8 CTC recogniser (for photos, by each member of the recogniser
ensemble, :func:`load_recognisers`; as one line, and also as two lines when the
crop is square enough: :meth:`~agent.reader.recogniser.Recogniser.read_best`
on the crop with its margins), the raw tokens are canonicalised
(agent.reader.plate_text), and the read is kept only if its confidence reaches
``min_confidence`` and its text is a valid plate of a known format (MA, FR,
EU), or, format ``UNKNOWN``, a plausible plate of a layout the grammar does
not know (:func:`~agent.reader.plate_text.is_plausible_unknown`: a Slovak or
Swiss car) read with at least ``unknown_min_confidence`` in a box clear of the
frame's edges (a plate cut by the edge reads as a shorter text that no grammar
guards); ``keep_unknown=False`` drops those. One text is reported once per
frame (the most confident box), with the few best alternatives the recogniser nearly read
(:mod:`agent.reader.alternatives`) for the matcher, and not beside a read of the whole
plate it is a part of (:func:`_a_part_read`). Photos and crops are also read from a
wider view (``wide_view``) and, for plates with light characters on a dark ground,
inverted (``dark_plates``); a photo's box on a dark ground read unsure is read inverted too
(``dark_boxes``, video frames too), and a photo's box is also read from a
crop half its width longer each side, for a tilted plate boxed in part (``extended_boxes``);
and the box of each plate read is snapped to the plate's edges when it is loose around it
(``snap_boxes``, :func:`~agent.reader.plate_edges.snap_to_plate`).
Photos that may hold a tilted plate are also read turned by 20 degrees each way, and crops
read unsure by 10 (``tilted_plates``, :func:`merge_view_reads`); a crop or a box read
unsure is also read with its plate warped front on (``rectified_plates``,
:func:`~agent.reader.rectify.rectified`), and a plate read whose row of characters slopes is
read again turned level about its box (``levelled_plates``,
:func:`~agent.reader.rotation.levelled`; a video frame measures the slope under one
adaptive threshold instead of four, ``quick_slopes``). Photos are also shown to the detector three
times smaller, for a plate filling most of them (``near_plates``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.config import ReaderConfig
from agent.errors import FrameError
from agent.frames import Image
from agent.reader.alternatives import MAX_ALTERNATIVES
from agent.reader.colours import blanked_colours
from agent.reader.detector import (
    TILE_OVERLAP,
    TILE_SCALE,
    ContourDetector,
    Detector,
    Look,
    ModelDetector,
)
from agent.reader.plate_edges import (
    ADAPTIVE_THRESHOLDS,
    QUICK_SLOPE_THRESHOLDS,
    AdaptiveThresholds,
    row_tilt,
    snap_to_plate,
    tilted_rows,
)
from agent.reader.plate_text import canonicalize, is_plausible_unknown, is_valid
from agent.reader.recogniser import (
    PlateRecogniser,
    Recogniser,
    RecogniserEnsemble,
    counts_as_plate,
    fuller_text,
    pick_read,
    voted_by_position,
)
from agent.reader.rectify import rectified
from agent.reader.rotation import levelled, turned, upright_envelope
from agent.reads import Box, PlateFormat, PlateRead, box_inside_share, box_iou

RECOGNISER_FILE = "recogniser.tflite"
MORE_RECOGNISER_FILES = ("recogniser_2.tflite",)
"""Further members of the recogniser ensemble, read when ``models_dir`` ships them
(:class:`~agent.reader.recogniser.RecogniserEnsemble`)."""
DETECTOR_FILE = "detector.tflite"
MARGIN_X = 0.05
"""Crop margin on each side, as a share of the box width."""
MARGIN_Y = 0.12
"""Crop margin above and below, as a share of the box height."""
WIDE_MARGINS = (0.12, 0.2)
"""Margins of the wider view of a box (``wide_view``): about two thirds of a character
more on each side, and the rows above and below a loose box cuts."""
EXTENDED_MARGINS = (0.5, 0.3)
"""Margins of the extended view of a box (``extended_boxes``): half the box's width more
on each side, for a tilted plate whose upright box the detector drew around a part of it
(``46039-B-6`` boxed from its first digit to its letter, read ``5-D-39``)."""
EXTENDED_MIN_CONFIDENCE = 0.05
"""... read when the box's first read is at least this sure: most boxes of a photo hold no
plate, and the grammar fits their reads to some plate at a confidence near 0 (688 of the
818 boxes read on the held-out French photos, the tilted and far passes' included)."""
DARK_GROUND_MAX = 100
"""A box read from the inverted frame (``dark_plates``) counts only where the plate's
ground is dark (:func:`_dark_ground`): the median grey of its pixels below this (light
plates in daylight lie well above it, 150-250 on the validation photos; one in deep shade
may not, and its inverted read, unsure, is then dropped by the confidence rule), or its
middle mostly a ground this dark under light characters."""
DARK_MIDDLE = (0.25, 0.2)
"""The middle of a box that :func:`_dark_ground` weighs: a quarter of its height and a fifth
of its width in from each side, where a plate's characters and their ground lie and the car
around a loose box does not."""
DARK_MIN_SCORE = 0.4
"""... and where the detector is this sure of it (twice the model's threshold): the
inverted frame turns shadows, grilles and tyres into bright shapes."""
DARK_BOX_MIN_SCORE = 0.3
"""A box of the photo itself on a dark ground (``dark_boxes``) is read inverted from this
detector score: lower than :data:`DARK_MIN_SCORE`, as the box was found in the photo as it
is, not in the inverted frame's bright shadows; the inverted read must still be a plate
read :data:`DARK_MIN_CONFIDENCE` sure. A Malaysian plate, white on black, scored 0.35 and
read ``7XD620`` as it is, ``WXD-1620`` at 0.95 inverted."""
DARK_MIN_CONFIDENCE = 0.7
"""... and the recogniser too (a plate read of a known or plausible layout)."""
SAME_PLATE_IOU = 0.3
"""A read of the inverted (or turned) frame and a read of the frame whose boxes overlap more
than this are of one plate: the other read is weighed against it and, when kept, replaces
it."""
TILT_DEGREES = (-20.0, 20.0)
"""The tilted pass (``tilted_plates``) reads the photo turned by these angles: a plate
tilted by about as much is level there (models/detector.md, "Tilted plates")."""
CROP_TILT_DEGREES = (-10.0, 10.0)
"""... and a plate crop read unsure, turned by these (a crop holds its plate's envelope:
a smaller turn levels the characters it holds)."""
VOTE_MIN_SUM = 1.4
"""A crop still read unsure after its turned and straightened views takes the text its
views' reads vote for only when that text's reads' confidences sum to this much (two
sure reads): one sure read of one view is what the picks already weighed."""
TILT_MIN_SCORE = 0.4
"""... reading the boxes of the turned photo that the detector is this sure of."""
SURE_READ = 0.7
"""A read of a plate at least this sure is trusted as it is: the tilted pass replaces it
only by a fuller read that holds it, and does not run for a photo where every box the
detector is sure of has one, level; a read of the turned photo must be as sure to count."""
FIRST_BOX_SURE = 0.99
"""The box the detector gave before its second look is not read again where the second
look's box read a plate of a known layout this sure: on every real set, as photos and as
video frames, the first box's read never replaced such a read's text (it only nudged the
third decimal of its confidence), and skipping it takes 2-8 % off a frame
(models/recogniser.md, "Fewer reads per frame")."""
WIDE_VIEW_MIN_READ = 0.05
"""A box the detector is less than :data:`PLATE_SEEN_SCORE` sure of whose crop reads under
this is not read in the wider view too: such boxes are most of a frame's boxes (lamps,
grilles, signs), and on every real set, as photos and as video frames, their wider view
read no plate the crop had missed (a surer box's did: ``54306-W-6``, read from nothing;
models/recogniser.md, "Fewer reads per frame")."""
RIVAL_MIN_CONFIDENCE = 0.1
"""An unsure read of a photo's region read under this does not weigh against another
view's sure read of it (:func:`merge_view_reads`): as a fuller read it would win the pick
however sure the other (``QFD-1475`` at 0.08 against ``FD-1475`` at 0.999, read turned)."""
PART_READ_SHARE = 0.75
"""A sure read that a fuller read replaces and that holds under this share of the fuller
read's characters was a read of a part of the plate (a tilted plate's serial, its letter
and region lost): its box is a part's, so the fuller read's box is taken. A read one
character short (``816-A-4`` of ``816-A-41``) boxed the whole plate and keeps its box."""
TILTED_ROW_DEGREES = 5.0
"""... unless the glyphs of such a read slope by this much or more
(:func:`~agent.reader.plate_edges.row_tilt`)."""
LEVELLED_MIN_CONFIDENCE = 0.05
"""A photo's plate read at least this sure is read levelled when its row slopes
(``levelled_plates``): the boxes that hold no plate read near 0 (the grammar fits any box
to some plate), and a sloping plate read under the floor may be read surely levelled
(``53442-A-40``, ``19785-B-40`` on the held-out Moroccan scenes)."""
LEVELLED_MIN_SCORE = 0.4
"""A box the detector is this sure of, read as no sure plate and whose level rows hold no
sloping row of glyphs, is looked at for the rows of a plate tilted within its upright
envelope (:func:`~agent.reader.plate_edges.tilted_rows`) and read levelled at their
slopes: a body camera's plate tilted by 15-25 degrees, boxed by an envelope about twice
its height, is read unsure or not at all (models/recogniser.md, "Steeply tilted plates
levelled in their loose box")."""
LEVELLED_SLOPES = 2
"""At most this many such slopes are read levelled, the rows with the most glyphs first."""
RECTIFY_MIN_SCORE = 0.4
"""A photo's box read unsure is read straightened (``rectified_plates``) only when the
detector is this sure of it: the many boxes it is unsure of are mostly no plate."""
NEAR_SHRINK = 3.0
"""The near pass (``near_plates``) shows the detector the photo at a third of its size, on
a black canvas three times as wide and tall: a plate filling most of the photo (a body
camera beside the car) is wider than any the detector learnt (models/detector.json,
``max_plate_width``: under half of its input), and is missed as it is."""
NEAR_MIN_WIDTH = 0.3
"""... keeping only its boxes at least this share of the photo's width: smaller plates are
the whole-frame passes' (a third of the size, they are too small to be found here)."""
NEAR_MIN_SCORE = 0.4
"""... and that the detector is this sure of (twice the model's threshold)."""
MIN_FRAME_SIDE = 16
MIN_CROP_SIDE = 4
"""A plate crop may be small (a distant plate is 10-15 px tall); the recogniser scales it up."""
MAX_PLATES_PER_FRAME = 8
FAR_MAX_WIDTH = 40
"""A far plate is narrower than this in the photo as read (the shrunk photo, for one read
shrunk): such boxes are looked for again by tiles at a finer scale
(:meth:`ModelPlateReader._far_plate_reads`)."""
FAR_PLATES_READ = 4
"""How many far boxes of a photo read at its own size are read (``reader.still_far_plates``)."""
FAR_TILE_OVERLAP = 0.1
"""How much the tiles looking for far plates at a photo's own resolution overlap: 38 x 22 px
of a 384 x 224 px tile, about a far plate's size (:data:`FAR_MAX_WIDTH`), so it lies whole
in one tile (a box cut by an inner tile edge is dropped)."""
FAR_ZOOMS = (4.0, 6.0)
"""The second look at a far box of a photo read at its own size: two zooms instead of the
photo's four (30 ms less per photo, 1-3 fewer of 197 shrunk real plates found)."""
UNKNOWN_MIN_CONFIDENCE = 0.7
"""A read of a layout the grammar does not know must be at least this sure: nothing
but the model's own confidence vouches for it."""


UNREAD_IOU = 0.3
"""A detector box overlapping a reported read this little is a plate left unread."""
PLATE_SEEN_SCORE = 0.3
"""A video frame is worth a deep read (agent.deep_reads) when its read reported a plate,
or when the detector found a box at least this sure that it could not read: on the held-out
Moroccan scenes read as video frames, offering only frames with a reported read gave
254 of 299 plates, also those with a box of 0.5 or more 276, of 0.3 or more 284 (every
frame: 285)."""


def plate_unread(found: list[BoxRead], reads: list[PlateRead]) -> bool:
    """Whether the detector found a box at least :data:`PLATE_SEEN_SCORE` sure that none of
    ``reads`` (the reads reported from ``found``) covers: a plate the frame's read left."""
    return any(
        r.detector_score >= PLATE_SEEN_SCORE
        and all(box_iou(r.box, read.box) < UNREAD_IOU for read in reads)
        for r in found
    )


def check_frame(image: Any, min_side: int = MIN_FRAME_SIDE) -> Image:
    """Return ``image`` if it is an H x W x 3 uint8 array, else raise ``FrameError``."""
    if not isinstance(image, np.ndarray):
        raise FrameError(f"frame must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise FrameError(f"frame must be uint8 BGR, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise FrameError(f"frame must be H x W x 3 (BGR), got shape {image.shape}")
    if image.shape[0] < min_side or image.shape[1] < min_side:
        raise FrameError(f"frame is too small: {image.shape[1]}x{image.shape[0]}")
    return image


def _better(read: BoxRead, other: BoxRead) -> bool:
    """True when ``read`` beats ``other`` (two boxes of one plate): a plate over no plate,
    then a sure plate that is the other's text with one or two bare strokes more
    (:func:`_strokes_more`: ``XIIUME`` at 0.84 over ``XUME`` at 0.96,
    ``95417-A-40`` over ``9547-A-40``), else the surer read."""
    if read.valid != other.valid:
        return read.valid
    if _sure(read) and _strokes_more(read.text, other.text):
        return True
    if _sure(other) and _strokes_more(other.text, read.text):
        return False
    return read.confidence > other.confidence


def crop_box(
    image: Image, box: Box, margins: tuple[float, float] = (MARGIN_X, MARGIN_Y)
) -> tuple[Image, Box]:
    """The crop of ``box`` widened by ``margins`` (shares of its width and height on each
    side; default the reader's), clipped to the image."""
    x, y, w, h = box
    mx, my = round(w * margins[0]), round(h * margins[1])
    x0, y0 = max(x - mx, 0), max(y - my, 0)
    x1, y1 = min(x + w + mx, image.shape[1]), min(y + h + my, image.shape[0])
    return image[y0:y1, x0:x1], (x0, y0, x1 - x0, y1 - y0)


@dataclass(frozen=True, slots=True)
class BoxRead:
    """What the recogniser made of one detected box, before any filtering."""

    box: Box
    detector_score: float
    text: str
    format: PlateFormat
    confidence: float
    alternatives: tuple[str, ...] = ()
    """Canonical texts of the few best other reads (valid or plausible plates only)."""
    paper_found: bool = False
    """The box was snapped to the plate's paper, found whole inside the frame
    (:func:`~agent.reader.plate_edges.snap_to_plate`): no frame edge cuts the plate."""

    @property
    def valid(self) -> bool:
        """A plate of a known format, or a plausible plate of a layout we do not know."""
        return _is_plate(self.text, self.format, self.confidence)


def _is_plate(text: str, fmt: PlateFormat, confidence: float) -> bool:
    """:attr:`BoxRead.valid` of a read."""
    if fmt == "UNKNOWN":
        return is_plausible_unknown(text, confidence)
    return is_valid(text, fmt)


EDGE_PX = 2
EDGE_FRACTION = 0.03
"""A box within ``EDGE_FRACTION`` of the frame's size (at least ``EDGE_PX``) of its edge may
hold a plate cut by it: the detector often boxes only the visible glyphs, a little inside."""


def _ground(frame: Image, box: Box) -> float:
    """Median grey level of the pixels inside ``box``: a plate's ground covers most of it."""
    x, y, w, h = box
    region = frame[max(0, y) : y + h, max(0, x) : x + w]
    if region.size == 0:
        return 255.0
    return float(np.median(cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)))


def _dark_ground(frame: Image, box: Box) -> bool:
    """Whether a box of the inverted photo may hold light characters on a dark ground in the
    photo itself (:meth:`ModelPlateReader._dark_plate_reads`): its median grey
    (:func:`_ground`) is below :data:`DARK_GROUND_MAX`, or its middle
    (:data:`DARK_MIDDLE`), split in two by Otsu's threshold, is mostly its dark part and that
    part's mean is below :data:`DARK_GROUND_MAX`. The median alone misses a black plate whose
    large silver characters and frame fill half its box (of the held-out French photos'
    plates recoloured black, 25 of 47 lie above it); a light plate's dark part is its ink,
    the smaller part of its middle."""
    return _ground(frame, box) < DARK_GROUND_MAX or _dark_middle(frame, box)


def _dark_middle(frame: Image, box: Box) -> bool:
    """Whether the middle of ``box`` (:data:`DARK_MIDDLE`), split in two by Otsu's
    threshold, is mostly its dark part and that part's mean is below
    :data:`DARK_GROUND_MAX` (:func:`_dark_ground`)."""
    x, y, w, h = box
    dy, dx = round(DARK_MIDDLE[0] * h), round(DARK_MIDDLE[1] * w)
    middle = frame[max(0, y + dy) : y + h - dy, max(0, x + dx) : x + w - dx]
    if middle.size == 0:
        return False
    gray = cv2.cvtColor(middle, cv2.COLOR_BGR2GRAY)
    threshold, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = gray[gray <= threshold]
    return 2 * dark.size > gray.size and float(dark.mean()) < DARK_GROUND_MAX


def _inverted_read_wins(
    inverted: tuple[str, PlateFormat, float], rivals: list[tuple[str, float]]
) -> bool:
    """Whether a read of an inverted dark plate (canonical text, format, confidence) is
    kept over the reads of the same plate as it is (canonical texts and confidences):
    a plate read at :data:`DARK_MIN_CONFIDENCE` or more that
    :func:`~agent.reader.recogniser.pick_read` prefers to each of them (it canonicalises
    its texts again, which leaves canonical texts as they are). A plate read of the frame
    surer than the inverted read keeps its place unless the inverted read holds all of its
    characters and more (:func:`_holds_more`: the dark plate read as it is lost one):
    ``pick_read`` counts no read of digits alone as a plate, and a yellow Israeli plate
    whose large digits fill its middle, read ``1000051`` at 0.999, lost to its inverted
    read ``Q00051`` at 0.84."""
    text, fmt, confidence = inverted
    if not (_is_plate(text, fmt, confidence) and confidence >= DARK_MIN_CONFIDENCE):
        return False
    if any(
        rival_confidence > confidence
        and _is_plate(rival, canonicalize(rival)[1], rival_confidence)
        and not _holds_more(text, rival)
        for rival, rival_confidence in rivals
    ):
        return False
    return pick_read([(text, confidence), *rivals]) == 0


def _scaled_box(box: Box, factor: float, width: int, height: int) -> Box:
    """``box`` of a resized frame in the pixels of the ``width x height`` frame it was
    resized from (``factor``: its size over the resized one's), clipped to that frame."""
    x0, y0 = min(width - 1, round(box[0] * factor)), min(height - 1, round(box[1] * factor))
    x1 = min(width, round((box[0] + box[2]) * factor))
    y1 = min(height, round((box[1] + box[3]) * factor))
    return (x0, y0, max(1, x1 - x0), max(1, y1 - y0))


def _at_edge(box: Box, width: int, height: int) -> bool:
    x, y, w, h = box
    mx = max(EDGE_PX, round(EDGE_FRACTION * width))
    my = max(EDGE_PX, round(EDGE_FRACTION * height))
    return x < mx or y < my or x + w > width - mx or y + h > height - my


def _cut_by_frame(box: Box, frame: Image) -> bool:
    """Whether ``box`` reaches the edge of ``frame``: a plate running out of the frame (a
    car entering or leaving a dashcam's view). The first box of such a plate is not read
    again after its second look: its crop is cut by the frame as well. On every real set,
    as photos and as video frames, that read never changed a plate's text; on the sample
    clip it was the slowest frames' costliest read (8 of a frame's 12-16 recogniser runs,
    a square crop read as one line and as two, in two views, by both members)."""
    height, width = frame.shape[:2]
    x, y, w, h = box
    return x <= 0 or y <= 0 or x + w >= width or y + h >= height


def _characters(text: str) -> int:
    """How many characters a canonical text holds (separators not counted)."""
    return sum(ch != "-" for ch in text)


def _holds_more(text: str, other: str) -> bool:
    """Whether canonical ``text`` holds all of ``other``'s characters, in order, and more
    (:func:`~agent.reader.recogniser.fuller_text`, separators not counted)."""
    return fuller_text(text.replace("-", ""), other.replace("-", ""))


MAX_STROKES_MORE = 2
"""At most this many bare strokes tell two reads of one plate apart in :func:`_strokes_more`,
as :func:`~agent.reader.strokes.skipped_strokes` puts back at most two."""


def _strokes_more(text: str, other: str) -> bool:
    """Whether canonical ``text`` is ``other`` with one or two bare strokes (``1`` or ``I``)
    more, its other characters the same and in order (:func:`_holds_more`): the recogniser
    skips a bare stroke surely, so between two reads of one plate that differ only so, the
    fuller one is the likelier (``XIIUME`` from one box, ``XUME`` from the detector's
    second-look box of it)."""
    extra = Counter(text.replace("-", "")) - Counter(other.replace("-", ""))
    return (
        _holds_more(text, other) and extra.total() <= MAX_STROKES_MORE and set(extra) <= {"1", "I"}
    )


ViewsRead = tuple[str, PlateFormat, float, tuple[str, ...]]
"""Canonical text, format, confidence and alternatives of the read kept for a plate."""


def _sure_plate(read: ViewsRead) -> bool:
    """A read of a plate at least :data:`SURE_READ` sure: trusted as it is."""
    return _is_plate(*read[:3]) and read[2] >= SURE_READ


def _sure_known_plate(read: ViewsRead) -> bool:
    """:func:`_sure_plate` of a layout the grammar knows (not ``UNKNOWN``)."""
    return read[1] != "UNKNOWN" and _sure_plate(read)


def _sure(read: BoxRead) -> bool:
    """:func:`_sure_plate` of a box's read."""
    return _sure_plate((read.text, read.format, read.confidence, read.alternatives))


def _sure_of_layout(read: BoxRead | None) -> bool:
    """:func:`_sure_known_plate` of a box's read, at least :data:`FIRST_BOX_SURE` sure."""
    return (
        read is not None
        and read.confidence >= FIRST_BOX_SURE
        and _sure_known_plate((read.text, read.format, read.confidence, read.alternatives))
    )


def _replaces(other: ViewsRead, read: ViewsRead) -> bool:
    """A read of another view of a plate (turned, straightened) replaces its unsure
    ``read`` when it is a sure plate of another text, no shorter (a shorter one is a part
    of the plate, not a fuller read), that :func:`~agent.reader.recogniser.pick_read`
    prefers; or a sure plate of the same text, read more surely: the views agree, and the
    read keeps the surer confidence (a yellow ``FE-615-XW`` read 0.48 in its box and 0.999
    straightened lost to another box's ``FE-615-XM`` at 0.98)."""
    if not _sure_plate(other):
        return False
    if other[0] == read[0]:
        return other[2] > read[2]
    return (
        _characters(other[0]) >= _characters(read[0])
        and pick_read([(other[0], other[2]), (read[0], read[2])]) == 0
    )


def _may_hold_an_emblem(read: ViewsRead) -> bool:
    """Whether a read may hold a coloured emblem read as a character: it fits no layout of
    the grammar (format ``UNKNOWN``, or no plate at all). A read of a known layout is left
    as it is: Moroccan and French plates print no emblem in the line, a German seal read
    as a character breaks the letters-then-digits layout, and another view of a plate read
    right may only lose it (models/recogniser.md, "Coloured emblems")."""
    return read[1] == "UNKNOWN" or not _is_plate(*read[:3])


def _surer_plate(other: ViewsRead, read: ViewsRead) -> ViewsRead:
    """``other`` (the read of a plate's crop with its coloured emblems blanked) when it is
    a plate read more surely than ``read``, else ``read``: a German plate's seals read as
    an ``8`` are read sure, so only a surer read may replace it. Nor may a read of a part
    of the plate: where ``read`` is a plate that holds all of ``other``'s characters, in
    order, and :data:`BLANKED_PART` or more besides, the blanking painted over characters
    printed in colour, not an emblem read as one (a New York plate's blue ``WO NELLY``
    read ``W0NELLY`` at 0.92, blanked ``0ELLY`` at 0.97; a bluish ``XIIUME`` at 0.8423,
    blanked ``XIIU`` at 0.8424)."""
    if not _is_plate(*other[:3]) or other[2] <= read[2]:
        return read
    lost_colour = (
        _is_plate(*read[:3])
        and _characters(read[0]) - _characters(other[0]) >= BLANKED_PART
        and _holds_more(read[0], other[0])
    )
    return read if lost_colour else other


BLANKED_PART = 2
"""From this many characters fewer than the plate read it would replace, all of that read's
others kept, a blanked view's read does not replace it: one is an emblem read as a
character (``KL8YA542`` -> ``KLYA-542``); two or more were characters printed in colour."""


Ballot = list[tuple[str, float]]
"""Every member's raw read (text, confidence) of every view of one plate crop."""


def _voted_read(read: ViewsRead, ballot: Ballot) -> ViewsRead:
    """``read`` of a crop, still unsure after its turned and straightened views, or the
    text that every member's reads of all those views (``ballot``: the crop, turned,
    straightened; each also with margins) vote for: the plate text whose reads'
    confidences sum to at least :data:`VOTE_MIN_SUM`, the most. Why: where each view
    alone is unsure, the picks keep a fuller or a surer read, which on square and tilted
    crops is often one stray character longer (``WB-884-WZ`` for ``WB-84-WZ``, read 10
    times of 16); the text most views agree on is the safer one, unless it is shorter by
    more than that one character (then the views agree on a part of the plate). Its
    confidence is the mean of its reads'; its alternatives the next texts of the vote."""
    support: dict[str, list[float]] = {}
    formats: dict[str, PlateFormat] = {}
    for raw, confidence in ballot:
        if counts_as_plate(raw, confidence):
            text, fmt = canonicalize(raw)
            formats[text] = fmt
            support.setdefault(text, []).append(confidence)
    ranked = sorted(support, key=lambda text: sum(support[text]), reverse=True)
    if not ranked or ranked[0] == read[0] or sum(support[ranked[0]]) < VOTE_MIN_SUM:
        return read
    best = ranked[0]
    if _characters(best) < _characters(read[0]) - 1:
        return read  # a stray character may go, not a part of the plate
    confidence = sum(support[best]) / len(support[best])
    return best, formats[best], confidence, tuple(ranked[1 : 1 + MAX_ALTERNATIVES])


def _slot_voted(read: ViewsRead, reads: Ballot) -> ViewsRead:
    """``read``, or the text that :func:`~agent.reader.recogniser.voted_by_position` keeps
    among it and ``reads`` (every member's read of the plate's views), with its surest
    read's confidence; ``read``'s own text becomes the first alternative, so the matcher
    still looks it up."""
    voted = voted_by_position((read[0], read[2]), reads)
    if voted is None:
        return read
    text, fmt = canonicalize(voted[0])
    others = (read[0], *(alt for alt in read[3] if alt != text))
    return text, fmt, voted[1], others[:MAX_ALTERNATIVES]


def _sloping_row(
    frame: Image,
    box: Box,
    seen: dict[Box, float | None] | None = None,
    thresholds: AdaptiveThresholds = ADAPTIVE_THRESHOLDS,
) -> float | None:
    """The slope of the row of glyphs in ``box`` (:func:`~agent.reader.plate_edges.row_tilt`
    under ``thresholds``) when it is :data:`TILTED_ROW_DEGREES` or more, else None (level,
    or no row found). ``seen``: the slopes already measured in ``frame``, by box (a photo's
    sure reads are asked twice: for the tilted pass, then to be levelled)."""
    if seen is not None and box in seen:
        return seen[box]
    slope = row_tilt(frame, box, thresholds)
    sloping = slope if slope is not None and abs(slope) >= TILTED_ROW_DEGREES else None
    if seen is not None:
        seen[box] = sloping
    return sloping


def _fuller_plate(other: ViewsRead, read: ViewsRead) -> bool:
    """Whether ``other`` is a sure plate of a known layout that holds all of ``read``'s
    characters, in order, and more (:func:`~agent.reader.recogniser.fuller_text`): what
    may replace a sure read of a box (``8065-A-40`` -> ``80615-A-40``)."""
    return _sure_known_plate(other) and _holds_more(other[0], read[0])


def _levelled_read_wins(level: ViewsRead, read: ViewsRead) -> bool:
    """Whether the read of a plate turned level replaces the read of its upright box: an
    unsure ``read`` under :func:`_replaces`; a sure one only for a sure plate of a known
    layout that holds all of its characters, in order, and more
    (:func:`~agent.reader.recogniser.fuller_text`: ``8065-A-40`` -> ``80615-A-40``), or as
    many, more surely (``81487-B-40`` at 0.77 -> ``11487-B-40`` at 0.90)."""
    if not _sure_plate(read):
        return _replaces(level, read)
    return _fuller_plate(level, read) or (
        _sure_known_plate(level)
        and level[0] != read[0]
        and _characters(level[0]) == _characters(read[0])
        and level[2] > read[2]
    )


def _may_hide_a_tilted_plate(
    frame: Image,
    found: list[BoxRead],
    slopes: dict[Box, float | None] | None = None,
    thresholds: AdaptiveThresholds = ADAPTIVE_THRESHOLDS,
) -> bool:
    """Whether the tilted pass may add anything to the reads of a photo: none of them is a
    sure plate, a box the detector is sure of (:data:`TILT_MIN_SCORE`) has no sure read,
    or the glyphs of a sure read slope by :data:`TILTED_ROW_DEGREES` or more (such a read
    is often short of its last characters); ``slopes`` and ``thresholds``: as for
    :func:`_sloping_row`."""
    if not any(_sure(r) for r in found):
        return True
    if any(r.detector_score >= TILT_MIN_SCORE and not _sure(r) for r in found):
        return True
    return any(
        _sure(read) and _sloping_row(frame, read.box, slopes, thresholds) is not None
        for read in found
    )


def _texts(reads: list[BoxRead]) -> list[tuple[str, float]]:
    """(text, confidence) of each read, as :func:`~agent.reader.recogniser.pick_read` takes."""
    return [(r.text, r.confidence) for r in reads]


def _part_of(read: BoxRead | PlateRead, fuller: BoxRead | PlateRead) -> bool:
    """Whether ``read``'s characters are a strict part of ``fuller``'s, a plate of a known
    layout: the level read of a tilted plate that lost its letter or last digits."""
    part, whole = read.text.replace("-", ""), fuller.text.replace("-", "")
    return fuller.format != "UNKNOWN" and len(part) < len(whole) and part in whole


PART_INSIDE_SHARE = 0.5
"""A read of a part of a plate whose box lies this much inside the plate's read's box is
not reported beside it (:func:`_a_part_read`)."""


def _a_part_read(read: PlateRead, other: PlateRead) -> bool:
    """Whether ``read`` reads a part of the plate ``other`` reads: its text a strict part of
    ``other``'s, a plate of a known layout (:func:`_part_of`), and at least
    :data:`PART_INSIDE_SHARE` of its box inside ``other``'s (``98-B-40`` read from a second
    box over the right of ``72698-B-40``): reported, it is a plate that is not there."""
    return _part_of(read, other) and box_inside_share(read.box, other.box) >= PART_INSIDE_SHARE


def _read_a_part(read: BoxRead, fuller: BoxRead) -> bool:
    """Whether ``read``, a part of ``fuller`` (:func:`_part_of`), holds so few of its
    characters (:data:`PART_READ_SHARE`) that its box shows only that part of the plate."""
    return len(read.text.replace("-", "")) < PART_READ_SHARE * len(fuller.text.replace("-", ""))


def _same_region(box: Box, envelope: Box) -> bool:
    """Whether a box of the photo and the upright envelope of a box of the turned photo
    show the same plate: they overlap, or the box's centre lies in the envelope (a level
    box of part of a tilted plate is small beside its envelope)."""
    if box_iou(box, envelope) > SAME_PLATE_IOU:
        return True
    x, y, w, h = box
    ex, ey, ew, eh = envelope
    return ex <= x + w / 2 <= ex + ew and ey <= y + h / 2 <= ey + eh


def merge_view_reads(
    found: list[BoxRead], other: list[BoxRead], *, fuller_box: bool = False
) -> list[BoxRead]:
    """``found`` with the reads of another view of the photo (turned: boxes as upright
    envelopes in the photo; shrunk, for near plates) that count: each text once (its
    surest read), surest first. A read counts where it is a sure plate
    (:data:`SURE_READ`) and no read of the same region reads the same text or was already
    taken from the other view. Where the region's reads are unsure, it replaces them when
    :func:`~agent.reader.recogniser.pick_read` prefers it to those read at
    :data:`RIVAL_MIN_CONFIDENCE` or more (a tilted plate read level is often a part of it,
    read unsure). A sure read of the region is replaced only by a
    fuller read that holds it (:func:`_part_of`: ``816-A-4`` by ``816-A-41``), which
    keeps the sure read's box (a tilted plate is level enough for it) unless the sure
    read was of a part of the plate (:func:`_read_a_part`: ``21880`` by ``21880-B-40``),
    or with ``fuller_box`` takes the fuller read's (a near plate's box was a part of it)."""
    best: dict[str, BoxRead] = {}
    for read in other:
        if _sure(read) and (read.text not in best or best[read.text].confidence < read.confidence):
            best[read.text] = read
    kept = list(found)
    added: list[BoxRead] = []
    for other_read in sorted(best.values(), key=lambda r: r.confidence, reverse=True):
        rivals = [r for r in kept + added if _same_region(r.box, other_read.box)]
        if any(r in added or r.text == other_read.text for r in rivals):
            continue
        sure = [r for r in rivals if _sure(r)]
        box = other_read.box
        if sure:
            if not all(_part_of(r, other_read) for r in sure):
                continue
            surest = max(sure, key=lambda r: r.confidence)
            if not fuller_box and not _read_a_part(surest, other_read):
                box = surest.box
        elif pick_read(
            [
                (other_read.text, other_read.confidence),
                *_texts([r for r in rivals if r.confidence >= RIVAL_MIN_CONFIDENCE]),
            ]
        ):
            continue
        kept = [r for r in kept if r not in rivals]
        added.append(
            replace(
                other_read, box=box, paper_found=other_read.paper_found and box == other_read.box
            )
        )
    return kept + added


def load_recognisers(
    models_dir: Path,
    num_threads: int = 1,
    limit: int | None = None,
    doubt: tuple[float, float] | None = None,
    bare_strokes: bool = True,
) -> PlateRecogniser:
    """``recogniser.tflite`` (required), with the ensemble members of
    :data:`MORE_RECOGNISER_FILES` that ``models_dir`` ships: all of them, or the first
    ``limit`` recognisers in all; ``doubt``: when the others read
    (:class:`~agent.reader.recogniser.RecogniserEnsemble`); ``bare_strokes``: each puts
    back a stroke it skipped (:mod:`agent.reader.strokes`)."""
    first = Recogniser(models_dir / RECOGNISER_FILE, num_threads, bare_strokes=bare_strokes)
    more = [models_dir / name for name in MORE_RECOGNISER_FILES]
    more = [path for path in more if path.exists()]
    if limit is not None:
        more = more[: max(0, limit - 1)]
    members = [
        first,
        *(Recogniser(path, num_threads, bare_strokes=bare_strokes) for path in more),
    ]
    return first if len(members) == 1 else RecogniserEnsemble(members, doubt)


def default_detector(models_dir: Path, num_threads: int = 1) -> Detector:
    """The trained detector if ``models_dir`` ships one, else the classical one."""
    if (models_dir / DETECTOR_FILE).exists():
        return ModelDetector(models_dir / DETECTOR_FILE, num_threads)
    return ContourDetector()


class ModelPlateReader:
    """Reads plates with the shipped models in ``models_dir``.

    ``detector`` defaults to :func:`default_detector`; ``recognisers`` is how many of
    the shipped recognisers read each plate (None: all, :func:`load_recognisers`), and
    ``recognisers_doubt`` when the members after the first read (None: always);
    ``quick_slopes`` measures a row's slope under one adaptive threshold instead of four
    (video frames: :data:`~agent.reader.plate_edges.QUICK_SLOPE_THRESHOLDS`).
    Raises ``ModelError`` at construction if a model file is missing or corrupt.
    """

    def __init__(
        self,
        models_dir: Path,
        num_threads: int = 1,
        min_confidence: float = 0.5,
        *,
        detector: Detector | None = None,
        keep_unknown: bool = True,
        unknown_min_confidence: float = UNKNOWN_MIN_CONFIDENCE,
        recognisers: int | None = None,
        recognisers_doubt: tuple[float, float] | None = None,
        wide_view: bool = False,
        daylight_wide_view: bool = False,
        dark_plates: bool = False,
        dark_boxes: bool = False,
        extended_boxes: bool = False,
        snap_boxes: bool = False,
        tilted_plates: bool = False,
        rectified_plates: bool = False,
        levelled_plates: bool = False,
        quick_slopes: bool = False,
        near_plates: bool = False,
        blank_colours: bool = False,
        max_side: int | None = None,
        far_plates: bool = False,
        bare_strokes: bool = True,
    ) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.min_confidence = min_confidence
        self.keep_unknown = keep_unknown
        self.wide_view = wide_view
        self.daylight_wide_view = daylight_wide_view
        self.dark_plates = dark_plates
        self.dark_boxes = dark_boxes
        self.extended_boxes = extended_boxes
        self.snap_boxes = snap_boxes
        self.tilted_plates = tilted_plates
        self.rectified_plates = rectified_plates
        self.levelled_plates = levelled_plates
        self.slope_thresholds = QUICK_SLOPE_THRESHOLDS if quick_slopes else ADAPTIVE_THRESHOLDS
        self.near_plates = near_plates
        self.blank_colours = blank_colours
        self.max_side = max_side
        self.far_plates = far_plates
        self.unknown_min_confidence = unknown_min_confidence
        self.plate_unread = False
        """Whether the last frame :meth:`read` had a box the detector was at least
        :data:`PLATE_SEEN_SCORE` sure of that no reported read covers (the pipeline
        offers such frames for a deep read: agent.deep_reads)."""
        self.recogniser: PlateRecogniser = load_recognisers(
            models_dir, num_threads, recognisers, recognisers_doubt, bare_strokes
        )
        self.detector: Detector = (
            detector if detector is not None else default_detector(models_dir, num_threads)
        )

    @classmethod
    def from_config(cls, config: ReaderConfig, *, stills: bool = False) -> ModelPlateReader:
        """A reader built from the ``[reader]`` configuration section: for video frames,
        or with ``stills`` for photos read one at a time (``still_tile_above``)."""
        detector: Detector | None = None
        model = config.models_dir / DETECTOR_FILE
        tile_above = config.still_tile_above if stills else config.tile_above
        zooms = config.still_zooms if stills else config.zooms
        look_boxes = config.still_zoom_boxes if stills else config.zoom_boxes
        if config.detector == "contour":
            detector = ContourDetector()
        elif config.detector == "model" or model.exists():
            detector = ModelDetector(
                model,
                config.num_threads,
                grey_pass=config.grey_pass,
                grey_min_cast=config.grey_pass_min_cast,
                tile_above=tile_above or None,
                zooms=tuple(zooms),
                look_boxes=look_boxes,
            )
        return cls(
            config.models_dir,
            config.num_threads,
            config.still_min_confidence if stills else config.min_confidence,
            detector=detector,
            recognisers=config.still_recognisers if stills else config.recognisers,
            recognisers_doubt=None if stills else config.recognisers_doubt,
            wide_view=config.still_wide_view if stills else config.wide_view,
            daylight_wide_view=config.daylight_wide_view and not stills,
            dark_plates=config.still_dark_plates if stills else config.dark_plates,
            dark_boxes=config.still_dark_boxes if stills else config.dark_boxes,
            extended_boxes=config.still_extended_boxes if stills else config.extended_boxes,
            snap_boxes=config.still_snap_boxes if stills else config.snap_boxes,
            tilted_plates=config.still_tilted_plates if stills else config.tilted_plates,
            rectified_plates=(config.still_rectified_plates if stills else config.rectified_plates),
            levelled_plates=config.still_levelled_plates if stills else config.levelled_plates,
            quick_slopes=not stills,
            near_plates=config.still_near_plates if stills else config.near_plates,
            blank_colours=config.still_blank_colours if stills else config.blank_colours,
            max_side=(config.still_max_side or None) if stills else None,
            far_plates=config.still_far_plates and stills,
            bare_strokes=config.bare_strokes,
        )

    def read_boxes(self, image: Image) -> list[BoxRead]:
        """Every detected box (at most ``MAX_PLATES_PER_FRAME``, best first, and as many
        again from the far pass of a photo read shrunk) and its raw read;
        with ``dark_plates``, also the plates with light characters on a dark ground
        (:meth:`_dark_plate_reads`); with ``near_plates``, the reads of the photo shrunk
        (:meth:`_near_plate_reads`) that :func:`merge_view_reads` keeps (with their boxes);
        with ``tilted_plates``, for a photo whose boxes may hide a tilted plate, the reads of
        the photo turned (:meth:`_tilted_plate_reads`) that it keeps. With ``max_side`` a
        larger photo is read shrunk to it, its boxes given back in the photo's pixels
        (``reader.still_max_side``: a 12-megapixel photo's tiles crowd its plate out)."""
        frame = check_frame(image)
        height, width = frame.shape[:2]
        if self.max_side is None or max(height, width) <= self.max_side:
            found = self._read_frame_boxes(frame)
            if self.far_plates:
                found += self._far_plate_reads(frame, found, FAR_MAX_WIDTH, own_size=True)
            return found
        scale = self.max_side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        shrunk = np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), np.uint8)
        found = [
            replace(r, box=_scaled_box(r.box, 1.0 / scale, width, height))
            for r in self._read_frame_boxes(shrunk)
        ]
        return found + self._far_plate_reads(frame, found, FAR_MAX_WIDTH / scale)

    def _far_plate_reads(
        self,
        frame: Image,
        found: list[BoxRead],
        max_width: float,
        *,
        own_size: bool = False,
    ) -> list[BoxRead]:
        """Reads of the far plates of a photo: the boxes of the detector's tiled pass over
        the photo narrower than ``max_width`` pixels that overlap no box already read (the
        surest first), read in it.

        Two callers. A photo too large to be read whole: its plates too small to be found
        in it shrunk are looked for in the photo itself (tiles at half size, as ever; up to
        ``MAX_PLATES_PER_FRAME``). With ``own_size`` (``far_plates``), a photo read at its
        own size: looked at again by tiles at its own resolution, where a 30 px plate is no
        longer 15 px wide and 3 px tall. There the plates were among the first three far
        boxes (real plates shrunk, models/detector.md "Far plates in photos"), so only
        :data:`FAR_PLATES_READ` are read, and to keep the cost down the tiles overlap by
        :data:`FAR_TILE_OVERLAP` (a far plate is a tenth of a tile wide) and the second
        look takes :data:`FAR_ZOOMS`.
        """
        if not isinstance(self.detector, ModelDetector):
            return []

        def far(box: Box) -> bool:
            return box[2] < max_width and all(box_iou(box, r.box) <= SAME_PLATE_IOU for r in found)

        if not own_size:
            return self._read_looks(frame, keep=far, whole_frame=False)
        return self._read_looks(
            frame,
            keep=far,
            whole_frame=False,
            tile_scale=1.0,
            tile_overlap=FAR_TILE_OVERLAP,
            zooms=FAR_ZOOMS,
            limit=FAR_PLATES_READ,
        )

    def _read_frame_boxes(self, frame: Image) -> list[BoxRead]:
        """:meth:`read_boxes` of a frame at the size it is read at."""
        found = self._read_looks(frame)
        wide = self._reads_wide()  # the frame's own whole-frame pass, just run, set its cast
        if self.dark_plates:
            dark = self._dark_plate_reads(frame, found)
            found = [r for r in found if all(box_iou(r.box, d.box) <= SAME_PLATE_IOU for d in dark)]
            found += dark
        if self.near_plates:
            found = merge_view_reads(found, self._near_plate_reads(frame), fuller_box=True)
        slopes: dict[Box, float | None] = {}
        if self.tilted_plates and _may_hide_a_tilted_plate(
            frame, found, slopes, self.slope_thresholds
        ):
            found = merge_view_reads(found, self._tilted_plate_reads(frame))
        if self.levelled_plates:
            found = [self._levelled_read(frame, read, slopes, wide=wide) for read in found]
        return found

    def _levelled_read(
        self,
        frame: Image,
        read: BoxRead,
        slopes: dict[Box, float | None] | None = None,
        *,
        wide: bool = False,
    ) -> BoxRead:
        """``read``, or the surest read of its plate turned level about its box
        (:func:`~agent.reader.rotation.levelled`) at one of :meth:`_level_slopes` where
        :func:`_levelled_read_wins`; the box stays. Why: the upright crop of a tilted plate
        holds its characters at several heights, and the recogniser drops or changes one,
        surely (``80615-A-40`` read ``8065-A-40`` at 0.96), or reads none of it
        (``51774-A-7`` tilted by 20 degrees read ``77-A-9`` at 0.12). ``slopes``: as for
        :func:`_sloping_row`. ``wide``: the plate is also cut out levelled with the wider
        view's margins (:data:`WIDE_MARGINS`), as its box was read (:meth:`_reads_wide`): a
        levelled crop cuts an end character too (``CA-213-ZN`` read ``CA-213-N``)."""
        first = (read.text, read.format, read.confidence, ())
        best: ViewsRead | None = None
        margins = [(MARGIN_X, MARGIN_Y), WIDE_MARGINS] if wide else [(MARGIN_X, MARGIN_Y)]
        for slope in self._level_slopes(frame, read, slopes):
            level = self._read_views([levelled(frame, read.box, slope, m) for m in margins])
            if _levelled_read_wins(level, first) and (best is None or level[2] > best[2]):
                best = level
        if best is None:
            return read
        text, fmt, confidence, alternatives = best
        return replace(
            read, text=text, format=fmt, confidence=confidence, alternatives=alternatives
        )

    def _level_slopes(
        self, frame: Image, read: BoxRead, slopes: dict[Box, float | None] | None = None
    ) -> list[float]:
        """The slopes at which :meth:`_levelled_read` reads ``read``'s plate levelled: its
        row's (:func:`_sloping_row`) for a plate read :data:`LEVELLED_MIN_CONFIDENCE` sure or
        more; else, for a box the detector is :data:`LEVELLED_MIN_SCORE` sure of and read as
        no sure plate, up to :data:`LEVELLED_SLOPES` rows of a plate tilted inside it
        (:func:`~agent.reader.plate_edges.tilted_rows`) sloping by
        :data:`TILTED_ROW_DEGREES` or more."""
        if read.valid and read.confidence >= LEVELLED_MIN_CONFIDENCE:
            slope = _sloping_row(frame, read.box, slopes, self.slope_thresholds)
            if slope is not None:
                return [slope]
        if read.detector_score < LEVELLED_MIN_SCORE or _sure(read):
            return []
        rows = tilted_rows(frame, read.box, self.slope_thresholds)
        return [s for s in rows if abs(s) >= TILTED_ROW_DEGREES][:LEVELLED_SLOPES]

    def _tilted_plate_reads(self, frame: Image) -> list[BoxRead]:
        """The reads of the photo turned by each of :data:`TILT_DEGREES` (the boxes the
        detector is sure of, :data:`TILT_MIN_SCORE`, no tiles: near plates), each box the
        upright envelope in the photo of the box in the turned photo, where the plate is
        level and its box snapped to it (``snap_boxes``)."""
        height, width = frame.shape[:2]
        out: list[BoxRead] = []
        for degrees in TILT_DEGREES:
            canvas, back = turned(frame, degrees)
            for read in self._read_looks(canvas, TILT_MIN_SCORE, tiles=False):
                # The turned canvas's corners are the photo's edges drawn out: a plate cut
                # by one may show a whole paper there.
                envelope = upright_envelope(read.box, back, width, height)
                out.append(replace(read, box=envelope, paper_found=False))
        return out

    def _dark_plate_reads(self, frame: Image, found: list[BoxRead]) -> list[BoxRead]:
        """Reads of the inverted frame that are dark plates: black classic French plates,
        silver characters on black. The models learnt dark characters on a light plate;
        inverted, such a plate is one (a black French plate the detector missed was found
        and read). A read counts where its box's ground is dark in the frame
        (:func:`_dark_ground`: other boxes are not read at all), the detector and the
        recogniser are sure of it (:data:`DARK_MIN_SCORE`: other boxes are neither zoomed
        on nor read; :data:`DARK_MIN_CONFIDENCE`) and
        :func:`~agent.reader.recogniser.pick_read` prefers it to each read of the frame
        its box overlaps (a dark plate read as it is often loses a character). Boxes on a
        light ground are dropped before the detector's second look, and the inverted frame
        is not tiled (a black plate the frame's passes miss is a near one: the tiles found
        none on the held-out photos), which takes 14-18 % off a large photo's time."""
        negative = np.asarray(cv2.bitwise_not(frame), np.uint8)
        out: list[BoxRead] = []
        for read in self._read_looks(
            negative,
            DARK_MIN_SCORE,
            keep=lambda box: _dark_ground(frame, box),
            tiles=False,
            inverted=True,
        ):
            rivals = _texts([r for r in found if box_iou(r.box, read.box) > SAME_PLATE_IOU])
            if _inverted_read_wins((read.text, read.format, read.confidence), rivals):
                out.append(read)
        return out

    def _near_plate_reads(self, frame: Image) -> list[BoxRead]:
        """Reads of plates too near to be found whole in the photo as it is: the detector's
        boxes in the photo shown it :data:`NEAR_SHRINK` times smaller
        (:data:`NEAR_MIN_SCORE`; no tiles) at least :data:`NEAR_MIN_WIDTH` of its width,
        read in the photo itself. Other boxes are dropped before the second look: this pass
        costs two detector runs (colour and grey) on a photo where it finds none."""
        if not isinstance(self.detector, ModelDetector):
            return []
        min_width = NEAR_MIN_WIDTH * int(frame.shape[1])

        def near(box: Box) -> bool:
            return box[2] >= min_width

        return self._read_looks(frame, NEAR_MIN_SCORE, keep=near, tiles=False, shrink=NEAR_SHRINK)

    def _read_looks(
        self,
        frame: Image,
        min_score: float = 0.0,
        keep: Callable[[Box], bool] | None = None,
        *,
        tiles: bool = True,
        shrink: float = 1.0,
        whole_frame: bool = True,
        tile_scale: float = TILE_SCALE,
        tile_overlap: float = TILE_OVERLAP,
        zooms: tuple[float, ...] | None = None,
        limit: int = MAX_PLATES_PER_FRAME,
        inverted: bool = False,
    ) -> list[BoxRead]:
        """The detector's boxes in ``frame`` scoring at least ``min_score`` and their reads
        (see :meth:`read_boxes`); with ``keep``, only the boxes it accepts are read (the
        others cost no recogniser run); ``tiles=False``: no tiled pass of a large frame;
        ``shrink``: the model detector's whole-frame passes see the frame that much
        smaller (:meth:`~agent.reader.detector.ModelDetector.looks`); ``whole_frame=False``:
        the tiled pass alone, its windows seen at ``tile_scale`` and overlapping by
        ``tile_overlap``, with second-look ``zooms`` of its own (:meth:`_far_plate_reads`);
        at most ``limit`` boxes are read; ``inverted``: ``frame`` is the photo inverted
        (:meth:`_dark_plate_reads`), whose boxes are not read inverted again."""
        if isinstance(self.detector, ModelDetector):
            looks = self.detector.looks(
                frame,
                min_score,
                tiles=tiles,
                keep=keep,
                shrink=shrink,
                whole_frame=whole_frame,
                tile_scale=tile_scale,
                tile_overlap=tile_overlap,
                zooms=zooms,
            )
        else:
            detected = self.detector.detect(frame)
            looks = [Look(box, score, box) for box, score in detected if score >= min_score]
        wide = self._reads_wide()
        out: list[BoxRead] = []
        for look in looks[:limit]:
            if keep is not None and not keep(look.box):
                continue
            read = self._read_box(frame, look.box, look.score, inverted, wide=wide)
            if (
                look.first != look.box
                and not _sure_of_layout(read)
                and not _cut_by_frame(look.first, frame)
            ):
                # The second look's box is the better box, but the first box's crop (its
                # margins often hold the plate, with less around it) sometimes reads better;
                # not where it runs into the frame's edge (:func:`_cut_by_frame`).
                first = self._read_box(frame, look.first, look.score, inverted, wide=wide)
                if first is not None and (read is None or _better(first, read)):
                    read = replace(first, box=look.box)
            if read is None:
                continue
            if self.snap_boxes and read.valid and read.confidence >= self.min_confidence:
                snapped = snap_to_plate(frame, read.box)
                read = replace(read, box=snapped, paper_found=snapped != read.box)
            out.append(read)
        return out

    def _reads_wide(self) -> bool:
        """Whether the boxes of the frame the detector last looked at are read with the
        wider view too: always with ``wide_view`` (photos), else in daylight with
        ``daylight_wide_view`` (:meth:`_in_daylight`)."""
        return self.wide_view or (self.daylight_wide_view and self._in_daylight())

    def _in_daylight(self) -> bool:
        """Whether the frame the detector last looked at had no colour cast, so skipped its
        grey pass (``daylight_wide_view`` reads such a frame with the wider view)."""
        detector = self.detector
        return isinstance(detector, ModelDetector) and detector.last_cast < detector.grey_min_cast

    def _read_box(
        self,
        frame: Image,
        box: Box,
        score: float,
        inverted: bool = False,
        *,
        wide: bool = False,
    ) -> BoxRead | None:
        """The recogniser's read of ``box`` (with the reader's margins); None if too small.

        With ``wide`` (:meth:`_reads_wide`: ``wide_view``, or a daylight frame with
        ``daylight_wide_view``) the box is also read from a wider crop
        (:data:`WIDE_MARGINS`) and :meth:`_read_views` keeps one of the two reads: a
        detector box a little inside the plate cuts its first or last character, which the
        recogniser then drops, sure of the rest (models/recogniser.md, Wider view). With
        ``extended_boxes`` a box read at least :data:`EXTENDED_MIN_CONFIDENCE` sure is also
        read from a crop :data:`EXTENDED_MARGINS` wider (:meth:`_extended_read`): the upright
        box of a tilted plate often holds only a part of it. With ``rectified_plates`` a box
        the detector scored :data:`RECTIFY_MIN_SCORE` or more and read unsure is also read
        straightened (:meth:`_rectified_read`). With ``dark_boxes`` a box the detector scored
        :data:`DARK_BOX_MIN_SCORE` or more on a dark ground (:data:`DARK_GROUND_MAX`) is
        also read inverted (:meth:`_dark_read`) when its read is unsure, or when its middle
        is mostly dark (:func:`_dark_middle`) and then the inverted read replaces a sure
        plate read of a known layout only when it is one too: the detector finds black
        plates that the recogniser, which learnt dark characters, misreads, at times surely
        (``EM-279-BL`` read ``EH-279-BL`` at 0.97); not in a frame that is already
        ``inverted``, where that read is the photo's own (a white plate, dark there, read
        inverted back). With
        ``blank_colours`` a read of no known
        layout is read again from the views with their coloured emblems painted over, when
        each has some, and a surer plate read kept (:func:`_surer_plate`). A box the
        detector is less than :data:`PLATE_SEEN_SCORE` sure of is read in the wider view
        only when its crop reads :data:`WIDE_VIEW_MIN_READ` sure or more."""
        crop, _ = crop_box(frame, box)
        if crop.shape[0] < 2 or crop.shape[1] < 2:
            return None
        views = [crop, crop_box(frame, box, WIDE_MARGINS)[0]] if wide else [crop]
        read = self._read_views(
            views, rest_from=WIDE_VIEW_MIN_READ if score < PLATE_SEEN_SCORE else 0.0
        )
        if self.extended_boxes and read[2] >= EXTENDED_MIN_CONFIDENCE:
            read = self._extended_read(frame, box, read)
        whole = (0, 0, crop.shape[1], crop.shape[0])
        if (
            self.dark_boxes
            and not inverted
            and score >= DARK_BOX_MIN_SCORE
            and _ground(crop, whole) < DARK_GROUND_MAX
        ):
            sure = _sure_known_plate(read)
            if not sure or _dark_middle(crop, whole):
                dark = self._dark_read(views, read)
                if not sure or dark[1] != "UNKNOWN":
                    read = dark
        if self.rectified_plates and score >= RECTIFY_MIN_SCORE:
            read = self._rectified_read(crop, read)
        if self.blank_colours and _may_hold_an_emblem(read):
            blanked = [blanked_colours(view) for view in views]
            if all(view is not None for view in blanked):
                read = _surer_plate(self._read_views([v for v in blanked if v is not None]), read)
        return BoxRead(box, score, *read)

    def _extended_read(self, frame: Image, box: Box, read: ViewsRead) -> ViewsRead:
        """``read`` of ``box``, or the read of the box's crop :data:`EXTENDED_MARGINS` wider:
        for an unsure ``read`` when :func:`_replaces` keeps it, for a sure one only when it
        is a sure plate of a known layout that holds all of ``read``'s characters, in order,
        and more (:func:`~agent.reader.recogniser.fuller_text`): the upright box of a tilted
        plate often holds a part of it, read surely (``76665``, a layout the grammar does
        not know, of ``76665-B-1``)."""
        extended = self._read_views([crop_box(frame, box, EXTENDED_MARGINS)[0]])
        if not _sure_plate(read):
            return extended if _replaces(extended, read) else read
        return extended if _fuller_plate(extended, read) else read

    def _read_views(
        self, views: list[Image], ballot: Ballot | None = None, *, rest_from: float = 0.0
    ) -> ViewsRead:
        """Canonical text, format, confidence and alternatives of the read that
        :func:`~agent.reader.recogniser.pick_read` keeps among the reads of ``views``
        (crops of one plate; a plate over none, their votes, the fuller read, the surer),
        or the text every member's reads of the views vote for slot by slot
        (:func:`_slot_voted`). Every member's raw read of every view is added to ``ballot``
        when one is given (:func:`_voted_read` and :func:`_slot_voted` count them). The
        views after the first are read only when the first view's read is ``rest_from``
        sure or more."""
        reads: list[tuple[tuple[str, float], str, PlateFormat, tuple[str, ...]]] = []
        members: list[tuple[str, float]] = []
        for view in views:
            if reads and reads[0][0][1] < rest_from:
                break
            raw, confidence = self.recogniser.read_best(view)
            made = (
                self.recogniser.last_reads
                if isinstance(self.recogniser, RecogniserEnsemble)
                else ((raw, confidence),)
            )
            members.extend(made)
            if ballot is not None:
                ballot.extend(made)
            text, fmt = canonicalize(raw)
            reads.append(((raw, confidence), text, fmt, self._alternatives(raw, text)))
        (_raw, confidence), text, fmt, alternatives = reads[pick_read([r[0] for r in reads])]
        return _slot_voted((text, fmt, confidence, alternatives), members)

    def _alternatives(self, raw: str, text: str) -> tuple[str, ...]:
        """Canonical texts of the recogniser's alternatives to ``raw`` that are plates."""
        out: dict[str, None] = {}
        for alt in self.recogniser.alternatives(raw):
            alt_text, alt_fmt = canonicalize(alt)
            plate = (
                is_plausible_unknown(alt) if alt_fmt == "UNKNOWN" else is_valid(alt_text, alt_fmt)
            )
            if plate and alt_text != text:
                out[alt_text] = None
        return tuple(out)

    def read_crop(self, image: Image) -> tuple[str, PlateFormat, float]:
        """Canonical text, format and confidence of an image that is already one plate crop.

        One- or two-line: :meth:`~agent.reader.recogniser.Recogniser.read_best`
        decides from the image's own aspect. With ``wide_view`` the crop is also read
        with margins of its own edge pixels (:data:`WIDE_MARGINS`, as if cut from a
        wider view) and :func:`~agent.reader.recogniser.pick_read` keeps one read: the
        recogniser learnt plates with margins, and a crop cut tight to a square plate
        often lost its two-line read (models/recogniser.md, Wider view)."""
        text, fmt, confidence, _ = self.read_crop_alternatives(image)
        return text, fmt, confidence

    def read_crop_alternatives(self, image: Image) -> ViewsRead:
        """:meth:`read_crop` plus the canonical alternatives the recogniser nearly read.

        With ``dark_plates`` a crop whose ground is dark (:data:`DARK_GROUND_MAX`) is also
        read inverted, and that read is kept when it is a plate read surely
        (:data:`DARK_MIN_CONFIDENCE`) that :func:`~agent.reader.recogniser.pick_read`
        prefers: old British, Dutch classic, Polish and French plates are light characters
        on black or blue (models/recogniser.md, Dark plates). With ``tilted_plates`` a crop
        read unsure is also read turned (:meth:`_turned_crop_read`), with
        ``rectified_plates`` straightened (:meth:`_rectified_read`), and one still unsure
        takes the text its views vote for (:func:`_voted_read`); every read of the crop then
        votes slot by slot (:func:`_slot_voted`). With ``blank_colours`` a
        crop read as no known layout (:func:`_may_hold_an_emblem`) that has coloured
        emblems is read again, all of the above, with them painted over
        (:func:`~agent.reader.colours.blanked_colours`), and a surer plate read kept. With
        ``levelled_plates`` a crop whose row of characters slopes by
        :data:`TILTED_ROW_DEGREES` or more is read again, all of the above, turned level
        (:func:`~agent.reader.rotation.levelled`, no margins added: the crop holds them),
        and that read kept where :func:`_levelled_read_wins`, however unsure the first."""
        crop = check_frame(image, MIN_CROP_SIDE)
        read = self._coloured_crop_read(crop)
        if self.levelled_plates:
            height, width = crop.shape[:2]
            whole = (0, 0, width, height)
            slope = _sloping_row(crop, whole, None, self.slope_thresholds)
            if slope is not None:
                level = self._coloured_crop_read(levelled(crop, whole, slope, (0.0, 0.0)))
                if _levelled_read_wins(level, read):
                    read = level
        return read

    def _coloured_crop_read(self, crop: Image) -> ViewsRead:
        """:meth:`read_crop_alternatives` of ``crop`` as it is (not levelled)."""
        read = self._crop_read(crop)
        if self.blank_colours and _may_hold_an_emblem(read):
            blanked = blanked_colours(crop)
            if blanked is not None:
                read = _surer_plate(self._crop_read(blanked), read)
        return read

    def _crop_read(self, crop: Image) -> ViewsRead:
        """:meth:`read_crop_alternatives` of ``crop`` as it is (no colour blanking)."""
        ballot: Ballot = []
        read = self._read_views(self._crop_views(crop), ballot)
        height, width = crop.shape[:2]
        if self.dark_plates and _ground(crop, (0, 0, width, height)) < DARK_GROUND_MAX:
            read = self._dark_read(self._crop_views(crop), read)
        if self.tilted_plates and not _sure_plate(read):
            read = self._turned_crop_read(crop, read, ballot)
        if self.rectified_plates:
            read = self._rectified_read(crop, read, ballot)
        if (self.tilted_plates or self.rectified_plates) and not _sure_plate(read):
            read = _voted_read(read, ballot)
        return _slot_voted(read, ballot)

    def _dark_read(self, views: list[Image], read: ViewsRead) -> ViewsRead:
        """``read`` of ``views`` (one plate), or the read of the views inverted when that
        is a plate read surely that :func:`_inverted_read_wins` keeps: light characters on a
        dark plate (black classic French, old British) read as the dark characters on a
        light plate the recogniser learnt."""
        inverted = self._read_views([np.asarray(cv2.bitwise_not(v), np.uint8) for v in views])
        return inverted if _inverted_read_wins(inverted[:3], [(read[0], read[2])]) else read

    def _turned_crop_read(
        self, crop: Image, read: ViewsRead, ballot: Ballot | None = None
    ) -> ViewsRead:
        """``read`` of ``crop``, or the surest read of the crop turned by each of
        :data:`CROP_TILT_DEGREES` when that is a sure plate (:data:`SURE_READ`) of another
        text, no shorter, that :func:`~agent.reader.recogniser.pick_read` prefers: a crop
        around a tilted plate loses a character at its slanting ends."""
        turned_reads = []
        for degrees in CROP_TILT_DEGREES:
            turned_read = self._read_views(self._crop_views(turned(crop, degrees)[0]), ballot)
            if _sure_plate(turned_read):
                turned_reads.append(turned_read)
        if not turned_reads:
            return read
        best = max(turned_reads, key=lambda r: r[2])
        return best if _replaces(best, read) else read

    def _rectified_read(
        self, crop: Image, read: ViewsRead, ballot: Ballot | None = None
    ) -> ViewsRead:
        """``read`` of ``crop``, or, when it is unsure, the read of the plate in ``crop``
        straightened front on (:func:`~agent.reader.rectify.rectified`) when that is a
        sure plate of another text, no shorter, that
        :func:`~agent.reader.recogniser.pick_read` prefers: a plate seen at an angle loses
        its far characters and is read unsure; a wrong straightening reads unsure too."""
        if _sure_plate(read):
            return read
        straight = rectified(crop)
        if straight is None:
            return read
        straight_read = self._read_views(self._crop_views(straight), ballot)
        return straight_read if _replaces(straight_read, read) else read

    def _crop_views(self, crop: Image) -> list[Image]:
        """A plate crop and, with ``wide_view``, the crop with margins of its edge pixels."""
        if not self.wide_view:
            return [crop]
        height, width = crop.shape[:2]
        mx, my = round(WIDE_MARGINS[0] * width), round(WIDE_MARGINS[1] * height)
        padded = cv2.copyMakeBorder(crop, my, my, mx, mx, cv2.BORDER_REPLICATE)
        return [crop, np.asarray(padded, np.uint8)]

    def read(self, image: Image) -> list[PlateRead]:
        """Every plate read in the BGR frame, most confident first: each text once, and no
        read of a part of a plate read whole (:func:`_a_part_read`). Sets
        :attr:`plate_unread` for the frame."""
        frame = check_frame(image)
        height, width = frame.shape[:2]
        found = self.read_boxes(frame)
        reads = self.reported(found, width, height)
        self.plate_unread = plate_unread(found, reads)
        return reads

    def reported(self, found: list[BoxRead], width: int, height: int) -> list[PlateRead]:
        """The reads of :meth:`read` among ``found``, the box reads of a ``width`` x
        ``height`` frame (:meth:`read_boxes`): plates read at ``min_confidence`` or more
        (a layout the grammar does not know: ``unknown_min_confidence``, clear of the
        frame's edges), each text once, no part of a plate read whole. ``raqib eval``
        scores these, so that its figures are what ``raqib read`` reports."""
        best: dict[str, PlateRead] = {}
        for r in found:
            if r.confidence < self.min_confidence or not r.valid:
                continue
            if r.format == "UNKNOWN" and (
                not self.keep_unknown
                or r.confidence < self.unknown_min_confidence
                or (_at_edge(r.box, width, height) and not r.paper_found)
            ):
                continue
            previous = best.get(r.text)
            if previous is None or previous.confidence < r.confidence:
                best[r.text] = PlateRead(r.text, r.format, r.confidence, r.box, r.alternatives)
        reads = best.values()
        whole = [r for r in reads if not any(_a_part_read(r, other) for other in reads)]
        return sorted(whole, key=lambda r: r.confidence, reverse=True)


def from_config(config: ReaderConfig, *, stills: bool = False) -> ModelPlateReader:
    """Same as :meth:`ModelPlateReader.from_config`."""
    return ModelPlateReader.from_config(config, stills=stills)

"""A plate tilted by 15-25 degrees is read from the photo turned level (photos only)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config import ReaderConfig
from agent.frames import Image
from agent.reader.detector import ModelDetector
from agent.reader.pipeline import (
    LEVELLED_MIN_SCORE,
    MARGIN_X,
    MARGIN_Y,
    BoxRead,
    ModelPlateReader,
    _levelled_read_wins,
    merge_view_reads,
)
from agent.reader.plate_edges import (
    ADAPTIVE_THRESHOLDS,
    QUICK_SLOPE_THRESHOLDS,
    row_tilt,
    tilted_rows,
)
from agent.reader.rotation import levelled, turned, upright_envelope
from agent.reads import Box, box_iou
from agent.synth.plates import render_plate

MODELS = Path(__file__).resolve().parent.parent / "models"


def _tilted_plate_scene(text: str, seed: int, degrees: float) -> tuple[Image, Box]:
    """A rendered plate turned ``degrees`` on a blurred grey ground, and its upright box."""
    plate = render_plate(text, np.random.default_rng(seed), height=50)
    h, w = plate.shape[:2]
    ground = np.random.default_rng(seed + 100).integers(60, 120, (480, 640, 3), dtype=np.uint8)
    scene = np.asarray(cv2.GaussianBlur(ground, (21, 21), 0), np.uint8)
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(turn[0, 0]), abs(turn[0, 1])
    tw, th = int(h * sin + w * cos), int(h * cos + w * sin)
    turn[0, 2] += tw / 2 - w / 2
    turn[1, 2] += th / 2 - h / 2
    turned_plate = cv2.warpAffine(plate, turn, (tw, th))
    inside = cv2.warpAffine(np.full((h, w), 255, np.uint8), turn, (tw, th)) > 0
    x0, y0 = (640 - tw) // 2, (480 - th) // 2
    scene[y0 : y0 + th, x0 : x0 + tw][inside] = turned_plate[inside]
    return scene, (x0, y0, tw, th)


def _photo_reader(tilted: bool) -> ModelPlateReader:
    detector = ModelDetector(MODELS / "detector.tflite", zooms=(3.0, 4.0, 5.0, 6.0), look_boxes=4)
    return ModelPlateReader(
        MODELS, detector=detector, tilted_plates=tilted, snap_boxes=True, wide_view=True
    )


def test_a_plate_tilted_25_degrees_is_read_only_with_the_tilted_pass() -> None:
    level, tilted = _photo_reader(False), _photo_reader(True)
    for seed in (0, 1):
        scene, envelope = _tilted_plate_scene("48213-D-27", seed, 25.0)
        assert "48213-D-27" not in [r.text for r in level.read(scene) if r.confidence >= 0.7]
        reads = tilted.read(scene)
        assert [r.text for r in reads] == ["48213-D-27"], reads
        assert box_iou(reads[0].box, envelope) >= 0.6  # the upright envelope, as labelled


def test_a_turned_frame_maps_its_pixels_back_to_the_frame() -> None:
    frame = np.zeros((120, 200, 3), np.uint8)
    frame[30, 150] = 255
    for degrees in (-20.0, 20.0, 90.0):
        canvas, back = turned(frame, degrees)
        assert canvas.shape[0] >= 120 and canvas.shape[1] >= 120  # all of the frame kept
        y, x = np.unravel_index(int(canvas[:, :, 0].argmax()), canvas.shape[:2])
        fx, fy = back @ np.array([x, y, 1.0])
        assert abs(fx - 150) <= 1.5 and abs(fy - 30) <= 1.5


def test_a_level_box_in_the_turned_frame_maps_back_to_the_tilted_plates_envelope() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    canvas, back = turned(frame, -20.0)
    cx, cy = canvas.shape[1] / 2, canvas.shape[0] / 2
    level = (round(cx - 50), round(cy - 10), 100, 20)  # a 100 x 20 plate, level in the canvas
    x, y, w, h = upright_envelope(level, back, 640, 480)
    rad = np.radians(20.0)
    assert abs(w - (100 * np.cos(rad) + 20 * np.sin(rad))) <= 2
    assert abs(h - (100 * np.sin(rad) + 20 * np.cos(rad))) <= 2
    assert abs(x + w / 2 - 320) <= 2 and abs(y + h / 2 - 240) <= 2  # about the same centre
    assert upright_envelope((0, 0, canvas.shape[1], canvas.shape[0]), back, 640, 480) == (
        0,
        0,
        640,
        480,
    )  # clipped to the frame


def _read(box: Box, text: str, confidence: float, score: float = 0.6) -> BoxRead:
    fmt = "MA" if "-" in text else "UNKNOWN"
    return BoxRead(box, score, text, fmt, confidence)  # type: ignore[arg-type]


TILTED_ENVELOPE = (100, 100, 200, 120)


def test_a_sure_read_of_the_turned_photo_replaces_the_unsure_part_read_of_its_plate() -> None:
    part = _read((150, 150, 80, 30), "2-H-3", 0.12)  # one line of the tilted plate, inside
    elsewhere = _read((500, 400, 60, 20), "5-B-4", 0.2)
    tilted = _read(TILTED_ENVELOPE, "2734-H-1", 0.84)
    merged = merge_view_reads([part, elsewhere], [tilted])
    assert merged == [elsewhere, tilted]


def test_a_sure_read_of_the_photo_is_not_second_guessed() -> None:
    level = _read((120, 140, 160, 40), "1232-W-6", 0.99)
    merged = merge_view_reads([level], [_read(TILTED_ENVELOPE, "12323-W-6", 0.9)])
    assert merged == [level]


def test_the_same_text_read_turned_keeps_the_photos_read_and_box() -> None:
    level = _read((120, 140, 160, 40), "54306-W-6", 0.6)
    merged = merge_view_reads([level], [_read(TILTED_ENVELOPE, "54306-W-6", 0.95)])
    assert merged == [level]


def test_a_read_too_unsure_to_weigh_does_not_keep_its_region_as_the_fuller_read() -> None:
    # a Latvian plate's band read as one more letter, in a box on the text beside it
    band = replace(_read((150, 150, 120, 40), "QFD-1475", 0.08), format="EU")
    turned = replace(_read(TILTED_ENVELOPE, "FD-1475", 0.999), format="EU")
    assert merge_view_reads([band], [turned]) == [turned]
    # read a little surer, the fuller read still keeps its region (a dropped character)
    fuller = replace(band, confidence=0.3)
    assert merge_view_reads([fuller], [turned]) == [fuller]


def test_an_unsure_read_of_the_turned_photo_does_not_count() -> None:
    part = _read((150, 150, 80, 30), "2-H-3", 0.12)
    assert merge_view_reads([part], [_read(TILTED_ENVELOPE, "2734-H-1", 0.5)]) == [part]


def test_a_plate_found_only_turned_is_added_once_with_its_surest_read() -> None:
    both_ways = [
        _read(TILTED_ENVELOPE, "8808-B-7", 0.9),
        _read((104, 98, 196, 126), "8808-B-7", 0.98),
    ]
    merged = merge_view_reads([], both_ways)
    assert merged == [both_ways[1]]


class _CountingDetector:
    """A detector double: the same boxes in every frame; counts the frames it saw."""

    def __init__(self, boxes: list[tuple[Box, float]]) -> None:
        self.boxes = boxes
        self.frames = 0

    def detect(self, image: Image) -> list[tuple[Box, float]]:
        self.frames += 1
        return list(self.boxes)


def test_the_photo_is_turned_only_when_a_box_the_detector_is_sure_of_has_no_sure_read() -> None:
    plate = render_plate("48213-D-27", np.random.default_rng(0), height=50)
    h, w = plate.shape[:2]
    scene = np.full((480, 640, 3), 90, np.uint8)
    scene[200 : 200 + h, 100 : 100 + w] = plate
    read_plate = ((100, 200, w, h), 0.9)
    blank = ((100, 350, w, h), 0.9)  # a sure box holding no plate
    for boxes, turns in (([read_plate], 0), ([read_plate, blank], 2)):
        detector = _CountingDetector(boxes)
        reader = ModelPlateReader(MODELS, detector=detector, tilted_plates=True)  # type: ignore[arg-type]
        reader.read(scene)
        assert detector.frames == 1 + turns


def test_a_level_plate_reads_the_same_with_the_tilted_pass() -> None:
    scene, box = _tilted_plate_scene("48213-D-27", 0, 0.0)
    level, tilted = _photo_reader(False).read(scene), _photo_reader(True).read(scene)
    assert [(r.text, r.box) for r in tilted] == [(r.text, r.box) for r in level]
    assert level and box_iou(level[0].box, box) > 0.5


def test_a_small_tilted_plate_crop_read_unsure_is_read_turned() -> None:
    """A blurred 22 px plate turned 20 degrees: read level it loses or changes its first
    digit, unsure; turned back 10 degrees it is read whole and sure."""
    level = ModelPlateReader(MODELS, wide_view=True, tilted_plates=False)
    tilted = ModelPlateReader(MODELS, wide_view=True, tilted_plates=True)
    for seed in (0, 1):
        plate = render_plate("7391-B-40", np.random.default_rng(seed), height=22)
        crop, _ = turned(np.asarray(cv2.GaussianBlur(plate, (3, 3), 0), np.uint8), 20.0)
        text, _, confidence = level.read_crop(crop)
        assert text != "7391-B-40" and confidence < 0.7
        assert tilted.read_crop(crop)[0] == "7391-B-40"


def test_a_sure_crop_read_is_not_turned() -> None:
    plate = render_plate("7391-B-40", np.random.default_rng(0), height=40)
    reader = ModelPlateReader(MODELS, wide_view=True, tilted_plates=True)
    calls: list[int] = []
    turn = reader._turned_crop_read
    reader._turned_crop_read = lambda crop, read: calls.append(1) or turn(crop, read)  # type: ignore[method-assign]
    assert reader.read_crop(plate)[0] == "7391-B-40"
    assert calls == []


def test_a_sure_read_that_is_part_of_a_fuller_turned_read_gives_way_and_keeps_its_box() -> None:
    level = _read((120, 140, 160, 40), "816-A-4", 0.99)
    fuller = _read(TILTED_ENVELOPE, "816-A-41", 0.95)
    (merged,) = merge_view_reads([level], [fuller])
    assert (merged.text, merged.box) == ("816-A-41", level.box)
    unknown_fuller = _read(TILTED_ENVELOPE, "8164141", 0.95)  # no known layout: no
    assert merge_view_reads([level], [unknown_fuller]) == [level]


def test_a_sure_read_of_a_part_of_the_plate_gives_way_with_its_box() -> None:
    """A tilted plate read level as its serial alone (``21880``, 5 of 8 characters) was
    boxed by that part: the fuller turned read brings its own box (the held-out scene's
    plate went from IoU 0.31 to 0.66); a read one character short keeps its box."""
    serial = _read((120, 140, 90, 40), "21880", 0.99)
    fuller = _read(TILTED_ENVELOPE, "21880-B-40", 0.95)
    (merged,) = merge_view_reads([serial], [fuller])
    assert (merged.text, merged.box) == ("21880-B-40", TILTED_ENVELOPE)
    short = _read((120, 140, 160, 40), "21880-B-4", 0.99)
    (merged,) = merge_view_reads([short], [fuller])
    assert (merged.text, merged.box) == ("21880-B-40", short.box)


def test_a_near_plate_read_fuller_in_the_shrunk_photo_replaces_its_part_with_its_box() -> None:
    """The near pass (``fuller_box``): a near plate boxed by a part in the photo as it is
    (``63-T-78`` of ``263-T-78``, sure) gives way to the fuller read of the shrunk photo,
    whose box holds the whole plate."""
    part = _read((195, 328, 337, 152), "63-T-78", 1.0)
    whole = _read((89, 344, 463, 121), "263-T-78", 0.95)
    (merged,) = merge_view_reads([part], [whole], fuller_box=True)
    assert (merged.text, merged.box) == ("263-T-78", whole.box)
    same = _read((89, 344, 463, 121), "63-T-78", 0.99)  # the same text: the first read stays
    assert merge_view_reads([part], [same], fuller_box=True) == [part]


@pytest.mark.parametrize("degrees", [-12.0, -6.0, 6.0, 12.0])
def test_the_slope_of_a_plates_glyphs_is_measured(degrees: float) -> None:
    scene, envelope = _tilted_plate_scene("48213-D-27", 0, degrees)
    slope = row_tilt(scene, envelope)
    assert slope is not None and abs(abs(slope) - abs(degrees)) <= 2.5, slope
    assert np.sign(slope) == -np.sign(degrees)  # turned anticlockwise: rising to the right
    level, box = _tilted_plate_scene("48213-D-27", 0, 0.0)
    level_slope = row_tilt(level, box)
    assert level_slope is not None and abs(level_slope) <= 1.5
    assert row_tilt(np.full((480, 640, 3), 128, np.uint8), box) is None


def test_a_photo_whose_sure_read_has_sloping_glyphs_is_turned() -> None:
    from agent.reader.pipeline import _may_hide_a_tilted_plate

    for degrees, turned_expected in ((0.0, False), (8.0, True), (-8.0, True)):
        scene, envelope = _tilted_plate_scene("48213-D-27", 0, degrees)
        sure = _read(envelope, "48213-D-27", 0.99, score=0.9)
        assert _may_hide_a_tilted_plate(scene, [sure]) is turned_expected


# ------------------------------------------------------------------ levelled plates


def test_a_sloping_plate_is_turned_level_about_its_box() -> None:
    reader = ModelPlateReader(MODELS, wide_view=True)
    for degrees in (-12.0, 12.0):
        scene, envelope = _tilted_plate_scene("11487-B-40", 0, degrees)
        slope = row_tilt(scene, envelope)
        assert slope is not None and abs(abs(slope) - 12.0) < 1.5
        crop = levelled(scene, envelope, slope, (MARGIN_X, MARGIN_Y))
        flat = row_tilt(crop, (0, 0, crop.shape[1], crop.shape[0]))
        assert flat is not None and abs(flat) < 1.0
        assert 3.5 < crop.shape[1] / crop.shape[0] < 6.0  # one plate's line, not its envelope
        assert reader.read_crop(crop)[0] == "11487-B-40"


def test_a_sure_read_of_a_sloping_plate_gives_way_to_its_levelled_read() -> None:
    reader = ModelPlateReader.from_config(ReaderConfig(models_dir=MODELS), stills=True)
    scene, envelope = _tilted_plate_scene("11487-B-40", 1, -12.0)
    upright = BoxRead(envelope, 0.9, "17487-B-40", "MA", 0.85)
    read = reader._levelled_read(scene, upright)
    assert (read.text, read.box) == ("11487-B-40", envelope)
    assert read.confidence > upright.confidence
    assert [r.text for r in reader.read(scene)] == ["11487-B-40"]


def test_a_level_plate_or_a_read_under_the_floor_in_an_unsure_box_is_not_levelled() -> None:
    reader = ModelPlateReader.from_config(ReaderConfig(models_dir=MODELS), stills=True)
    scene, envelope = _tilted_plate_scene("11487-B-40", 0, 0.0)
    level = BoxRead(envelope, 0.9, "17487-B-40", "MA", 0.85)
    assert reader._levelled_read(scene, level) is level
    sloping, envelope = _tilted_plate_scene("11487-B-40", 1, -12.0)
    faint = BoxRead(envelope, LEVELLED_MIN_SCORE - 0.1, "17487-B-40", "MA", 0.02)
    assert reader._level_slopes(sloping, faint) == []
    assert reader._levelled_read(sloping, faint) is faint


@pytest.mark.parametrize(
    ("level", "upright", "wins"),
    [
        (("80615-A-40", "MA", 0.90), ("8065-A-40", "MA", 0.96), True),  # fuller
        (("11487-B-40", "MA", 0.90), ("81487-B-40", "MA", 0.77), True),  # as long, surer
        (("11487-B-40", "MA", 0.80), ("81487-B-40", "MA", 0.95), False),  # as long, less sure
        (("46039", "UNKNOWN", 0.99), ("46039-B-6", "MA", 0.99), False),  # a part
        (("89211-A-7", "MA", 0.99), ("89211-A-72", "MA", 0.87), False),  # shorter
        (("8065-A-400", "UNKNOWN", 0.99), ("8065-A-40", "MA", 0.96), False),  # unknown layout
        (("80615-A-40", "MA", 0.60), ("8065-A-40", "MA", 0.96), False),  # unsure
        (("62338-A-40", "MA", 0.90), ("6238-A-40", "MA", 0.45), True),  # unsure read replaced
        (("623-A-40", "MA", 0.90), ("6238-A-40", "MA", 0.45), False),  # ... not by a shorter
    ],
)
def test_the_levelled_read_replaces_the_upright_one_only_when_fuller_or_surer(
    level: tuple[str, str, float], upright: tuple[str, str, float], wins: bool
) -> None:
    assert _levelled_read_wins((*level, ()), (*upright, ())) is wins  # type: ignore[arg-type]


SLOPING_CROPS = [("11487-B-40", 15.0, 0), ("11487-B-40", -20.0, 0), ("95417-A-40", 20.0, 1)]


def test_a_sloping_plate_crop_is_read_levelled() -> None:
    levelling = ModelPlateReader.from_config(ReaderConfig(models_dir=MODELS), stills=True)
    upright = ModelPlateReader.from_config(
        ReaderConfig(models_dir=MODELS, still_levelled_plates=False), stills=True
    )
    upright_right = 0
    for text, degrees, seed in SLOPING_CROPS:
        scene, (x, y, w, h) = _tilted_plate_scene(text, seed, degrees)
        crop = scene[y : y + h, x : x + w]
        assert levelling.read_crop(crop)[0] == text
        upright_right += upright.read_crop(crop)[0] == text
    assert upright_right < len(SLOPING_CROPS)  # read upright, a sloping crop loses a character


SLOPING_FRAMES = [
    ("11487-B-40", 0, 15.0),
    ("95417-A-40", 0, -15.0),
    ("95417-A-40", 1, 15.0),
    ("80615-A-40", 1, 12.0),
    ("80615-A-40", 1, -12.0),
]


def test_a_video_frame_reads_a_sloping_plate_levelled_unless_turned_off() -> None:
    """A body camera held askew sees every plate sloping, frame after frame: reading the
    next frames does not put back the character an upright box drops, levelling does
    (``reader.levelled_plates``, on for video since 2026-12-05). Upright here also means
    without the wider view, as a frame under a colour cast (dusk, night) is read: a
    daylight frame's wider crop (``daylight_wide_view``) holds the dropped character too."""
    video = ModelPlateReader.from_config(ReaderConfig(models_dir=MODELS))
    upright = ModelPlateReader.from_config(
        ReaderConfig(models_dir=MODELS, levelled_plates=False, daylight_wide_view=False)
    )
    assert video.levelled_plates and not upright.levelled_plates
    upright_right = 0
    for text, seed, degrees in SLOPING_FRAMES:
        scene, _envelope = _tilted_plate_scene(text, seed, degrees)
        assert [r.text for r in video.read(scene)] == [text], (text, seed, degrees)
        upright_right += [r.text for r in upright.read(scene)] == [text]
    assert upright_right <= len(SLOPING_FRAMES) - 3


def test_a_video_frame_measures_the_slope_under_one_threshold_a_photo_under_four() -> None:
    """The slope decides whether a plate is levelled; a video frame pays for one adaptive
    threshold (:data:`QUICK_SLOPE_THRESHOLDS`), a photo tries every pair."""
    video = ModelPlateReader.from_config(ReaderConfig(models_dir=MODELS))
    photo = ModelPlateReader.from_config(ReaderConfig(models_dir=MODELS), stills=True)
    assert video.slope_thresholds == QUICK_SLOPE_THRESHOLDS and len(QUICK_SLOPE_THRESHOLDS) == 1
    assert photo.slope_thresholds == ADAPTIVE_THRESHOLDS and len(ADAPTIVE_THRESHOLDS) == 4
    for degrees in (-12.0, 12.0):
        scene, envelope = _tilted_plate_scene("11487-B-40", 0, degrees)
        for thresholds in (QUICK_SLOPE_THRESHOLDS, ADAPTIVE_THRESHOLDS):
            slope = row_tilt(scene, envelope, thresholds)
            assert slope is not None and abs(abs(slope) - 12.0) < 1.5


STEEP_PLATES = [("48213-D-27", 20.0), ("11487-B-40", -20.0), ("95417-A-40", 20.0)]


def _loose_box(box: Box, grow: float) -> Box:
    """``box`` made ``grow`` times as tall about its centre: a detector box around a tilted
    plate that also holds the bumper above and below it."""
    x, y, w, h = box
    tall = round(h * grow)
    return (x, y - (tall - h) // 2, w, tall)


def test_a_steeply_tilted_plate_in_a_loose_box_is_read_levelled_at_its_rows_slope() -> None:
    """A plate tilted by 20 degrees, boxed by the detector loosely around its upright
    envelope: its glyphs are too small a share of the box for ``row_tilt``, so the box's
    read was left as the upright crop reads it, unsure and wrong; the rows of a plate
    tilted inside it (:func:`tilted_rows`) give the slope, and the plate is read levelled
    (held-out Moroccan scenes read as video frames: 253 -> 261 of 299)."""
    video = ModelPlateReader.from_config(ReaderConfig(models_dir=MODELS))
    for text, degrees in STEEP_PLATES:
        scene, envelope = _tilted_plate_scene(text, 0, degrees)
        box = _loose_box(envelope, 1.5)
        assert row_tilt(scene, box, video.slope_thresholds) is None
        slopes = tilted_rows(scene, box, video.slope_thresholds)
        assert slopes and abs(abs(slopes[0]) - 20.0) < 1.5
        # The scene turns the plate counter-clockwise by ``degrees``: its row rises to the
        # right, a negative slope (falling to the right is positive).
        assert (slopes[0] < 0) == (degrees > 0)
        upright = video._read_box(scene, box, 0.9)
        assert upright is not None and upright.text != text and upright.confidence < 0.7
        read = video._levelled_read(scene, upright)
        assert (read.text, read.box) == (text, box), (text, degrees)
        assert read.confidence >= 0.9


def test_tilted_rows_are_looked_for_only_in_a_sure_box_read_unsure() -> None:
    """The rows of a tilted plate are looked for only where they may gain a plate: a box the
    detector is :data:`LEVELLED_MIN_SCORE` sure of (night frames hold many unsure lamp
    boxes) whose read is no sure plate."""
    video = ModelPlateReader.from_config(ReaderConfig(models_dir=MODELS))
    scene, envelope = _tilted_plate_scene("95417-A-40", 0, 20.0)
    box = _loose_box(envelope, 1.5)
    unsure = BoxRead(box, 0.9, "954745", "UNKNOWN", 0.28)
    assert video._level_slopes(scene, unsure) != []
    for skipped in (
        replace(unsure, detector_score=LEVELLED_MIN_SCORE - 0.05),
        replace(unsure, text="95417-A-40", format="MA", confidence=0.95),
    ):
        assert video._level_slopes(scene, skipped) == []
        assert video._levelled_read(scene, skipped) is skipped


def test_a_plate_is_levelled_in_the_views_its_box_was_read_in(views_per_read: list[int]) -> None:
    """A box read with the wider view too (photos; daylight video frames) is levelled in
    both views, so a levelled crop that cuts an end character (``CA-213-ZN`` read
    ``CA-213-N``) has the wider one beside it; a box read alone (frames under a colour
    cast) is levelled alone, keeping those frames' time."""
    video = ModelPlateReader.from_config(ReaderConfig(models_dir=MODELS))
    scene, envelope = _tilted_plate_scene("95417-A-40", 0, 20.0)
    box = _loose_box(envelope, 1.5)
    upright = BoxRead(box, 0.9, "954745", "UNKNOWN", 0.28)
    for wide, expected in ((True, {2}), (False, {1})):
        views_per_read.clear()
        assert video._levelled_read(scene, upright, wide=wide).text == "95417-A-40"
        assert set(views_per_read) == expected

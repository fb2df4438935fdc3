"""The plate detector on large frames, its training looks and its dashcam split."""

from __future__ import annotations

import csv
import importlib
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from conftest import DetectorRun, magenta_frame, write_manifest

from agent.frames import Image
from agent.reader.detector import (
    GREY_MIN_CAST,
    SECOND_LOOK_BOXES,
    TILE_SCALE,
    Look,
    ModelDetector,
    _suppress_overlaps,
    cast_strength,
    tile_windows,
    widen_over_blue,
)
from agent.reader.pipeline import FIRST_BOX_SURE, ModelPlateReader, _sure_of_layout
from agent.reader.plate_text import canonicalize, is_valid
from agent.reads import Box
from agent.synth.plates import render_plate
from agent.synth.scenes import (
    black_plate,
    colour_cast,
    far_plate_scene,
    near_plate_scene,
    night_drive,
    recolour_plate,
    street_scene,
    varied_street_scene,
    yellow_plate,
)

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def detector() -> ModelDetector:
    return ModelDetector(MODELS / "detector.tflite")


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)


# ---------------------------------------------------------------- large frames


@pytest.mark.parametrize(("w", "h"), [(3840, 2160), (2560, 1440), (4000, 3000), (2600, 900)])
def test_tiles_cover_a_large_frame_overlapping_and_flush_with_its_edges(w: int, h: int) -> None:
    tiles = tile_windows(w, h, 1280, 768)
    covered = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in tiles:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert x1 - x0 <= 1280 and y1 - y0 <= 768
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    # any plate up to a quarter tile wide lies whole inside one tile
    for px in range(0, w - 320, 97):
        assert any(x0 <= px and px + 320 <= x1 for x0, _, x1, _ in tiles)


def test_a_frame_no_larger_than_a_tile_is_one_window() -> None:
    assert tile_windows(1280, 720, 1280, 768) == [(0, 0, 1280, 720)]


def test_a_far_plate_in_a_4k_frame_is_found_by_the_tiled_pass(detector: ModelDetector) -> None:
    # A drawn street, enlarged 1.5 x into a 4K frame: its plates are 40-130 px
    # wide there, under 22 px at the whole-frame scale of a 640-wide input.
    rng = np.random.default_rng(7)
    found = total = 0
    for _ in range(3):
        scene, boxes = street_scene(rng)
        big = np.zeros((2160, 3840, 3), np.uint8)
        enlarged = cv2.resize(scene, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_LINEAR)
        x0, y0 = 1000, 800
        big[y0 : y0 + enlarged.shape[0], x0 : x0 + enlarged.shape[1]] = enlarged[: 2160 - y0]
        truth = [(x0 + 1.5 * x, y0 + 1.5 * y, 1.5 * w, 1.5 * h) for x, y, w, h in boxes]
        truth = [b for b in truth if b[1] + b[3] < 2160]
        got = [b for b, _ in detector.detect(big)]
        total += len(truth)
        found += sum(any(_iou(b, t) >= 0.5 for b in got) for t in truth)
    assert total >= 3
    assert found >= 0.6 * total


def test_a_second_look_keeps_the_whole_plate_around_a_surer_part_of_it() -> None:
    """A plate wider than half a tile (a car photographed close, a 1280 px photo) is boxed
    by a tile in part, its serial without its letter, surer than the whole-frame box of the
    whole plate. After the second look the whole plate's box is no longer dropped for
    overlapping that part: both are read, and the reader keeps the whole plate's read over
    its part's (Moroccan scenes enlarged 2x: 276 -> 279 plates read, 296 -> 299 boxed)."""
    part, whole = ((125, 900, 462, 96), 0.57), ((112, 878, 656, 144), 0.55)
    assert _suppress_overlaps([part, whole]) == [part]
    assert _suppress_overlaps([part, whole], keep_wholes=True) == [part, whole]
    # a loose box around a plate, not much wider than it, still gives way to the plate's box
    loose = ((110, 890, 560, 110), 0.5)
    assert _suppress_overlaps([part, loose], keep_wholes=True) == [part]
    # and a wider box that holds only some of a better box is no whole of it
    beside = ((250, 880, 640, 140), 0.5)
    assert _suppress_overlaps([part, beside], keep_wholes=True) == [part]


def test_frames_up_to_qhd_get_one_pass_and_a_4k_frame_a_tiled_one(
    detector: ModelDetector, detector_runs: list[DetectorRun]
) -> None:
    for shape in [(720, 1280), (1080, 1920), (1440, 2560)]:
        detector_runs.clear()
        detector.detect(magenta_frame(*shape))
        # in colour, then grey on the same letterboxed frame (no second resize)
        assert detector_runs == [(shape, False), (shape, True)]
    detector_runs.clear()
    detector.detect(magenta_frame(2160, 3840))
    height, width = detector.input_size
    tiles = tile_windows(3840, 2160, round(width / TILE_SCALE), round(height / TILE_SCALE))
    assert detector_runs[:2] == [((2160, 3840), False), ((2160, 3840), True)]
    assert len(detector_runs) == 2 + len(tiles)  # tiles in colour only
    assert all(not reused and shape != (2160, 3840) for shape, reused in detector_runs[2:])


def test_a_shrunk_look_shows_the_model_the_frame_smaller_and_answers_in_frame_pixels(
    detector: ModelDetector,
) -> None:
    """``shrink``: the frame fills a third of the input's width (the rest is padding), as if
    it were the corner of a frame three times as large; boxes still come in frame pixels."""
    frame = np.full((480, 640, 3), 200, np.uint8)
    scale = detector.letterbox(frame)
    assert detector.letterbox(frame, shrink=3.0) == pytest.approx(scale / 3)
    nh, nw = round(480 * scale / 3), round(640 * scale / 3)
    assert (detector._input[0, :nh, :nw] == 200).all()
    assert (detector._input[0, nh:] == 0).all() and (detector._input[0, :, nw:] == 0).all()
    scene, box, _text = near_plate_scene(np.random.default_rng(0), 0.95)
    assert not any(_iou(look.box, box) >= 0.5 for look in detector.looks(scene))
    shrunk = detector.looks(scene, shrink=3.0)
    assert any(_iou(look.box, box) >= 0.5 for look in shrunk)
    assert all(x >= 0 and y >= 0 and x + w <= 640 and y + h <= 480 for (x, y, w, h), *_ in shrunk)


def test_tiling_and_the_grey_pass_can_be_switched_off(detector_runs: list[DetectorRun]) -> None:
    ModelDetector(MODELS / "detector.tflite", tile_above=None).detect(magenta_frame(2160, 3840))
    assert detector_runs == [((2160, 3840), False), ((2160, 3840), True)]
    detector_runs.clear()
    ModelDetector(MODELS / "detector.tflite", grey_pass=False).detect(magenta_frame(720, 1280))
    assert detector_runs == [((720, 1280), False)]


def test_a_cast_strength_is_how_far_the_mean_colour_is_from_grey() -> None:
    assert cast_strength(np.full((10, 10, 3), 90, np.uint8)) == 0.0
    assert cast_strength(np.zeros((10, 10, 3), np.uint8)) == 0.0  # black: no division by 0
    assert cast_strength(magenta_frame(10, 10)) == pytest.approx(240 / (350 / 3))
    daylight = np.full((10, 10, 3), (120, 128, 140), np.uint8)  # a slightly warm white balance
    assert cast_strength(daylight) == pytest.approx(40 / (388 / 3))
    assert cast_strength(daylight) < GREY_MIN_CAST < cast_strength(magenta_frame(10, 10))


def test_the_grey_pass_runs_only_on_a_frame_under_a_colour_cast_unless_told_always(
    detector_runs: list[DetectorRun],
) -> None:
    """A frame near grey (daylight under the camera's white balance, or an infrared night
    camera's grey frame) shows the grey pass almost or exactly its colour pass's input."""
    street = street_scene(np.random.default_rng(3))[0]
    assert cast_strength(street) < GREY_MIN_CAST
    ModelDetector(MODELS / "detector.tflite").detect(street)
    assert [grey for _, grey in detector_runs] == [False]
    detector_runs.clear()
    night = night_drive(street, np.random.default_rng(4))
    assert cast_strength(night) >= GREY_MIN_CAST
    ModelDetector(MODELS / "detector.tflite").detect(night)
    assert [grey for _, grey in detector_runs] == [False, True]
    detector_runs.clear()
    ModelDetector(MODELS / "detector.tflite", grey_min_cast=0.0).detect(street)
    assert [grey for _, grey in detector_runs] == [False, True]
    with pytest.raises(ValueError, match="grey_min_cast"):
        ModelDetector(MODELS / "detector.tflite", grey_min_cast=-0.1)


def test_the_grey_pass_shows_the_model_the_frame_without_its_colours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    detector = ModelDetector(MODELS / "detector.tflite")
    seen: list[Image] = []
    real_invoke = detector._model.invoke

    def recording(x: Image) -> object:
        seen.append(x.copy())
        return real_invoke(x)

    monkeypatch.setattr(detector._model, "invoke", recording)
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[..., 2] = 200  # a red cast
    frame[300:340, 500:700] = (90, 40, 230)
    detector.detect(frame)
    colour, grey = seen
    assert not np.array_equal(colour[..., 0], colour[..., 2])
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    expected = cv2.cvtColor(colour[0], cv2.COLOR_BGR2GRAY)
    assert np.array_equal(grey[0, ..., 0], expected)


def test_a_plate_box_is_widened_over_its_blue_bands_up_to_a_grey_column_or_the_frame_edge() -> None:
    """A European plate's blue bands lie outside the white paper the contours find; the box
    takes them in, at most 15 % of its width a side, stopping at the first column that is
    not blue (blue over red by 40 on average down the column's middle half) or at the edge."""
    frame = np.full((100, 300, 3), 128, np.uint8)
    frame[40:60, 100:200] = 255  # the paper: box (100, 40, 100, 20)
    frame[40:60, 94:100] = (200, 60, 30)  # a left band 6 columns wide
    frame[40:60, 200:230] = (200, 60, 30)  # a right band wider than 15 % of the box
    assert widen_over_blue(frame, (100, 40, 100, 20)) == (94, 40, 121, 20)
    frame[45:55, 97] = (120, 120, 120)  # a column whose middle is grey stops the left band
    assert widen_over_blue(frame, (100, 40, 100, 20)) == (98, 40, 117, 20)
    edge = np.full((100, 300, 3), 128, np.uint8)
    edge[40:60, :5] = (200, 60, 30)  # a band cut by the frame's left edge
    edge[40:60, 295:] = (200, 60, 30)
    assert widen_over_blue(edge, (5, 40, 290, 20)) == (0, 40, 300, 20)
    assert widen_over_blue(edge, (0, 40, 50, 20)) == (0, 40, 50, 20)  # nothing left of it


def test_a_small_frame_is_enlarged_into_the_input_and_boxes_come_back_in_its_pixels(
    detector: ModelDetector,
) -> None:
    frame = np.full((240, 320, 3), 60, np.uint8)
    plate = render_plate("12345-B-6", np.random.default_rng(1), height=22)
    h, w = plate.shape[:2]
    frame[150 : 150 + h, 80 : 80 + w] = plate
    boxes = [b for b, _ in detector.detect(frame)]
    assert any(_iou(b, (80, 150, w, h)) >= 0.5 for b in boxes)
    assert all(x >= 0 and x + bw <= 320 and y >= 0 and y + bh <= 240 for x, y, bw, bh in boxes)


def _plate_frame() -> tuple[Image, Box]:
    """A 1280 x 720 street frame with one Moroccan plate 150 px wide, and its box."""
    frame = np.full((720, 1280, 3), 70, np.uint8)
    frame[:, :, 1] = 80
    plate = render_plate("12345-B-6", np.random.default_rng(3), height=34)
    h, w = plate.shape[:2]
    frame[400 : 400 + h, 600 : 600 + w] = plate
    return frame, (600, 400, w, h)


def test_a_plate_boxed_in_part_is_boxed_whole_on_the_second_look() -> None:
    """The network at frame scale often boxes only the right-hand segments of a Moroccan
    plate; the zoomed passes around that box find the plate whole."""
    frame, plate = _plate_frame()
    x, y, w, h = plate
    partial = (x + round(0.55 * w), y, round(0.45 * w), h)
    assert _iou(partial, plate) < 0.5
    detector = ModelDetector(MODELS / "detector.tflite", zooms=(3.0, 4.0, 5.0, 6.0))
    assert _iou(detector._second_look(frame, partial), plate) >= 0.5


def test_the_second_look_zooms_on_the_best_boxes_only_when_asked(
    detector_runs: list[DetectorRun],
) -> None:
    frame, plate = _plate_frame()
    always = 0.0  # the grey pass on every frame: two whole-frame runs before the looks
    ModelDetector(MODELS / "detector.tflite", grey_min_cast=always).detect(frame)
    assert detector_runs == [((720, 1280), False), ((720, 1280), True)]  # video: no second look
    detector_runs.clear()
    detector = ModelDetector(MODELS / "detector.tflite", grey_min_cast=always, zooms=(4.0, 5.0))
    found = detector.detect(frame)
    assert any(_iou(box, plate) >= 0.5 for box, _ in found)
    looks = detector_runs[2:]
    assert looks and len(looks) % 2 == 0 and len(looks) <= 2 * SECOND_LOOK_BOXES
    detector_runs.clear()
    ModelDetector(
        MODELS / "detector.tflite", grey_min_cast=always, zooms=(4.0, 5.0), look_boxes=1
    ).detect(frame)
    assert len(detector_runs[2:]) == 2  # the best box only
    in_h, in_w = detector.input_size
    for (height, width), reused in looks:
        assert not reused
        assert abs(height / width - in_h / in_w) < 0.05  # windows of the input's aspect


def test_zooms_whose_windows_the_frame_clips_to_the_same_window_run_the_model_once(
    detector_runs: list[DetectorRun],
) -> None:
    """A large, close plate: every zoom's window is the whole frame. One model run, and
    the box is what four runs on the same window would average to."""
    frame, plate = _plate_frame()
    x, y, w, h = plate
    big = (x - 2 * w, y - 40, 5 * w, h + 80)  # 750 px: 3x is already wider than the frame
    once = ModelDetector(MODELS / "detector.tflite", zooms=(3.0, 4.0, 5.0, 6.0))
    box = once._second_look(frame, big)
    assert detector_runs == [((720, 1280), False)]
    detector_runs.clear()
    single = ModelDetector(MODELS / "detector.tflite", zooms=(3.0,))
    assert single._second_look(frame, big) == box
    assert len(detector_runs) == 1


def test_second_look_windows_are_scaled_bilinearly_the_whole_frame_by_area(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Area interpolation by a factor that is no whole number costs more than the model
    run; the windows, a few plate widths wide, are scaled bilinearly."""
    frame, _plate = _plate_frame()
    detector = ModelDetector(MODELS / "detector.tflite", zooms=(4.0,), look_boxes=1)
    used: list[tuple[tuple[int, ...], int]] = []
    real_letterbox = ModelDetector.letterbox

    def letterbox(
        self: ModelDetector, image: Image, interpolation: int = cv2.INTER_AREA, shrink: float = 1
    ) -> float:
        used.append((image.shape[:2], interpolation))
        return real_letterbox(self, image, interpolation, shrink)

    monkeypatch.setattr(ModelDetector, "letterbox", letterbox)
    detector.detect(frame)
    assert used[0] == ((720, 1280), cv2.INTER_AREA)
    assert len(used) == 2 and used[1][1] == cv2.INTER_LINEAR and used[1][0] != (720, 1280)


def test_a_photo_keeps_the_second_look_box_and_the_better_of_the_two_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both crops are read (the first box's margins sometimes hold the plate better); the
    read kept is a plate over no plate, and the box reported is the second look's."""
    frame, plate = _plate_frame()
    x, y, w, h = plate
    clutter = (x + w + 40, y, w // 3, h)  # a second look gone astray: no plate in it
    detector = ModelDetector(MODELS / "detector.tflite", zooms=(4.0,))
    monkeypatch.setattr(
        detector,
        "looks",
        lambda _image, _min=0.0, **_passes: [Look(clutter, 0.9, plate)],
    )
    reads = ModelPlateReader(MODELS, detector=detector).read_boxes(frame)
    assert [(r.box, r.text) for r in reads] == [(clutter, "12345-B-6")]
    monkeypatch.setattr(
        detector,
        "looks",
        lambda _image, _min=0.0, **_passes: [Look(plate, 0.9, clutter)],
    )
    reads = ModelPlateReader(MODELS, detector=detector).read_boxes(frame)
    assert [(r.box, r.text) for r in reads] == [(plate, "12345-B-6")]


def test_the_first_box_is_not_read_again_after_a_sure_read_of_the_second_looks_box(
    monkeypatch: pytest.MonkeyPatch, views_per_read: list[int]
) -> None:
    """A sure plate of a known layout read in the second look's box stands: the first
    box's crop is not read (a model run or more saved); an unsure read still has it read."""
    frame, plate = _plate_frame()
    x, y, w, h = plate
    clutter = (x + w + 40, y, w // 3, h)
    loose = (x - 6, y - 4, w + 12, h + 8)
    detector = ModelDetector(MODELS / "detector.tflite", zooms=(4.0,))
    reader = ModelPlateReader(MODELS, detector=detector)
    monkeypatch.setattr(detector, "looks", lambda _image, _min=0.0, **_p: [Look(plate, 0.9, loose)])
    reads = reader.read_boxes(frame)
    assert [(r.text, r.confidence >= FIRST_BOX_SURE) for r in reads] == [("12345-B-6", True)]
    assert views_per_read == [1]  # the second look's box alone
    views_per_read.clear()
    monkeypatch.setattr(
        detector, "looks", lambda _image, _min=0.0, **_p: [Look(clutter, 0.9, loose)]
    )
    assert [r.text for r in reader.read_boxes(frame)] == ["12345-B-6"]  # the first box's read
    assert views_per_read == [1, 1]


def test_the_first_box_of_a_plate_running_out_of_the_frame_is_not_read_again(
    monkeypatch: pytest.MonkeyPatch, views_per_read: list[int]
) -> None:
    """A car leaving the frame: the first box reaches the frame's edge, its crop is cut by
    it as the second look's is, and it is not read again; one pixel short of the edge, it is."""
    whole, plate = _plate_frame()
    x, y, w, h = plate
    frame = np.ascontiguousarray(whole[:, : x + 2 * w // 3])  # the plate's last third out
    width = frame.shape[1]
    seen = (x, y, width - x - 4, h)
    detector = ModelDetector(MODELS / "detector.tflite", zooms=(4.0,))
    reader = ModelPlateReader(MODELS, detector=detector)
    for first_width, reads in ((width - x + 6, [1]), (width - x + 5, [1, 1])):
        first = (x - 6, y - 4, first_width, h + 8)
        monkeypatch.setattr(
            detector, "looks", lambda _i, _m=0.0, _f=first, **_p: [Look(seen, 0.9, _f)]
        )
        views_per_read.clear()
        read = reader.read_boxes(frame)
        assert views_per_read == reads
        assert len(read) == 1 and not _sure_of_layout(read[0])  # a cut plate: read unsure


def test_looks_without_zooms_are_the_boxes_found() -> None:
    frame, _plate = _plate_frame()
    detector = ModelDetector(MODELS / "detector.tflite")
    looks = detector.looks(frame)
    assert looks and all(look.first == look.box for look in looks)
    assert [(look.box, look.score) for look in looks] == detector.detect(frame)


def test_a_second_look_narrower_than_the_box_is_refused() -> None:
    with pytest.raises(ValueError, match="zooms"):
        ModelDetector(MODELS / "detector.tflite", zooms=(0.5,))


# ---------------------------------------------------------------- training looks


def test_recoloured_plates_are_yellow_or_black_and_keep_their_size() -> None:
    plate = render_plate("AB-123-CD", np.random.default_rng(0), height=40)
    rng = np.random.default_rng(3)
    kinds = set()
    for _ in range(60):
        out = recolour_plate(plate, rng)
        assert out.shape == plate.shape and out.dtype == np.uint8
        if out is plate:
            kinds.add("white")
            continue
        b, g, r = (float(np.median(out[:, :, c])) for c in range(3))
        if r > 150 and g > 120 and b < 90:
            kinds.add("yellow")
        elif max(b, g, r) < 90:
            kinds.add("black")
    assert kinds == {"white", "yellow", "black"}


def test_a_yellow_plate_keeps_its_band_and_a_black_one_has_light_characters() -> None:
    plate = render_plate("AB-123-CD", np.random.default_rng(0), height=40)
    band = plate[:, :, 0].astype(int) - plate[:, :, 2].astype(int) > 40
    ink = cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY) < 80
    assert band.any() and ink.any()
    yellow = yellow_plate(plate, np.array([30, 200, 240], np.float32))
    np.testing.assert_array_equal(yellow[band], plate[band])
    paper = ~band & ~ink
    b, g, r = (float(np.median(yellow[:, :, c][paper])) for c in range(3))
    assert b < 60 and g > 170 and r > 200
    black = black_plate(plate, 200.0)
    gray = cv2.cvtColor(black, cv2.COLOR_BGR2GRAY)
    assert float(np.median(gray[paper])) < 40 and float(np.median(gray[ink])) > 120
    assert not (black[:, :, 0].astype(int) - black[:, :, 2].astype(int) > 40).any()  # no band


def test_recoloured_french_photos_recolour_only_the_held_out_plates(
    tmp_path: Path, realdata: ModuleType
) -> None:
    """The proxy sets of yellow FNI rear and black classic plates: the held-out French
    photos, each labelled plate box recoloured and the rest of the photo as it was."""
    folder = tmp_path / "french-plates"
    (folder / "images").mkdir(parents=True)
    rows = []
    for text, held in (("AE-330-NJ", True), ("GH-456-JK", False)):
        assert realdata.held_out(text, 0.25) == held
        plate = render_plate(text, np.random.default_rng(2), height=40)
        h, w = plate.shape[:2]
        photo = np.full((4 * h, 2 * w, 3), (90, 60, 30), np.uint8)
        photo[2 * h : 3 * h, w // 2 : w // 2 + w] = plate
        cv2.imwrite(str(folder / "images" / f"{text}.png"), photo)
        rows.append([f"images/{text}.png", text.replace("-", ""), w // 2, 2 * h, w, h])
    write_manifest(
        folder,
        ["image", "plate_text", "x", "y", "w", "h", "format"],
        [[*row, "SIV"] for row in rows],
    )
    out = tmp_path / "val"
    yellow_dir, black_dir = realdata.write_recoloured_french(tmp_path, out)
    assert (yellow_dir.name, black_dir.name) == ("french-val-yellow", "french-val-black")
    source = cv2.imread(str(folder / "images" / "AE-330-NJ.png"))
    x, y, w, h = rows[0][2:]
    for kind, written in (("yellow", yellow_dir), ("black", black_dir)):
        with (written / "manifest.csv").open(encoding="utf-8") as fh:
            (row,) = list(csv.DictReader(fh))
        assert row["image"] == "images/AE-330-NJ.png" and row["plate_text"] == "AE-330-NJ"
        assert [float(row[k]) for k in "xywh"] == [x, y, w, h]
        image = cv2.imread(str(written / row["image"]))
        assert image.shape == source.shape
        outside = np.ones(image.shape[:2], bool)
        outside[y : y + h, x : x + w] = False
        assert float(np.abs(image.astype(int) - source.astype(int))[outside].mean()) < 2
        region = image[y : y + h, x : x + w]
        b, g, r = (float(np.median(region[:, :, c])) for c in range(3))
        if kind == "yellow":
            assert b < 80 and g > 150 and r > 180
        else:
            assert max(b, g, r) < 60
    assert not list(black_dir.glob("images/GH-456-JK*"))  # a training plate is left out


def test_colour_casts_and_night_keep_the_frame_shape_and_night_is_darker() -> None:
    rng = np.random.default_rng(5)
    frame, _ = street_scene(rng)
    for _ in range(5):
        assert colour_cast(frame, rng).shape == frame.shape
    night = night_drive(frame, rng)
    assert night.shape == frame.shape and night.dtype == np.uint8
    assert float(night.mean()) < 0.8 * float(frame.mean())


def test_detector_scenes_hold_far_plates_inside_the_frame() -> None:
    rng = np.random.default_rng(11)
    widths = []
    for _ in range(8):
        frame, boxes = varied_street_scene(rng)
        for x, y, w, h in boxes:
            assert x >= 0 and x + w <= frame.shape[1] and y >= 0 and y + h <= frame.shape[0]
            widths.append(w)
    far, _ = far_plate_scene(rng, night=True)
    assert far.shape == (720, 1280, 3)
    assert min(widths) < 40


# ---------------------------------------------------------------- dashcam split


@pytest.fixture
def realdata() -> ModuleType:
    sys.path.insert(0, str(ROOT / "models"))
    try:
        return importlib.import_module("realdata")
    finally:
        sys.path.remove(str(ROOT / "models"))


def test_dashcam_frames_are_split_by_ride_and_the_night_ride_is_held_out(
    tmp_path: Path, realdata: ModuleType
) -> None:
    names = [
        "images/train/dayride_type1_001_t1054.jpg",
        "images/valid/dayride_type1_001_t1055.jpg",
        "images/train/dayride_type1_002_t61.jpg",
        "images/train/nightride_type3_001_t110.jpg",
        "images/valid/nightride_type3_001_t5.jpg",
    ]
    write_manifest(
        tmp_path / "romania-dashcam",
        ["image", "plate_text", "x", "y", "w", "h", "source_split"],
        [[name, "", 10, 20, 80, 20, name.split("/")[1]] for name in names],
    )
    rows = realdata.romania_dashcam(tmp_path)
    held = {realdata.dashcam_ride(r.path): r.validation for r in rows}
    # the source's own train/valid folders do not matter: a ride is on one side only
    for ride, validation in held.items():
        assert {r.validation for r in rows if realdata.dashcam_ride(r.path) == ride} == {validation}
    assert held == {
        "dayride_type1_001": False,
        "dayride_type1_002": True,
        "nightride_type3_001": True,
    }
    assert [realdata.is_night_ride(r.path) for r in rows] == [False, False, False, True, True]
    assert rows[0].box == (10.0, 20.0, 80.0, 20.0)


def test_realdata_cli_writes_every_eval_folder_and_names_missing_sets(
    tmp_path: Path,
    realdata: ModuleType,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One command writes every ``raqib eval`` folder, the detector's dashcam and mixed
    sets included (split by ride: the training ride is left out); a folder without the
    shared sets is named in a clear error, not a traceback."""
    data, out = tmp_path / "datasets", tmp_path / "val"
    write_manifest(
        data / "moroccan-plates-ocr",
        ["image", "plate_text", "label_status", "n_lines"],
        [["images/a.jpg", "48213د27", "ok", "1"]],
    )
    write_manifest(
        data / "french-plates",
        ["image", "plate_text", "x", "y", "w", "h", "format"],
        [["images/f.jpg", "AE330NJ", 1, 2, 30, 8, "SIV"]],
    )
    write_manifest(
        data / "moroccan-plates-detection",
        ["image", "x", "y", "w", "h", "split"],
        [["valid/s.jpg", 1, 2, 30, 8, "valid"]],
    )
    rides = ["dayride_type1_001_t1", "dayride_type1_002_t61", "nightride_type3_001_t5"]
    write_manifest(
        data / "romania-dashcam",
        ["image", "plate_text", "x", "y", "w", "h", "source_split"],
        [[f"images/valid/{r}.jpg", "", 10, 20, 80, 20, "valid"] for r in rides],
    )
    labels = tmp_path / "dashcam_labels.csv"  # the held-out day ride's box read by eye
    labels.write_text(
        "image,x,y,w,h,plate_text,label_status\n"
        f"images/valid/{rides[1]}.jpg,10.0,20,80,20,B75MCY,eye\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(realdata, "DASHCAM_LABELS", labels)
    write_manifest(
        data / "mixed-plates-roboflow",
        ["image", "plate_text", "x", "y", "w", "h"],
        [["images/m.jpg", "GE1466", 1, 2, 30, 8]],
    )
    assert realdata.main([str(out), "--datasets", str(data)]) == 0
    written = {Path(line).name for line in capsys.readouterr().out.split()}
    assert written == {
        "moroccan-ocr-val",
        "french-val",
        "moroccan-detection-valid",
        "dashcam-heldout",
        "dashcam-night",
        "mixed-plates",
    }

    def images(name: str) -> list[str]:
        with (out / name / "manifest.csv").open(encoding="utf-8") as fh:
            return [Path(r["image"]).stem for r in csv.DictReader(fh)]

    def texts(name: str) -> list[str]:
        with (out / name / "manifest.csv").open(encoding="utf-8") as fh:
            return [r["plate_text"] for r in csv.DictReader(fh)]

    assert images("dashcam-heldout") == rides[1:]
    assert texts("dashcam-heldout") == ["B-75-MCY", ""]  # the night box has no label
    assert images("dashcam-night") == rides[2:]
    assert images("mixed-plates") == ["m"]

    assert realdata.main([str(tmp_path / "elsewhere"), "--datasets", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "does not hold the shared sets" in error and "moroccan-plates-ocr" in error
    assert not (tmp_path / "elsewhere").exists()


def test_reviewed_moroccan_crop_labels_are_fixed_or_unscored_and_keep_their_split(
    tmp_path: Path, realdata: ModuleType
) -> None:
    write_manifest(
        tmp_path / "moroccan-plates-ocr",
        ["image", "plate_text", "label_status", "n_lines"],
        [
            ["images/a.jpg", "23131أ11", "ok", "1"],
            ["images/b.jpg", "2أ7", "ok", "1"],
            ["images/c.jpg", "48213د27", "ok", "1"],
        ],
    )
    review = tmp_path / "review.csv"
    with review.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "plate_text", "label_status", "source_text", "note"])
        writer.writerow(["images/a.jpg", "20131أ11", "fixed", "23131أ11", "a 0, not a 3"])
        writer.writerow(["images/b.jpg", "", "suspect", "2أ7", "blurred"])
    a, b, c = realdata.moroccan_ocr(tmp_path, review)
    assert (a.text, a.scored) == ("20131-A-11", True)
    assert a.validation == realdata.held_out("23131-A-11", 0.2)  # split by the source text
    assert not b.scored
    assert (c.text, c.scored) == ("48213-D-27", True)
    # the committed review file parses, each of its rows with a reason
    assert realdata.ocr_label_review()


def test_boxes_under_a_minimum_score_get_no_second_look_and_the_others_stay_the_same(
    clip_frames: list[Image], detector_runs: list[DetectorRun]
) -> None:
    """The dark-plate pass wants only sure boxes: the others are dropped before the zooms,
    which keep each box's score, so the sure boxes come out exactly as without the limit."""
    frame = clip_frames[60]  # two plates and one unsure box
    detector = ModelDetector(MODELS / "detector.tflite", zooms=(4.0, 5.0))
    every = detector.looks(frame)
    runs_every = len(detector_runs)
    detector_runs.clear()
    sure = detector.looks(frame, min_score=0.4)
    assert [look.score < 0.4 for look in every].count(True) >= 1
    assert sure == [look for look in every if look.score >= 0.4] and sure
    assert len(detector_runs) < runs_every


def test_boxes_a_caller_does_not_keep_get_no_second_look_and_the_kept_ones_stay_the_same(
    clip_frames: list[Image], detector_runs: list[DetectorRun]
) -> None:
    """The dark-plate pass reads only boxes on a dark ground: the others are dropped before
    the zooms (they cost model runs and were thrown away after), the kept ones unchanged."""
    frame = clip_frames[60]  # two plates and one unsure box
    detector = ModelDetector(MODELS / "detector.tflite", zooms=(4.0, 5.0))
    every = detector.looks(frame)
    runs_every = len(detector_runs)
    leftmost = min(look.first[0] for look in every)
    detector_runs.clear()
    kept = detector.looks(frame, keep=lambda box: box[0] == leftmost)
    assert len(every) >= 2
    assert kept == [look for look in every if look.first[0] == leftmost] and kept
    assert len(detector_runs) < runs_every
    detector_runs.clear()
    assert detector.looks(frame, keep=lambda box: False) == []
    assert len(detector_runs) <= 2  # the whole-frame passes only: no zoom


def test_the_moroccan_scenes_read_by_eye_are_valid_plates_and_unsure_ones_are_left_out(
    tmp_path: Path, realdata: ModuleType
) -> None:
    texts = realdata.moroccan_scene_texts()
    assert len(texts) == 299
    assert all(name.startswith("images/valid/") for name in texts)
    assert all(canonicalize(t) == (t, "MA") and is_valid(t, "MA") for t in texts.values())
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "image,plate_text,label_status\n"
        "images/valid/a.jpg,12345-B-6,eye\n"
        "images/valid/b.jpg,,unsure\n"
        "images/valid/c.jpg,9-A-1,unsure\n",
        encoding="utf-8",
    )
    assert realdata.moroccan_scene_texts(labels) == {"images/valid/a.jpg": "12345-B-6"}


def test_the_dashcam_boxes_read_by_eye_are_held_out_rides_and_unsure_ones_are_left_out(
    tmp_path: Path, realdata: ModuleType
) -> None:
    """The labels score reads only: not one box of the training ride is labelled."""
    texts = realdata.dashcam_heldout_texts()
    assert len(texts) == 176
    rides = {realdata.dashcam_ride(Path(image)) for image, _box in texts}
    assert rides == {"dayride_type1_002", "dayride_type1_003", "nightride_type3_001"}
    assert not rides & realdata.DASHCAM_TRAIN_RIDES
    assert all(canonicalize(t)[0] == t for t in texts.values())
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "image,x,y,w,h,plate_text,label_status\n"
        "images/train/nightride_type3_001_t1.jpg,690.7,438.8,252.2,71.7,TR05RBG,eye\n"
        "images/train/nightride_type3_001_t1.jpg,10,20,80,20,B199LMA,unsure\n",
        encoding="utf-8",
    )
    assert realdata.dashcam_heldout_texts(labels) == {
        ("images/train/nightride_type3_001_t1.jpg", (690.7, 438.8, 252.2, 71.7)): "TR-05-RBG"
    }

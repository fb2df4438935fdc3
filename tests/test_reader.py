"""The shipped int8 models read plates: real inference, no mocks."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DetectorRun, FixedBoxes, magenta_frame
from pydantic import ValidationError

from agent.config import ReaderConfig
from agent.errors import FrameError, ModelError
from agent.frames import Image
from agent.reader.backend import QuantizedModel, load_interpreter
from agent.reader.ctc import PlateGrammar, constrained_decode, greedy_decode
from agent.reader.detector import GREY_MIN_CAST, ContourDetector, ModelDetector, cast_strength
from agent.reader.layout import two_line_composite
from agent.reader.pipeline import (
    DARK_BOX_MIN_SCORE,
    DARK_GROUND_MAX,
    DARK_MIN_SCORE,
    EXTENDED_MARGINS,
    PLATE_SEEN_SCORE,
    WIDE_VIEW_MIN_READ,
    BoxRead,
    ModelPlateReader,
    _better,
    _dark_ground,
    _ground,
    _inverted_read_wins,
    _replaces,
    crop_box,
)
from agent.reader.plate_text import canonicalize
from agent.reader.recogniser import (
    Recogniser,
    _inner_glyph_dropped,
    _siv_but_one_confusion,
    choose_read,
)
from agent.reads import Box, PlateFormat, box_inside_share, box_iou
from agent.synth.plates import FONT_DIR, random_plate_text, render_plate
from agent.synth.scenes import near_plate_scene, night_drive, street_scene

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
SAMPLES = ROOT / "samples"


@pytest.fixture(scope="module")
def reader() -> ModelPlateReader:
    return ModelPlateReader(MODELS)


@pytest.fixture(scope="module")
def truth() -> dict[str, object]:
    data: dict[str, object] = json.loads(
        (SAMPLES / "street_clip.truth.json").read_text(encoding="utf-8")
    )
    return data


def _plate_on_car(text: str, rng: np.random.Generator) -> tuple[Image, tuple[int, int, int, int]]:
    """A freshly rendered plate on a dark bumper: the crop a detector box gives."""
    plate = render_plate(text, rng, height=int(rng.integers(28, 48)))
    h, w = plate.shape[:2]
    scene = np.full((h * 3, w * 2, 3), 40, np.uint8)
    y, x = h, w // 2
    scene[y : y + h, x : x + w] = plate
    return scene, (x, y, w, h)


def test_recogniser_reads_freshly_rendered_plates(reader: ModelPlateReader) -> None:
    rng = np.random.default_rng(2024)
    formats: list[PlateFormat] = ["MA", "FR"]
    correct = 0
    for i in range(50):
        text = random_plate_text(rng, formats[i % 2])
        scene, box = _plate_on_car(text, rng)
        crop, _ = crop_box(scene, box)
        raw, _confidence = reader.recogniser.read(crop)
        correct += canonicalize(raw)[0] == text
    assert correct >= 45, f"read {correct}/50 plates exactly"


def test_reader_finds_a_rendered_plate_in_a_frame_with_its_box(reader: ModelPlateReader) -> None:
    rng = np.random.default_rng(7)
    frame = np.full((720, 1280, 3), 80, np.uint8)
    plate = render_plate("48213-D-27", rng, height=40)
    frame[380:460, 500:740] = 30  # plate recess
    frame[400:440, 531:720] = plate
    reads = reader.read(frame)
    assert [(r.text, r.format) for r in reads] == [("48213-D-27", "MA")]
    x, y, w, h = reads[0].box
    assert abs(x - 531) <= 3 and abs(y - 400) <= 3 and abs(w - 189) <= 6 and abs(h - 40) <= 4
    assert 0.5 <= reads[0].confidence <= 1.0


def test_reading_the_sample_clip_finds_every_watchlisted_plate_in_it(
    reader: ModelPlateReader, clip_frames: list[Image], truth: dict[str, object]
) -> None:
    with (SAMPLES / "watchlist.csv").open(encoding="utf-8") as fh:
        listed = {row["plate"] for row in csv.DictReader(fh)}
    vehicles = truth["vehicles"]
    assert isinstance(vehicles, list)
    in_clip = {v["plate"] for v in vehicles}
    wanted = listed & in_clip
    assert len(wanted) == 3
    counts: dict[str, int] = {}
    for frame in clip_frames[::3]:
        for read in reader.read(frame):
            counts[read.text] = counts.get(read.text, 0) + 1
    assert all(counts.get(plate, 0) >= 3 for plate in wanted), counts
    assert not (listed - in_clip) & counts.keys()  # the other listed plates are never read
    true_reads = sum(n for text, n in counts.items() if text in in_clip)
    assert true_reads >= 0.9 * sum(counts.values()), counts


def test_contour_detector_finds_the_clip_plates(
    clip_frames: list[Image], truth: dict[str, object]
) -> None:
    detector = ContourDetector()
    vehicles = truth["vehicles"]
    assert isinstance(vehicles, list)
    found = total = 0
    for index in range(0, len(clip_frames), 2):
        boxes = [b for b, _ in detector.detect(clip_frames[index])]
        for v in vehicles:
            gt = v["boxes"].get(str(index))
            if gt is None:
                continue
            total += 1
            found += any(_iou(b, gt) >= 0.5 for b in boxes)
    assert found >= 0.95 * total, f"recall {found}/{total}"


def _part_of_any(text: str, plates: set[str]) -> bool:
    """True when ``text`` is one of ``plates`` or a run of at least 4 of its characters."""
    compact = text.replace("-", "")
    return len(compact) >= 4 and any(compact in p.replace("-", "") for p in plates)


def test_trained_detector_finds_the_clip_plates_and_the_reader_drops_its_other_boxes(
    clip_frames: list[Image], truth: dict[str, object]
) -> None:
    # The detector runs at a low threshold (recall first): its other boxes must
    # not become reads. Speed is `raqib bench reader`'s job, not a test's.
    reader = ModelPlateReader(MODELS)
    detector = reader.detector
    assert isinstance(detector, ModelDetector)
    vehicles = truth["vehicles"]
    assert isinstance(vehicles, list)
    plates = {v["plate"] for v in vehicles}
    found = total = other_boxes = stray_reads = 0
    frames = range(0, len(clip_frames), 4)
    for index in frames:
        boxes = [b for b, _ in detector.detect(clip_frames[index])]
        gts = [v["boxes"][str(index)] for v in vehicles if str(index) in v["boxes"]]
        total += len(gts)
        found += sum(any(_iou(b, gt) >= 0.5 for b in boxes) for gt in gts)
        other_boxes += sum(all(_iou(b, gt) < 0.3 for gt in gts) for b in boxes)
        # Reads away from the truth boxes are mostly the clip's own plates where
        # the truth has no box (a car entering or leaving the frame), whole or cut
        # by the frame edge (``5403-W-71`` of ``25403-W-71``); count the rest.
        stray_reads += sum(
            all(_iou(r.box, gt) < 0.3 for gt in gts) and not _part_of_any(r.text, plates)
            for r in reader.read(clip_frames[index])
        )
    assert found >= 0.95 * total, f"recall {found}/{total}"
    assert other_boxes > 0  # the low threshold does find plate-like clutter ...
    assert stray_reads <= 0.05 * len(frames), (stray_reads, other_boxes)  # ... but reads little


def test_the_reader_uses_the_trained_detector_unless_configured_otherwise() -> None:
    assert isinstance(ModelPlateReader(MODELS).detector, ModelDetector)
    config = ReaderConfig(detector="contour")
    assert isinstance(ModelPlateReader.from_config(config).detector, ContourDetector)


@pytest.mark.parametrize("grey_pass", [True, False])
def test_the_detectors_grey_pass_follows_the_reader_config(grey_pass: bool) -> None:
    detector = ModelPlateReader.from_config(ReaderConfig(grey_pass=grey_pass)).detector
    assert isinstance(detector, ModelDetector)
    assert detector.grey_pass is grey_pass
    assert detector.grey_min_cast == GREY_MIN_CAST == ReaderConfig().grey_pass_min_cast


def test_a_daylight_video_frame_is_read_with_the_wider_view_and_a_cast_one_without(
    views_per_read: list[int],
) -> None:
    """The time a frame with no colour cast saves on the grey pass goes to the wider view of
    each of its boxes; a dusk or night frame, which pays for the grey pass, reads the box
    alone. Photos read the wider view always (``still_wide_view``)."""
    daylight = street_scene(np.random.default_rng(2))[0]
    night = night_drive(daylight, np.random.default_rng(2))
    assert cast_strength(daylight) < GREY_MIN_CAST <= cast_strength(night)
    reads = {}
    for daylight_wide in (True, False):
        reader = ModelPlateReader.from_config(ReaderConfig(daylight_wide_view=daylight_wide))
        for name, frame in (("daylight", daylight), ("night", night)):
            views_per_read.clear()
            assert reader.read_boxes(frame)
            reads[daylight_wide, name] = set(views_per_read)
    assert reads[True, "daylight"] == {2}  # each box and its wider crop
    assert reads[True, "night"] == reads[False, "night"] == reads[False, "daylight"] == {1}
    still = ModelPlateReader.from_config(ReaderConfig(), stills=True)
    assert still.wide_view and not still.daylight_wide_view


def test_a_box_the_detector_doubts_that_reads_nothing_is_not_read_in_the_wider_view(
    views_per_read: list[int],
) -> None:
    """Most of a frame's boxes hold no plate (lamps, grilles, road): one the detector is
    less than ``PLATE_SEEN_SCORE`` sure of whose crop reads under ``WIDE_VIEW_MIN_READ`` is
    not read again in the wider view. A surer box is, and so is a doubted box that holds a
    plate, which is read right."""
    rng = np.random.default_rng(2)
    frame, boxes = street_scene(rng)[:2]
    plate = tuple(round(v) for v in boxes[0])
    road = (300, 500, 100, 25)
    reader = ModelPlateReader(MODELS)
    doubted, sure = PLATE_SEEN_SCORE - 0.1, PLATE_SEEN_SCORE
    nothing = reader._read_box(frame, road, doubted, wide=True)
    assert nothing is not None and nothing.confidence < WIDE_VIEW_MIN_READ
    assert views_per_read == [1]
    views_per_read.clear()
    assert reader._read_box(frame, road, sure, wide=True) is not None
    assert views_per_read == [2]
    views_per_read.clear()
    found = reader._read_box(frame, plate, doubted, wide=True)
    assert found is not None and found.valid and found.confidence >= 0.9
    assert views_per_read == [2]


def test_the_grey_pass_on_every_frame_is_one_config_key_away() -> None:
    """``grey_pass_min_cast = 0``: the grey pass on every frame, as before it had a gate."""
    detector = ModelPlateReader.from_config(ReaderConfig(grey_pass_min_cast=0.0)).detector
    assert isinstance(detector, ModelDetector) and detector.grey_min_cast == 0.0
    with pytest.raises(ValidationError, match="grey_pass_min_cast"):
        ReaderConfig(grey_pass_min_cast=-1)


@pytest.mark.parametrize(
    "frame",
    [np.zeros((720, 1280, 3), np.float32), np.zeros((720, 1280), np.uint8), "frame"],
    ids=["float32", "gray", "str"],
)
def test_trained_detector_refuses_a_frame_of_wrong_dtype_or_shape(frame: object) -> None:
    detector = ModelDetector(MODELS / "detector.tflite")
    with pytest.raises(FrameError, match="uint8"):
        detector.detect(frame)  # type: ignore[arg-type]


def test_detector_metadata_without_decoding_keys_raises_model_error(tmp_path: Path) -> None:
    shutil.copy(MODELS / "detector.tflite", tmp_path / "detector.tflite")
    (tmp_path / "detector.json").write_text('{"stride": 4}', encoding="utf-8")
    with pytest.raises(ModelError, match="lacks"):
        ModelDetector(tmp_path / "detector.tflite")


def test_recogniser_reads_degraded_field_like_crops() -> None:
    from agent.synth.augment import field_crop, random_training_text

    recogniser = Recogniser(MODELS / "recogniser.tflite")
    rng = np.random.default_rng(31337)
    texts = [random_training_text(rng) for _ in range(60)]
    crops = [field_crop(t, rng, 32, 128) for t in texts]
    correct = sum(
        canonicalize(recogniser.read_gray(c)[0])[0] == t for c, t in zip(crops, texts, strict=True)
    )
    assert correct >= 42, f"read {correct}/60"  # ~80 % measured: some crops are illegible


def _iou(a: tuple[int, int, int, int], b: list[int]) -> float:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)


def test_reader_is_built_from_the_reader_config() -> None:
    reader = ModelPlateReader.from_config(ReaderConfig(min_confidence=0.9))
    assert reader.min_confidence == 0.9


def test_an_empty_road_gives_no_reads(reader: ModelPlateReader) -> None:
    assert reader.read(np.full((720, 1280, 3), 80, np.uint8)) == []


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((720, 1280, 3), np.float32),
        np.zeros((720, 1280, 3), np.uint16),
        np.zeros((720, 1280), np.uint8),
        np.zeros((720, 1280, 4), np.uint8),
        np.zeros((8, 8, 3), np.uint8),
        [[0, 0, 0]],
    ],
    ids=["float32", "uint16", "gray", "bgra", "tiny", "list"],
)
def test_a_frame_of_wrong_dtype_or_shape_raises_frame_error(
    reader: ModelPlateReader, frame: object
) -> None:
    with pytest.raises(FrameError):
        reader.read(frame)  # type: ignore[arg-type]


def test_a_missing_model_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        ModelPlateReader(tmp_path)


def test_a_corrupt_model_raises_model_error(tmp_path: Path) -> None:
    shutil.copy(MODELS / "recogniser.json", tmp_path / "recogniser.json")
    (tmp_path / "recogniser.tflite").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not a TFLite model"):
        ModelPlateReader(tmp_path)


def test_a_truncated_model_raises_model_error(tmp_path: Path) -> None:
    data = (MODELS / "recogniser.tflite").read_bytes()
    (tmp_path / "m.tflite").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError):
        load_interpreter(tmp_path / "m.tflite", 1)


def test_model_metadata_without_charset_raises_model_error(tmp_path: Path) -> None:
    shutil.copy(MODELS / "recogniser.tflite", tmp_path / "recogniser.tflite")
    (tmp_path / "recogniser.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ModelError, match="charset"):
        Recogniser(tmp_path / "recogniser.tflite")


def test_quantized_model_takes_uint8_and_returns_float_logits() -> None:
    model = QuantizedModel(MODELS / "recogniser.tflite")
    meta = json.loads((MODELS / "recogniser.json").read_text(encoding="utf-8"))
    assert model.input_shape == (1, meta["input"]["height"], meta["input"]["width"], 1)
    assert model.input_dtype == np.uint8
    out = model.invoke(np.zeros(model.input_shape, np.uint8))
    assert out.dtype == np.float32
    assert out.shape == (1, meta["output"]["time_steps"], len(meta["charset"]) + 1)
    with pytest.raises(ValueError, match="uint8"):
        model.invoke(np.zeros(model.input_shape, np.float32))


def test_greedy_ctc_merges_repeats_drops_blanks_and_multiplies_peaks() -> None:
    # classes: 0 blank, 1 "A", 2 "B"; path A A _ A B _ -> "AAB"
    probs = np.array(
        [
            [0.1, 0.8, 0.1],
            [0.1, 0.9, 0.0],
            [0.9, 0.05, 0.05],
            [0.2, 0.7, 0.1],
            [0.1, 0.1, 0.8],
            [0.98, 0.01, 0.01],
        ],
        np.float32,
    )
    text, confidence = greedy_decode(np.log(probs + 1e-9), "AB")
    assert text == "AAB"
    assert confidence == pytest.approx(0.9 * 0.7 * 0.8, rel=1e-3)


def test_constrained_decoding_finds_the_best_path_that_is_a_plate() -> None:
    charset = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\u0628"
    ba = len(charset)  # class of the Arabic letter (blank is 0)
    steps = [(2, 0.9), (0, 0.9), (3, 0.9), (0, 0.9), (2, 0.55), (0, 0.9), (4, 0.9), (0, 0.9)]
    probs = np.full((len(steps), len(charset) + 1), 0.001, np.float32)
    for t, (cls, p) in enumerate(steps):
        probs[t, cls] = p
    probs[4, ba] = 0.4  # the letter is the runner-up at step 4: greedy reads "1213"
    probs /= probs.sum(axis=1, keepdims=True)
    assert greedy_decode(probs, charset, probabilities=True)[0] == "1213"
    text, confidence = constrained_decode(probs, charset, PlateGrammar(charset))
    assert canonicalize(text) == ("12-B-3", "MA")
    assert 0.0 < confidence < greedy_decode(probs, charset, probabilities=True)[1]


def test_greedy_ctc_of_all_blank_output_is_empty_with_zero_confidence() -> None:
    logits = np.zeros((6, 3), np.float32)
    logits[:, 0] = 5.0
    assert greedy_decode(logits, "AB") == ("", 0.0)


def test_greedy_ctc_refuses_scores_that_do_not_match_the_charset() -> None:
    with pytest.raises(ValueError, match="charset"):
        greedy_decode(np.zeros((6, 4), np.float32), "AB")


# ------------------------------------------------------------------ two-line plates

BA = "\u0628"


class _CountingRecogniser(Recogniser):
    """The real recogniser, counting its two-line reads."""

    two_line_reads = 0

    def read_two_line(self, crop: Image | np.ndarray) -> tuple[str, float]:
        self.two_line_reads += 1
        return super().read_two_line(crop)


def _two_line_moroccan(top: tuple[str, str], serial: str, height: int = 120) -> Image:
    """A square-ish two-line Moroccan plate: ``letter | region`` over the serial, BGR."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    width = round(height * 1.45)
    pil = PILImage.new("L", (width, height), 240)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.truetype(str(FONT_DIR / "DejaVuSans-Bold.ttf"), round(height * 0.36))
    letter, region = top
    draw.text((width * 0.3, height * 0.25), letter, font=font, fill=20, anchor="mm")
    draw.line([(width * 0.5, height * 0.07), (width * 0.5, height * 0.43)], fill=20, width=3)
    draw.text((width * 0.7, height * 0.25), region, font=font, fill=20, anchor="mm")
    draw.line([(4, height * 0.5), (width - 4, height * 0.5)], fill=60, width=1)
    draw.text((width / 2, height * 0.74), serial, font=font, fill=20, anchor="mm")
    draw.rectangle([(0, 0), (width - 1, height - 1)], outline=20, width=3)
    gray = np.asarray(pil, np.uint8)
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _in_scene(plate: Image) -> tuple[Image, Box]:
    h, w = plate.shape[:2]
    scene = np.full((h * 2, w * 2, 3), 40, np.uint8)
    scene[h // 2 : h // 2 + h, w // 2 : w // 2 + w] = plate
    return scene, (w // 2, h // 2, w, h)


@pytest.fixture(scope="module")
def counting() -> _CountingRecogniser:
    return _CountingRecogniser(MODELS / "recogniser.tflite")


def test_a_square_crop_is_read_both_ways_and_a_one_line_crop_once(
    counting: _CountingRecogniser,
) -> None:
    scene, box = _in_scene(_two_line_moroccan((BA, "26"), "45498"))
    square, _ = crop_box(scene, box)
    counting.two_line_reads = 0
    raw, confidence = counting.read_best(square)
    assert counting.two_line_reads == 1
    assert 0.0 <= confidence <= 1.0 and isinstance(raw, str)

    scene, box = _in_scene(render_plate("48213-D-27", np.random.default_rng(3), height=40))
    one_line, _ = crop_box(scene, box)
    counting.two_line_reads = 0
    assert counting.read_best(one_line) == counting.read(one_line)
    assert canonicalize(counting.read_best(one_line)[0])[0] == "48213-D-27"
    assert counting.two_line_reads == 0


def test_a_two_line_read_shows_the_model_the_composite_strip(
    counting: _CountingRecogniser,
) -> None:
    bgr = _two_line_moroccan(("\u062f", "7"), "1234")
    gray = np.asarray(bgr[:, :, 0])
    raw, confidence = counting.read_two_line(bgr)
    height, width = counting.input_size
    np.testing.assert_array_equal(
        counting._input[0, :, :, 0], two_line_composite(gray, height, width)
    )
    assert counting.read_two_line(gray) == (raw, confidence)  # grayscale reads the same
    assert 0.0 <= confidence <= 1.0
    assert "|" not in raw or raw.replace("|", "").isdigit()  # only a motorcycle read has a bar
    with pytest.raises(ValueError, match="crop must be"):
        counting.read_two_line(np.zeros((8, 8, 4), np.uint8))


class _ScriptedReads(Recogniser):
    """The real recogniser with its two reads and its layout fit replaced by fixed answers."""

    def __init__(self, one: tuple[str, float], two: tuple[str, float]) -> None:
        super().__init__(MODELS / "recogniser.tflite")
        self.one, self.two, self.fits, self.one_line_reads = one, two, 0, 0

    def _greedy_one_line(self, gray: np.ndarray) -> tuple[str, float]:
        self.one_line_reads += 1
        return self.one

    def read_two_line(self, crop: Image | np.ndarray) -> tuple[str, float]:
        return self.two

    def _fitted(self, raw: str, confidence: float) -> tuple[str, float]:
        self.fits += 1
        return f"12345{BA}6", 0.4


SQUARE = np.full((60, 90), 200, np.uint8)  # aspect 1.5


def test_a_sure_two_line_read_of_a_square_crop_is_kept_without_a_one_line_read() -> None:
    reads = _ScriptedReads(one=(f"12345{BA}6", 0.99), two=(f"4549{BA}26", 0.95))
    assert reads.read_best(SQUARE) == (f"4549{BA}26", 0.95)
    assert reads.one_line_reads == 0


@pytest.mark.parametrize(
    ("two", "shape"),
    [
        ((f"4549{BA}26", 0.85), (60, 90)),  # not sure enough
        (("4549", 0.99), (60, 90)),  # no plate
        ((f"4549{BA}26", 0.95), (40, 90)),  # aspect 2.25: maybe a loose one-line crop
    ],
)
def test_otherwise_a_square_crop_is_read_both_ways(
    two: tuple[str, float], shape: tuple[int, int]
) -> None:
    reads = _ScriptedReads(one=(f"12345{BA}6", 0.99), two=two)
    assert reads.read_best(np.full(shape, 200, np.uint8)) == (f"12345{BA}6", 0.99)
    assert reads.one_line_reads == 1


def test_a_valid_two_line_read_spares_fitting_a_broken_one_line_read() -> None:
    reads = _ScriptedReads(one=("1234", 0.9), two=(f"4549{BA}26", 0.7))
    assert reads.read_best(SQUARE) == (f"4549{BA}26", 0.7)
    assert reads.fits == 0


def test_a_broken_one_line_read_is_fitted_when_the_two_line_read_is_no_plate_either() -> None:
    reads = _ScriptedReads(one=("1234", 0.9), two=("9", 0.3))
    assert reads.read_best(SQUARE) == (f"12345{BA}6", 0.4)  # valid beats invalid
    assert reads.fits == 1


def test_a_valid_one_line_read_is_weighed_against_the_two_line_read() -> None:
    reads = _ScriptedReads(one=(f"12345{BA}6", 0.95), two=(f"4549{BA}26", 0.5))
    assert reads.read_best(np.full((30, 72), 200, np.uint8)) == (f"12345{BA}6", 0.95)
    assert reads.fits == 0


def test_a_tiny_square_crop_is_only_read_as_one_line(counting: _CountingRecogniser) -> None:
    counting.two_line_reads = 0
    counting.read_best(np.full((3, 3, 3), 200, np.uint8))
    assert counting.two_line_reads == 0


ONE_PLATE = (f"12345{BA}6", 0.8)  # 12345-B-6
TWO_PLATE = (f"45498{BA}26", 0.75)  # 45498-B-26
NOT_PLATE = ("12", 0.95)


@pytest.mark.parametrize(
    ("one", "two", "aspect", "kept"),
    [
        (ONE_PLATE, NOT_PLATE, 1.5, ONE_PLATE),  # only the one-line read is a plate
        (NOT_PLATE, TWO_PLATE, 2.4, TWO_PLATE),  # only the two-line read is a plate
        (ONE_PLATE, TWO_PLATE, 1.5, TWO_PLATE),  # both: square and within 0.1
        (ONE_PLATE, TWO_PLATE, 2.0, ONE_PLATE),  # both, within 0.1, not square: more confident
        (ONE_PLATE, (TWO_PLATE[0], 0.65), 1.5, ONE_PLATE),  # square but 0.15 apart
        ((ONE_PLATE[0], 0.6), TWO_PLATE, 2.2, TWO_PLATE),  # the more confident
        (NOT_PLATE, ("1", 0.5), 1.2, NOT_PLATE),  # neither: the more confident
        (("1", 0.5), NOT_PLATE, 1.2, NOT_PLATE),
        (ONE_PLATE, ("AB-123-CD", 0.8), 2.1, ONE_PLATE),  # a tie goes to one line
        (("AB-123-CD", 0.5), ("1234BCD", 0.55), 2.1, ("1234BCD", 0.55)),  # French vs Spanish
        # A sure read of a layout the grammar does not know counts as a plate: a square
        # Dutch 14 / VR-LV read as two lines beats a one-line read spelling 1-B-2 at 0.005.
        ((f"1{BA}2", 0.005), ("14VRLV", 0.99), 1.4, ("14VRLV", 0.99)),
        (("G00GLE", 0.99), (f"400{BA}60", 0.01), 2.3, ("G00GLE", 0.99)),
        ((f"1{BA}2", 0.6), ("14VRLV", 0.7), 1.4, (f"1{BA}2", 0.6)),  # not sure enough
        # A plate the grammar forced, under 0.05 sure, counts as none: the more confident
        # read is kept (a square Icelandic SY / 250 read 9Y250 against a forced 4-B-2).
        ((f"4{BA}2", 0.0001), ("9Y250", 0.5), 1.4, ("9Y250", 0.5)),
        ((f"4{BA}2", 0.05), ("9Y250", 0.5), 1.4, (f"4{BA}2", 0.05)),
        # digits alone are a Moroccan plate whose letter was missed, not a foreign plate
        (("8013353", 0.95), ("8|013353", 0.7), 1.6, ("8|013353", 0.7)),
    ],
)
def test_the_read_kept_for_a_square_crop_follows_the_documented_rule(
    one: tuple[str, float], two: tuple[str, float], aspect: float, kept: tuple[str, float]
) -> None:
    assert choose_read(one, two, aspect) == kept


@pytest.mark.parametrize(("box_aspect", "two_line"), [(2.8, True), (3.2, False)])
def test_the_reader_judges_the_aspect_on_the_crop_with_its_margins(
    box_aspect: float, two_line: bool
) -> None:
    # A 2.8 box is a 2.8 * 1.10 / 1.24 = 2.48 crop: square enough for a two-line read.
    h = 50
    box = (100, 100, round(h * box_aspect), h)
    reader = ModelPlateReader(MODELS, detector=FixedBoxes([box]))
    counting = _CountingRecogniser(MODELS / "recogniser.tflite")
    reader.recogniser = counting
    reads = reader.read_boxes(np.full((400, 600, 3), 200, np.uint8))
    assert len(reads) == 1
    assert counting.two_line_reads == int(two_line)


def test_reading_a_crop_file_reads_a_square_crop_both_ways() -> None:
    reader = ModelPlateReader(MODELS)
    counting = _CountingRecogniser(MODELS / "recogniser.tflite")
    reader.recogniser = counting
    plate = _two_line_moroccan((BA, "26"), "45498")
    text, fmt, confidence = reader.read_crop(plate)
    assert counting.two_line_reads == 1
    assert (text, fmt) == canonicalize(counting.read_best(plate)[0])
    assert 0.0 <= confidence <= 1.0


def test_two_line_plate_read_end_to_end(reader: ModelPlateReader) -> None:
    scene, box = _in_scene(_two_line_moroccan((BA, "26"), "45498"))
    crop, _ = crop_box(scene, box)
    assert reader.read_crop(crop)[:2] == ("45498-B-26", "MA")
    reads = ModelPlateReader(MODELS, detector=FixedBoxes([box])).read(scene)
    assert [(r.text, r.format) for r in reads] == [("45498-B-26", "MA")]


def _read_probs(rec: Recogniser, steps: str, peak: float) -> np.ndarray:
    """Probabilities with one step per character of ``steps`` (``_``: blank): each
    character at ``peak``, the rest of the step on blank."""
    probs = np.full(rec._probs.shape, 1e-6, np.float32)
    probs[:, 0] = 1.0
    for t, ch in enumerate(steps):
        if ch != "_":
            probs[t, 0] = 1.0 - peak
            probs[t, rec.charset.index(ch) + 1] = peak
    out: np.ndarray = probs / probs.sum(axis=1, keepdims=True)
    return out


@pytest.mark.parametrize(
    ("peak", "kept"),
    [
        (0.995, True),  # a sure Swedish read stays whole (format UNKNOWN)
        (0.9, False),  # an unsure one is fitted to the nearest layout (German-shaped)
    ],
)
def test_the_grammar_does_not_drop_characters_of_a_sure_read_of_an_unknown_layout(
    peak: float, kept: bool
) -> None:
    # 2 and D on neighbouring steps: one digit slot spanning both costs the path
    # nothing, so dropping a character is as probable as the read itself
    rec = Recogniser(MODELS / "recogniser.tflite")
    np.copyto(rec._probs, _read_probs(rec, "__A_B_C_1_2D__", peak))
    raw, confidence = greedy_decode(rec._probs, rec.charset, probabilities=True)
    assert raw == "ABC12D"
    fitted, _ = rec._fitted(raw, confidence)
    assert (fitted == raw) is kept
    if not kept:
        assert len(fitted) == 5 and canonicalize(fitted)[1] == "EU"


def test_the_grammar_does_not_skip_a_glyph_inside_an_unsure_latin_read() -> None:
    """A French ``FS 371 VQ`` whose ``V`` the model read at 0.6: the grammar's best path
    skips the ``V`` for a German-shaped plate that looks surer than the read; the read
    stays as the model gave it."""
    rec = Recogniser(MODELS / "recogniser.tflite")
    steps = "__F_S_3_7_1_V_0__"
    probs = _read_probs(rec, steps, 0.99)
    probs[steps.index("V")] = _read_probs(rec, steps, 0.6)[steps.index("V")]
    np.copyto(rec._probs, probs)
    raw, confidence = greedy_decode(rec._probs, rec.charset, probabilities=True)
    assert raw == "FS371V0" and confidence < 0.6
    skipped, skipped_conf = constrained_decode(rec._probs, rec.charset, PlateGrammar(rec.charset))
    assert (skipped, canonicalize(skipped)[1]) == ("FS3710", "EU")  # the grammar alone
    assert skipped_conf > confidence
    assert rec._fitted(raw, confidence) == (raw, confidence)


@pytest.mark.parametrize(
    ("raw", "fitted", "inner"),
    [
        ("FS371V0", "FS3710", True),  # the V inside the line
        ("TR05FRBG", "TR05RBG", True),  # any glyph inside, even a stray one (`TR 05 RBG`)
        ("8CG988FL", "CG988FL", False),  # the first glyph: a sticker before the plate
        ("FC768JZ8", "FC768JZ", False),  # the last glyph: the region logo's edge after it
        ("FSS3710", "FS3710", False),  # a doubled glyph
        ("1231\u06286", "123\u06286", False),  # a Moroccan read: the thin alif read as 1 too
        ("FS371V0", "FS371VQ", False),  # a look-alike taken, no glyph skipped
        ("FS371V0", "FS3711", False),  # not the read less one of its glyphs
    ],
)
def test_a_glyph_inside_a_latin_read_is_one_the_fit_may_not_skip(
    raw: str, fitted: str, inner: bool
) -> None:
    assert _inner_glyph_dropped(raw, fitted) is inner


@pytest.mark.parametrize(
    ("raw", "fitted", "taken"),
    [
        ("D0178TV", "DD178TV", True),  # a D read as 0 among a French plate's letters
        ("8T254HA", "BT254HA", True),  # B read as 8
        ("CS9030C", "CS903QC", True),  # Q read as 0
        ("D0178T0", "DD178TD", False),  # two characters: no longer one look-alike
        ("1000051", "1000O51", False),  # fitted to an FNI plate: only SIV plates are
        ("J75665", "JT5665", False),  # fitted to another European layout: kept as read
        ("D0178TX", "DD178TV", False),  # X and V are not look-alikes
    ],
)
def test_a_sure_read_that_is_a_french_plate_but_for_one_look_alike_takes_the_plates_letter(
    raw: str, fitted: str, taken: bool
) -> None:
    assert _siv_but_one_confusion(raw, fitted) is taken


def test_the_recogniser_reads_a_french_plate_whose_letter_it_took_for_a_digit() -> None:
    rec = Recogniser(MODELS / "recogniser.tflite")
    probs = _read_probs(rec, "__D_0_1_7_8_T_V__", 0.99)
    probs[4, rec.charset.index("D") + 1] = 0.004  # the model's doubt: a little D under the 0
    np.copyto(rec._probs, probs / probs.sum(axis=1, keepdims=True))
    raw, confidence = greedy_decode(rec._probs, rec.charset, probabilities=True)
    assert raw == "D0178TV" and confidence > 0.9
    text, sure = rec._fitted(raw, confidence)
    assert canonicalize(text) == ("DD-178-TV", "FR")
    assert sure == confidence  # the glyph was read sure; the layout named the look-alike


def test_an_empty_read_is_not_fitted_to_a_layout() -> None:
    """Blank at every step but for faint characters under it (a box with no plate in it):
    the grammar would force a plate through the faint characters; the read stays empty."""
    rec = Recogniser(MODELS / "recogniser.tflite")
    probs = _read_probs(rec, "__1_2_\u0628_3__", 0.3)  # each character under a 0.7 blank
    np.copyto(rec._probs, probs)
    raw, confidence = greedy_decode(rec._probs, rec.charset, probabilities=True)
    assert (raw, confidence) == ("", 0.0)
    forced, _ = constrained_decode(rec._probs, rec.charset, PlateGrammar(rec.charset))
    assert canonicalize(forced)[1] == "MA"  # a Moroccan plate, forced by the grammar alone
    assert rec._fitted(raw, confidence) == ("", 0.0)


def test_a_read_is_not_fitted_by_a_path_that_adds_two_characters() -> None:
    """One sure glyph and faint characters under the blanks around it (a square plate read
    as one line): the grammar would force a plate through the blanks, adding two or more
    characters; the read stays as the model gave it. A path that adds one character (a
    dropped glyph, the thin alif) is still taken."""
    rec = Recogniser(MODELS / "recogniser.tflite")
    np.copyto(rec._probs, _read_probs(rec, "__1_\u0628_3__", 0.3))
    rec._probs[5] = _read_probs(rec, "_____2__", 0.95)[5]  # the one sure glyph: a 2
    raw, confidence = greedy_decode(rec._probs, rec.charset, probabilities=True)
    assert raw == "2"
    forced, _ = constrained_decode(rec._probs, rec.charset, PlateGrammar(rec.charset))
    assert len(forced) >= len(raw) + 2  # what the grammar alone would have made of it
    assert rec._fitted(raw, confidence) == (raw, confidence)
    np.copyto(rec._probs, _read_probs(rec, "__1_2_\u0628_3__", 0.99))
    rec._probs[8] = _read_probs(rec, "__1_2_\u0628_3__", 0.3)[8]  # the region faint: dropped
    raw, confidence = greedy_decode(rec._probs, rec.charset, probabilities=True)
    assert raw == "12\u0628"
    assert rec._fitted(raw, confidence)[0] == "12\u06283"


def _plate_cut_at_the_right(text: str, seed: int, share: float) -> tuple[Image, Box]:
    """A rendered plate on a dark bumper and a detector box over only ``share`` of its width."""
    plate = render_plate(text, np.random.default_rng(seed), height=40)
    h, w = plate.shape[:2]
    scene = np.full((h * 3, w * 2, 3), 40, np.uint8)
    scene[h : 2 * h, w // 2 : w // 2 + w] = plate
    return scene, (w // 2, h, round(w * share), h)


def test_the_wider_view_reads_the_character_a_tight_box_cuts() -> None:
    """A box ending inside the plate's last character: the reader's crop loses it and the
    recogniser, sure of the rest, drops it; the wider view (photos) reads it."""
    narrow_reads: list[str] = []
    wide_reads: list[str] = []
    for seed in range(3):
        scene, box = _plate_cut_at_the_right("48213-D-27", seed, 0.84)
        for wide, reads in ((False, narrow_reads), (True, wide_reads)):
            reader = ModelPlateReader(MODELS, detector=FixedBoxes([box]), wide_view=wide)
            (read,) = reader.read_boxes(scene)
            assert read.box == box  # the wider view changes the crop read, not the box
            reads.append(read.text)
    assert wide_reads == ["48213-D-27"] * 3
    assert sum(text != "48213-D-27" for text in narrow_reads) >= 2, narrow_reads


def test_a_box_around_a_part_of_the_plate_is_read_whole_from_its_extended_view() -> None:
    """The upright box of a tilted plate often holds a part of it: read as it is, the part
    reads as some shorter plate. Where that read is unsure but not near 0, the box is read
    again from a crop half its width longer on each side (``extended_boxes``, photos), and
    the whole plate, read surely there, replaces it; the box stays the detector's."""
    readers = {on: ModelPlateReader(MODELS, extended_boxes=on) for on in (False, True)}
    reads: dict[bool, list[str]] = {False: [], True: []}
    for seed in range(8):
        scene, box = _plate_cut_at_the_right("3076-B-6", seed, 0.65)
        for on, reader in readers.items():
            reader.detector = FixedBoxes([box])
            (read,) = reader.read_boxes(scene)
            assert read.box == box
            reads[on].append(read.text)
    assert reads[False].count("3076-B-6") == 0, reads[False]
    assert reads[True].count("3076-B-6") >= 4, reads[True]


def test_another_view_reading_the_same_plate_more_surely_lifts_its_confidence() -> None:
    """A straightened, turned or extended view that reads an unsure read's own text as a
    sure plate replaces it: the read is kept, with the surer confidence."""
    unsure = ("FE-615-XW", "FR", 0.48, ())
    assert _replaces(("FE-615-XW", "FR", 0.999, ()), unsure)
    assert not _replaces(("FE-615-XW", "FR", 0.6, ()), unsure)  # not a sure read itself
    assert not _replaces(("FE-615-XW", "FR", 0.999, ()), ("FE-615-XW", "FR", 0.9995, ()))


def test_which_extended_read_replaces_a_boxs_read() -> None:
    """``extended_boxes``: a box read at a confidence near 0 (most boxes of a photo hold no
    plate) is read once. Any other box is read again from its extended crop. That read
    replaces an unsure read when it is a sure plate of another text, no shorter; it replaces
    a sure read only when it is a sure plate of a known layout holding all of its
    characters, in order, and more (the sure read of a part of a tilted plate)."""
    scene, box = _plate_cut_at_the_right("48213-D-27", 0, 0.7)
    reader = ModelPlateReader(MODELS, detector=FixedBoxes([box]), extended_boxes=True)
    size = crop_box(scene, box)[0].shape[:2]
    wide = crop_box(scene, box, EXTENDED_MARGINS)[0]
    cases = [
        ({size: ("4د2", 0.01)}, 1, "4-D-2"),  # near 0: no second read
        # unsure: a sure plate of another text, no shorter, replaces it
        ({size: ("48213د2", 0.4), wide.shape[:2]: ("48213د27", 0.98)}, 2, "48213-D-27"),
        ({size: ("48213د2", 0.4), wide.shape[:2]: ("48213د27", 0.5)}, 2, "48213-D-2"),
        ({size: ("48213د27", 0.4), wide.shape[:2]: ("4821د3", 0.99)}, 2, "48213-D-27"),
        # sure: only a sure fuller plate of a known layout replaces it
        ({size: ("4213د2", 0.99), wide.shape[:2]: ("48213د27", 0.98)}, 2, "48213-D-27"),
        ({size: ("4213د2", 0.99), wide.shape[:2]: ("48213د27", 0.6)}, 2, "4213-D-2"),
        ({size: ("48213د27", 0.99), wide.shape[:2]: ("48213د28", 0.99)}, 2, "48213-D-27"),
        ({size: ("AB123CD", 0.99), wide.shape[:2]: ("FAB123CD", 0.99)}, 2, "AB-123-CD"),
    ]
    for answers, reads, text in cases:
        double = _ReadsBySize(answers)
        reader.recogniser = double
        (read,) = reader.read_boxes(scene)
        assert (len(double.crops), read.text) == (reads, text), answers
    np.testing.assert_array_equal(double.crops[1], wide)


def test_a_boxes_share_inside_another() -> None:
    assert box_inside_share((10, 10, 20, 10), (0, 0, 100, 100)) == 1.0
    assert box_inside_share((90, 0, 20, 10), (0, 0, 100, 100)) == 0.5
    assert box_inside_share((200, 0, 20, 10), (0, 0, 100, 100)) == 0.0
    assert box_inside_share((0, 0, 0, 10), (0, 0, 100, 100)) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_a_read_of_a_part_of_a_plate_read_whole_is_not_reported_beside_it() -> None:
    """A second box over the right of a plate, read surely as the plate's end
    (``98-B-40`` of ``72698-B-40``), would report a plate that is not there: a read whose
    text is a strict part of another's, a plate of a known layout, and whose box lies
    mostly inside that read's, is dropped. Elsewhere in the photo, or part of a text of no
    known layout, it stays."""
    scene = np.full((300, 600, 3), 128, np.uint8)
    whole_box, part_box, far_box = (100, 100, 300, 80), (250, 110, 200, 60), (450, 220, 100, 40)
    reader = ModelPlateReader(MODELS)

    def reported(reads: dict[Box, tuple[str, float]]) -> list[str]:
        reader.detector = FixedBoxes(list(reads))
        double = _ReadsBySize({crop_box(scene, b)[0].shape[:2]: read for b, read in reads.items()})
        reader.recogniser = double
        return sorted(r.text for r in reader.read(scene))

    whole, part = ("72698ب40", 0.99), ("98ب40", 0.99)
    assert reported({whole_box: whole, part_box: part}) == ["72698-B-40"]
    assert reported({whole_box: whole, far_box: part}) == ["72698-B-40", "98-B-40"]
    assert reported({whole_box: ("X72698Y40", 0.99), part_box: part}) == ["98-B-40", "X72698Y40"]


@pytest.mark.parametrize(
    "option",
    [
        "wide_view",
        "dark_plates",
        "extended_boxes",
        "snap_boxes",
        "tilted_plates",
        "rectified_plates",
        "near_plates",
        "blank_colours",
    ],
)
def test_photos_get_the_extra_reading_steps_and_video_frames_do_not(option: str) -> None:
    """The wider view, the dark pass, extended boxes, snapped boxes, the tilted pass,
    straightened plates, the near pass and blanked emblems: on for photos (``still_*``),
    off for video unless the configuration turns them on."""
    config = ReaderConfig(models_dir=MODELS)
    assert getattr(ModelPlateReader.from_config(config, stills=True), option)
    assert not getattr(ModelPlateReader.from_config(config), option)
    video = ReaderConfig.model_validate({"models_dir": MODELS, option: True})
    assert getattr(ModelPlateReader.from_config(video), option)


class _ReadsBySize:
    """A recogniser double answering by crop size, keeping the crops it was shown: the
    reader's own view and pick logic decide."""

    version = "double"

    def __init__(self, answers: dict[tuple[int, int], tuple[str, float]]) -> None:
        self.answers = answers
        self.crops: list[Image] = []

    def read(self, crop: Image) -> tuple[str, float]:
        return self.read_best(crop)

    def read_best(self, crop: Image | np.ndarray) -> tuple[str, float]:
        self.crops.append(np.asarray(crop))
        return self._answer(crop)

    def _answer(self, crop: Image | np.ndarray) -> tuple[str, float]:
        return self.answers.get((crop.shape[0], crop.shape[1]), ("", 0.0))

    def alternatives(self, raw: str) -> list[str]:
        return []


def test_a_crop_is_also_read_with_margins_of_its_own_edge_pixels() -> None:
    """A crop cut tight to the plate: the recogniser, trained on crops with margins, drops
    its last character; read again with margins (photos), the fuller plate read is kept."""
    crop = np.random.default_rng(5).integers(0, 256, (40, 120, 3), dtype=np.uint8)
    double = _ReadsBySize({(40, 120): ("AB123C", 0.99), (56, 148): ("AB123CD", 0.9)})
    reader = ModelPlateReader(MODELS, wide_view=True)
    reader.recogniser = double
    assert reader.read_crop(crop)[:2] == ("AB-123-CD", "FR")
    tight, padded = double.crops
    np.testing.assert_array_equal(tight, crop)
    np.testing.assert_array_equal(padded[8:48, 14:134], crop)
    np.testing.assert_array_equal(padded[0, 14:134], crop[0])  # the edge rows, repeated
    np.testing.assert_array_equal(padded[55, 14:134], crop[-1])

    reader.wide_view = False
    double.crops.clear()
    assert reader.read_crop(crop)[0] != "AB-123-CD"
    assert len(double.crops) == 1


def _dark_plate_scene(text: str, seed: int) -> Image:
    """A plate with light characters on a dark ground (a rendered plate, inverted) on a
    light car body."""
    plate = render_plate(text, np.random.default_rng(seed), height=40)
    h, w = plate.shape[:2]
    scene = np.full((h * 6, w * 3, 3), 215, np.uint8)
    scene[h * 3 : h * 4, w : 2 * w] = 255 - plate
    return scene


@pytest.fixture(scope="module")
def photo_reader() -> ModelPlateReader:
    return ModelPlateReader.from_config(ReaderConfig(models_dir=MODELS), stills=True)


def test_dark_boxes_are_read_inverted_in_video_frames_and_photos_unless_turned_off() -> None:
    """A dark box read unsure costs an inverted read of its crop in video frames too; a
    fleet that never meets dark plates turns it off for each."""
    config = ReaderConfig(models_dir=MODELS)
    assert ModelPlateReader.from_config(config).dark_boxes
    assert ModelPlateReader.from_config(config, stills=True).dark_boxes
    off = ReaderConfig.model_validate(
        {"models_dir": MODELS, "dark_boxes": False, "still_dark_boxes": False}
    )
    assert not ModelPlateReader.from_config(off).dark_boxes
    assert not ModelPlateReader.from_config(off, stills=True).dark_boxes


@pytest.mark.parametrize("stills", [True, False])
def test_a_plate_with_light_characters_on_a_dark_ground_is_read_inverted(stills: bool) -> None:
    """The models learnt dark characters on light plates: a black plate read as it is
    loses or confuses characters. A photo reads it right from the inverted photo
    (``dark_plates``) and from its box's crop inverted (``dark_boxes``: the detector finds
    the plate, the recogniser misreads it); so does a video frame, from its box's crop
    (``dark_boxes`` is on for video frames too; the inverted frame, ``dark_plates``, is not)."""
    reader = ModelPlateReader.from_config(ReaderConfig(models_dir=MODELS), stills=stills)
    assert reader.dark_boxes and reader.dark_plates == stills
    steps = [("dark_plates", "dark_boxes")] if stills else [("dark_boxes",)]
    steps += [("dark_plates",), ("dark_boxes",)] if stills else []
    as_is: list[list[str]] = []
    for seed in range(6):
        scene = _dark_plate_scene("7351-B-6", seed)
        reader.dark_plates = reader.dark_boxes = False
        as_is.append([r.text for r in reader.read(scene)])
        for on in steps:
            for option in ("dark_plates", "dark_boxes"):
                setattr(reader, option, option in on)
            assert [r.text for r in reader.read(scene)] == ["7351-B-6"], (seed, on)
    assert sum(texts != ["7351-B-6"] for texts in as_is) >= 3, as_is


def _light_and_dark_plates() -> tuple[Image, Box, Box]:
    """A grey scene holding a light plate and the same plate inverted (light characters on
    a dark ground), with the two plates' boxes."""
    light = render_plate("48213-D-27", np.random.default_rng(1), height=40)
    h, w = light.shape[:2]
    scene = np.full((h * 4, w * 3, 3), 120, np.uint8)
    scene[h : 2 * h, 0:w] = light
    scene[2 * h : 3 * h, 2 * w : 3 * w] = 255 - light
    return scene, (0, h, w, h), (2 * w, 2 * h, w, h)


def test_a_box_is_read_inverted_only_on_a_dark_ground() -> None:
    """``dark_boxes`` costs a read only where it can help: a light plate's box is read once;
    a dark box is read again, inverted, and that read kept when it is a sure plate."""
    scene, light_box, dark_box = _light_and_dark_plates()
    reader = ModelPlateReader(MODELS, detector=FixedBoxes([light_box, dark_box]), dark_boxes=True)
    dark_crop = crop_box(scene, dark_box)[0]
    double = _ReadsBySize({})
    reader.recogniser = double
    reader.read_boxes(scene)
    assert len(double.crops) == 3  # each box once, and the dark one inverted
    np.testing.assert_array_equal(double.crops[2], 255 - dark_crop)

    size = dark_crop.shape[:2]
    double = _ReadsBySize({size: ("4821327", 0.3)})
    reader.recogniser = double
    assert reader.read_boxes(scene)[1].text == "4821327"  # the inverted read is no surer
    assert len(double.crops) == 3


class _ReadsByGround(_ReadsBySize):
    """A recogniser double that answers by a crop's ground: ``dark`` for a crop darker than
    mid-grey on average (a black plate as it is), ``light`` for the others (inverted)."""

    def __init__(self, dark: tuple[str, float], light: tuple[str, float]) -> None:
        super().__init__({})
        self.dark, self.light = dark, light

    def _answer(self, crop: Image | np.ndarray) -> tuple[str, float]:
        return self.dark if float(np.mean(crop)) < 128 else self.light


def test_a_black_plate_read_surely_but_wrong_is_read_inverted_too() -> None:
    """Video frames of French black plates (the held-out photos recoloured) were read surely
    with a letter confused (``EM-279-BL`` read ``EH-279-BL`` at 0.97), and a sure read
    took no inverted read: 30 of 47 read. A box whose middle is mostly a dark ground is
    read inverted even then, and the inverted read replaces a sure plate read of a known
    layout only when it is one too (35 of 47; a yellow plate's loose box, inverted, read
    ``97DC``). A light plate in the dark (its ground under the median limit, its middle
    mostly paper) is read once when its read is sure."""
    scene, _, dark_box = _light_and_dark_plates()
    reader = ModelPlateReader(MODELS, detector=FixedBoxes([dark_box]), dark_boxes=True)
    double = _ReadsByGround(dark=("48218د27", 0.97), light=("48213د27", 0.99))
    reader.recogniser = double
    assert [r.text for r in reader.read_boxes(scene)] == ["48213-D-27"]
    assert len(double.crops) == 2

    reader.recogniser = _ReadsByGround(dark=("48218د27", 0.97), light=("97DC", 0.999))
    assert [r.text for r in reader.read_boxes(scene)] == ["48218-D-27"]

    light = render_plate("48213-D-27", np.random.default_rng(1), height=40)
    dim = np.full((light.shape[0] * 3, light.shape[1] * 3, 3), 30, np.uint8)
    dim[light.shape[0] : 2 * light.shape[0], light.shape[1] : 2 * light.shape[1]] = (
        light * 0.35
    ).astype(np.uint8)
    box = (light.shape[1], light.shape[0], light.shape[1], light.shape[0])
    reader = ModelPlateReader(MODELS, detector=FixedBoxes([box]), dark_boxes=True)
    double = _ReadsByGround(dark=("48213د27", 0.99), light=("48218د27", 0.999))
    reader.recogniser = double
    assert [r.text for r in reader.read_boxes(dim)] == ["48213-D-27"]
    assert len(double.crops) == 1


class _ScoredBoxes:
    """A detector double that finds the same boxes in every frame, at one score."""

    def __init__(self, boxes: list[Box], score: float) -> None:
        self.boxes, self.score = boxes, score

    def detect(self, image: Image) -> list[tuple[Box, float]]:
        return [(box, self.score) for box in self.boxes]


@pytest.mark.parametrize(
    ("score", "read_inverted"),
    [(DARK_BOX_MIN_SCORE, True), (DARK_MIN_SCORE, True), (DARK_BOX_MIN_SCORE - 0.05, False)],
)
def test_a_dark_box_of_the_photo_itself_is_read_inverted_from_a_lower_score(
    score: float, read_inverted: bool
) -> None:
    """The inverted frame's boxes need :data:`DARK_MIN_SCORE` (its shadows turn bright), but
    a box found in the photo as it is needs only :data:`DARK_BOX_MIN_SCORE`: a Malaysian
    plate, white on black, scored 0.35 and read right only inverted."""
    assert DARK_BOX_MIN_SCORE < DARK_MIN_SCORE
    scene, _, dark_box = _light_and_dark_plates()
    reader = ModelPlateReader(MODELS, detector=_ScoredBoxes([dark_box], score), dark_boxes=True)
    double = _ReadsBySize({})
    reader.recogniser = double
    reader.read_boxes(scene)
    assert len(double.crops) == (2 if read_inverted else 1)


def test_of_two_boxes_of_one_plate_the_read_with_its_bare_strokes_wins() -> None:
    """The recogniser skips a bare ``I`` or ``1`` surely: the detector's second-look box
    read ``XUME`` at 0.96 and its first box ``XIIUME`` at 0.84. A sure read that holds the
    other's characters and one or two strokes more wins; any other difference, or an
    unsure fuller read, leaves it to the surer read."""
    part = BoxRead((10, 10, 60, 20), 0.6, "XUME", "UNKNOWN", 0.96)
    fuller = BoxRead((8, 12, 64, 18), 0.6, "XIIUME", "UNKNOWN", 0.84)
    assert _better(fuller, part) and not _better(part, fuller)
    other_letter = replace(fuller, text="XIKUME")
    assert not _better(other_letter, part) and _better(part, other_letter)
    known = BoxRead((10, 10, 60, 20), 0.6, "9547-A-40", "MA", 0.99)
    assert _better(replace(known, text="95417-A-40", confidence=0.9), known)
    unsure = replace(known, text="95417-A-40", confidence=0.6)
    assert unsure.valid and not _better(unsure, known) and _better(known, unsure)


def test_an_inverted_read_replaces_no_surer_plate_read_it_does_not_hold() -> None:
    """A yellow plate whose large digits fill its middle looks dark there: its inverted
    read ``Q00051`` at 0.84 must not replace ``1000051`` read at 0.999 as it is (digits
    alone count as no plate in the pick, so the pick alone would take the inverted read).
    A dark plate read as it is that lost a character still gives way to the fuller
    inverted read, however sure, and an unsure read of the frame to a surer one."""
    assert not _inverted_read_wins(("Q00051", "UNKNOWN", 0.84), [("1000051", 0.999)])
    assert _inverted_read_wins(("Q00051", "UNKNOWN", 0.84), [("1000051", 0.5)])
    assert _inverted_read_wins(("7351-B-6", "MA", 0.9), [("73516", 0.95)])


def test_the_dark_pass_leaves_light_plates_as_they_were(photo_reader: ModelPlateReader) -> None:
    """A light plate's ground is not dark: the inverted photo adds no read and changes none."""
    read_right = []
    for seed in range(3):
        plate = render_plate("48213-D-27", np.random.default_rng(seed), height=40)
        h, w = plate.shape[:2]
        scene = np.full((h * 6, w * 3, 3), 40, np.uint8)
        scene[h * 3 : h * 4, w : 2 * w] = plate
        photo_reader.dark_plates = False
        before = [(r.text, r.box) for r in photo_reader.read_boxes(scene)]
        photo_reader.dark_plates = True
        assert [(r.text, r.box) for r in photo_reader.read_boxes(scene)] == before
        read_right.append("48213-D-27" in {text for text, _ in before})
    assert any(read_right)  # the scenes hold a plate the reader reads


def test_the_dark_pass_reads_only_the_inverted_boxes_whose_ground_is_dark() -> None:
    """A box of the inverted photo over a light ground cannot be kept as a dark plate, so it
    costs no recogniser run: of a light and a dark plate found in both photos, the dark
    pass reads the dark one only."""
    scene, light_box, dark_box = _light_and_dark_plates()
    reader = ModelPlateReader(MODELS, detector=FixedBoxes([light_box, dark_box]))
    double = _ReadsBySize({})
    reader.recogniser = double
    reader.read_boxes(scene)
    assert len(double.crops) == 2  # without the dark pass: each box once
    double.crops.clear()
    reader.dark_plates = True
    reader.read_boxes(scene)
    inverted = 255 - scene
    dark_crop = crop_box(inverted, dark_box)[0]
    assert len(double.crops) == 3
    np.testing.assert_array_equal(double.crops[2], dark_crop)


def _black_plate_in_a_silver_frame(rim: int) -> tuple[Image, Box]:
    """A rendered plate inverted (light characters on black) inside a light frame ``rim``
    px wide, on a silver car body, and the box of plate and frame."""
    plate = 255 - render_plate("48213-D-27", np.random.default_rng(3), height=40)
    framed = cv2.copyMakeBorder(plate, rim, rim, rim, rim, cv2.BORDER_CONSTANT, value=(215,) * 3)
    h, w = framed.shape[:2]
    scene = np.full((h * 4, w * 3, 3), 200, np.uint8)
    scene[h : 2 * h, w : 2 * w] = framed
    return scene, (w, h, w, h)


def test_a_black_plate_whose_light_characters_and_frame_fill_half_its_box_has_a_dark_ground() -> (
    None
):
    """The dark pass keeps a box of the inverted photo whose ground is dark in the photo. A
    black plate's median grey says so until its silver characters and frame fill half the box;
    its middle, mostly black, still does. A light plate's middle is mostly light (its ink is
    the smaller part), and a middle mostly a mid-grey ground is no dark plate either."""
    scene, box = _black_plate_in_a_silver_frame(rim=12)
    assert _ground(scene, box) >= DARK_GROUND_MAX
    assert _dark_ground(scene, box)
    thin, thin_box = _black_plate_in_a_silver_frame(rim=2)
    assert _ground(thin, thin_box) < DARK_GROUND_MAX and _dark_ground(thin, thin_box)

    light, light_box, dark_box = _light_and_dark_plates()
    assert not _dark_ground(light, light_box) and _dark_ground(light, dark_box)
    shaded = np.clip(scene.astype(np.int16) + 110, 0, 255).astype(np.uint8)  # ground 110-ish
    assert not _dark_ground(shaded, box)


def test_the_dark_pass_does_not_read_the_inverted_photo_inverted_back() -> None:
    """A box of the inverted photo read unsure is not read inverted again: that read is of
    the photo itself, read already, and once a light plate's read, taken back from the
    inverted photo as a dark plate's, replaced the plate's own (``AWS-167`` read ``AWS-8167``).
    The box here is kept by its dark middle, and its frame, light in the photo, is dark
    in the inverted one."""
    scene, box = _black_plate_in_a_silver_frame(rim=12)
    reader = ModelPlateReader(MODELS, detector=FixedBoxes([box]), dark_plates=True, dark_boxes=True)
    double = _ReadsBySize({})
    reader.recogniser = double
    reader.read_boxes(scene)
    inverted_crop = crop_box(255 - scene, box)[0]
    assert _ground(inverted_crop, (0, 0, inverted_crop.shape[1], inverted_crop.shape[0])) < (
        DARK_GROUND_MAX
    )  # the crop the inverted photo's box is read from is dark
    assert len(double.crops) == 2  # the box in the photo, then in the inverted photo
    np.testing.assert_array_equal(double.crops[1], inverted_crop)


def test_the_dark_pass_does_not_tile_a_large_photo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiles find far, small plates; the dark pass looks for near black plates (a black
    French plate the detector missed): on the held-out photos its tiles found none, for a
    sixth of a large photo's time, so the inverted photo is seen whole only."""
    scene = cv2.resize(_dark_plate_scene("7351-B-6", 0), None, fx=3, fy=3)
    reader = ModelPlateReader.from_config(ReaderConfig(models_dir=MODELS), stills=True)
    assert isinstance(reader.detector, ModelDetector) and reader.detector.tile_above is not None
    assert max(scene.shape[:2]) > reader.detector.tile_above
    reader.far_plates = False  # its own tiles look for far plates (tests/test_far_plates.py)
    tiled: list[int] = []
    real_tiled_pass = reader.detector._tiled_pass
    monkeypatch.setattr(
        reader.detector, "_tiled_pass", lambda image: tiled.append(1) or real_tiled_pass(image)
    )
    reader.dark_plates = False
    reader.read_boxes(scene)
    assert len(tiled) == 1  # the photo as it is is tiled
    tiled.clear()
    reader.dark_plates = True
    reader.read_boxes(scene)
    assert len(tiled) == 1  # and the inverted one is not


def test_a_plate_filling_most_of_the_photo_is_found_by_the_near_pass(
    photo_reader: ModelPlateReader,
) -> None:
    """A body camera beside the car: a plate 95 % of the photo's width is wider than any
    the detector learnt and is missed; shown the photo a third of its size, the detector
    finds it, and it is read in the photo itself."""
    found = {False: 0, True: 0}
    try:
        for seed in range(12):
            scene, box, text = near_plate_scene(np.random.default_rng(seed), 0.95)
            plate = tuple(round(v) for v in box)
            for near in (False, True):
                photo_reader.near_plates = near
                found[near] += any(
                    r.text == canonicalize(text)[0] and box_iou(r.box, plate) >= 0.5
                    for r in photo_reader.read(scene)
                )
    finally:
        photo_reader.near_plates = True
    assert found[False] <= 2 and found[True] >= 7, found


def test_the_near_pass_changes_no_read_of_a_plate_the_photo_passes_find(
    photo_reader: ModelPlateReader,
) -> None:
    """Plates up to half the photo's width are the whole-frame passes': the near pass adds
    no box beside them and changes none of their reads."""
    read_right = 0
    try:
        for seed, share in enumerate((0.3, 0.3, 0.5, 0.5)):
            scene, _box, text = near_plate_scene(np.random.default_rng(seed), share)
            photo_reader.near_plates = False
            before = [(r.text, r.box) for r in photo_reader.read_boxes(scene)]
            photo_reader.near_plates = True
            assert [(r.text, r.box) for r in photo_reader.read_boxes(scene)] == before
            read_right += canonicalize(text)[0] in {t for t, _ in before}
    finally:
        photo_reader.near_plates = True
    assert read_right >= 3  # the scenes hold plates the reader reads


def test_the_near_pass_costs_two_detector_runs_where_it_finds_nothing(
    photo_reader: ModelPlateReader, detector_runs: list[DetectorRun]
) -> None:
    """The photo shrunk, in colour then grey (the same letterboxed input): no plate found,
    nothing more. (A photo under a colour cast: the grey pass runs on no other.)"""
    scene = magenta_frame(480, 640)
    runs = {}
    try:
        for near in (False, True):
            photo_reader.near_plates = near
            detector_runs.clear()
            assert photo_reader.read(scene) == []
            runs[near] = list(detector_runs)
    finally:
        photo_reader.near_plates = True
    assert len(runs[True]) == len(runs[False]) + 2
    for reused in (False, True):  # one more colour and one more grey run of the photo
        count = {near: runs[near].count(((480, 640), reused)) for near in runs}
        assert count[True] == count[False] + 1, runs


def test_a_dark_plate_crop_is_read_inverted_and_a_light_one_as_it_is(
    photo_reader: ModelPlateReader,
) -> None:
    """A crop of light characters on a dark ground read as it is is mostly unsure (below
    ``min_confidence``, dropped) or wrong; read inverted it is sure and right. A light
    plate's crop is read exactly as without the dark pass."""
    doubtful = 0
    for seed in range(6):
        for text in ("7351-B-6", "48213-D-27"):
            light = render_plate(text, np.random.default_rng(seed), height=40)
            dark = 255 - light
            photo_reader.dark_plates = False
            as_is, light_read = photo_reader.read_crop(dark), photo_reader.read_crop(light)
            doubtful += as_is[0] != text or as_is[2] < photo_reader.min_confidence
            photo_reader.dark_plates = True
            text_read, _fmt, confidence = photo_reader.read_crop(dark)
            assert text_read == text and confidence >= 0.9, (seed, text_read, confidence)
            assert photo_reader.read_crop(light) == light_read
    assert doubtful >= 4

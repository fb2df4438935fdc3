"""Photos larger than the reader's working size (``reader.still_max_side``): a 12-megapixel
photo is read shrunk, its boxes given in its own pixels, and its small far plates are
still looked for at its own size (models/detector.md, "Photos of every size")."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DetectorRun, plates_found

from agent.config import ReaderConfig
from agent.frames import Image
from agent.reader.detector import ModelDetector
from agent.reader.pipeline import BoxRead, ModelPlateReader, _scaled_box
from agent.reads import Box, box_iou
from agent.synth.plates import render_plate
from agent.synth.scenes import far_plate_scene

MODELS = Path(__file__).resolve().parent.parent / "models"


@pytest.fixture(scope="module")
def photo_reader() -> ModelPlateReader:
    return ModelPlateReader.from_config(ReaderConfig(models_dir=MODELS), stills=True)


def _plate_photo(scale: int) -> tuple[Image, Box]:
    """A plate on a bumper in a 1280 x 720 photo, enlarged ``scale`` times; its box."""
    frame = np.full((720, 1280, 3), 80, np.uint8)
    frame[380:460, 500:740] = 30
    frame[400:440, 531:720] = render_plate("48213-D-27", np.random.default_rng(7), height=40)
    big = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return np.asarray(big, np.uint8), (531 * scale, 400 * scale, 189 * scale, 40 * scale)


def _four_k_with_far_plates(seed: int) -> tuple[Image, list[Box]]:
    """A 3840 x 2160 street: a 720p scene enlarged three times (its plates 75-150 px wide),
    one ninth of it replaced by another 720p scene at its own size (plates 25-50 px wide,
    sharp); the far plates' boxes."""
    rng = np.random.default_rng([515152, seed])
    background, _ = far_plate_scene(rng, night=False)
    big = np.asarray(cv2.resize(background, (3840, 2160), interpolation=cv2.INTER_CUBIC))
    row, col = divmod(int(rng.integers(9)), 3)
    scene, boxes = far_plate_scene(rng, night=False)
    big[row * 720 : (row + 1) * 720, col * 1280 : (col + 1) * 1280] = scene
    far = [
        (round(x) + col * 1280, round(y) + row * 720, round(w), round(h)) for x, y, w, h in boxes
    ]
    return np.ascontiguousarray(big, np.uint8), far


def test_photos_are_shrunk_to_the_working_size_and_video_frames_are_not() -> None:
    config = ReaderConfig(models_dir=MODELS)
    assert ModelPlateReader.from_config(config, stills=True).max_side == 1920
    assert ModelPlateReader.from_config(config).max_side is None
    never = ReaderConfig(models_dir=MODELS, still_max_side=0)
    assert ModelPlateReader.from_config(never, stills=True).max_side is None


def test_a_box_of_the_shrunk_photo_is_given_in_the_photos_pixels_within_it() -> None:
    assert _scaled_box((10, 20, 30, 40), 2.0, 200, 200) == (20, 40, 60, 80)
    assert _scaled_box((40, 40, 20, 20), 2.0, 90, 90) == (80, 80, 10, 10)


def test_a_large_photo_is_read_at_the_working_size_with_its_plate_box_in_its_pixels(
    photo_reader: ModelPlateReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo, plate = _plate_photo(3)
    read_at: list[tuple[int, ...]] = []
    real = photo_reader._read_frame_boxes

    def spy(frame: Image) -> list[BoxRead]:
        read_at.append(frame.shape[:2])
        return real(frame)

    monkeypatch.setattr(photo_reader, "_read_frame_boxes", spy)
    reads = photo_reader.read(photo)
    assert read_at == [(1080, 1920)]
    assert [r.text for r in reads] == ["48213-D-27"]
    assert box_iou(reads[0].box, plate) >= 0.7, (reads[0].box, plate)


def test_the_far_plates_of_a_large_photo_are_looked_for_at_its_own_size(
    photo_reader: ModelPlateReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shrunk to 1920 px, a 30 px plate of a 4K photo is 15 px: the passes of the shrunk
    photo miss most of them; the tiled pass over the photo itself finds them."""
    photos = [_four_k_with_far_plates(seed) for seed in range(8)]
    total = sum(len(far) for _, far in photos)
    with_far_pass = plates_found(photo_reader, photos)
    monkeypatch.setattr(photo_reader, "_far_plate_reads", lambda *args, **kwargs: [])
    without = plates_found(photo_reader, photos)
    assert with_far_pass >= 0.6 * total and without <= 0.4 * total, (with_far_pass, without, total)


def test_the_far_pass_runs_the_detector_on_the_tiles_alone(
    photo_reader: ModelPlateReader, detector_runs: list[DetectorRun]
) -> None:
    """No whole-frame pass (colour nor grey) over the photo itself: the shrunk photo had it."""
    frame = np.full((2160, 3840, 3), 120, np.uint8)
    detector = photo_reader.detector
    assert isinstance(detector, ModelDetector)
    assert detector.looks(frame, whole_frame=False) == []
    assert detector_runs, "the tiles ran"
    assert all(shape[0] < 2160 and shape[1] < 3840 for shape, _ in detector_runs), detector_runs
    assert not any(reused for _, reused in detector_runs)  # no grey pass

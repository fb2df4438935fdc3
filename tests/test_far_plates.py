"""Far plates in photos read at their own size (``reader.still_far_plates``): the tiled pass
of a photo sees it at half size, where a 30 px plate is 15 px wide and 3 px tall; tiles at
the photo's own resolution look for them again (models/detector.md, "Far plates in
photos")."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DetectorRun, plates_found

from agent.config import ReaderConfig
from agent.frames import Image
from agent.reader.pipeline import FAR_MAX_WIDTH, FAR_PLATES_READ, BoxRead, ModelPlateReader
from agent.reads import Box, box_iou
from agent.synth.scenes import far_plate_scene

MODELS = Path(__file__).resolve().parent.parent / "models"


@pytest.fixture(scope="module")
def photo_reader() -> ModelPlateReader:
    return ModelPlateReader.from_config(ReaderConfig(models_dir=MODELS), stills=True)


def _night_photo(seed: int) -> tuple[Image, list[Box]]:
    """A dashcam night street of far plates shrunk as a phone shares it (960 x 540: plates
    about 19-38 px wide, 5-8 px tall); the plates' boxes."""
    frame, boxes = far_plate_scene(np.random.default_rng([777, seed]), night=True)
    photo = cv2.resize(frame, (960, 540), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(photo, np.uint8), [
        (round(x * 0.75), round(y * 0.75), round(w * 0.75), round(h * 0.75)) for x, y, w, h in boxes
    ]


def test_photos_are_searched_for_far_plates_and_video_frames_never() -> None:
    config = ReaderConfig(models_dir=MODELS)
    assert ModelPlateReader.from_config(config, stills=True).far_plates
    assert not ModelPlateReader.from_config(config).far_plates
    off = ReaderConfig(models_dir=MODELS, still_far_plates=False)
    assert not ModelPlateReader.from_config(off, stills=True).far_plates


def test_far_plates_of_a_night_photo_are_found_by_tiles_at_its_own_resolution(
    photo_reader: ModelPlateReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = [_night_photo(seed) for seed in range(12)]
    total = sum(len(plates) for _, plates in photos)
    with_far_pass = plates_found(photo_reader, photos)
    monkeypatch.setattr(photo_reader, "far_plates", False)
    without = plates_found(photo_reader, photos)
    # Measured: 21 of 25 with the far plates' tiles, 15 without.
    assert with_far_pass >= 0.75 * total, (with_far_pass, total)
    assert with_far_pass >= without + 4, (with_far_pass, without)


def test_only_small_boxes_clear_of_the_plates_read_are_read_again(
    photo_reader: ModelPlateReader,
    monkeypatch: pytest.MonkeyPatch,
    detector_runs: list[DetectorRun],
) -> None:
    """Tiles at the photo's own resolution; only boxes narrower than the far width and
    clear of every box already read are read, at most :data:`FAR_PLATES_READ`, inside
    the photo."""
    photo, _ = _night_photo(8)
    calls: list[tuple[tuple[int, ...], list[Box], float, bool, int]] = []
    real = photo_reader._far_plate_reads

    def spy(
        frame: Image, found: list[BoxRead], max_width: float, *, own_size: bool = False
    ) -> list[BoxRead]:
        runs_before = len(detector_runs)
        calls.append((frame.shape[:2], [r.box for r in found], max_width, own_size, runs_before))
        return real(frame, found, max_width, own_size=own_size)

    monkeypatch.setattr(photo_reader, "_far_plate_reads", spy)
    reads = photo_reader.read_boxes(photo)
    assert len(calls) == 1
    shape, known, max_width, own_size, runs_before = calls[0]
    assert (shape, max_width, own_size) == ((540, 960), FAR_MAX_WIDTH, True)
    # The far pass's first model runs are its tiles: the model's own input size, the
    # photo's pixels unscaled.
    assert detector_runs[runs_before] == ((224, 384), False), detector_runs[runs_before:]
    far = reads[len(known) :]
    assert 0 < len(far) <= FAR_PLATES_READ
    for r in far:
        x, y, w, h = r.box
        assert x >= 0 and y >= 0 and x + w <= 960 and y + h <= 540, r.box
        assert w < FAR_MAX_WIDTH + 2, r.box  # snapped boxes may grow by a pixel or so
        assert all(box_iou(r.box, near.box) <= 0.5 for near in reads[: len(known)])


def test_a_photo_larger_than_the_working_size_keeps_its_own_far_pass(
    photo_reader: ModelPlateReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above ``still_max_side`` the photo is read shrunk and its far plates are looked for
    in the photo itself by tiles at half size (tests/test_large_photos.py), once."""
    calls: list[tuple[tuple[int, ...], bool]] = []
    real = photo_reader._far_plate_reads

    def spy(
        frame: Image, found: list[BoxRead], max_width: float, *, own_size: bool = False
    ) -> list[BoxRead]:
        calls.append((frame.shape[:2], own_size))
        return real(frame, found, max_width, own_size=own_size)

    monkeypatch.setattr(photo_reader, "_far_plate_reads", spy)
    photo_reader.read_boxes(np.full((2160, 3840, 3), 120, np.uint8))
    assert calls == [((2160, 3840), False)]

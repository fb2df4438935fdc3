"""Area down-scaling by weight blocks: the detector's letterbox of 1280 x 720 frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.frames import Image
from agent.reader.detector import ModelDetector
from agent.reader.resample import MAX_PLANS, AreaResizer, area_block
from agent.synth.scenes import street_scene

MODELS = Path(__file__).resolve().parent.parent / "models"


def _frame(height: int, width: int) -> Image:
    """A street scene with noise on it: edges, flat parts and values near every rounding."""
    rng = np.random.default_rng(height * width)
    scene = cv2.resize(street_scene(rng)[0], (width, height), interpolation=cv2.INTER_LINEAR)
    noise = rng.integers(-12, 13, scene.shape)
    frame: Image = np.clip(scene.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return frame


def test_an_area_block_shares_each_source_pixel_by_the_footprint_it_covers() -> None:
    """10 pixels into 3: footprints [0, 3.33), [3.33, 6.67), [6.67, 10)."""
    block = area_block(10, 3)
    assert block.shape == (3, 10)
    assert block.sum(axis=1) == pytest.approx([1.0, 1.0, 1.0])
    assert block[0] == pytest.approx([0.3, 0.3, 0.3, 0.1, 0, 0, 0, 0, 0, 0])
    assert block[1] == pytest.approx([0, 0, 0, 0.2, 0.3, 0.3, 0.2, 0, 0, 0])
    assert block[2] == pytest.approx(block[0][::-1])


@pytest.mark.parametrize(
    ("source", "target", "most"),
    [
        ((720, 1280), (216, 384), 1),  # the clip's frames into the detector: 10 / 3
        ((360, 640), (216, 384), 0),  # 5 / 3
        ((416, 416), (224, 224), 0),  # the mixed photos: 13 / 7
    ],
)
def test_the_blocks_give_opencvs_area_resize_within_one_grey_level(
    source: tuple[int, int], target: tuple[int, int], most: int
) -> None:
    frame = _frame(*source)
    out = np.zeros((*target, 3), np.uint8)
    assert AreaResizer().resize(frame, out)
    expected = cv2.resize(frame, target[::-1], interpolation=cv2.INTER_AREA)
    diff = np.abs(out.astype(np.int16) - expected)
    assert diff.max() <= most
    assert (diff > 0).mean() < 0.01  # only values on a rounding edge


def test_a_strided_view_is_resized_like_a_copy_of_it() -> None:
    """Tiles and windows are views into a larger frame."""
    big = _frame(800, 1400)
    view = big[40:760, 60:1340]
    assert not view.flags.c_contiguous
    resizer = AreaResizer()
    from_view, from_copy = np.zeros((216, 384, 3), np.uint8), np.zeros((216, 384, 3), np.uint8)
    assert resizer.resize(view, from_view) and resizer.resize(view.copy(), from_copy)
    np.testing.assert_array_equal(from_view, from_copy)


def test_photos_of_many_sizes_do_not_grow_the_plans_without_end() -> None:
    """Each plan holds float buffers the size of its source."""
    resizer = AreaResizer()
    frame = np.zeros((720, 1280, 3), np.uint8)
    ratios = [(10, 3), (5, 2), (5, 3), (10, 7), (5, 4), (10, 9)]  # each a plan of its own
    assert len(ratios) > MAX_PLANS
    for p, q in ratios:
        assert resizer.resize(frame, np.zeros((720 * q // p, 1280 * q // p, 3), np.uint8))
        assert len(resizer._plans) <= MAX_PLANS


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ((1080, 1920), (216, 384)),  # whole numbers: OpenCV's own path is fast
        ((480, 640), (224, 299)),  # 640 / 299: no short period
        ((100, 200), (216, 384)),  # enlarging
        ((720, 1280), (216, 385)),  # a period of 256 source pixels
    ],
)
def test_ratios_without_a_faster_way_are_left_to_opencv(
    source: tuple[int, int], target: tuple[int, int]
) -> None:
    out = np.full((*target, 3), 7, np.uint8)
    assert not AreaResizer().resize(np.zeros((*source, 3), np.uint8), out)
    assert (out == 7).all()  # untouched


def test_the_detector_letterboxes_a_1280x720_frame_as_opencv_would() -> None:
    detector = ModelDetector(MODELS / "detector.tflite")
    frame = _frame(720, 1280)
    scale = detector.letterbox(frame)
    assert scale == pytest.approx(0.3)
    expected = cv2.resize(frame, (384, 216), interpolation=cv2.INTER_AREA)
    got = detector._input[0, :216, :384]
    assert np.abs(got.astype(np.int16) - expected).max() <= 1
    assert (detector._input[0, 216:] == 0).all()  # the padding below stays padding

"""A plate seen at an angle is straightened front on and read again when read unsure."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.frames import Image
from agent.reader import pipeline
from agent.reader.pipeline import ModelPlateReader
from agent.reader.rectify import RECTIFIED_MARGINS, paper_corners, rectified
from agent.synth.plates import render_plate

MODELS = Path(__file__).resolve().parent.parent / "models"


def _seen_at_an_angle(text: str, seed: int, far: float) -> tuple[Image, np.ndarray, Image]:
    """A rendered plate (40 px tall) seen from its left: its right side ``far`` as tall as
    its left and the plate foreshortened to 3/4 of its width, on a dark blurred ground
    with 10 px around it. Returns the crop, the plate's corners in it and the plate."""
    plate = render_plate(text, np.random.default_rng(seed), height=40)
    h, w = plate.shape[:2]
    seen_w = int(w * 0.75)
    top = h * (1 - far) / 2
    corners = np.float32(
        [[10, 10], [10 + seen_w, 10 + top], [10 + seen_w, 10 + top + h * far], [10, 10 + h]]
    )
    ground = np.random.default_rng(seed + 100).integers(40, 90, (h + 20, seen_w + 20, 3))
    crop = np.asarray(cv2.GaussianBlur(ground.astype(np.uint8), (9, 9), 0), np.uint8)
    warp = cv2.getPerspectiveTransform(np.float32([[0, 0], [w, 0], [w, h], [0, h]]), corners)
    size = (crop.shape[1], crop.shape[0])
    inside = cv2.warpPerspective(np.full((h, w), 255, np.uint8), warp, size) > 127
    crop[inside] = cv2.warpPerspective(plate, warp, size)[inside]
    return crop, corners, plate


@pytest.mark.parametrize("far", [0.7, 0.5])
def test_the_corners_of_a_plate_seen_at_an_angle_are_found(far: float) -> None:
    crop, corners, _ = _seen_at_an_angle("48213-D-27", 0, far)
    found = paper_corners(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY))
    assert found is not None
    assert float(np.abs(found - corners).max()) <= 6.0, (found, corners)


def test_a_straightened_plate_has_its_own_shape_and_margins() -> None:
    crop, _, plate = _seen_at_an_angle("48213-D-27", 0, 0.5)
    straight = rectified(crop)
    assert straight is not None
    h, w = straight.shape[:2]
    plate_w, plate_h = w / (1 + 2 * RECTIFIED_MARGINS[0]), h / (1 + 2 * RECTIFIED_MARGINS[1])
    # The near side's height across the whole plate, and the plate's seen width (3/4 of
    # its own); a few pixels less: the light paper lies inside the plate's printed border.
    assert plate.shape[0] - 6 <= plate_h <= plate.shape[0]
    assert 0.75 * plate.shape[1] - 8 <= plate_w <= 0.75 * plate.shape[1]
    # Front on, the paper is light across its full height at both ends.
    my, mx = round(RECTIFIED_MARGINS[1] * plate_h), round(RECTIFIED_MARGINS[0] * plate_w)
    gray = cv2.cvtColor(straight, cv2.COLOR_BGR2GRAY)
    assert gray[my + 4 : h - my - 4, w - mx - 4].mean() > 150


@pytest.mark.parametrize("shade", [0, 70])
def test_a_crop_without_light_paper_is_not_straightened(shade: int) -> None:
    assert rectified(np.full((40, 160, 3), shade, np.uint8)) is None
    dark = np.random.default_rng(0).integers(0, 40, (40, 160, 3), dtype=np.uint8)
    dark[15:25, 70:90] = 255  # a small light patch: not a plate's paper
    assert rectified(dark) is None


@pytest.mark.parametrize(
    ("text", "seed"), [("48213-D-27", 1), ("48213-D-27", 2), ("60154-B-40", 1)]
)
def test_a_plate_seen_at_an_angle_read_unsure_is_read_straightened(text: str, seed: int) -> None:
    """Seen from the side (its far end 0.4 as tall), the plate is read short or wrong and
    unsure; straightened, it is read whole and sure."""
    crop, _, _ = _seen_at_an_angle(text, seed, 0.4)
    as_seen = ModelPlateReader(MODELS, wide_view=True).read_crop(crop)
    assert as_seen[0] != text and as_seen[2] < 0.7, as_seen
    straightened = ModelPlateReader(MODELS, wide_view=True, rectified_plates=True)
    assert straightened.read_crop(crop)[0] == text


def test_a_sure_read_is_not_straightened(monkeypatch: pytest.MonkeyPatch) -> None:
    plate = render_plate("7391-B-40", np.random.default_rng(0), height=40)
    straightened: list[Image] = []
    monkeypatch.setattr(
        pipeline, "rectified", lambda crop: straightened.append(crop) or rectified(crop)
    )
    reader = ModelPlateReader(MODELS, wide_view=True, rectified_plates=True)
    assert reader.read_crop(plate)[0] == "7391-B-40"
    assert straightened == []
    crop, _, _ = _seen_at_an_angle("48213-D-27", 1, 0.4)  # read unsure: straightened
    assert reader.read_crop(crop)[0] == "48213-D-27"
    assert len(straightened) == 1


def test_a_straightened_read_does_not_replace_a_read_by_a_shorter_or_unsure_one() -> None:
    crop, _, _ = _seen_at_an_angle("48213-D-27", 1, 0.4)
    reader = ModelPlateReader(MODELS, wide_view=True, rectified_plates=True)
    unsure = ("48213-D-7", "MA", 0.33, ())
    reader._read_views = lambda views, ballot=None: ("8213-D-7", "MA", 0.99, ())  # type: ignore[method-assign]
    assert reader._rectified_read(crop, unsure) == unsure  # shorter: a part of the plate
    reader._read_views = lambda views, ballot=None: ("48213-D-27", "MA", 0.6, ())  # type: ignore[method-assign]
    assert reader._rectified_read(crop, unsure) == unsure  # not sure either
    reader._read_views = lambda views, ballot=None: ("48213-D-27", "MA", 0.95, ())  # type: ignore[method-assign]
    assert reader._rectified_read(crop, unsure)[0] == "48213-D-27"

"""A loose box around a plate read in a photo is snapped to the plate's own edges."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FixedBoxes

from agent.frames import Image
from agent.reader.pipeline import ModelPlateReader
from agent.reader.plate_edges import snap_to_plate, text_rows
from agent.reads import Box, box_iou
from agent.synth.plates import render_plate

MODELS = Path(__file__).resolve().parent.parent / "models"


def _plate_in_holder(text: str, seed: int, body: int = 170) -> tuple[Image, Box]:
    """A rendered plate in a dark holder on a light car body (shaded top to bottom), and
    the plate's own box."""
    plate = render_plate(text, np.random.default_rng(seed), height=60)
    h, w = plate.shape[:2]
    shade = np.linspace(body - 25, body + 25, 360, dtype=np.float32).astype(np.uint8)
    scene = np.ascontiguousarray(np.broadcast_to(shade[:, None, None], (360, 640, 3)))
    x, y = (640 - w) // 2, 150
    cv2.rectangle(scene, (x - 14, y - 12), (x + w + 13, y + h + 11), (50, 50, 50), -1)
    scene[y : y + h, x : x + w] = plate
    return scene, (x, y, w, h)


def _loose(box: Box) -> Box:
    """The box with its holder and a band of the car: half as tall again, as the detector
    boxes a close plate."""
    x, y, w, h = box
    return (x - 40, y - 30, w + 80, h + 60)


@pytest.mark.parametrize(
    ("text", "body"), [("48213-D-27", 170), ("12345-A-6", 205), ("AB-123-CD", 120)]
)
def test_a_box_loose_around_a_plate_is_snapped_to_the_plate(text: str, body: int) -> None:
    for seed in range(2):
        scene, plate = _plate_in_holder(text, seed, body)
        loose = _loose(plate)
        assert box_iou(loose, plate) < 0.5  # not found, at the acceptance's IoU 0.5
        snapped = snap_to_plate(scene, loose)
        assert box_iou(snapped, plate) >= 0.7, (snapped, plate)


def test_a_french_plates_snapped_box_holds_its_blue_band() -> None:
    scene, plate = _plate_in_holder("AB-123-CD", 0, 120)
    x, _y, w, _h = snap_to_plate(scene, _loose(plate))
    assert x <= plate[0] and x + w >= plate[0] + plate[2]


def test_a_box_that_fits_the_plate_is_kept_as_it_is() -> None:
    scene, plate = _plate_in_holder("48213-D-27", 0)
    assert snap_to_plate(scene, plate) == plate
    x, y, w, h = plate
    a_little_loose = (x - 6, y - 5, w + 12, h + 10)
    assert snap_to_plate(scene, a_little_loose) == a_little_loose


def _two_line_plate(body: int) -> tuple[Image, Box]:
    """A square two-line plate (Hershey glyphs on white paper) in a dark holder."""
    scene = np.full((400, 640, 3), body, np.uint8)
    x, y, w, h = 200, 120, 220, 150
    cv2.rectangle(scene, (x - 12, y - 12), (x + w + 12, y + h + 12), (50, 50, 50), -1)
    cv2.rectangle(scene, (x, y), (x + w, y + h), (235, 235, 235), -1)
    ink = (20, 20, 20)
    cv2.putText(scene, "AB 12", (x + 15, y + 63), cv2.FONT_HERSHEY_SIMPLEX, 1.8, ink, 5)
    cv2.putText(scene, "345 CD", (x + 10, y + h - 15), cv2.FONT_HERSHEY_SIMPLEX, 1.6, ink, 5)
    return scene, (x, y, w, h)


@pytest.mark.parametrize("body", [120, 205])
def test_a_two_line_plates_box_is_snapped_to_both_its_rows(body: int) -> None:
    scene, plate = _two_line_plate(body)
    x, y, w, h = plate
    for dx, dy in ((70, 20), (75, 15)):
        loose = (x - dx, y - dy, w + 2 * dx, h + 2 * dy)
        assert box_iou(loose, plate) < 0.5
        snapped = snap_to_plate(scene, loose)
        assert box_iou(snapped, plate) >= 0.8, (snapped, plate)


def test_a_plate_as_light_as_its_car_is_parted_from_it_by_its_outline() -> None:
    """A silver car: the paper is no lighter than the body, and only a thin outline a
    little darker than both (lighter than any level the paper is looked for at, so the
    light region runs on into the car) marks where the plate ends."""
    scene = np.full((360, 640, 3), 240, np.uint8)
    plate = x, y, w, h = 170, 150, 300, 60
    cv2.rectangle(scene, (x, y), (x + w - 1, y + h - 1), (235, 235, 235), -1)
    cv2.rectangle(scene, (x, y), (x + w - 1, y + h - 1), (205, 205, 205), 2)
    ink = (25, 25, 25)
    cv2.putText(scene, "48213 D 27", (x + 12, y + 46), cv2.FONT_HERSHEY_SIMPLEX, 1.4, ink, 4)
    snapped = snap_to_plate(scene, _loose(plate))
    assert box_iou(snapped, plate) >= 0.7, (snapped, plate)


@pytest.mark.parametrize("degrees", [6, -8, 15])
def test_a_tilted_plates_box_is_snapped_to_the_upright_envelope_of_its_paper(
    degrees: int,
) -> None:
    """A close plate tilted by a few degrees: its glyphs slope out of any level row, so
    the plate is looked for turned level; the snapped box is the envelope of its paper."""
    scene, (x, y, w, h) = _plate_in_holder("48213-D-27", 0)
    turn = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), degrees, 1.0)
    tilted = cv2.warpAffine(scene, turn, scene.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)
    mapped = corners @ turn[:, :2].T + turn[:, 2]
    (ex0, ey0), (ex1, ey1) = mapped.min(axis=0), mapped.max(axis=0)
    envelope = (round(ex0), round(ey0), round(ex1 - ex0), round(ey1 - ey0))
    loose = (envelope[0] - 50, envelope[1] - 40, envelope[2] + 100, envelope[3] + 80)
    assert box_iou(loose, envelope) < 0.5
    assert box_iou(snap_to_plate(tilted, loose), envelope) >= 0.8


def test_boxes_it_cannot_trust_are_kept_as_they_are() -> None:
    scene, plate = _plate_in_holder("48213-D-27", 0)
    x, y, _w, h = plate
    tall = (x, y - 60, 2 * h + 40, 2 * h + 60)  # taller than wide: no plate's shape
    assert snap_to_plate(scene, tall) == tall
    small = cv2.resize(scene, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    small_loose = tuple(round(v / 4) for v in _loose(plate))
    assert small_loose[2] < 100
    assert snap_to_plate(small, small_loose) == small_loose  # type: ignore[arg-type]
    blank = np.full((360, 640, 3), 128, np.uint8)
    assert snap_to_plate(blank, _loose(plate)) == _loose(plate)
    noise = np.random.default_rng(3).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    assert snap_to_plate(noise, _loose(plate)) == _loose(plate)


def test_a_plate_cut_by_the_frame_edge_is_kept_as_it_is() -> None:
    """The paper then runs into the frame's edge: no border of the plate to snap to."""
    scene, plate = _plate_in_holder("48213-D-27", 0)
    x, y, w, h = plate
    cut = np.ascontiguousarray(scene[:, : x + w // 2])
    box = (x - 40, y - 30, cut.shape[1] - x + 40, h + 60)
    assert snap_to_plate(cut, box) == box


def test_the_row_of_glyphs_is_found_with_its_height() -> None:
    scene, (x, y, w, h) = _plate_in_holder("48213-D-27", 0)
    gray = cv2.cvtColor(scene[y - 10 : y + h + 10, x - 10 : x + w + 10], cv2.COLOR_BGR2GRAY)
    row = text_rows(gray)[0]
    assert row.glyphs >= 7  # the digits (and the bars) of 48213 | D | 27
    assert 0.4 * h <= row.glyph_h <= 0.9 * h
    assert row.x1 - row.x0 >= 0.7 * w


def test_the_reader_reports_the_snapped_box_of_a_plate_it_read() -> None:
    scene, plate = _plate_in_holder("48213-D-27", 0)
    loose = _loose(plate)
    for snap in (False, True):
        reader = ModelPlateReader(MODELS, detector=FixedBoxes([loose]), snap_boxes=snap)
        (read,) = reader.read(scene)
        assert read.text == "48213-D-27"  # read from the loose box either way
        if snap:
            assert box_iou(read.box, plate) >= 0.7
        else:
            assert read.box == loose


def test_a_box_with_no_plate_read_is_not_snapped() -> None:
    scene, plate = _plate_in_holder("48213-D-27", 0)
    scene[plate[1] : plate[1] + plate[3], plate[0] : plate[0] + plate[2]] = 235
    reader = ModelPlateReader(MODELS, detector=FixedBoxes([_loose(plate)]), snap_boxes=True)
    assert [r.box for r in reader.read_boxes(scene)] == [_loose(plate)]

"""A foreign car on a Moroccan watchlist alerts, through the whole reading pipeline.

Real parts: the shipped detector and recogniser, the tracker, the matcher and
``agent.pipeline.Pipeline``; the plate is rendered (agent.synth.europe) on a
car-coloured patch of a 1280 x 720 frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import FixedBoxes

from agent.frames import Frame, Image
from agent.pipeline import Pipeline
from agent.reader.pipeline import ModelPlateReader
from agent.reader.plate_text import canonicalize
from agent.reads import WatchlistEntry
from agent.synth.europe import render_wide_plate
from agent.tracking import Tracker
from agent.watchlist.matcher import Matcher

MODELS = Path(__file__).resolve().parent.parent / "models"
MOROCCAN_LIST = ["12345-B-6", "4631-B-40", "AB-123-CD", "599625-WW"]


def _frame(country: str, groups: list[str], seed: int) -> Image:
    rng = np.random.default_rng(seed)
    plate = render_wide_plate(country, groups, False, rng, 44)
    frame = np.full((720, 1280, 3), 70, np.uint8)
    frame[300:480, 400:800] = (40, 40, 120)  # the car
    h, w = plate.shape[:2]
    frame[380 : 380 + h, 600 - w // 2 : 600 - w // 2 + w] = plate
    return frame


@pytest.fixture(scope="module")
def reader() -> ModelPlateReader:
    return ModelPlateReader(MODELS)


@pytest.mark.parametrize(
    ("country", "groups"),
    [
        ("SK", ["BA", "123", "XY"]),  # Slovak: the SIV shape, reported as FR
        ("RO", ["B", "21", "GSB"]),  # Romanian: a layout the grammar does not know
        ("AT", ["W", "12345", "A"]),  # Austrian: idem
        ("GB", ["BT63", "UYN"]),  # British: idem
    ],
)
def test_a_stolen_foreign_car_on_a_moroccan_list_raises_a_hit(
    reader: ModelPlateReader, country: str, groups: list[str]
) -> None:
    listed, _fmt = canonicalize("".join(groups))  # as the list's admin tool stores it
    entries = [WatchlistEntry(p, "stolen") for p in MOROCCAN_LIST]
    entries.append(WatchlistEntry(listed, f"stolen car from {country}"))
    pipeline = Pipeline(reader, Tracker(min_reads=2), Matcher(entries), "cam-1")
    hits = []
    for index in range(3):
        image = _frame(country, groups, seed=index + 1)
        hits += pipeline.process(Frame(index, 1000.0 + index * 0.1, index * 0.1, image))
    assert [h.match.entry.plate for h in hits] == [listed]
    assert hits[0].match.entry.reason == f"stolen car from {country}"


def test_an_unknown_layout_read_is_reported_with_its_format(reader: ModelPlateReader) -> None:
    reads = reader.read(_frame("AT", ["W", "12345", "A"], seed=2))
    assert [(r.text, r.format) for r in reads] == [("W12345A", "UNKNOWN")]


def test_keep_unknown_off_drops_reads_of_unknown_layouts() -> None:
    reader = ModelPlateReader(MODELS, keep_unknown=False)
    assert reader.read(_frame("AT", ["W", "12345", "A"], seed=2)) == []


def test_an_unknown_read_in_a_box_cut_by_the_frame_edge_is_dropped(
    reader: ModelPlateReader,
) -> None:
    image = _frame("AT", ["W", "12345", "A"], seed=2)
    shifted = np.full_like(image, 70)
    shifted[:, :-560] = image[:, 560:]  # the plate now starts at the left edge
    assert all(r.format != "UNKNOWN" for r in reader.read(shifted))


def _plate_near_the_left_edge(seed: int, x: int) -> tuple[Image, tuple[int, int, int, int]]:
    """An Austrian plate (a layout the grammar does not know) ``x`` px from the left edge
    of a photo (cut by it when ``x`` is negative), and a detector box loose around it."""
    plate = render_wide_plate("AT", ["W", "12345", "A"], False, np.random.default_rng(seed), 44)
    h, w = plate.shape[:2]
    frame = np.full((480, 640, 3), 70, np.uint8)
    frame[150:330, 0:400] = (40, 40, 120)  # the car
    y = 220
    frame[y : y + h, max(0, x) : x + w] = plate[:, max(0, -x) :]
    return frame, (0, y - 30, x + w + 40, h + 60)


@pytest.mark.parametrize("seed", [1, 2])
def test_an_unknown_read_at_the_frame_edge_whose_whole_plate_is_found_is_reported(
    seed: int,
) -> None:
    """A photo's plate a few pixels from its edge: the box snapped to the plate's whole
    paper shows that no edge cuts it, so the sure read of an unknown layout is kept."""
    frame, loose = _plate_near_the_left_edge(seed, x=8)
    for snap in (False, True):
        reader = ModelPlateReader(MODELS, detector=FixedBoxes([loose]), snap_boxes=snap)
        texts = [r.text for r in reader.read(frame)]
        assert texts == (["W12345A"] if snap else [])


def test_an_unknown_read_of_a_plate_cut_by_the_frame_edge_is_dropped_though_snapped() -> None:
    frame, loose = _plate_near_the_left_edge(1, x=-30)
    reader = ModelPlateReader(MODELS, detector=FixedBoxes([loose]), snap_boxes=True)
    assert all(r.format != "UNKNOWN" for r in reader.read(frame))

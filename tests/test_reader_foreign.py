"""A foreign car on a Moroccan watchlist alerts, through the whole reading pipeline.

Real parts: the shipped detector and recogniser, the tracker, the matcher and
``agent.pipeline.Pipeline``; the plate is rendered (agent.synth.europe) on a
car-coloured patch of a 1280 x 720 frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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

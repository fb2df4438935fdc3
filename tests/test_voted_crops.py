"""A crop still read unsure after its turned and straightened views takes the text its
views' reads vote for (photos' crops only: ``tilted_plates`` / ``rectified_plates``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.frames import Image
from agent.reader.pipeline import ModelPlateReader

MODELS = Path(__file__).resolve().parent.parent / "models"
CROP_SHAPE = (40, 120)


class _ReadsTheCropAsIs:
    """A recogniser double: the crop exactly as given reads ``as_is``, every other view
    of it (with margins, turned, straightened) reads ``other``."""

    version = "double"

    def __init__(self, as_is: tuple[str, float], other: tuple[str, float]) -> None:
        self.as_is, self.other = as_is, other
        self.reads = 0

    def read(self, crop: Image) -> tuple[str, float]:
        return self.read_best(crop)

    def read_best(self, crop: Image | np.ndarray) -> tuple[str, float]:
        self.reads += 1
        return self.as_is if crop.shape[:2] == CROP_SHAPE else self.other

    def alternatives(self, raw: str) -> list[str]:
        return []


def _reader(double: _ReadsTheCropAsIs) -> ModelPlateReader:
    reader = ModelPlateReader(MODELS, wide_view=True, tilted_plates=True, rectified_plates=True)
    reader.recogniser = double
    return reader


def _crop() -> Image:
    return np.random.default_rng(3).integers(0, 256, (*CROP_SHAPE, 3), dtype=np.uint8)


def test_the_text_most_views_read_replaces_an_unsure_read_one_stray_character_longer() -> None:
    """The crop read unsure with a stray eighth character; its padded and turned views
    read the plate without it, surely. Neither pick takes them (the fuller read wins the
    crop's views; a turned read may not be shorter); the vote does."""
    double = _ReadsTheCropAsIs(("WB884WZ", 0.6), ("WB84WZ", 0.9))
    text, fmt, confidence, alternatives = _reader(double).read_crop_alternatives(_crop())
    assert (text, fmt) == ("WB-84-WZ", "EU")
    assert confidence == pytest.approx(0.9)  # the mean of the reads that voted for it
    assert alternatives == ("WB-884-WZ",)


def test_the_vote_does_not_cut_a_read_by_more_than_one_character() -> None:
    double = _ReadsTheCropAsIs(("48213د27", 0.6), ("213د27", 0.95))
    assert _reader(double).read_crop(_crop())[0] == "48213-D-27"


def test_a_vote_of_one_sure_read_does_not_count() -> None:
    """Under two sure reads' worth of confidence (here at most seven reads of 0.1) the unsure
    read stays."""
    double = _ReadsTheCropAsIs(("WB884WZ", 0.6), ("WB84WZ", 0.1))
    assert _reader(double).read_crop(_crop())[0] == "WB-884-WZ"


def test_a_sure_crop_read_costs_no_vote() -> None:
    double = _ReadsTheCropAsIs(("WB84WZ", 0.95), ("WB84WZ", 0.95))
    reader = _reader(double)
    assert reader.read_crop(_crop())[0] == "WB-84-WZ"
    assert double.reads == 2  # the crop and its padded view, nothing turned or voted

"""Shared fixtures: a real local Mosquitto, an MQTT config pointing at it, an HQ database URL."""

from __future__ import annotations

import csv
import importlib.util
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import av
import numpy as np
import pytest

from agent.broker import LocalBroker
from agent.config import DEFAULT_SAMPLES_DIR, MqttConfig
from agent.evidence.rig import EvidenceRig
from agent.frames import Image
from agent.reads import Box, box_iou
from agent.synth.plates import render_plate

WaitUntil = Callable[..., bool]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A fresh broker per test (it starts in ~30 ms), so no session leaks between tests."""
    with LocalBroker(workdir=tmp_path / "broker") as running:
        yield running


@pytest.fixture
def mqtt_config(broker: LocalBroker) -> MqttConfig:
    """Short timers so resends and reconnects happen within a test's patience."""
    return MqttConfig(
        host=broker.host,
        port=broker.port,
        keepalive_s=5,
        ack_timeout_s=2.0,
        reconnect_max_s=1.0,
    )


@pytest.fixture
def tmp_db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hq' / 'hq.sqlite'}"


def _wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture
def wait_until() -> WaitUntil:
    """``wait_until(predicate, timeout=10.0)``: poll until true; False if the time ran out."""
    return _wait_until


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[EvidenceRig]:
    """Device keys, an enrolled HQ and synthetic frames for the evidence tests."""
    made = EvidenceRig(tmp_path)
    yield made
    made.close()


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """``main`` points the root logger at this test's stderr; put the old handlers back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def plate_in_frame(text: str, seed: int) -> tuple[Image, Box]:
    """A 640 x 360 frame with one rendered plate in a dark recess on a car body, and the
    plate's box: a photo the shipped models read."""
    rng = np.random.default_rng(seed)
    frame = np.full((360, 640, 3), 90, np.uint8)
    frame[150:330, 120:520] = (120, 60, 30)
    plate = render_plate(text, rng, height=40)
    h, w = plate.shape[:2]
    x, y = 320 - w // 2, 230
    frame[y - 10 : y + h + 10, x - 14 : x + w + 14] = 25
    frame[y : y + h, x : x + w] = plate
    return frame, (x, y, w, h)


def plates_found(reader: Any, photos: list[tuple[Image, list[Box]]], iou: float = 0.5) -> int:
    """How many of the photos' plates (each photo with its plates' boxes) get a box of
    ``reader.read_boxes`` (a ``ModelPlateReader``) overlapping them at least ``iou``."""
    count = 0
    for photo, plates in photos:
        boxes = [r.box for r in reader.read_boxes(photo)]
        count += sum(any(box_iou(b, plate) >= iou for b in boxes) for plate in plates)
    return count


class FixedBoxes:
    """A detector double that finds the same boxes in every frame (the reader's other
    stages stay real)."""

    def __init__(self, boxes: list[Box]) -> None:
        self.boxes = boxes

    def detect(self, image: Image) -> list[tuple[Box, float]]:
        return [(box, 0.9) for box in self.boxes]


DetectorRun = tuple[tuple[int, ...], bool]
"""One detector model run: the shape of the image letterboxed for it, and whether it
reused the input of the run before (the grey pass on the colour pass's frame)."""


def magenta_frame(height: int, width: int) -> Image:
    """A frame under a night's magenta cast (sodium lamps, tail lights; cast strength about
    2): the detector's grey pass runs on it, as on no daylight frame."""
    return np.full((height, width, 3), (150, 40, 160), np.uint8)


@pytest.fixture
def detector_runs(monkeypatch: pytest.MonkeyPatch) -> list[DetectorRun]:
    """Every run of any ``ModelDetector``'s model from now on, in order."""
    from agent.reader.backend import QuantizedModel
    from agent.reader.detector import ModelDetector

    runs: list[DetectorRun] = []
    letterboxed: list[tuple[int, ...]] = []
    real_letterbox, real_invoke = ModelDetector.letterbox, QuantizedModel.invoke

    def letterbox(self: ModelDetector, image: Any, *args: Any, **kwargs: Any) -> float:
        letterboxed.append(image.shape[:2])
        return real_letterbox(self, image, *args, **kwargs)

    def invoke(self: QuantizedModel, data: Any) -> Any:
        if data.shape[-1] == 3:  # the detector's input; the recogniser's is grey, 1 channel
            fresh = bool(letterboxed)
            runs.append((letterboxed[-1] if fresh else runs[-1][0], not fresh))
            letterboxed.clear()
        return real_invoke(self, data)

    monkeypatch.setattr(ModelDetector, "letterbox", letterbox)
    monkeypatch.setattr(QuantizedModel, "invoke", invoke)
    return runs


@pytest.fixture
def views_per_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many views (crops of one plate) each of any ``ModelPlateReader``'s reads took,
    from now on, in order: the views its recogniser read, not those it was given (a box
    that reads nothing is not read in its later views)."""
    from agent.reader.pipeline import ModelPlateReader

    views: list[int] = []
    real_read_views = ModelPlateReader._read_views

    def counting(self: ModelPlateReader, crops: list[Image], *args: Any, **kwargs: Any) -> Any:
        recogniser = self.recogniser
        real_best = recogniser.read_best
        read: list[Image] = []

        def read_best(view: Image) -> Any:
            read.append(view)
            return real_best(view)

        monkeypatch.setattr(recogniser, "read_best", read_best)
        try:
            return real_read_views(self, crops, *args, **kwargs)
        finally:
            monkeypatch.setattr(recogniser, "read_best", real_best)
            views.append(len(read))

    monkeypatch.setattr(ModelPlateReader, "_read_views", counting)
    return views


@pytest.fixture(scope="session")
def clip_frames() -> list[Image]:
    """Every frame of the bundled sample clip (1280 x 720 street video), decoded once."""
    with av.open(str(DEFAULT_SAMPLES_DIR / "street_clip.mp4")) as container:
        return [
            np.asarray(f.to_ndarray(format="bgr24"), np.uint8) for f in container.decode(video=0)
        ]


def load_script(name: str) -> ModuleType:
    """``scripts/NAME.py`` imported as module ``NAME`` (the scripts are no package)."""
    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def write_manifest(folder: Path, header: list[str], rows: list[list[object]]) -> None:
    """``folder/manifest.csv`` (``folder`` made) with ``header`` and ``rows``: a small
    datasets tree in the shared sets' layout."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)

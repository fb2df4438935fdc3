"""Deep reads: the photo reader reads video frames that show a plate, in a worker process.

The camera's quick video read misses plates the photo reader (``raqib read``) reads.
With ``reader.deep_reads`` a frame in which the video read saw a plate is read again,
one frame at a time, by the photo reader in a worker process (the shipped models, real
inference), and its reads decide their tracks: the officer is alerted on the photo
reader's text. The worker never holds the video loop up, and a worker that dies or
cannot load its models costs the deep reads, not the camera.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import plate_in_frame

from agent.cli import main
from agent.config import ReaderConfig
from agent.deep_reads import DeepReads, one_frame_tracks
from agent.frames import Frame
from agent.pipeline import Pipeline
from agent.reader.pipeline import ModelPlateReader
from agent.reads import PlateRead, WatchlistEntry
from agent.tracking import Tracker
from agent.watchlist.matcher import Matcher

LISTED = "48213-D-27"
WAIT_S = 30.0


def plate_frame(text: str = LISTED, seed: int = 0) -> np.ndarray:
    return plate_in_frame(text, seed)[0]


def frame(index: int, image: np.ndarray) -> Frame:
    return Frame(index, 100.0 + index * 0.04, index * 0.04, image)


def read(text: str, conf: float, box: tuple[int, int, int, int] = (10, 10, 100, 25)) -> PlateRead:
    return PlateRead(text, "MA", conf, box)


def wait_for(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def deep() -> Iterator[DeepReads]:
    worker = DeepReads(ReaderConfig(), restart_s=0.0)
    assert wait_for(lambda: worker.idle), "the worker did not load the shipped models"
    yield worker
    worker.close()


def finished_reads(worker: DeepReads) -> list[tuple[Frame, list[PlateRead]]]:
    done: list[tuple[Frame, list[PlateRead]]] = []
    assert wait_for(lambda: bool(done.extend(worker.finished()) or done))
    return done


def assert_reads_the_listed_plate_again(worker: DeepReads, index: int) -> None:
    """After a fault: the worker, idle again, takes frame ``index`` and reads its plate."""
    assert wait_for(lambda: worker.idle)
    assert worker.offer(frame(index, plate_frame()))
    assert LISTED in {r.text for _, reads in finished_reads(worker) for r in reads}


# --- the tracker: deep reads decide their tracks ---------------------------------------


def test_a_deep_read_outvotes_any_number_of_video_reads_of_its_track() -> None:
    tracker = Tracker(gap_s=1.0, min_reads=2)
    for i in range(10):
        tracker.observe([read("48213-D-21", 0.9)], 100 + i * 0.04, i)
    changed = tracker.observe([read(LISTED, 0.7, (50, 60, 90, 22))], 100.1, 3, decisive=True)
    assert [t.text for t in changed] == [LISTED]
    voted = changed[0]
    assert voted.confidence == pytest.approx(0.7)  # the deep reads' own mean
    assert voted.alternatives[0] == "48213-D-21"  # the video's text is still tried
    assert voted.box == (50, 60, 90, 22) and voted.frame_index == 3  # the frame read deep
    # Later video reads of the old text do not take the track back.
    assert tracker.observe([read("48213-D-21", 0.99)], 100.5, 12) == []


def test_one_deep_read_confirms_a_track_the_video_never_read() -> None:
    tracker = Tracker(gap_s=1.0, min_reads=3)
    assert [t.text for t in tracker.observe([read(LISTED, 0.8)], 100.0, 0, decisive=True)] == [
        LISTED
    ]
    assert tracker.provisional == []


def test_a_late_deep_read_does_not_age_its_track() -> None:
    tracker = Tracker(gap_s=1.0, min_reads=2)
    tracker.observe([read(LISTED, 0.9)], 100.0, 0)
    tracker.observe([read(LISTED, 0.9)], 100.9, 22)
    tracker.observe([read(LISTED, 0.95)], 100.2, 5, decisive=True)  # frame 5, read late
    assert tracker.open_tracks == 1
    tracker.observe([], 101.5, 37)  # 0.6 s after the last frame it was seen in: still open
    assert tracker.open_tracks == 1


def test_a_deep_read_joins_the_track_of_the_video_read_it_overlaps_in_its_frame() -> None:
    """One vehicle, one track, however far apart the two texts are."""
    tracker = Tracker(gap_s=1.0, min_reads=2)
    for i in range(3):
        tracker.observe([read("213-D-27", 0.9, (10, 10, 80, 20))], 100 + i * 0.04, i)
    (voted,) = tracker.observe([read(LISTED, 0.97, (8, 9, 100, 24))], 100.05, 1, decisive=True)
    assert voted.text == LISTED and voted.alternatives[0] == "213-D-27"
    assert tracker.open_tracks == 1
    # Another plate elsewhere in the frame: a track of its own.
    tracker.observe([read("XY-456-ZT", 0.97, (400, 300, 100, 24))], 100.05, 2, decisive=True)
    assert tracker.open_tracks == 2
    # A frame the video did not read: the deep read joins the track its text leads.
    tracker.observe([read(LISTED, 0.9, (30, 12, 100, 24))], 100.2, 9, decisive=True)
    assert tracker.open_tracks == 2


def test_a_track_is_settled_by_one_sure_deep_read_or_two_unsure_ones() -> None:
    tracker = Tracker(gap_s=1.0, min_reads=2)
    tracker.observe([read("213-D-27", 0.9)], 100.0, 0)
    assert not tracker.settled("213-D-27")  # no deep read yet
    tracker.observe([read(LISTED, 0.6)], 100.0, 0, decisive=True)
    assert not tracker.settled("213-D-27")  # one unsure deep read: worth a second
    tracker.observe([read(LISTED, 0.7)], 100.1, 2, decisive=True)
    assert tracker.settled("213-D-27") and tracker.settled(LISTED)
    tracker.observe([read("AB-123-CD", 0.95, (500, 10, 90, 20))], 100.2, 5, decisive=True)
    assert tracker.settled("AB-123-CD") and not tracker.settled("XY-999-ZZ")


def test_one_frame_read_both_ways_keeps_the_deep_text_and_the_video_plates_it_did_not_read() -> (
    None
):
    video = [read("213-D-27", 0.9, (10, 10, 80, 20)), read("AB-123-CD", 0.95, (300, 10, 90, 20))]
    deep = [read(LISTED, 0.97, (8, 9, 100, 24))]
    kept = {r.text: r for r in one_frame_tracks(video, deep)}
    assert set(kept) == {LISTED, "AB-123-CD"}
    assert kept[LISTED].box == (8, 9, 100, 24) and kept[LISTED].alternatives == ("213-D-27",)
    elsewhere = [read(LISTED, 0.97, (600, 300, 100, 24))]  # no video read there
    assert {r.text for r in one_frame_tracks(video, elsewhere)} == {
        LISTED,
        "213-D-27",
        "AB-123-CD",
    }


# --- the worker ------------------------------------------------------------------------


def test_the_worker_reads_a_frame_as_raqib_read_does_and_gives_back_the_frame(
    deep: DeepReads,
) -> None:
    image = plate_frame()
    offered = frame(7, image)
    assert deep.offer(offered)
    assert not deep.offer(frame(8, image))  # busy: refused at once, not queued
    ((back, reads),) = finished_reads(deep)
    assert back is offered
    photo = ModelPlateReader.from_config(ReaderConfig(), stills=True)
    assert [(r.text, r.box) for r in reads] == [(r.text, r.box) for r in photo.read(image)]
    assert LISTED in {r.text for r in reads}
    assert deep.stats.read == 1 and deep.stats.busy == 1 and deep.stats.read_ms_ema > 0
    assert deep.idle


def test_a_frame_the_reader_refuses_costs_that_frame_only(
    deep: DeepReads, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agent.deep_reads"):
        assert deep.offer(frame(1, np.zeros((4, 4, 3), np.uint8)))
        assert wait_for(lambda: bool(deep.finished()) or deep.stats.errors == 1)
    assert deep.stats.errors == 1
    assert "frame not read" in caplog.text
    assert_reads_the_listed_plate_again(deep, 2)


def test_a_killed_worker_is_logged_and_started_again(
    deep: DeepReads, caplog: pytest.LogCaptureFixture
) -> None:
    assert deep.offer(frame(1, plate_frame()))
    assert deep.pid is not None
    os.kill(deep.pid, signal.SIGKILL)
    with caplog.at_level(logging.ERROR, logger="agent.deep_reads"):
        assert wait_for(lambda: not deep.finished() and not deep.running, 5)
    assert "worker lost" in caplog.text and "exit code -9" in caplog.text
    assert not deep.offer(frame(2, plate_frame()))  # this offer starts another worker
    assert deep.stats.restarts == 1
    assert_reads_the_listed_plate_again(deep, 3)


def test_a_worker_without_models_turns_deep_reads_off_with_a_clear_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    worker = DeepReads(ReaderConfig(models_dir=tmp_path))
    try:
        with caplog.at_level(logging.ERROR, logger="agent.deep_reads"):
            assert wait_for(lambda: not worker.idle and not worker.running)
        assert "deep reads off" in caplog.text and str(tmp_path) in caplog.text
        assert not worker.offer(frame(1, plate_frame()))
    finally:
        worker.close()


# --- the pipeline ----------------------------------------------------------------------


class BlurredVideoReader:
    """The camera's quick read of the plate: it sees it and drops the first two digits."""

    plate_unread = False

    def read(self, image: object) -> list[PlateRead]:
        del image
        return [read("213-D-27", 0.9, (262, 232, 116, 40))]


class UnreadVideoReader:
    """The camera's quick read finds the plate's box but reads nothing there."""

    plate_unread = True

    def read(self, image: object) -> list[PlateRead]:
        del image
        return []


def run_pipeline(
    deep: DeepReads | None, frames: int = 400, reader: object | None = None
) -> tuple[Pipeline, list[int]]:
    pipeline = Pipeline(
        reader or BlurredVideoReader(),  # type: ignore[arg-type]
        Tracker(gap_s=30.0, min_reads=2),
        Matcher([WatchlistEntry(LISTED, "stolen", "DGSN-1")]),
        "cam-test-01",
        deep=deep,
    )
    image = plate_frame()
    hit_frames = []
    for index in range(frames):
        for hit in pipeline.process(frame(index, image)):
            assert hit.read.text == LISTED and hit.crop_jpeg[:2] == b"\xff\xd8"
            hit_frames.append(hit.read.frame_index)
        if hit_frames:
            break
        time.sleep(0.02)
    return pipeline, hit_frames


def test_a_plate_the_video_misreads_alerts_on_its_deep_read(deep: DeepReads) -> None:
    pipeline, hit_frames = run_pipeline(deep)
    assert hit_frames == [0]  # the first frame showing the plate, read deep
    assert pipeline.stats.deep_hits == 1
    assert deep.stats.taken >= 1 and deep.stats.read >= 1


def test_a_plate_the_camera_finds_but_cannot_read_alerts_on_its_deep_read(
    deep: DeepReads,
) -> None:
    pipeline, hit_frames = run_pipeline(deep, reader=UnreadVideoReader())
    assert hit_frames == [0] and pipeline.stats.deep_hits == 1


def test_a_plate_settled_by_a_sure_deep_read_is_not_read_deep_again(deep: DeepReads) -> None:
    """The worker goes to the cars it has not read, not to the one that stays in view."""
    pipeline, hit_frames = run_pipeline(deep)
    assert hit_frames == [0]
    image = plate_frame()
    for index in range(1, 60):
        assert pipeline.process(frame(index, image)) == []
        time.sleep(0.01)
    assert deep.stats.taken == 1 and deep.stats.read == 1
    assert pipeline.tracker.settled("213-D-27")  # the video's text joins the settled track


def test_a_deep_read_finished_after_the_last_frame_still_alerts(deep: DeepReads) -> None:
    """The camera stalls or the file ends while a frame is read deep: the daemon polls."""
    pipeline = Pipeline(
        BlurredVideoReader(),  # type: ignore[arg-type]
        Tracker(gap_s=30.0, min_reads=2),
        Matcher([WatchlistEntry(LISTED, "stolen", "DGSN-1")]),
        "cam-test-01",
        deep=deep,
    )
    assert pipeline.process(frame(0, plate_frame())) == []
    assert deep.stats.taken == 1
    hits = pipeline.poll(WAIT_S)
    assert [(h.read.text, h.read.frame_index) for h in hits] == [(LISTED, 0)]
    assert pipeline.poll() == []


def test_without_deep_reads_the_misread_plate_does_not_alert() -> None:
    pipeline, hit_frames = run_pipeline(None, frames=20)
    assert hit_frames == [] and pipeline.stats.tracks >= 1


# --- the benchmark ---------------------------------------------------------------------


def test_bench_deep_prints_what_the_worker_costs_and_reads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``raqib bench deep``: the sample clip at the camera's pace without and with deep
    reads, in one run (about 30 s)."""
    assert main(["bench", "deep", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for side in ("off", "on"):
        assert figures[f"deep_{side}_frames_read"] + figures[f"deep_{side}_frames_dropped"] == 332
        assert figures[f"deep_{side}_frame_ms_p99"] >= figures[f"deep_{side}_frame_ms_p50"] > 0
    assert figures["deep_on_hits"] >= figures["deep_off_hits"] >= 1
    assert 1 <= figures["deep_on_frames_read_deep"] < figures["deep_on_frames_read"]
    assert 1 <= figures["deep_on_vehicles_read_deep"] <= figures["deep_on_vehicles"] == 8
    assert figures["deep_lag_ms"] >= figures["deep_read_ms"] > 0  # the lag holds the read

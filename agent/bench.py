"""`raqib bench [SECTION]`: the one place where speed is measured.

Each section returns a mapping of figure names to numbers; later capabilities
add their own section to ``SECTIONS``. Figures are measured in one run on the
machine at hand; compare ratios within a run, not absolute numbers across
machines.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterator

import numpy as np

from agent.capture.factory import open_source
from agent.capture.queue import FrameQueue
from agent.capture.worker import CaptureWorker
from agent.config import DEFAULT_SAMPLES_DIR, CaptureConfig, RaqibConfig, ReaderConfig
from agent.daemon import make_reader
from agent.deep_reads import DeepReads
from agent.errors import ModelError
from agent.evidence.bench import bench_evidence
from agent.frames import Frame
from agent.latency import bench_alert_latency
from agent.pipeline import Pipeline
from agent.reader.bench import bench_alternatives, bench_reader
from agent.reads import PlateRead
from agent.tracking import Tracker
from agent.transport.bench import bench_transport
from agent.watchlist.admin import read_csv
from agent.watchlist.bench import bench_section as bench_watchlist
from agent.watchlist.matcher import Matcher

Figures = dict[str, float]
SAMPLE_CLIP = DEFAULT_SAMPLES_DIR / "street_clip.mp4"
SAMPLE_TRUTH = DEFAULT_SAMPLES_DIR / "street_clip.truth.json"
DEEP_START_S = 60.0


def _captured(capture: CaptureConfig, queue: FrameQueue) -> Iterator[Frame]:
    """Every frame a capture thread puts in ``queue`` (as the daemon's), until its source ends."""
    worker = CaptureWorker(lambda: open_source(capture), queue)
    worker.start()
    try:
        while True:
            frame = queue.get(1.0)
            if frame is not None:
                yield frame
            elif queue.closed:
                return
    finally:
        worker.stop()


def bench_pipeline(config: RaqibConfig) -> Figures:
    """Frames per second through capture → reader → tracker → matcher on the sample clip.

    The capture thread decodes while the main thread reads plates, as in the
    daemon (two cores); the queue is large enough that no frame is dropped, so
    every frame of the clip is read.
    """
    cfg = config.capture.model_copy(update={"realtime": False, "loop": False})
    reader = make_reader(config)
    tracker = Tracker(config.tracker.gap_s, config.tracker.min_reads, config.tracker.retention_s)
    matcher = Matcher(read_csv(DEFAULT_SAMPLES_DIR / "watchlist.csv"))
    pipeline = Pipeline(
        reader,
        tracker,
        matcher,
        config.device.id,
        fast_min_confidence=config.tracker.fast_alert_threshold,
    )
    queue = FrameQueue(10_000)
    start = time.perf_counter()
    hits = sum(len(pipeline.process(frame)) for frame in _captured(cfg, queue))
    elapsed = time.perf_counter() - start
    frames = pipeline.stats.frames
    return {
        "pipeline_fps": round(frames / elapsed, 1),
        "pipeline_frames": frames,
        "pipeline_hits": hits,
        "frames_dropped": queue.stats().dropped,
        **bench_alert_latency(config),
    }


def _clip_at_camera_pace(config: RaqibConfig, deep: DeepReads | None) -> Figures:
    """The sample clip paced at its 25 fps through the daemon's queue (frames dropped when
    the loop falls behind): each frame's time in the pipeline, what was dropped, the hits,
    and which of the clip's vehicles had a frame read deep."""
    cfg = config.capture.model_copy(
        update={"uri": str(SAMPLE_CLIP), "realtime": True, "loop": False}
    )
    pipeline = Pipeline(
        make_reader(config),
        Tracker(config.tracker.gap_s, config.tracker.min_reads, config.tracker.retention_s),
        Matcher(read_csv(DEFAULT_SAMPLES_DIR / "watchlist.csv")),
        config.device.id,
        fast_min_confidence=config.tracker.fast_alert_threshold,
        deep=deep,
    )
    queue = FrameQueue(config.capture.queue_size)
    frame_ms: list[float] = []
    hits: set[str] = set()
    for frame in _captured(cfg, queue):
        started = time.perf_counter()
        hits.update(hit.match.entry.plate for hit in pipeline.process(frame))
        frame_ms.append((time.perf_counter() - started) * 1000)
    vehicles = json.loads(SAMPLE_TRUTH.read_text(encoding="utf-8"))["vehicles"]
    read_deep = set(deep.frames) if isinstance(deep, _RecordedDeepReads) else set()
    return {
        "frame_ms_p50": round(float(np.percentile(frame_ms, 50)), 2),
        "frame_ms_p99": round(float(np.percentile(frame_ms, 99)), 2),
        "frames_read": len(frame_ms),
        "frames_dropped": queue.stats().dropped,
        "hits": len(hits),
        "frames_read_deep": len(read_deep),
        "vehicles": len(vehicles),
        "vehicles_read_deep": sum(
            any(v["first_frame"] <= i <= v["last_frame"] for i in read_deep) for v in vehicles
        ),
    }


class _RecordedDeepReads(DeepReads):
    """Deep reads that remember which frames they read (the bench's coverage figure)."""

    def __init__(self, config: ReaderConfig) -> None:
        super().__init__(config)
        self.frames: list[int] = []

    def finished(self, wait_s: float = 0.0) -> list[tuple[Frame, list[PlateRead]]]:
        done = super().finished(wait_s)
        self.frames.extend(frame.index for frame, _ in done)
        return done


def bench_deep_reads(config: RaqibConfig) -> Figures:
    """Deep reads (``reader.deep_reads``) on the sample clip at the camera's pace, in one
    run without and with them: what the worker costs the video loop on this machine's
    cores, how many frames it reads and how late, and the hits. The worker's start (its
    models loading) is not timed: the daemon starts it once."""
    off = _clip_at_camera_pace(config, None)
    deep = _RecordedDeepReads(config.reader)
    try:
        deadline = time.monotonic() + DEEP_START_S
        while not deep.idle and deep.running and time.monotonic() < deadline:
            time.sleep(0.05)
        if not deep.idle:
            raise ModelError("deep reads: the worker did not start (see the log)")
        on = _clip_at_camera_pace(config, deep)
    finally:
        deep.close()
    return {
        **{f"deep_off_{k}": v for k, v in off.items() if "deep" not in k},
        **{f"deep_on_{k}": v for k, v in on.items()},
        "deep_frame_ms_p99_ratio": round(on["frame_ms_p99"] / max(off["frame_ms_p99"], 1e-9), 2),
        "deep_read_ms": round(deep.stats.read_ms_ema, 1),
        "deep_lag_ms": round(deep.stats.lag_ms_ema, 1),
        "deep_busy_offers": deep.stats.busy,
    }


SECTIONS: dict[str, Callable[[RaqibConfig], Figures]] = {
    "pipeline": bench_pipeline,
    "deep": bench_deep_reads,
    "reader": bench_reader,
    "alternatives": bench_alternatives,
    "transport": bench_transport,
    "watchlist": bench_watchlist,
    "evidence": bench_evidence,
}


def machine_description() -> str:
    return f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


def run_bench(config: RaqibConfig, section: str | None) -> Figures:
    """Run one section, or all of them in order."""
    names = [section] if section else list(SECTIONS)
    figures: Figures = {}
    for name in names:
        figures.update(SECTIONS[name](config))
    return figures

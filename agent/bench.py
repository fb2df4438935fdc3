"""`raqib bench [SECTION]`: the one place where speed is measured.

Each section returns a mapping of figure names to numbers; later capabilities
add their own section to ``SECTIONS``. Figures are measured in one run on the
machine at hand; compare ratios within a run, not absolute numbers across
machines.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

from agent.capture.factory import open_source
from agent.capture.queue import FrameQueue
from agent.capture.worker import CaptureWorker
from agent.config import DEFAULT_SAMPLES_DIR, RaqibConfig
from agent.daemon import make_reader
from agent.evidence.bench import bench_evidence
from agent.latency import bench_alert_latency
from agent.pipeline import Pipeline
from agent.reader.bench import bench_alternatives, bench_reader
from agent.tracking import Tracker
from agent.transport.bench import bench_transport
from agent.watchlist.admin import read_csv
from agent.watchlist.bench import bench_section as bench_watchlist
from agent.watchlist.matcher import Matcher

Figures = dict[str, float]


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
    worker = CaptureWorker(lambda: open_source(cfg), queue)
    start = time.perf_counter()
    worker.start()
    hits = 0
    while True:
        frame = queue.get(1.0)
        if frame is None:
            if queue.closed:
                break
            continue
        hits += len(pipeline.process(frame))
    elapsed = time.perf_counter() - start
    worker.stop()
    frames = pipeline.stats.frames
    return {
        "pipeline_fps": round(frames / elapsed, 1),
        "pipeline_frames": frames,
        "pipeline_hits": hits,
        "frames_dropped": queue.stats().dropped,
        **bench_alert_latency(config),
    }


SECTIONS: dict[str, Callable[[RaqibConfig], Figures]] = {
    "pipeline": bench_pipeline,
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

"""What reading only every n-th frame costs on the sample clip (the Pi 4's frame-rate fix).

``scripts/pi_estimate.py`` puts the Pi 4 reader at about 14 frames a second,
short of a 25 fps camera; ``[reader] every_nth_frame = 2`` asks it for 12.5.
The tracker then votes over the frames that are read, so what can be lost is
a vehicle seen in too few read frames, or a later alert. This script reads
every frame of ``samples/street_clip.mp4`` once with the shipped models, then
runs the real pipeline (tracker, matcher, fast alert path) over every n-th
frame, and reports against ``street_clip.truth.json``:

* ``vehicles_read``: vehicles whose plate a confirmed track read exactly;
* ``false_tracks``: confirmed tracks whose text is no vehicle's plate;
* ``hits``: watchlist hits (``samples/watchlist.csv``), the frame that raised
  each, and the mean extra alert delay against reading every frame.

    .venv/bin/python scripts/frame_skip_accuracy.py [--skips 1 2 3] [--json]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from agent.capture.replay import VideoFileSource
from agent.config import DEFAULT_SAMPLES_DIR, RaqibConfig
from agent.daemon import make_reader
from agent.frames import Frame
from agent.pipeline import Pipeline
from agent.reads import PlateRead
from agent.tracking import Tracker
from agent.watchlist.admin import read_csv
from agent.watchlist.matcher import Matcher

CLIP = DEFAULT_SAMPLES_DIR / "street_clip.mp4"
TRUTH = DEFAULT_SAMPLES_DIR / "street_clip.truth.json"


class CachedReader:
    """The reads of each frame, made once by the real reader, handed back by image."""

    def __init__(self, reads: dict[int, list[PlateRead]]) -> None:
        self._reads = reads

    def read(self, image: Any) -> list[PlateRead]:
        return self._reads[id(image)]


def run(frames: list[Frame], reads: dict[int, list[PlateRead]], skip: int) -> dict[str, Any]:
    """Tracker, matcher and fast path over every ``skip``-th frame; accuracy and hit frames."""
    config = RaqibConfig()
    truth = json.loads(TRUTH.read_text(encoding="utf-8"))
    pipeline = Pipeline(
        CachedReader(reads),  # type: ignore[arg-type]
        Tracker(config.tracker.gap_s, config.tracker.min_reads, config.tracker.retention_s),
        Matcher(read_csv(DEFAULT_SAMPLES_DIR / "watchlist.csv")),
        config.device.id,
        skip,
        fast_min_confidence=config.tracker.fast_alert_threshold,
    )
    plates = {v["plate"] for v in truth["vehicles"]}
    hit_frames: dict[str, int] = {}
    for frame in frames:
        for hit in pipeline.process(frame):
            hit_frames[hit.match.entry.plate] = frame.index
    pipeline.tracker.flush(frames[-1].timestamp)
    voted = {t.text for t in pipeline.tracker.recent(frames[-1].timestamp + 2) if t.n_reads >= 2}
    return {
        "skip": skip,
        "frames_read": pipeline.stats.frames - pipeline.stats.skipped,
        "vehicles": len(plates),
        "vehicles_read": len(plates & voted),
        "false_tracks": len(voted - plates),
        "hits": len(hit_frames),
        "hit_frames": hit_frames,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--skips", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    reader = make_reader(RaqibConfig())
    frames = list(VideoFileSource(CLIP, start_time=0.0).frames())
    reads = {id(f.image): reader.read(f.image) for f in frames}
    baseline = run(frames, reads, 1)["hit_frames"]
    for skip in args.skips:
        result = run(frames, reads, skip)
        extra = [
            (result["hit_frames"][p] - baseline[p]) * 1000 / 25
            for p in baseline
            if p in result["hit_frames"]
        ]
        result["extra_alert_delay_ms_mean"] = round(float(np.mean(extra)), 1) if extra else None
        print(json.dumps(result) if args.json else "  ".join(f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

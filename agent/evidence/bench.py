"""`raqib bench evidence`: what recording costs on this machine.

- ``rec_{720p,1080p}_encode_fps``: frames the recorder encodes per CPU second
  (colour conversion + libx264 ultrafast, one thread) while recording, with
  muxing, sealing and writing included; ``..._wall_fps`` the same per wall
  second (lower when other processes share the cores);
- ``rec_{720p,1080p}_cpu_s_per_video_s``: CPU seconds the recorder thread
  spends per second of 25 fps video (under 1.0 means it keeps up on one core;
  the rest of the core is left to the plate reader);
- ``seal_ms_per_mb`` and ``hash_ms_per_mb``: AES-256-GCM chunk sealing and
  SHA-256, per MiB of segment; ``seal_overhead_pct``: sealed size over plain
  size; ``segment_{720p,1080p}_mb``: the size of one 10 s segment;
  ``seal_hash_ms_per_segment``: both, for one 10 s segment of the clip.

The ``720p`` and ``1080p`` figures use synthetic frames (moving bars over a
gradient: easy to compress); ``rec_clip_*`` uses the first seconds of the
configured sample clip (1280x720 street footage), the realistic bitrate.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.capture.factory import open_source
from agent.config import RaqibConfig
from agent.errors import RaqibError
from agent.evidence.recorder import RecorderSettings
from agent.evidence.rig import EvidenceRig, frames
from agent.evidence.sealing import SealedWriter, new_header
from agent.evidence.store import EvidenceDir
from agent.frames import Frame

log = logging.getLogger(__name__)

Figures = dict[str, float]

FPS = 25.0
SECONDS = 4.0


def _clip_frames(config: RaqibConfig, count: int) -> list[Frame]:
    """The first ``count`` frames of the configured clip (real street footage)."""
    source = open_source(config.capture.model_copy(update={"realtime": False, "loop": False}))
    try:
        return list(itertools.islice(source.frames(), count))
    finally:
        source.close()


def _recording(video: list[Frame], root: Path) -> tuple[float, float, float, float]:
    """(encode fps per CPU, wall fps, CPU s per video s, MiB per 10 s segment) of ``video``."""
    rig = EvidenceRig(
        root,
        settings=RecorderSettings(segment_s=10.0, pre_event_s=0.0, fps=FPS),
        enrol=False,
    )
    rig.recorder.request_start("officer")
    seconds = len(video) / FPS
    cpu, wall = time.process_time(), time.perf_counter()
    for frame in video:
        rig.recorder.feed(frame)
    rig.recorder.finish()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    size = sum(s.size for s in rig.ledger.segments())
    rig.close()
    return len(video) / cpu, len(video) / wall, cpu / seconds, size / 2**20 * 10.0 / seconds


def _sealing(root: Path) -> Figures:
    data = os.urandom(8 * 2**20)
    header, key = new_header(
        X25519PrivateKey.generate().public_key(),
        device="bench",
        segment=1,
        recording="bench",
        part=0,
        started_at=0.0,
    )
    store = EvidenceDir(root / "seal")
    path, fd = store.create_partial("bench.rqseg")
    start = time.perf_counter()
    writer = SealedWriter(fd, header, key, reserve=store.reserve, sync_s=3600.0)
    writer.write(data)
    writer.finish()
    sealed = time.perf_counter() - start
    os.close(fd)
    start = time.perf_counter()
    hashlib.sha256(path.read_bytes()).hexdigest()
    hashed = time.perf_counter() - start
    return {
        "seal_ms_per_mb": round(sealed * 1000 / 8, 2),
        "hash_ms_per_mb": round(hashed * 1000 / 8, 2),
        "seal_overhead_pct": round((writer.size / len(data) - 1) * 100, 3),
    }


def bench_evidence(config: RaqibConfig) -> Figures:
    figures: Figures = {}
    with tempfile.TemporaryDirectory(prefix="raqib-bench-evidence-") as tmp:
        root = Path(tmp)
        videos = {
            "720p": list(frames(SECONDS, width=1280, height=720, fps=FPS)),
            "1080p": list(frames(SECONDS, width=1920, height=1080, fps=FPS)),
        }
        try:
            videos["clip"] = _clip_frames(config, round(SECONDS * FPS))
        except RaqibError as exc:
            log.warning("bench evidence: sample clip not used: %s", exc)
        for name in list(videos):
            fps, wall_fps, cpu, mb = _recording(videos.pop(name), root / name)
            figures[f"rec_{name}_encode_fps"] = round(fps, 1)
            figures[f"rec_{name}_wall_fps"] = round(wall_fps, 1)
            figures[f"rec_{name}_cpu_s_per_video_s"] = round(cpu, 3)
            figures[f"segment_{name}_mb"] = round(mb, 2)
        figures.update(_sealing(root))
    per_mb = figures["seal_ms_per_mb"] + figures["hash_ms_per_mb"]
    segment_mb = figures.get("segment_clip_mb", figures["segment_720p_mb"])
    figures["seal_hash_ms_per_segment"] = round(per_mb * segment_mb, 2)
    return figures

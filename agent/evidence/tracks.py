"""What an exported segment holds: its picture and sound tracks, as a player will see them.

``raqib export`` prints this so whoever hands a file to a court can say at once
that it plays with sound, and for how long each track runs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import av
import av.error


@dataclass(frozen=True, slots=True)
class Track:
    kind: str
    codec: str
    seconds: float
    detail: str

    def describe(self) -> str:
        return f"{self.kind} {self.codec} {self.detail} {self.seconds:.2f} s"


def media_tracks(mp4: bytes) -> list[Track]:
    """Every track of an MP4 with the duration its decoded content covers (empty if unreadable)."""
    tracks = []
    try:
        with av.open(io.BytesIO(mp4)) as container:
            for stream in container.streams:
                if stream.type not in ("video", "audio"):
                    continue
                ctx: Any = stream.codec_context
                if stream.type == "video":
                    detail = f"{ctx.width}x{ctx.height}"
                else:
                    detail = f"{ctx.sample_rate} Hz {ctx.layout.name}"
                base = stream.time_base
                seconds = float(stream.duration * base) if stream.duration and base else 0.0
                tracks.append(Track(stream.type, ctx.name, seconds, detail))
    except (av.error.FFmpegError, ValueError):
        return []
    return tracks

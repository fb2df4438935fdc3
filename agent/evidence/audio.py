"""Sound for the footage: microphone chunks to AAC packets, muted or not, timed like the video.

The recorder owns one ``AudioTrack`` and calls it on its own thread:
``pump(until, origin)`` reads the microphone up to the time of the video frame
being encoded and encodes the sound to AAC-LC (what every court's player and
the MP4 standard expect with H.264); ``take(before)`` hands the packets that
belong before a video packet to the segment being written, so the two tracks
interleave in time. Packet times are on the recorder's clock (``origin`` is
the first video frame's time), so a segment's sound and picture line up.

While the officer has muted the microphone the samples are replaced by digital
silence: the track goes on (a player shows the muted span as silent, not as a
cut), and the mute itself is an entry in the ledger (the recorder's job).
Sound the microphone delivers late or not at all is padded with silence up
to ``MAX_GAP_S``; a longer gap starts a new encoder run.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

import av
import av.error
import numpy as np

from agent.errors import CaptureError
from firmware_glue.microphone import AudioChunk, Microphone

log = logging.getLogger(__name__)

CODEC: Final = "aac"
MAX_GAP_S: Final = 2.0
"""Sound missing for longer than this is a gap (a new encoder run), not padded silence."""
LATE_S: Final = 0.05
"""A chunk stamped this much after the expected time leaves a gap to fill with silence."""


@dataclass(slots=True)
class AudioStats:
    chunks: int = 0
    packets: int = 0
    seconds: float = 0.0
    muted_s: float = 0.0
    gaps: int = 0
    failed: bool = False


class AudioTrack:
    """One microphone's sound as AAC packets ``(time, packet)``, held until a segment takes them."""

    def __init__(self, microphone: Microphone, bitrate: int = 64_000) -> None:
        self.mic = microphone
        self.rate = microphone.sample_rate
        self.channels = microphone.channels
        self.bitrate = bitrate
        self.time_base = Fraction(1, self.rate)
        self.muted = False
        self.stats = AudioStats()
        self._encoder: Any = None
        self._next_pts = 0
        self._origin = 0.0
        self._pending: deque[tuple[float, Any]] = deque()
        self._muted_spans: deque[tuple[float, float]] = deque(maxlen=256)
        self._switches: deque[tuple[float, bool]] = deque()

    def start(self) -> None:
        """Open the microphone (CaptureError if it cannot be)."""
        self.mic.start()

    def close(self) -> None:
        self.mic.close()

    @property
    def failed(self) -> bool:
        return self.stats.failed

    # -- encoding ------------------------------------------------------------------------

    def pump(self, until: float, origin: float, *, keep: bool) -> None:
        """Read the microphone up to ``until``; encode the sound if ``keep``, else drop it.

        A failing microphone is reported once (``failed``) and read no more;
        the video goes on without sound.
        """
        if self.stats.failed:
            return
        try:
            chunks = self.mic.read(until)
        except CaptureError as exc:
            self.stats.failed = True
            log.error("audio: %s; recording goes on without sound", exc)
            return
        if not keep:
            self.reset()
            return
        self._origin = origin
        for chunk in chunks:
            if chunk.timestamp < origin:
                continue
            self._encode(chunk)

    def reset(self) -> None:
        """End the encoder run and forget held packets (not recording, no pre-event sound)."""
        self._encoder = None
        self._pending.clear()

    def _open(self, pts: int) -> None:
        encoder: Any = av.CodecContext.create(CODEC, "w")
        encoder.sample_rate = self.rate
        encoder.layout = "mono" if self.channels == 1 else "stereo"
        encoder.format = "fltp"
        encoder.bit_rate = self.bitrate
        encoder.time_base = self.time_base
        encoder.open()
        self._encoder = encoder
        self._next_pts = pts

    def _encode(self, chunk: AudioChunk) -> None:
        pts = round((chunk.timestamp - self._origin) * self.rate)
        gap = pts - self._next_pts
        if self._encoder is None or gap > MAX_GAP_S * self.rate or gap < -MAX_GAP_S * self.rate:
            if self._encoder is not None:
                self.stats.gaps += 1
                self._flush()
            self._open(pts)
        elif gap > LATE_S * self.rate:  # the card lost some sound: keep the clock, fill silence
            self.stats.gaps += 1
            self._encode_samples(np.zeros((gap, self.channels), np.int16))
        self.stats.chunks += 1
        self._encode_samples(self._apply_mute(chunk))

    def set_muted(self, muted: bool, at: float) -> None:
        """Mute (or unmute) the sound captured from ``at`` on, to the sample."""
        self._switches.append((at, muted))

    def _apply_mute(self, chunk: AudioChunk) -> np.ndarray[Any, Any]:
        """The chunk's samples with every muted stretch replaced by silence."""
        samples = chunk.samples
        start, n = chunk.timestamp, chunk.frames
        done = 0
        while self._switches and self._switches[0][0] < start + n / self.rate:
            at, muted = self._switches.popleft()
            cut = min(n, max(done, round((at - start) * self.rate)))
            samples = self._silence(samples, chunk, done, cut)
            done, self.muted = cut, muted
        return self._silence(samples, chunk, done, n)

    def _silence(
        self, samples: np.ndarray[Any, Any], chunk: AudioChunk, begin: int, end: int
    ) -> np.ndarray[Any, Any]:
        if not self.muted or end <= begin:
            return samples
        samples = samples.copy()
        samples[begin:end] = 0
        self.stats.muted_s += (end - begin) / self.rate
        self._note_muted(chunk.timestamp + begin / self.rate, chunk.timestamp + end / self.rate)
        return samples

    def _note_muted(self, start: float, end: float) -> None:
        spans = self._muted_spans
        if spans and start - spans[-1][1] < LATE_S:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))

    def muted_between(self, start: float, end: float) -> bool:
        """Whether any sound between ``start`` and ``end`` was muted (a segment's flag)."""
        return any(s < end and e > start for s, e in self._muted_spans)

    def _encode_samples(self, samples: np.ndarray[Any, Any]) -> None:
        planar = np.ascontiguousarray(samples.T.astype(np.float32) / 32768.0)
        layout = "mono" if self.channels == 1 else "stereo"
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate = self.rate
        frame.pts = self._next_pts
        frame.time_base = self.time_base
        self._next_pts += samples.shape[0]
        self.stats.seconds += samples.shape[0] / self.rate
        try:
            packets = self._encoder.encode(frame)
        except (av.error.FFmpegError, ValueError) as exc:
            log.error("audio: chunk not encoded: %s", exc)
            self._encoder = None
            return
        self._hold(packets)

    def _hold(self, packets: list[Any]) -> None:
        for packet in packets:
            self.stats.packets += 1
            self._pending.append((self._origin + float(packet.pts) / self.rate, packet))

    def _flush(self) -> None:
        if self._encoder is not None:
            try:
                self._hold(self._encoder.encode(None))
            except (av.error.FFmpegError, ValueError) as exc:
                log.error("audio: encoder not flushed: %s", exc)
            self._encoder = None

    def finish(self) -> None:
        """Flush the encoder's last packets (recording ends)."""
        self._flush()

    # -- handing packets to segments -------------------------------------------------------

    def take(self, before: float) -> list[Any]:
        """Held packets that start before ``before``, oldest first."""
        out = []
        while self._pending and self._pending[0][0] < before:
            out.append(self._pending.popleft()[1])
        return out

    def trim(self, oldest: float) -> None:
        """Forget held packets before ``oldest`` (the pre-event ring moved on)."""
        while self._pending and self._pending[0][0] < oldest:
            self._pending.popleft()

    @property
    def held_s(self) -> float:
        if not self._pending:
            return 0.0
        return self._pending[-1][0] - self._pending[0][0]

    def add_stream(self, container: Any) -> Any:
        """An AAC stream in ``container`` whose parameters match the packets this track makes."""
        stream = container.add_stream(
            CODEC, rate=self.rate, layout="mono" if self.channels == 1 else "stereo"
        )
        stream.codec_context.bit_rate = self.bitrate
        stream.time_base = self.time_base
        return stream

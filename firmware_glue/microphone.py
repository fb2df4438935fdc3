"""The body camera's microphone: ALSA through pyalsaaudio, or a file-backed simulator.

Both deliver ``AudioChunk`` s (signed 16-bit samples, one row per sample, one
column per channel) stamped with the wall-clock time of their first sample, and
hand over on ``read(until)`` every chunk that began before ``until`` (the
recorder asks up to the time of the video frame it is encoding, so sound and
picture share one clock).

``AlsaMicrophone`` reads the PCM on its own thread (the ALSA period is the
chunk) into a bounded buffer; ``alsaaudio`` (Debian ``python3-alsaaudio``,
PyPI ``pyalsaaudio``) is imported only when the adapter is opened, so this
module loads anywhere. ``FileMicrophone`` decodes any audio file PyAV reads,
loops it, and is driven by the recorder's clock: it never sleeps, so a test
or a replay faster than real time gets exactly the sound that belongs to the
frames it fed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import av
import av.error
import numpy as np
import numpy.typing as npt

from agent.errors import CaptureError

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16]
"""(n, channels) signed 16-bit PCM."""

PERIOD_S: Final = 0.02
"""One chunk: 20 ms (960 samples at 48 kHz), as an ALSA period."""
MAX_BUFFERED_S: Final = 10.0
"""A live microphone keeps at most this much unread sound (the oldest goes first)."""


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Consecutive samples and the wall-clock time (s since the epoch) of the first."""

    timestamp: float
    samples: Samples

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])


class Microphone(Protocol):
    """A sound source; ``read`` never blocks and raises CaptureError once the device failed."""

    name: str
    sample_rate: int
    channels: int

    def start(self) -> None: ...

    def read(self, until: float) -> list[AudioChunk]: ...

    def close(self) -> None: ...


class FileMicrophone:
    """Sound from a file, looped, timed by the caller's clock (simulator for x86 and tests).

    The first ``read(until)`` places the file's start at ``until``; each later
    call returns the samples up to its ``until`` in 20 ms chunks. ``fail_after_s``
    makes the device fail after that much sound (fault tests).
    """

    def __init__(
        self,
        path: Path,
        sample_rate: int = 48_000,
        channels: int = 1,
        *,
        fail_after_s: float | None = None,
    ) -> None:
        self.name = f"file:{path.name}"
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self._fail_after = None if fail_after_s is None else round(fail_after_s * sample_rate)
        self._pcm: Samples | None = None
        self._t0: float | None = None
        self._position = 0
        self.reads = 0

    def start(self) -> None:
        """Decode the whole file now (CaptureError if it cannot be), so reads never fail on it."""
        self._pcm = decode_pcm(self.path, self.sample_rate, self.channels)

    def read(self, until: float) -> list[AudioChunk]:
        if self._pcm is None:
            raise CaptureError(f"microphone {self.name} is not started")
        self.reads += 1
        if self._t0 is None:
            self._t0 = until
            return []
        end = round((until - self._t0) * self.sample_rate)
        if self._fail_after is not None and end > self._fail_after:
            raise CaptureError(f"microphone {self.name} stopped delivering sound")
        period = max(1, round(PERIOD_S * self.sample_rate))
        chunks = []
        while end - self._position >= period:
            chunks.append(self._chunk(self._position, period))
            self._position += period
        return chunks

    def _chunk(self, start: int, count: int) -> AudioChunk:
        pcm = self._pcm
        assert pcm is not None
        index = np.arange(start, start + count) % pcm.shape[0]
        return AudioChunk((self._t0 or 0.0) + start / self.sample_rate, pcm[index])

    def close(self) -> None:
        self._pcm = None


def decode_pcm(path: Path, sample_rate: int, channels: int) -> Samples:
    """The whole audio track of ``path`` as (n, channels) int16 at ``sample_rate``."""
    layout = "mono" if channels == 1 else "stereo"
    resampler = av.AudioResampler(format="s16", layout=layout, rate=sample_rate)
    parts: list[Samples] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise CaptureError(f"{path} has no audio stream")
            for frame in container.decode(audio=0):
                parts.extend(_interleaved(f, channels) for f in resampler.resample(frame))
            parts.extend(_interleaved(f, channels) for f in resampler.resample(None))
    except (av.error.FFmpegError, OSError) as exc:
        raise CaptureError(f"cannot read sound file {path}: {exc}") from exc
    if not parts:
        raise CaptureError(f"{path} holds no sound")
    return np.concatenate(parts)


def _interleaved(frame: Any, channels: int) -> Samples:
    """A packed s16 frame (1, n * channels) as (n, channels)."""
    return np.asarray(frame.to_ndarray(), np.int16).reshape(-1, channels)


class AlsaMicrophone:
    """A capture PCM (``default``, ``hw:1,0``, ``plughw:CARD=Device``...) read on its own thread.

    Overruns (the thread fell behind the card) are counted and logged; a read
    error ends the thread and the next ``read`` raises CaptureError so the
    recorder can tell the officer and go on without sound.
    """

    def __init__(
        self, device: str = "default", sample_rate: int = 48_000, channels: int = 1
    ) -> None:
        self.name = f"alsa:{device}"
        self.device = device
        self.sample_rate = sample_rate
        self.channels = channels
        self._period = max(1, round(PERIOD_S * sample_rate))
        self._chunks: deque[AudioChunk] = deque(maxlen=int(MAX_BUFFERED_S / PERIOD_S))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pcm: Any = None
        self._error: str | None = None
        self.overruns = 0

    def start(self) -> None:
        """Open the PCM and start reading; raises CaptureError if ALSA refuses."""
        try:
            import alsaaudio
        except ImportError as exc:
            raise CaptureError(
                "pyalsaaudio is not installed (apt install python3-alsaaudio on the Pi)"
            ) from exc
        try:
            self._pcm = alsaaudio.PCM(
                type=alsaaudio.PCM_CAPTURE,
                mode=alsaaudio.PCM_NORMAL,
                device=self.device,
                channels=self.channels,
                rate=self.sample_rate,
                format=alsaaudio.PCM_FORMAT_S16_LE,
                periodsize=self._period,
            )
        except alsaaudio.ALSAAudioError as exc:
            raise CaptureError(f"cannot open microphone {self.device}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name="microphone", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                length, data = self._pcm.read()
                now = time.time()
                if length < 0:  # -EPIPE: the card overran our buffer
                    self.overruns += 1
                    log.warning("microphone %s overrun (%d so far)", self.device, self.overruns)
                    continue
                if length == 0:
                    continue
                samples = np.frombuffer(data, np.int16).reshape(-1, self.channels).copy()
                chunk = AudioChunk(now - length / self.sample_rate, samples)
                with self._lock:
                    self._chunks.append(chunk)
        except Exception as exc:  # alsaaudio raises ALSAAudioError; no sound is not a crash
            self._error = str(exc)
            log.error("microphone %s failed: %s", self.device, exc)

    def read(self, until: float) -> list[AudioChunk]:
        with self._lock:
            if self._error is not None and not self._chunks:
                raise CaptureError(f"microphone {self.device} failed: {self._error}")
            out = []
            while self._chunks and self._chunks[0].timestamp < until:
                out.append(self._chunks.popleft())
            return out

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if self._pcm is not None:
            try:
                self._pcm.close()
            except Exception:  # closing a failed card must not hide the first error
                log.exception("microphone %s: close failed", self.device)
            self._pcm = None


def make_microphone(
    source: str, device: str, path: Path, sample_rate: int, channels: int
) -> Microphone | None:
    """The configured microphone: ``alsa``, ``file`` (simulator) or ``none``."""
    if source == "alsa":
        return AlsaMicrophone(device, sample_rate, channels)
    if source == "file":
        return FileMicrophone(path, sample_rate, channels)
    return None

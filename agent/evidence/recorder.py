"""The recorder: capture frames to H.264, a pre-event ring, and sealed MP4 segments.

It runs on its own thread with its own frame queue (a capture sink), so the
plate reader never waits for the encoder. Every frame is encoded (libx264,
ultrafast, one keyframe per ``gop_s``, parameter sets repeated at each
keyframe); while not recording the *encoded* packets are kept in a ring of
``pre_event_s`` that always starts at a keyframe (as picamera2's
``CircularOutput``). When recording starts the ring is written first, then live
packets, cut into fragmented-MP4 segments of ``segment_s`` at keyframes (a
keyframe is forced at each cut). A cut or half-written fragmented MP4 still
plays up to the last complete fragment.

Each segment is sealed as it is written (``agent.evidence.sealing``) to a
``.partial`` file, finished, fsynced and renamed (``agent.evidence.store``), and
its SHA-256 enters the ledger. Start and stop come from the officer's button,
an HQ command or a watchlist hit (which stops by itself ``post_event_s`` after
the last hit); requests are queued to the recorder thread, which alone touches
the encoder, the muxer and the files. A full disk ends the current segment
properly (a margin is kept for it), stops recording, alerts the officer and
records why in the ledger; nothing already written is lost.

With a microphone (``agent.evidence.audio``) each recorded segment also holds an
AAC track on the same clock. The pre-event ring is picture only unless
``audio_pre_event``: its footage then goes into segments of its own, and the
first live keyframe starts a segment with sound. Muting is the officer's act,
entered in the ledger; the track then carries silence.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

import av
import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.capture.queue import FrameQueue
from agent.errors import RaqibError, StorageError
from agent.evidence.audio import AudioTrack
from agent.evidence.entry import (
    FLAG_AUDIO,
    FLAG_DISK_FULL,
    FLAG_MUTED,
    FLAG_PRE_EVENT,
    FLAG_TRUNCATED,
)
from agent.evidence.errors import StorageFullError
from agent.evidence.ledger import STATE_DELETED, STATE_UPLOADED, Ledger, SegmentInfo
from agent.evidence.packets import EncodedPacket, PacketQueue
from agent.evidence.sealing import SealedWriter, new_header
from agent.evidence.store import EvidenceDir, segment_name
from agent.frames import Frame
from agent.priority import lower_this_thread
from agent.reads import GnssFix

log = logging.getLogger(__name__)

TIME_BASE: Final = Fraction(1, 1000)
MOVFLAGS: Final = "frag_keyframe+empty_moov+default_base_moof"
BY_OFFICER: Final = "officer"
BY_COMMAND: Final = "command"
BY_HIT: Final = "hit"
BY_DEVICE: Final = "device"
STALL_S: Final = 5.0
"""A segment is sealed when no frame came for this long (or ``segment_s`` if longer)."""


@dataclass(frozen=True, slots=True)
class RecorderSettings:
    segment_s: float = 10.0
    pre_event_s: float = 30.0
    post_event_s: float = 30.0
    gop_s: float = 1.0
    fps: float = 25.0
    crf: int = 26
    preset: str = "ultrafast"
    chunk_bytes: int = 64 * 1024
    sync_s: float = 1.0
    audio_pre_event: bool = False
    """Keep sound in the pre-event ring too (default: picture only, as the market's leader)."""


@dataclass(slots=True)
class RecorderStats:
    frames_encoded: int = 0
    segments: int = 0
    recording: bool = False
    ring_s: float = 0.0
    disk_full: bool = False
    errors: int = 0
    encode_cpu_s: float = 0.0
    muted: bool = False


@dataclass(slots=True)
class _Open:
    """The segment being written."""

    number: int
    name: str
    partial: Any
    fd: int
    writer: SealedWriter
    container: Any
    stream: Any
    start: float
    part: int
    end: float = 0.0
    frames: int = 0
    flags: set[str] = field(default_factory=set)
    audio_stream: Any = None
    audio_packets: int = 0


@dataclass(frozen=True, slots=True)
class _Request:
    start: bool
    by: str
    auto: bool = False
    toggle: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    mute: bool | None = None
    """A mute request: True mute, False unmute (``toggle`` with it: the mute button)."""


class Recorder:
    """Records the frames of ``frames`` into sealed segments listed in ``ledger``."""

    def __init__(
        self,
        frames: FrameQueue,
        evidence: EvidenceDir,
        ledger: Ledger,
        hq_key: X25519PublicKey,
        settings: RecorderSettings,
        *,
        device_id: str,
        gnss: Callable[[], GnssFix | None] | None = None,
        alert: Callable[[str], None] | None = None,
        audio: AudioTrack | None = None,
        packets: PacketQueue | None = None,
    ) -> None:
        """``packets``: the board's encoder feeds encoded video there and ``frames`` is unused."""
        self._frames = frames
        self._packets = packets
        self._dir = evidence
        self._ledger = ledger
        self._hq_key = hq_key
        self.settings = settings
        self._device = device_id
        self._gnss = gnss or (lambda: None)
        self._alert = alert or (lambda _msg: None)
        self._requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._encoder: Any = None
        self._size = (0, 0)
        self._t0: float | None = None
        self._last_pts = -1
        self._now = 0.0
        self._force_key = False
        self._ring: deque[tuple[float, Any]] = deque()
        self._active = False
        self._auto_until: float | None = None
        self._recording_id = ""
        self._part = 0
        self._seg: _Open | None = None
        self._last_frame_at = time.monotonic()
        self.stats = RecorderStats()
        self._audio = audio
        self._mute_switch: bool | None = None
        evidence.on_full = self._make_room

    # -- control (any thread) ----------------------------------------------------------

    def start(self) -> None:
        """Seal what a power cut left behind, then start the recorder thread."""
        self.recover()
        self._thread.start()

    def request_start(self, by: str, detail: dict[str, Any] | None = None) -> None:
        """Start recording (button, command); the pre-event ring is saved first."""
        self._requests.put(_Request(True, by, detail=detail or {}))

    def request_stop(self, by: str, detail: dict[str, Any] | None = None) -> None:
        self._requests.put(_Request(False, by, detail=detail or {}))

    def toggle(self, by: str = BY_OFFICER) -> None:
        """The officer's record button: start if idle, stop if recording.

        Decided on the recorder thread, in order, so two quick presses are a
        start and a stop even before the first one has been acted on.
        """
        self._requests.put(_Request(True, by, toggle=True))

    def on_hit(self, detail: dict[str, Any] | None = None) -> None:
        """A watchlist hit: record with the pre-event ring, stop ``post_event_s`` later."""
        self._requests.put(_Request(True, BY_HIT, auto=True, detail=detail or {}))

    def request_mute(self, muted: bool | None, by: str = BY_OFFICER) -> None:
        """Mute (True), unmute (False) or toggle (None) the microphone; entered in the ledger."""
        self._requests.put(_Request(False, by, toggle=muted is None, mute=bool(muted)))

    @property
    def audio(self) -> AudioTrack | None:
        return self._audio

    def stop(self, timeout: float = 10.0) -> None:
        """Drain the frames already queued, close the open segment, stop the thread."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("recorder did not stop within %.0f s", timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the frame queue is closed and drained and the thread ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def recording(self) -> bool:
        return self.stats.recording

    @property
    def encoder(self) -> str:
        """``hardware`` (the board's encoder feeds packets) or ``software`` (libx264 here)."""
        return "software" if self._packets is None else "hardware"

    # -- start-up recovery ---------------------------------------------------------------

    def recover(self) -> int:
        """Seal each left-over ``.partial`` and enter it in the ledger as truncated."""
        count = 0
        for partial in self._dir.leftovers():
            sealed = self._dir.seal_leftover(partial)
            header = sealed.header
            number = header.segment if header else self._ledger.take_segment_number()
            start = header.started_at if header else sealed.path.stat().st_mtime
            info = SegmentInfo(
                number=number,
                recording=header.recording if header else "unknown",
                part=header.part if header else 0,
                file=sealed.path.name,
                start=start,
                end=sealed.path.stat().st_mtime,
                frames=0,
                sha256=sealed.sha256,
                size=sealed.size,
                flags=(FLAG_TRUNCATED,),
            )
            self._ledger.add_segment(info)
            log.warning("evidence: sealed %s left by a power loss (truncated)", sealed.path.name)
            count += 1
        return count

    # -- the thread ----------------------------------------------------------------------

    def feed(self, frame: Frame | None) -> None:
        """One step of the recorder thread: pending requests, then ``frame`` (tests call it)."""
        self._handle_requests()
        if frame is None:
            self._close_if_stalled()
            return
        self._last_frame_at = time.monotonic()
        try:
            self._on_frame(frame)
        except (av.FFmpegError, ValueError) as exc:
            self.stats.errors += 1
            log.error("recorder: frame %d not encoded: %s", frame.index, exc)

    def feed_encoded(self, packet: EncodedPacket | None) -> None:
        """One step with an access unit from the board's encoder (tests call it too)."""
        self._handle_requests()
        if packet is None:
            self._close_if_stalled()
            return
        self._last_frame_at = time.monotonic()
        try:
            self._on_encoded(packet)
        except (av.FFmpegError, ValueError) as exc:
            self.stats.errors += 1
            log.error("recorder: hardware packet not written: %s", exc)

    def _on_encoded(self, encoded: EncodedPacket) -> None:
        if encoded.size != self._size:  # the camera was (re)configured: a new stream
            self._close_segment()
            self._ring.clear()
            self._size = encoded.size
        when = encoded.timestamp
        if self._t0 is None:
            self._t0 = when
        self._now = when
        self._pump_audio(when)
        pts = max(self._last_pts + 1, round((when - self._t0) * 1000))
        self._last_pts = pts
        packet = av.Packet(encoded.data)
        packet.pts = packet.dts = pts
        packet.time_base = TIME_BASE
        packet.is_keyframe = encoded.keyframe
        self.stats.frames_encoded += 1
        self._on_packet(packet)

    def _close_if_stalled(self) -> None:
        """The camera stopped delivering: seal what was written rather than hold it open."""
        stalled = time.monotonic() - self._last_frame_at
        if self._seg is not None and stalled > max(STALL_S, self.settings.segment_s):
            log.warning("recorder: no frame for %.0f s, sealing the open segment", stalled)
            self._close_segment()
            self._force_key = True  # the next segment starts with the next frame

    def finish(self) -> None:
        """Flush the encoder and end the recording (the stream ended, or shutdown)."""
        self._handle_requests()
        self._flush_encoder()
        if self._active:
            self._end_recording(BY_DEVICE, {"reason": "recorder stopped"})

    def _step(self) -> tuple[bool, bool, int]:
        """One item from the input: (got one, input closed, items still queued)."""
        if self._packets is not None:
            packet = self._packets.get(0.1)
            self.feed_encoded(packet)
            return packet is not None, self._packets.closed, self._packets.depth
        frame = self._frames.get(0.1)
        self.feed(frame)
        return frame is not None, self._frames.closed, self._frames.stats().depth

    def _run(self) -> None:
        lower_this_thread()  # the reader's alerts come first; this queue can wait
        try:
            while True:
                got, closed, depth = self._step()
                if not got and (closed or self._stop.is_set()):
                    break
                if self._stop.is_set() and depth == 0:
                    break
            self.finish()
        except Exception as exc:
            self.stats.errors += 1
            self.stats.recording = False
            log.exception("recorder failed; footage written so far is kept")
            self._alert(f"RECORDER FAILED: not recording ({exc.__class__.__name__})")
            self._abandon_segment()

    def _handle_requests(self) -> None:
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                break
            if request.mute is not None:
                self._set_muted(not self.stats.muted if request.toggle else request.mute, request)
            elif request.toggle and self._active:
                self._end_recording(request.by, request.detail)
            elif request.start:
                self._begin(request)
            elif self._active:
                self._end_recording(request.by, request.detail)
        if self._active and self._auto_until is not None and self._now >= self._auto_until:
            self._end_recording(BY_HIT, {"reason": "post-event time elapsed"})

    def _set_muted(self, muted: bool, request: _Request) -> None:
        if muted == self.stats.muted:
            return
        self.stats.muted = muted
        self._mute_switch = muted  # takes effect from the next frame's time on
        has_mic = self._audio is not None and not self._audio.failed
        detail = {"microphone": has_mic, **request.detail}
        self._ledger_action("audio_muted" if muted else "audio_unmuted", request.by, detail)

    def _begin(self, request: _Request) -> None:
        if request.auto:
            deadline = self._now + self.settings.post_event_s
            if self._active and self._auto_until is None:
                return  # a manual recording is not shortened by a hit
            self._auto_until = max(deadline, self._auto_until or 0.0)
        else:
            self._auto_until = None
        if self._active:
            return
        needed = 4 * self.settings.chunk_bytes
        if not self._dir.room_for(needed) and not (
            self._make_room(needed) and self._dir.room_for(needed)
        ):
            self._storage_full("no room to start recording")
            self._ledger_action("record_refused", request.by, {"reason": "storage full"})
            return
        self._active = True
        self.stats.recording = True
        self._recording_id = uuid.uuid4().hex[:16]
        self._part = 0
        self._ledger_action("record_start", request.by, request.detail)
        self._force_key = True
        ring, self._ring = list(self._ring), deque()
        for when, packet in ring:
            self._write_packet(packet, when, pre_event=True)

    def _end_recording(self, by: str, detail: dict[str, Any]) -> None:
        if self._audio is not None:
            self._audio.finish()
        self._close_segment()
        if self._audio is not None:
            self._audio.reset()
        self._active = False
        self.stats.recording = False
        self._auto_until = None
        self._ledger_action("record_stop", by, {"recording": self._recording_id, **detail})

    def _ledger_action(self, name: str, by: str, detail: dict[str, Any]) -> None:
        try:
            self._ledger.add_action(name, by, {"recording": self._recording_id, **detail})
        except StorageError as exc:
            self.stats.errors += 1
            log.error("evidence: %s not entered in the ledger: %s", name, exc)

    # -- encoding ------------------------------------------------------------------------

    def _open_encoder(self, width: int, height: int) -> None:
        settings = self.settings
        gop = max(1, round(settings.gop_s * settings.fps))
        encoder: Any = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height = width, height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = TIME_BASE
        encoder.framerate = Fraction(round(settings.fps * 1000), 1000)
        encoder.gop_size = gop
        encoder.max_b_frames = 0
        encoder.thread_count = 1
        encoder.options = {
            "preset": settings.preset,
            "tune": "zerolatency",
            "crf": str(settings.crf),
            "x264-params": f"repeat-headers=1:keyint={gop}:min-keyint={gop}:scenecut=0",
        }
        self._encoder = encoder
        self._size = (width, height)

    def _on_frame(self, frame: Frame) -> None:
        if (frame.width, frame.height) != self._size or frame.width % 2 or frame.height % 2:
            if frame.width % 2 or frame.height % 2:
                log.error("recorder: odd frame size %dx%d skipped", frame.width, frame.height)
                return
            self._restart_encoder(frame)
        if self._t0 is None:
            self._t0 = frame.timestamp
        self._now = frame.timestamp
        self._pump_audio(frame.timestamp)
        pts = max(self._last_pts + 1, round((frame.timestamp - self._t0) * 1000))
        self._last_pts = pts
        cpu = time.thread_time()
        yuv = np.asarray(cv2.cvtColor(frame.image, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
        video = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        video.pts = pts
        video.time_base = TIME_BASE
        if self._force_key or self._segment_due(frame.timestamp):
            video.pict_type = av.video.frame.PictureType.I
            self._force_key = False
        packets = self._encoder.encode(video)
        self.stats.encode_cpu_s += time.thread_time() - cpu
        self.stats.frames_encoded += 1
        for packet in packets:
            self._on_packet(packet)

    def _pump_audio(self, until: float) -> None:
        """Sound up to this frame: encoded while recording (or kept for the ring), else dropped."""
        audio = self._audio
        if audio is None:
            return
        if self._mute_switch is not None:
            audio.set_muted(self._mute_switch, at=until)
            self._mute_switch = None
        keep = self._active or self.settings.audio_pre_event
        was_failed = audio.failed
        audio.pump(until, self._t0 or until, keep=keep)
        if audio.failed and not was_failed:
            self.stats.errors += 1
            self._alert("MICROPHONE FAILED: recording without sound")
        if not self._active and keep:
            audio.trim(self._ring[0][0] if self._ring else until)

    def _wants_sound(self, pre_event: bool) -> bool:
        """Whether a segment opened now for live (or ring) footage gets a sound track."""
        audio = self._audio
        if audio is None or audio.failed:
            return False
        return not pre_event or self.settings.audio_pre_event

    def _mux_audio(self, seg: _Open, before: float) -> None:
        """The held sound that starts before ``before`` into ``seg`` (if it has a track)."""
        if self._audio is None or seg.audio_stream is None:
            return
        for packet in self._audio.take(before):
            packet.stream = seg.audio_stream
            seg.container.mux(packet)
            seg.audio_packets += 1

    def _segment_due(self, when: float) -> bool:
        seg = self._seg
        return seg is not None and when - seg.start >= self.settings.segment_s

    def _restart_encoder(self, frame: Frame) -> None:
        if self._encoder is not None:
            self._flush_encoder()
            self._close_segment()
            self._force_key = self._active
        self._ring.clear()
        self._open_encoder(frame.width, frame.height)

    def _flush_encoder(self) -> None:
        if self._encoder is None:
            return
        for packet in self._encoder.encode(None):
            self._on_packet(packet)
        self._encoder = None
        self._size = (0, 0)

    def _packet_time(self, packet: Any) -> float:
        return (self._t0 or 0.0) + float(packet.pts) / 1000.0

    def _on_packet(self, packet: Any) -> None:
        when = self._packet_time(packet)
        if self._active:
            self._write_packet(packet, when, pre_event=False)
            return
        if not self._ring and not packet.is_keyframe:
            return  # the ring always starts at a keyframe
        self._ring.append((when, packet))
        self._trim_ring(when)

    def _trim_ring(self, newest: float) -> None:
        """Drop whole GOPs from the head while the next GOP still covers ``pre_event_s``."""
        limit = newest - self.settings.pre_event_s
        ring = self._ring
        while len(ring) > 1:
            next_key = next((i for i in range(1, len(ring)) if ring[i][1].is_keyframe), None)
            if next_key is None or ring[next_key][0] > limit:
                break
            for _ in range(next_key):
                ring.popleft()
        self.stats.ring_s = (newest - ring[0][0]) if ring else 0.0

    # -- segments ------------------------------------------------------------------------

    def _write_packet(self, packet: Any, when: float, *, pre_event: bool) -> None:
        if not self._active:
            return
        seg = self._seg
        if seg is not None and packet.is_keyframe and self._cut_before(seg, when, pre_event):
            self._close_segment(before=when)
            seg = None
        if seg is None:
            if not packet.is_keyframe:
                return
            seg = self._open_segment(when, pre_event=pre_event)
            if seg is None:
                return
        if pre_event:
            seg.flags.add(FLAG_PRE_EVENT)
        packet.stream = seg.stream
        try:
            self._mux_audio(seg, when)
            seg.container.mux(packet)
        except StorageFullError as exc:
            self._storage_full(str(exc))
            return
        seg.frames += 1
        seg.end = when + 1.0 / self.settings.fps

    def _cut_before(self, seg: _Open, when: float, pre_event: bool) -> bool:
        """A new segment at this keyframe: time is up, or live footage needs its sound track."""
        if when - seg.start >= self.settings.segment_s:
            return True
        return seg.audio_stream is None and self._wants_sound(pre_event)

    def _open_segment(self, when: float, *, pre_event: bool = False) -> _Open | None:
        try:
            number = self._ledger.take_segment_number()
            name = segment_name(self._device, number, when)
            header, key = new_header(
                self._hq_key,
                device=self._device,
                segment=number,
                recording=self._recording_id,
                part=self._part,
                started_at=when,
                chunk=self.settings.chunk_bytes,
            )
            partial, fd = self._dir.create_partial(name)
        except StorageError as exc:
            self._storage_full(str(exc))
            return None
        try:
            writer = SealedWriter(
                fd, header, key, reserve=self._dir.reserve, sync_s=self.settings.sync_s
            )
            container: Any = av.open(writer, "w", format="mp4", options={"movflags": MOVFLAGS})
            width, height = self._size
            stream = container.add_mux_stream("h264", width=width, height=height)
            stream.time_base = TIME_BASE
            audio = self._audio if self._wants_sound(pre_event) else None
            sound = audio.add_stream(container) if audio is not None else None
        except (StorageError, av.FFmpegError) as exc:
            os.close(fd)
            self._dir.forget(partial.name)  # at most a header: no footage was in it
            self._storage_full(f"cannot start segment {name}: {exc}")
            return None
        self._part += 1
        self._seg = _Open(number, name, partial, fd, writer, container, stream, when, header.part)
        self._seg.audio_stream = sound
        return self._seg

    def _close_segment(
        self, extra_flags: tuple[str, ...] = (), before: float = float("inf")
    ) -> None:
        """Seal the open segment; held sound that starts ``before`` the cut goes in first."""
        seg, self._seg = self._seg, None
        if seg is None:
            return
        seg.flags.update(extra_flags)
        seg.writer.finishing = True
        try:
            if FLAG_DISK_FULL not in seg.flags:
                self._mux_audio(seg, before)
            if seg.audio_packets:
                seg.flags.add(FLAG_AUDIO)
                if self._audio is not None and self._audio.muted_between(seg.start, seg.end):
                    seg.flags.add(FLAG_MUTED)
            seg.container.close()
            sha = seg.writer.finish()
            os.close(seg.fd)
            final = self._dir.commit(seg.partial)
            size = seg.writer.size
        except (StorageError, av.FFmpegError) as exc:
            log.error("evidence: segment %s could not be finished properly: %s", seg.name, exc)
            sealed = self._seal_broken(seg)
            final, sha, size = sealed.path, sealed.sha256, sealed.size
            seg.flags.add(FLAG_TRUNCATED)
        self._enter_segment(seg, final.name, sha, size)

    def _seal_broken(self, seg: _Open) -> Any:
        seg.writer.abandon()
        with contextlib.suppress(OSError):
            os.close(seg.fd)
        return self._dir.seal_leftover(seg.partial)

    def _enter_segment(self, seg: _Open, file: str, sha: str, size: int) -> None:
        info = SegmentInfo(
            number=seg.number,
            recording=self._recording_id,
            part=seg.part,
            file=file,
            start=seg.start,
            end=max(seg.end, seg.start),
            frames=seg.frames,
            sha256=sha,
            size=size,
            flags=tuple(sorted(seg.flags)),
            gnss=self._gnss(),
        )
        try:
            self._ledger.add_segment(info)
        except StorageError as exc:
            # The file is sealed on disk; it is entered (as truncated) at the next start.
            self.stats.errors += 1
            log.error("evidence: segment %s not entered in the ledger: %s", file, exc)
            return
        self.stats.segments += 1
        log.info("evidence: segment %s sealed (%d frames, %d bytes)", file, seg.frames, size)

    def _abandon_segment(self) -> None:
        seg, self._seg = self._seg, None
        if seg is not None:
            try:
                sealed = self._seal_broken(seg)
                seg.flags.add(FLAG_TRUNCATED)
                self._enter_segment(seg, sealed.path.name, sealed.sha256, sealed.size)
            except (RaqibError, OSError):
                log.exception("evidence: segment %s left as .partial for the next start", seg.name)

    # -- a full disk ---------------------------------------------------------------------

    def _make_room(self, nbytes: int) -> int:
        uploaded = self._ledger.segments(STATE_UPLOADED)
        by_name = {s.file: s.number for s in uploaded}
        return self._dir.make_room(
            nbytes,
            [s.file for s in uploaded],
            lambda name: self._ledger.set_state(by_name[name], STATE_DELETED),
        )

    def _storage_full(self, reason: str) -> None:
        self.stats.disk_full = True
        self.stats.errors += 1
        log.error("evidence: recording stopped, storage full: %s", reason)
        self._alert(f"EVIDENCE STORAGE FULL: recording stopped ({reason})")
        if self._seg is not None:
            self._close_segment((FLAG_DISK_FULL,))
        if self._active:
            self._active = False
            self.stats.recording = False
            self._auto_until = None
            self._ledger_action("record_stop", BY_DEVICE, {"reason": "storage full"})

"""Sound with the footage: recorded by the real recorder, sealed, chained, exported, muted.

The microphone is the file-backed simulator (``FileMicrophone``) playing
samples/street_audio.m4a on the recorder's clock; everything after it (AAC
encoding, muxing, sealing, the ledger, upload, the auditor, ``raqib export``)
is the code the device and HQ run.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from agent.cli import main
from agent.config import DEFAULT_SAMPLES_DIR
from agent.evidence.entry import FLAG_AUDIO, FLAG_MUTED, FLAG_PRE_EVENT
from agent.evidence.recorder import RecorderSettings
from agent.evidence.rig import EvidenceRig
from agent.evidence.sealing import SealedWriter, new_header, open_segment, parse_header
from firmware_glue.microphone import FileMicrophone
from hq.audit import audit_files

pytestmark = [pytest.mark.audio, pytest.mark.evidence]

SOUND = DEFAULT_SAMPLES_DIR / "street_audio.m4a"
RATE = 48_000


def settings(**overrides: object) -> RecorderSettings:
    base: dict[str, object] = {
        "segment_s": 1.0,
        "pre_event_s": 2.0,
        "post_event_s": 1.0,
        "gop_s": 0.5,
        "chunk_bytes": 4096,
    }
    return RecorderSettings(**(base | overrides))  # type: ignore[arg-type]


def make_rig(root: Path, **overrides: object) -> EvidenceRig:
    return EvidenceRig(root, settings=settings(**overrides), microphone=FileMicrophone(SOUND, RATE))


@pytest.fixture
def sound_rig(tmp_path: Path) -> Iterator[EvidenceRig]:
    made = make_rig(tmp_path)
    yield made
    made.close()


def plaintexts(rig: EvidenceRig) -> list[bytes]:
    return [open_segment(p.read_bytes(), rig.hq_key).plaintext for p in rig.hq_files()]


def streams(mp4: bytes) -> dict[str, float]:
    """Seconds of decoded content per track kind, as a player would play them."""
    out: dict[str, float] = {}
    with av.open(io.BytesIO(mp4)) as container:
        if container.streams.video:
            out["video"] = sum(1 for _ in container.decode(video=0)) / 25.0
    with av.open(io.BytesIO(mp4)) as container:
        if container.streams.audio:
            stream = container.streams.audio[0]
            assert stream.codec_context.name == "aac"
            assert stream.codec_context.sample_rate == RATE
            out["audio"] = sum(f.samples for f in container.decode(stream)) / RATE
    return out


def sound_level(mp4: bytes, trim_s: float = 0.0) -> float:
    """RMS of the decoded sound (0..1 full scale), ``trim_s`` at each end left out."""
    with av.open(io.BytesIO(mp4)) as container:
        samples = np.concatenate(
            [f.to_ndarray().ravel() for f in container.decode(container.streams.audio[0])]
        )
    trim = round(trim_s * RATE)
    if trim:
        samples = samples[trim:-trim]
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def segment_flags(rig: EvidenceRig) -> list[list[str]]:
    return [e["segment"]["flags"] for e in rig.ledger.entries() if e["type"] == "segment"]


def test_recorded_segments_carry_sound_as_long_as_the_picture(sound_rig: EvidenceRig) -> None:
    sound_rig.feed(1.0)  # pre-event
    sound_rig.record(3.0)
    assert sound_rig.upload().ok
    tracks = [streams(mp4) for mp4 in plaintexts(sound_rig)]
    assert len(tracks) == 4
    for live in tracks[1:]:
        assert live["video"] == pytest.approx(1.0, abs=0.05)
        assert live["audio"] == pytest.approx(live["video"], abs=0.06)
    total_sound = sum(t.get("audio", 0.0) for t in tracks)
    assert total_sound == pytest.approx(3.0, abs=0.1)  # the recorded 3 s, nothing lost
    assert [FLAG_AUDIO in f for f in segment_flags(sound_rig)] == [False, True, True, True]
    levels = [sound_level(mp4) for mp4 in plaintexts(sound_rig)[1:]]
    assert min(levels) > 0.02  # street sound, not silence


def test_pre_event_buffer_is_picture_only_by_default(sound_rig: EvidenceRig) -> None:
    sound_rig.feed(1.5)
    sound_rig.recorder.on_hit({"plate": "12345-B-6"})
    sound_rig.feed(1.0)
    sound_rig.recorder.feed(None)
    sound_rig.recorder.finish()
    flags = segment_flags(sound_rig)
    pre = [i for i, f in enumerate(flags) if FLAG_PRE_EVENT in f]
    assert pre and all(FLAG_AUDIO not in flags[i] for i in pre)
    assert sound_rig.upload().ok
    mp4s = plaintexts(sound_rig)
    for i, mp4 in enumerate(mp4s):
        kinds = streams(mp4)
        assert ("audio" in kinds) == (i not in pre)  # live footage has sound, the ring has none


def test_pre_event_sound_when_configured(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, audio_pre_event=True)
    try:
        rig.feed(1.0)
        rig.record(1.0)
        assert rig.upload().ok
        tracks = [streams(mp4) for mp4 in plaintexts(rig)]
        flags = segment_flags(rig)
        assert FLAG_PRE_EVENT in flags[0] and FLAG_AUDIO in flags[0]
        assert tracks[0]["audio"] == pytest.approx(tracks[0]["video"], abs=0.08)
    finally:
        rig.close()


def test_mute_is_an_officer_action_in_the_ledger_and_the_track_goes_silent(
    sound_rig: EvidenceRig,
) -> None:
    rig = sound_rig
    rig.recorder.request_start("officer")
    rig.feed(1.0)
    rig.recorder.request_mute(True, "officer")
    rig.feed(1.0)
    rig.recorder.request_mute(None, "officer")  # the mute button again: unmute
    rig.feed(1.0)
    rig.recorder.request_stop("officer")
    rig.recorder.feed(None)
    actions = [
        (e["action"]["name"], e["action"]["by"])
        for e in rig.ledger.entries()
        if e["type"] == "action"
    ]
    assert actions == [
        ("record_start", "officer"),
        ("audio_muted", "officer"),
        ("audio_unmuted", "officer"),
        ("record_stop", "officer"),
    ]
    flags = segment_flags(rig)
    assert [FLAG_MUTED in f for f in flags] == [False, True, False]
    assert all(FLAG_AUDIO in f for f in flags)  # the track goes on through the mute
    assert rig.upload().ok
    levels = [sound_level(mp4, trim_s=0.1) for mp4 in plaintexts(rig)]
    assert levels[0] > 0.02 and levels[2] > 0.02
    assert levels[1] < 1e-4  # digital silence between the AAC frames at either edge


def test_the_hash_chain_covers_the_sound(sound_rig: EvidenceRig) -> None:
    """A file whose sound was stripped and re-sealed by someone holding HQ's key is caught."""
    sound_rig.record(2.0)
    assert sound_rig.upload().ok
    files = sound_rig.hq_files()
    with sound_rig.hq() as hq:
        assert [v.verdict for v in audit_files(hq, files)[0]] == ["verified"] * 2
    target = files[1]
    header, _ = parse_header(target.read_bytes())
    picture_only = strip_sound(open_segment(target.read_bytes(), sound_rig.hq_key).plaintext)
    assert "audio" not in streams(picture_only) and "video" in streams(picture_only)
    reseal(target, picture_only, sound_rig, header)
    assert open_segment(target.read_bytes(), sound_rig.hq_key).complete  # a well-formed file
    with sound_rig.hq() as hq:
        results = audit_files(hq, files)[0]
    assert [v.verdict for v in results] == ["verified", "modified"]


def strip_sound(mp4: bytes) -> bytes:
    out = io.BytesIO()
    with av.open(io.BytesIO(mp4)) as src, av.open(out, "w", format="mp4") as dst:
        video = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = video
            dst.mux(packet)
    return out.getvalue()


def reseal(path: Path, mp4: bytes, rig: EvidenceRig, header: object) -> None:
    fields = header.to_json()  # type: ignore[attr-defined]
    forged, key = new_header(
        rig.hq_key.public_key(),
        device=fields["device"],
        segment=fields["segment"],
        recording=fields["recording"],
        part=fields["part"],
        started_at=fields["started_at"],
        chunk=fields["chunk"],
    )
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        writer = SealedWriter(fd, forged, key, reserve=lambda _n, _f: None)
        writer.write(mp4)
        writer.finish()
    finally:
        os.close(fd)


def test_export_plays_with_sound(
    sound_rig: EvidenceRig, capsys: pytest.CaptureFixture[str], cli_logging: None
) -> None:
    sound_rig.record(2.0)
    assert sound_rig.upload().ok
    segment = sound_rig.hq_files()[0]
    out = sound_rig.root / "exported.mp4"
    argv = ["export", str(segment), "--out", str(out), "--hq-keys", str(sound_rig.hq_keys_dir)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "audio aac 48000 Hz mono" in printed and "video h264" in printed
    with av.open(str(out)) as container:  # the file a court's player gets
        assert [s.type for s in container.streams] == ["video", "audio"]
    tracks = streams(out.read_bytes())
    assert tracks["audio"] == pytest.approx(tracks["video"], abs=0.06)
    assert tracks["audio"] == pytest.approx(1.0, abs=0.06)


def test_a_failing_microphone_alerts_the_officer_and_the_picture_goes_on(
    tmp_path: Path,
) -> None:
    rig = EvidenceRig(
        tmp_path, settings=settings(), microphone=FileMicrophone(SOUND, RATE, fail_after_s=0.5)
    )
    try:
        rig.record(2.0)
        assert any("MICROPHONE FAILED" in e.message for e in rig.alerts.events)
        assert rig.recorder.stats.errors == 1
        assert rig.upload().ok
        tracks = [streams(mp4) for mp4 in plaintexts(rig)]
        assert sum(t["video"] for t in tracks) == pytest.approx(2.0, abs=0.05)
    finally:
        rig.close()


def test_an_unreadable_sound_file_is_a_clear_capture_error(tmp_path: Path) -> None:
    from agent.errors import CaptureError

    bad = tmp_path / "noise.m4a"
    bad.write_bytes(b"not a sound file")
    with pytest.raises(CaptureError, match="cannot read sound file"):
        FileMicrophone(bad).start()
    with pytest.raises(CaptureError, match="has no audio stream"):
        FileMicrophone(DEFAULT_SAMPLES_DIR / "street_clip.mp4").start()


def test_status_reports_sound_and_mute(tmp_path: Path) -> None:
    """The daemon's evidence service: ``raqib status`` says whether sound is recorded."""
    from agent.config import parse_config
    from agent.evidence.service import EvidenceService
    from agent.pki import HqKeys, load_or_create_device_key

    config = parse_config(
        {
            "device": {"id": "cam-audio-01", "state_dir": str(tmp_path / "state")},
            "audio": {"source": "file", "mute_button": "simulated"},
            "evidence": {"button": "none"},
        }
    )
    hq = HqKeys.load_or_create(tmp_path / "hq-keys")
    service = EvidenceService(
        config,
        signing_key=load_or_create_device_key(tmp_path / "device.key"),
        hq_key=hq.encryption.public_key(),
    )
    service.start()
    try:
        assert service.status()["audio"] == "on"
        assert service.mute_button is not None
        service.mute_button.press()  # type: ignore[attr-defined]
        service.recorder.feed(None)  # the recorder thread takes the request
        assert service.status()["audio"] == "muted"
        assert json.dumps(service.status())  # status.json-ready
    finally:
        service.stop()


class _FakePcm:
    """pyalsaaudio's capture PCM as the adapter uses it: ``read()`` -> (frames, bytes)."""

    def __init__(self, periods: list[tuple[int, bytes]], fail: bool) -> None:
        self._periods = periods
        self._fail = fail
        self.closed = False

    def read(self) -> tuple[int, bytes]:
        if self._periods:
            return self._periods.pop(0)
        if self._fail:
            raise OSError("No such device")
        import time as _time

        _time.sleep(0.01)
        return 0, b""

    def close(self) -> None:
        self.closed = True


def fake_alsaaudio(periods: list[tuple[int, bytes]], fail: bool = False) -> object:
    import types

    module = types.ModuleType("alsaaudio")
    module.PCM_CAPTURE, module.PCM_NORMAL, module.PCM_FORMAT_S16_LE = 1, 0, 2  # type: ignore[attr-defined]
    module.ALSAAudioError = OSError  # type: ignore[attr-defined]
    made: list[_FakePcm] = []

    def pcm(**kwargs: object) -> _FakePcm:
        assert kwargs["type"] == 1 and kwargs["format"] == 2 and kwargs["rate"] == RATE
        made.append(_FakePcm(periods, fail))
        return made[-1]

    module.PCM = pcm  # type: ignore[attr-defined]
    module.made = made  # type: ignore[attr-defined]
    return module


def test_the_alsa_adapter_delivers_stamped_chunks_counts_overruns_and_reports_failure(
    monkeypatch: pytest.MonkeyPatch, wait_until: object
) -> None:
    import sys
    import time

    from agent.errors import CaptureError
    from firmware_glue.microphone import AlsaMicrophone

    period = np.arange(960, dtype=np.int16).tobytes()
    module = fake_alsaaudio([(960, period), (-32, b""), (960, period)], fail=True)
    monkeypatch.setitem(sys.modules, "alsaaudio", module)
    mic = AlsaMicrophone("plughw:CARD=Mic", RATE, 1)
    before = time.time()
    mic.start()
    try:
        assert wait_until(lambda: mic._error is not None, timeout=5.0)  # type: ignore[operator]
        chunks = mic.read(time.time() + 1)
        assert [c.frames for c in chunks] == [960, 960]
        assert before - 0.1 < chunks[0].timestamp <= time.time()
        assert chunks[0].samples[:3, 0].tolist() == [0, 1, 2]
        assert mic.overruns == 1
        with pytest.raises(CaptureError, match="microphone plughw:CARD=Mic failed"):
            mic.read(time.time() + 1)
    finally:
        mic.close()
    assert module.made[0].closed  # type: ignore[attr-defined]


def test_without_pyalsaaudio_the_alsa_adapter_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from agent.errors import CaptureError
    from firmware_glue.microphone import AlsaMicrophone

    monkeypatch.setitem(sys.modules, "alsaaudio", None)  # import fails
    with pytest.raises(CaptureError, match="python3-alsaaudio"):
        AlsaMicrophone().start()

"""Evidence: sealed segments, the signed ledger chain and the auditor's verdicts.

Each attack or fault test records real H.264 footage through the real recorder
(small frames, 1 s segments), uploads it to a directory HQ, tampers, and checks
the verdict ``raqib verify`` gives.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path

import av
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update

from agent.cli import main
from agent.evidence.entry import GENESIS, entry_hash, parse_entry, sign_entry
from agent.evidence.errors import LedgerEntryError, SegmentDecryptError
from agent.evidence.ledger import STATE_DELETED, STATE_UPLOADED
from agent.evidence.rig import EvidenceRig
from agent.evidence.sealing import open_segment, parse_header
from agent.evidence.store import parse_segment_name
from hq.audit import audit_files
from hq.evidence_store import ledger as ledger_table
from hq.evidence_store import store_ledger_entry

pytestmark = pytest.mark.evidence


@pytest.fixture
def uploaded(rig: EvidenceRig) -> list[Path]:
    """Four 1 s segments recorded by the officer's button and uploaded."""
    rig.feed(1.0)  # pre-event footage
    rig.record(3.0)
    report = rig.upload()
    assert report.ok and len(report.uploaded) == 4
    files = rig.hq_files()
    assert [parse_segment_name(p.name) for p in files] == [(rig.device_id, n) for n in (1, 2, 3, 4)]
    return files


def verdicts(rig: EvidenceRig, files: list[Path]) -> list[str]:
    with rig.hq() as hq:
        results, _ = audit_files(hq, files)
    return [v.verdict for v in results]


def decode_frames(mp4: bytes) -> int:
    count = 0
    with av.open(io.BytesIO(mp4)) as container:
        try:
            for packet in container.demux(video=0):
                count += len(packet.decode())
        except av.FFmpegError:
            pass  # a cut file decodes up to the cut
    return count


# -- the happy path -------------------------------------------------------------------


def test_recorded_segments_decrypt_and_play_at_hq(rig: EvidenceRig, uploaded: list[Path]) -> None:
    total = 0
    for path in uploaded:
        opened = open_segment(path.read_bytes(), rig.hq_key)
        assert opened.complete
        total += decode_frames(opened.plaintext)
    assert total == 100  # 1 s of pre-event ring + 3 s recorded, 25 fps, nothing lost


def test_upload_deletes_local_copies_only_after_hq_confirms(
    rig: EvidenceRig, uploaded: list[Path]
) -> None:
    assert list(rig.dir.root.iterdir()) == []
    assert {s.state for s in rig.ledger.segments()} == {STATE_DELETED}
    again = rig.upload()  # nothing left to send; idempotent
    assert again.uploaded == [] and again.entries_new == 0


@pytest.mark.usefixtures("cli_logging")
def test_verify_cli_all_green_then_tamper_red(
    rig: EvidenceRig, uploaded: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    report = rig.root / "report.html"
    argv = ["verify", *map(str, uploaded), "--hq", str(rig.hq_root), "--json"]
    assert main([*argv, "--report", str(report)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["verdict"] for line in lines] == ["verified"] * 4
    assert lines[0]["flags"] == ["pre_event"] and lines[0]["device"] == rig.device_id
    html = report.read_text(encoding="utf-8")
    assert rig.device_id in html and lines[2]["sha256"] in html

    data = bytearray(uploaded[2].read_bytes())
    data[len(data) // 2] ^= 0x01
    uploaded[2].write_bytes(bytes(data))
    assert main(argv) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["verdict"] for line in lines] == ["verified", "verified", "modified", "verified"]


# -- attacks and faults -----------------------------------------------------------------


def test_one_flipped_byte_is_modified(rig: EvidenceRig, uploaded: list[Path]) -> None:
    for offset in (3, 200, -5):  # in the magic, in the header, in the last chunk
        path = uploaded[1]
        original = path.read_bytes()
        data = bytearray(original)
        data[offset] ^= 0x40
        path.write_bytes(bytes(data))
        assert verdicts(rig, uploaded) == ["verified", "modified", "verified", "verified"]
        path.write_bytes(original)


def test_dropped_segment_is_a_gap_before_the_next(rig: EvidenceRig, uploaded: list[Path]) -> None:
    uploaded[1].unlink()
    remaining = [uploaded[0], *uploaded[2:]]
    assert verdicts(rig, remaining) == ["verified", "gap_before", "verified"]


def test_two_swapped_segments_are_out_of_order(rig: EvidenceRig, uploaded: list[Path]) -> None:
    second, third = uploaded[1], uploaded[2]
    swap = second.with_name("swap")
    second.rename(swap)
    third.rename(second)
    swap.rename(third)
    assert verdicts(rig, uploaded) == ["verified", "out_of_order", "out_of_order", "verified"]


def test_segment_from_another_device_is_unknown_or_missing(
    rig: EvidenceRig, uploaded: list[Path], tmp_path: Path
) -> None:
    stranger = EvidenceRig(tmp_path / "stranger", device_id="cam-stranger-02", enrol=False)
    stranger.record(1.0)
    foreign = sorted(stranger.dir.root.iterdir())
    stranger.close()
    assert verdicts(rig, foreign[:1]) == ["unknown"]  # a device HQ never enrolled

    with rig.hq() as hq:  # enrolled, but HQ holds no ledger entry naming this footage
        hq.db.enrol_device("cam-stranger-02", Ed25519PrivateKey.generate().public_key(), 0.0)
    assert verdicts(rig, foreign[:1]) == ["missing_from_ledger"]
    renamed = uploaded[0].with_name(foreign[0].name.replace("cam-stranger-02", rig.device_id))
    shutil.copy(foreign[0], renamed)  # passed off under this device's name
    assert verdicts(rig, [renamed]) == ["missing_from_ledger"]


def test_ledger_resigned_by_a_wrong_key_is_bad_signature(
    rig: EvidenceRig, uploaded: list[Path]
) -> None:
    forger = Ed25519PrivateKey.generate()
    with rig.hq() as hq, hq.engine.begin() as conn:
        for row in conn.execute(select(ledger_table.c.id, ledger_table.c.body)).all():
            body = sign_entry(json.loads(row.body), forger)
            conn.execute(
                update(ledger_table)
                .where(ledger_table.c.id == row.id)
                .values(body=json.dumps(body))
            )
    assert verdicts(rig, uploaded) == ["bad_signature"] * 4


def test_forged_hash_in_a_resigned_entry_is_still_bad_signature(
    rig: EvidenceRig, uploaded: list[Path]
) -> None:
    """A forger rewrites segment 2's entry to match edited footage; the key betrays them."""
    data = bytearray(uploaded[1].read_bytes())
    data[-3] ^= 0xFF
    uploaded[1].write_bytes(bytes(data))
    import hashlib

    with rig.hq() as hq, hq.engine.begin() as conn:
        for row in conn.execute(select(ledger_table.c.id, ledger_table.c.body)).all():
            body = json.loads(row.body)
            if body["type"] == "segment" and body["segment"]["number"] == 2:
                body["segment"]["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
                body = sign_entry(body, Ed25519PrivateKey.generate())
                conn.execute(
                    update(ledger_table)
                    .where(ledger_table.c.id == row.id)
                    .values(body=json.dumps(body))
                )
    result = verdicts(rig, uploaded)
    assert result[1] == "bad_signature"
    assert result[2] in {"gap_before", "bad_signature"}  # the chain no longer links


def test_full_disk_stops_recording_with_an_alert_and_keeps_what_was_recorded(
    tmp_path: Path,
) -> None:
    rig = EvidenceRig(tmp_path, max_bytes=160_000)
    rig.recorder.request_start("officer")
    rig.feed(20.0)  # far more than fits
    assert rig.recorder.stats.disk_full and not rig.recorder.recording
    assert any("STORAGE FULL" in e.message for e in rig.alerts.events)
    entries = rig.ledger.entries()
    stop = [e for e in entries if e["type"] == "action" and e["action"]["name"] == "record_stop"]
    assert stop[-1]["action"]["by"] == "device"
    segments = [e["segment"] for e in entries if e["type"] == "segment"]
    assert segments and "disk_full" in segments[-1]["flags"]
    assert rig.dir.used_bytes <= 160_000
    frames = 0
    for seg in segments:  # every segment on disk is whole, decryptable and in the ledger
        path = rig.dir.root / seg["file"]
        assert path.stat().st_size == seg["size"]
        opened = open_segment(path.read_bytes(), rig.hq_key)
        assert opened.complete
        frames += decode_frames(opened.plaintext)
    assert frames == sum(seg["frames"] for seg in segments)
    rig.recorder.request_start("officer")  # refused while full, alerting again
    rig.feed(0.2)
    assert not rig.recorder.recording and len(rig.alerts.events) >= 2
    refused = rig.ledger.entries()[-1]["action"]
    assert (refused["name"], refused["by"]) == ("record_refused", "officer")
    assert rig.upload().ok
    assert set(verdicts(rig, rig.hq_files())) == {"verified"}
    rig.close()


def test_retention_deletes_uploaded_footage_first_never_unuploaded(tmp_path: Path) -> None:
    rig = EvidenceRig(tmp_path)
    rig.record(2.0)
    rig.upload(delete_local=False)  # HQ holds them; local copies kept until space is needed
    kept = {s.file for s in rig.ledger.segments(STATE_UPLOADED)}
    rig.record(2.0)
    fresh = {s.file for s in rig.ledger.segments("local")}
    rig.dir.max_bytes = rig.dir.used_bytes + 110_000  # room for ~3 s more
    rig.record(4.0)  # needs more: uploaded files go, never the fresh ones
    assert not rig.recorder.stats.disk_full
    states = {s.file: s.state for s in rig.ledger.segments()}
    assert any(states[f] == STATE_DELETED for f in kept)
    assert all(states[f] == "local" and (rig.dir.root / f).exists() for f in fresh)
    rig.close()


def test_pre_event_ring_is_saved_from_a_keyframe_when_a_hit_starts_recording(
    rig: EvidenceRig,
) -> None:
    rig.feed(5.0)  # idle: only the last pre_event_s (2 s) is kept, whole GOPs
    assert 2.0 <= rig.recorder.stats.ring_s <= 2.5
    rig.recorder.on_hit({"plate": "12345-B-6"})
    rig.feed(3.0)  # post_event_s = 1 s after the hit: stops by itself
    assert not rig.recorder.recording
    entries = rig.ledger.entries()
    segments = [e["segment"] for e in entries if e["type"] == "segment"]
    first = segments[0]
    assert "pre_event" in first["flags"]
    assert 5.0 - 2.5 <= first["start"] - 1_790_000_000.0 <= 5.0 - 2.0
    assert segments[-1]["end"] - 1_790_000_000.0 == pytest.approx(6.0, abs=0.6)
    start = next(e for e in entries if e["type"] == "action")
    assert start["action"]["name"] == "record_start" and start["action"]["by"] == "hit"
    opened = open_segment((rig.dir.root / first["file"]).read_bytes(), rig.hq_key)
    assert decode_frames(opened.plaintext) == first["frames"]  # starts at a keyframe


# -- pure parts -------------------------------------------------------------------------


def test_a_cut_segment_decrypts_to_its_last_whole_chunk_and_says_so(
    rig: EvidenceRig, uploaded: list[Path]
) -> None:
    data = uploaded[0].read_bytes()
    header, offset = parse_header(data)
    cut = data[: offset + 3 * (header.chunk + 16) + 100]
    opened = open_segment(cut, rig.hq_key)
    assert not opened.complete and opened.chunks == 3
    assert len(opened.plaintext) == 3 * header.chunk
    tampered = bytearray(data)
    tampered[offset + 10] ^= 1
    with pytest.raises(SegmentDecryptError):
        open_segment(bytes(tampered), rig.hq_key)


def test_ledger_chain_links_and_signs_every_entry(rig: EvidenceRig, uploaded: list[Path]) -> None:
    entries = rig.ledger.entries()
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    prev = GENESIS
    for body in entries:
        entry = parse_entry(body)
        assert entry.prev == prev and entry.verify(rig.signing_key.public_key())
        prev = entry_hash(body)
    with pytest.raises(LedgerEntryError):
        parse_entry({**entries[0], "v": 99})
    sig = base64.b64decode(entries[0]["sig"])
    assert len(sig) == 64


def test_hq_keeps_the_first_copy_of_a_ledger_entry(rig: EvidenceRig, uploaded: list[Path]) -> None:
    first = rig.ledger.entries()[0]
    with rig.hq() as hq:
        assert not store_ledger_entry(hq.engine, rig.device_id, 7, first)
        changed = sign_entry({**first, "officer": "someone else"}, rig.signing_key)
        assert not store_ledger_entry(hq.engine, rig.device_id, 8, changed)
        with pytest.raises(LedgerEntryError):
            store_ledger_entry(hq.engine, "cam-other-03", 9, first)


def test_ledger_entries_queued_for_hq_are_retried_until_the_outbox_takes_them(
    rig: EvidenceRig,
) -> None:
    from agent.errors import StorageError

    sent: list[int] = []
    broken = True

    def publish(body: dict[str, object]) -> None:
        if broken:
            raise StorageError("outbox full")
        sent.append(int(str(body["seq"])))

    rig.ledger.set_publisher(publish)
    rig.ledger.add_action("watchlist_applied", "hq", {"version": 7})
    rig.ledger.add_action("config_changed", "device", {})
    assert rig.ledger.pending_publish and sent == []
    broken = False
    assert rig.ledger.publish_pending() == 2
    assert sent == [1, 2] and rig.ledger.unpublished() == 0


def test_a_real_enospc_is_a_storage_full_error_not_a_crash(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from agent.evidence.errors import StorageFullError
    from agent.evidence.sealing import SealedWriter, new_header

    header, key = new_header(
        X25519PrivateKey.generate().public_key(),
        device="cam-rig-01",
        segment=1,
        recording="r",
        part=0,
        started_at=0.0,
    )
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(StorageFullError):
            SealedWriter(fd, header, key, reserve=lambda n, f: None)
    finally:
        os.close(fd)


def test_garbage_and_wrong_keys_are_refused_with_clear_errors(
    rig: EvidenceRig, uploaded: list[Path], tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from agent.evidence.errors import SegmentFormatError

    with pytest.raises(SegmentFormatError):
        parse_header(b"not a segment at all")
    with pytest.raises(SegmentDecryptError):
        open_segment(uploaded[0].read_bytes(), X25519PrivateKey.generate())
    junk = tmp_path / "holiday.mp4"
    junk.write_bytes(b"\x00" * 100)
    assert verdicts(rig, [junk, tmp_path / "does-not-exist.rqseg"]) == ["unknown", "unknown"]


def test_an_interrupted_upload_resumes_and_a_bad_copy_is_never_committed(
    rig: EvidenceRig,
) -> None:
    rig.record(2.0)
    segments = rig.ledger.segments()
    first, second = (rig.dir.root / s.file for s in segments[:2])
    target = rig.hq_root / "evidence" / rig.device_id
    target.mkdir(parents=True)
    data = first.read_bytes()
    (target / (first.name + ".partial")).write_bytes(data[: len(data) // 2])  # cut off
    (target / (second.name + ".partial")).write_bytes(b"\xff" * 1000)  # garbage
    report = rig.upload()
    assert report.ok and sorted(report.uploaded) == sorted(s.file for s in segments)
    assert (target / first.name).read_bytes() == data
    assert not list(target.glob("*.partial"))

    rig.record(1.0)
    local = rig.ledger.segments("local")[0]
    path = rig.dir.root / local.file
    rotten = bytearray(path.read_bytes())
    rotten[-1] ^= 0x01
    path.write_bytes(bytes(rotten))  # a bit rotted on the device's flash
    report = rig.upload()
    assert report.failed == [local.file]
    assert path.exists() and not (target / local.file).exists()  # kept, not committed


def test_two_quick_presses_of_the_button_are_a_start_and_a_stop(rig: EvidenceRig) -> None:
    rig.feed(0.5)
    rig.recorder.toggle()
    rig.recorder.toggle()  # before the recorder thread acted on the first press
    rig.feed(0.5)
    assert not rig.recorder.recording
    names = [e["action"]["name"] for e in rig.ledger.entries() if e["type"] == "action"]
    assert names == ["record_start", "record_stop"]

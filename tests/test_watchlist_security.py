"""Every forged, stale, replayed, broken or tampered watchlist is refused with its reason,
and the device keeps matching against the list it already had."""

from __future__ import annotations

import hashlib
import sqlite3
import struct
import zlib
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.watchlist import errors
from agent.watchlist.admin import sign_bundle, sign_root
from agent.watchlist.content import ListEntry
from agent.watchlist.format import (
    MAX_BUNDLE_BYTES,
    Metadata,
    Root,
    Signature,
    decode_bundle,
    encode_bundle,
)
from agent.watchlist.manager import WatchlistManager
from agent.watchlist.simulator import AdminSimulator
from agent.watchlist.verify import verify_update

pytestmark = pytest.mark.security

HELD = [
    ListEntry("AB-123-CD", "stolen", "C-1", 2),
    ListEntry("12345-B-6", "wanted", "C-2", 3),
]
NEW = [*HELD, ListEntry("EF-456-GH", "stolen", "C-3", 1)]


@pytest.fixture
def sim() -> AdminSimulator:
    return AdminSimulator(n_admins=3, threshold=2)


@pytest.fixture
def device(tmp_path: Path, sim: AdminSimulator) -> Iterator[WatchlistManager]:
    """A device holding list v5 (HELD), signed by two of three admins."""
    manager = WatchlistManager.open(tmp_path / "watchlist.sqlite", sim.root)
    assert manager.handle_update(sim.full(HELD, 5), sim.now).applied
    yield manager
    manager.close()


def assert_refused_and_kept(
    device: WatchlistManager, payload: bytes, now: float, reason: str
) -> None:
    result = device.handle_update(payload, now)
    assert not result.applied
    assert result.reason == reason, result.detail
    assert result.detail
    assert result.version == 5
    match = device.matcher.match("AB-123-CD", 0.5, now)
    assert match is not None
    assert match.kind == "exact"
    assert device.matcher.match("EF-456-GH", 0.99, now) is None
    status = device.status(now)
    assert status["version"] == 5
    assert status["entries"] == 2
    if reason != "replay" or "different bundle" in result.detail:
        assert status["last_refusal"] == reason


def _resign(bundle: bytes, meta: Metadata, keys: list[Ed25519PrivateKey]) -> bytes:
    decoded = decode_bundle(bundle)
    out = encode_bundle(meta, (), decoded.content, decoded.roots)
    for key in keys:
        out = sign_bundle(out, key)
    return out


def test_forged_signature_is_refused(device: WatchlistManager, sim: AdminSimulator) -> None:
    bundle = decode_bundle(sim.full(NEW, 6))
    forged = tuple(Signature(s.keyid, bytes(64)) for s in bundle.signatures)
    payload = encode_bundle(bundle.metadata, forged, bundle.content)
    assert_refused_and_kept(device, payload, sim.now, "bad_signature")


def test_metadata_edited_after_signing_is_refused(
    device: WatchlistManager, sim: AdminSimulator
) -> None:
    bundle = decode_bundle(sim.full(NEW, 6))
    edited = replace(bundle.metadata, expires_at=bundle.metadata.expires_at + 10**6)
    payload = encode_bundle(edited, bundle.signatures, bundle.content)
    assert_refused_and_kept(device, payload, sim.now, "bad_signature")


def test_list_signed_by_unknown_keys_is_refused(
    device: WatchlistManager, sim: AdminSimulator
) -> None:
    strangers = [Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()]
    payload = sim.full(NEW, 6, signers=strangers)
    assert_refused_and_kept(device, payload, sim.now, "unknown_key")


def test_list_signed_by_revoked_key_is_refused(
    device: WatchlistManager, sim: AdminSimulator
) -> None:
    a, b, c = sim.admins
    new_root = sim.rotate([a, c], threshold=1)  # admin b lost their laptop
    rotated = sim.full(HELD, 6, roots=(new_root,), signers=[a])
    assert device.handle_update(rotated, sim.now).applied
    assert device.status(sim.now)["root_version"] == 2
    payload = sim.full(NEW, 7, signers=[b])
    result = device.handle_update(payload, sim.now)
    assert (result.applied, result.reason) == (False, "revoked_key")
    assert device.matcher.match("EF-456-GH", 0.99, sim.now) is None


def test_revocation_survives_a_restart(
    tmp_path: Path, device: WatchlistManager, sim: AdminSimulator
) -> None:
    a, b, c = sim.admins
    new_root = sim.rotate([a, c], threshold=1)
    assert device.handle_update(sim.full(HELD, 6, roots=(new_root,), signers=[a]), sim.now).applied
    device.close()
    restarted = WatchlistManager.open(tmp_path / "watchlist.sqlite", sim.roots[0])
    try:
        result = restarted.handle_update(sim.full(NEW, 7, signers=[b]), sim.now)
        assert result.reason == "revoked_key"
    finally:
        restarted.close()


def test_root_rotation_not_signed_by_the_old_root_is_refused(
    device: WatchlistManager, sim: AdminSimulator
) -> None:
    attacker = AdminSimulator(fleet=sim.fleet, n_admins=1)
    forged_root = replace(attacker.root, version=2)
    forged_root = sign_root(replace(forged_root, signatures=()), attacker.root_key)
    payload = attacker.full(NEW, 6, roots=(forged_root,))
    assert_refused_and_kept(device, payload, sim.now, "unknown_key")


def test_list_below_threshold_is_refused(device: WatchlistManager, sim: AdminSimulator) -> None:
    payload = sim.full(NEW, 6, signers=[sim.admins[0]])
    assert_refused_and_kept(device, payload, sim.now, "below_threshold")


def test_one_key_signing_twice_counts_once(device: WatchlistManager, sim: AdminSimulator) -> None:
    bundle = decode_bundle(sim.full(NEW, 6, signers=[sim.admins[0]]))
    payload = encode_bundle(bundle.metadata, bundle.signatures * 2, bundle.content)
    assert_refused_and_kept(device, payload, sim.now, "below_threshold")


def test_rollback_to_an_older_version_is_refused(
    device: WatchlistManager, sim: AdminSimulator
) -> None:
    assert_refused_and_kept(device, sim.full(NEW, 4), sim.now, "rollback")


def test_replay_of_the_current_version_is_refused(
    device: WatchlistManager, sim: AdminSimulator
) -> None:
    assert_refused_and_kept(device, sim.full(NEW, 5), sim.now, "replay")


def test_retained_copy_of_the_current_list_is_ignored_quietly(
    device: WatchlistManager, sim: AdminSimulator
) -> None:
    first = sim.published[0]
    result = device.handle_update(first, sim.now)
    assert (result.applied, result.reason) == (False, "replay")
    assert "same bundle" in result.detail
    assert device.status(sim.now)["last_refusal"] is None


def test_expired_list_is_refused(device: WatchlistManager, sim: AdminSimulator) -> None:
    payload = sim.full(NEW, 6, expires_in=60)
    assert_refused_and_kept(device, payload, sim.now + 61, "expired")


def test_delta_against_the_wrong_base_is_refused(
    device: WatchlistManager, sim: AdminSimulator
) -> None:
    payload = sim.delta(HELD, [], [NEW[2]], version=7, base_version=6)
    assert_refused_and_kept(device, payload, sim.now, "wrong_base")


def test_delta_whose_result_differs_from_the_signed_hash_is_refused(
    device: WatchlistManager, sim: AdminSimulator
) -> None:
    other_base = [*HELD, ListEntry("XX-999-XX", "stolen")]
    payload = sim.delta(other_base, [], [NEW[2]], version=6, base_version=5)
    assert_refused_and_kept(device, payload, sim.now, "hash_mismatch")


def test_content_swapped_under_valid_signatures_is_refused(
    device: WatchlistManager, sim: AdminSimulator
) -> None:
    signed = decode_bundle(sim.full(NEW, 6))
    swapped = signed.content.replace(b"EF-456-GH\tstolen", b"EF-456-GJ\twanted")
    assert len(swapped) == len(signed.content)
    payload = encode_bundle(signed.metadata, signed.signatures, swapped)
    assert_refused_and_kept(device, payload, sim.now, "hash_mismatch")


def test_list_for_another_fleet_is_refused(device: WatchlistManager, sim: AdminSimulator) -> None:
    bundle = decode_bundle(sim.full(NEW, 6))
    meta = replace(bundle.metadata, fleet="other-fleet")
    payload = _resign(sim.published[-1], meta, sim.admins[:2])
    assert_refused_and_kept(device, payload, sim.now, "wrong_fleet")


@pytest.mark.parametrize("cut", [1, 100, 400])
def test_truncated_payload_is_refused(
    device: WatchlistManager, sim: AdminSimulator, cut: int
) -> None:
    payload = sim.full(NEW, 6)
    assert_refused_and_kept(device, payload[: len(payload) - cut], sim.now, "truncated")


def test_short_payload_is_refused(device: WatchlistManager, sim: AdminSimulator) -> None:
    assert_refused_and_kept(device, b"RQWL\x01", sim.now, "truncated")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"hello world, this is not a bundle",
        struct.pack(">4sBBI", b"RQWL", 1, 0, 2) + b"{}",
        struct.pack(">4sBBI", b"RQWL", 1, 0, 9) + b"\xff\xfe not",
        struct.pack(">4sBBI", b"RQWL", 9, 0, 0),
        struct.pack(">4sBBI", b"RQWL", 1, 0, 5) + b"[1.5]",
    ],
)
def test_malformed_payload_is_refused(
    device: WatchlistManager, sim: AdminSimulator, payload: bytes
) -> None:
    result = device.handle_update(payload, sim.now)
    assert result.reason in {"malformed", "truncated"}, result.detail
    assert_refused_and_kept(device, payload, sim.now, result.reason)


def test_malformed_content_under_valid_signatures_is_refused(
    device: WatchlistManager, sim: AdminSimulator
) -> None:
    bundle = decode_bundle(sim.full(HELD, 6))
    content = b"ab-123-cd\tstolen\t\t1\t0\n"  # not canonical: lower case
    digest = hashlib.sha256(content).hexdigest()
    meta = replace(
        bundle.metadata,
        content_sha256=digest,
        content_length=len(content),
        result_sha256=digest,
        result_length=len(content),
        entry_count=1,
    )
    payload = _resign(encode_bundle(meta, (), content), meta, sim.admins[:2])
    assert_refused_and_kept(device, payload, sim.now, "malformed")


def test_oversized_payload_is_refused_before_parsing(
    device: WatchlistManager, sim: AdminSimulator
) -> None:
    assert_refused_and_kept(device, bytes(MAX_BUNDLE_BYTES + 1), sim.now, "oversized")


def test_compressed_content_that_inflates_past_its_length_is_refused(
    device: WatchlistManager, sim: AdminSimulator
) -> None:
    bundle = decode_bundle(sim.full(NEW, 6))
    bomb = zlib.compress(bytes(50_000_000), 9)  # 50 MB of zeros in ~50 kB
    header_and_frame = sim.published[-1][: -len(zlib.compress(bundle.content, 6))]
    assert_refused_and_kept(device, header_and_frame + bomb, sim.now, "oversized")


def test_cache_content_edited_on_disk_is_refused(tmp_path: Path, sim: AdminSimulator) -> None:
    path = tmp_path / "watchlist.sqlite"
    manager = WatchlistManager.open(path, sim.root)
    assert manager.handle_update(sim.full(HELD, 5), sim.now).applied
    manager.close()
    with closing(sqlite3.connect(path)) as db, db:
        (blob,) = db.execute("SELECT content FROM wl_lists").fetchone()
        db.execute("UPDATE wl_lists SET content = ?", (blob.replace(b"AB-123-CD", b"AB-123-CE"),))
    reopened = WatchlistManager.open(path, sim.root)
    try:
        status = reopened.status(sim.now)
        assert status["cache_tampered"]
        assert status["last_refusal"] == "cache_tampered"
        assert status["stale"]
        assert len(reopened.matcher) == 0
        # a new, properly signed full list repairs the device
        assert reopened.handle_update(sim.full(NEW, 6), sim.now).applied
        assert reopened.status(sim.now)["cache_tampered"] is None
    finally:
        reopened.close()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE wl_lists SET header = replace(header, '\"version\":5', '\"version\":9')",
        "DELETE FROM wl_lists WHERE kind = 'base'",
        "UPDATE wl_lists SET content = replace(content, 'EF-456-GH', 'EF-456-GX')",
        "INSERT INTO wl_roots (version, doc) VALUES (2, X'7b7d')",
    ],
    ids=["header-edited", "base-deleted", "delta-edited-as-text", "root-injected"],
)
def test_cache_structure_edited_on_disk_is_refused(
    tmp_path: Path, sim: AdminSimulator, sql: str
) -> None:
    path = tmp_path / "watchlist.sqlite"
    manager = WatchlistManager.open(path, sim.root)
    assert manager.handle_update(sim.full(HELD, 5), sim.now).applied
    assert manager.handle_update(sim.delta(HELD, [], [NEW[2]], 6, 5), sim.now).applied
    manager.close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(sql)
    reopened = WatchlistManager.open(path, sim.root)
    try:
        assert reopened.status(sim.now)["cache_tampered"]
        assert reopened.matcher.match("AB-123-CD", 0.99, sim.now) is None
    finally:
        reopened.close()


def test_refusal_errors_are_precise_classes(sim: AdminSimulator) -> None:
    with pytest.raises(errors.BelowThresholdError):
        verify_update(sim.full(NEW, 6, signers=[]), sim.root, None, sim.now)
    with pytest.raises(errors.ExpiredError):
        verify_update(sim.full(NEW, 6, expires_in=0), sim.root, None, sim.now)
    with pytest.raises(errors.WrongBaseError):
        verify_update(sim.delta(HELD, [], [NEW[2]], 6, 5), sim.root, None, sim.now)
    assert issubclass(errors.ReplayError, errors.RollbackError)
    assert issubclass(errors.TruncatedError, errors.MalformedError)
    assert issubclass(errors.RevokedKeyError, errors.UnknownKeyError)


def test_root_document_round_trips(sim: AdminSimulator) -> None:
    assert Root.from_bytes(sim.root.to_bytes()) == sim.root


def test_refusal_is_logged_and_reported_with_the_offered_version(
    device: WatchlistManager, sim: AdminSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="agent.watchlist.manager"):
        result = device.handle_update(sim.full(NEW, 4), sim.now)
    assert (result.offered_version, result.kind, result.version) == (4, "full", 5)
    assert result.to_dict()["reason"] == "rollback"
    assert "refused (rollback)" in caplog.text

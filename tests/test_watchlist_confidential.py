"""The confidential watchlist: only enrolled, unrevoked devices open a list; nothing at rest
on a device, nor anything a broker relays, names a listed plate; the device's cache is useless
without the key HQ sends it, and useless on another device."""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from agent.broker import LocalBroker
from agent.config import DEFAULT_SAMPLES_DIR, parse_config
from agent.daemon import Agent
from agent.enroll import answer_kem_request, answer_request, create_kem_request, create_request
from agent.errors import ConfigError
from agent.evidence.hit_seal import open_hit_detail, seal_hit_detail
from agent.metrics import read_status
from agent.pki import HqKeys, load_x25519_private
from agent.watchlist import sealed
from agent.watchlist.atrest import GraceCopy, make_key_message
from agent.watchlist.content import ListEntry
from agent.watchlist.devicekeys import KEM_KEY, KEM_SIG_SUFFIX, DeviceKeys, redact
from agent.watchlist.manager import WatchlistManager
from agent.watchlist.provision import FleetSigner, provision_watchlist
from agent.watchlist.publish import BrokerTarget
from agent.watchlist.simulator import AdminSimulator
from hq.db import HqDatabase
from hq.enrol import enrol_local
from hq.watchlist_keys import WatchlistKeyRegistry, publish_key_messages

pytestmark = pytest.mark.security

LISTED = [
    ListEntry("12345-B-6", "stolen", "DGSN-2026-0001", 2),
    ListEntry("AB-123-CD", "wanted", "INS-FR-2026-0002", 1),
]
MORE = [*LISTED, ListEntry("EF-456-GH", "stolen", "DGSN-2026-0003", 1)]
HQ_SIGNING = Ed25519PrivateKey.generate()


@dataclass
class Device:
    """One camera: its keys, the cache key HQ made for it, its state directory."""

    name: str
    state: Path
    kem: X25519PrivateKey
    cache_key: bytes

    def keys(self, grace_s: float = 0.0) -> DeviceKeys:
        grace = GraceCopy(self.state / "grace") if grace_s else None
        return DeviceKeys(self.name, self.kem, HQ_SIGNING.public_key(), grace, grace_s)

    def open(self, sim: AdminSimulator, grace_s: float = 0.0) -> WatchlistManager:
        return WatchlistManager.open(
            self.state / "watchlist.sqlite",
            sim.root,
            keys=self.keys(grace_s),
            clock=lambda: float(sim.now),
        )

    def key_message(self, now: int) -> bytes:
        return make_key_message(self.name, self.kem.public_key(), self.cache_key, now, HQ_SIGNING)


def make_device(tmp_path: Path, name: str) -> Device:
    state = tmp_path / name
    state.mkdir()
    return Device(name, state, X25519PrivateKey.generate(), bytes(range(32)))


@pytest.fixture
def sim() -> AdminSimulator:
    return AdminSimulator(n_admins=3, threshold=2)


@pytest.fixture
def cams(tmp_path: Path) -> list[Device]:
    devices = [make_device(tmp_path, f"cam-{i:02d}") for i in range(3)]
    for i, device in enumerate(devices):
        device.cache_key = bytes([i + 1]) * 32
    return devices


@pytest.fixture
def unlocked(sim: AdminSimulator, cams: list[Device]) -> Iterator[WatchlistManager]:
    """cam-00 holding list v5, sealed for all three cameras."""
    manager = cams[0].open(sim)
    assert manager.handle_key(cams[0].key_message(sim.now), sim.now) is not None
    bundle = sim.seal(sim.full(LISTED, 5), [c.kem.public_key() for c in cams])
    assert manager.handle_update(bundle, sim.now).applied
    yield manager
    manager.close()


def files_hold(directory: Path, text: str) -> list[str]:
    needle = text.encode()
    return [p.name for p in directory.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_enrolled_device_opens_the_sealed_list_and_keeps_it_encrypted(
    unlocked: WatchlistManager, cams: list[Device], sim: AdminSimulator
) -> None:
    assert unlocked.matcher.match("12345-B-6", 0.9) is not None
    bundle = sim.published[-1]
    for entry in LISTED:
        for text in (entry.plate, entry.case_ref):
            assert text.encode() not in bundle  # what the broker relays and retains
            assert files_hold(cams[0].state, text) == []  # the cache, its WAL, the grace dir


def test_device_not_enrolled_cannot_open_a_new_bundle(
    sim: AdminSimulator, cams: list[Device], tmp_path: Path
) -> None:
    stranger = make_device(tmp_path, "cam-stranger")
    manager = stranger.open(sim)
    manager.handle_key(stranger.key_message(sim.now), sim.now)
    bundle = sim.seal(sim.full(LISTED, 5), [c.kem.public_key() for c in cams])
    result = manager.handle_update(bundle, sim.now)
    assert (result.applied, result.reason) == (False, "not_a_recipient")
    assert len(manager.matcher) == 0
    manager.close()


def test_revoked_device_gets_no_wrap_and_no_key_in_bundles_made_after_revocation(
    sim: AdminSimulator, cams: list[Device], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'hq.sqlite'}"
    with HqDatabase(url) as db, WatchlistKeyRegistry(url) as registry:
        for cam in cams:
            db.enrol_device(cam.name, Ed25519PrivateKey.generate().public_key(), sim.now)
            registry.register(cam.name, cam.kem.public_key(), sim.now)
        before = sim.seal(sim.full(LISTED, 5), registry.recipients())
        lost = cams[2]
        cache_key = {d.device_id: d.cache_key for d in registry.devices()}[lost.name]
        lost.cache_key = cache_key
        assert db.revoke_device(lost.name, sim.now)
        after = sim.seal(sim.full(MORE, 6), registry.recipients())
        assert len(registry.recipients()) == 2
        with pytest.raises(ConfigError, match="revoked"):
            registry.key_message(lost.name, HQ_SIGNING, sim.now)
    manager = lost.open(sim)
    manager.handle_key(lost.key_message(sim.now), sim.now)
    assert manager.handle_update(before, sim.now).applied  # made before: it had that list
    result = manager.handle_update(after, sim.now)
    assert (result.applied, result.reason) == (False, "not_a_recipient")
    assert manager.matcher.match("EF-456-GH", 0.9) is None
    manager.close()


def test_rewrapped_table_without_an_admin_signature_is_refused(
    unlocked: WatchlistManager, sim: AdminSimulator, cams: list[Device], tmp_path: Path
) -> None:
    """An enrolled device that learnt v6's content key re-wraps it for an outsider."""
    outsider = make_device(tmp_path, "cam-outsider")
    bundle = sim.seal(sim.full(MORE, 6), [c.kem.public_key() for c in cams[:2]])
    decoded = sealed.decode_sealed(bundle)
    row = sealed.find_wrap(decoded.recipients, sealed.kem_keyid(cams[1].kem.public_key()))
    assert row is not None
    content_key = sealed.unwrap(row, cams[1].kem, sim.fleet, 6)  # what cam-01 can do
    forged = sealed.rewrapped(
        bundle, content_key, [c.kem.public_key() for c in (*cams[:2], outsider)]
    )
    victim = outsider.open(sim)
    victim.handle_key(outsider.key_message(sim.now), sim.now)
    result = victim.handle_update(forged, sim.now)
    assert (result.applied, result.reason) == (False, "hash_mismatch")
    assert "recipient table" in result.detail
    victim.close()
    # ... and the same list re-encrypted under the attacker's own key, release signed by
    # a key the root does not trust, is refused before anything is decrypted
    resealed = sealed.sign_sealed(
        sealed.seal_bundle(sim.full(MORE, 6), [outsider.kem.public_key()]),
        Ed25519PrivateKey.generate(),
    )
    assert unlocked.handle_update(resealed, sim.now).reason == "unknown_key"
    unsigned = sealed.seal_bundle(sim.full(MORE, 6), [cams[0].kem.public_key()])
    assert unlocked.handle_update(unsigned, sim.now).reason == "below_threshold"
    assert unlocked.status(sim.now)["version"] == 5


def test_sealed_list_whose_inner_list_lacks_admin_signatures_is_refused(
    unlocked: WatchlistManager, sim: AdminSimulator, cams: list[Device]
) -> None:
    inner = sim.full(MORE, 6, signers=[Ed25519PrivateKey.generate()])
    bundle = sim.seal(inner, [cams[0].kem.public_key()])  # release correctly signed
    assert unlocked.handle_update(bundle, sim.now).reason == "unknown_key"


def test_every_existing_check_still_holds_on_sealed_lists(
    unlocked: WatchlistManager, sim: AdminSimulator, cams: list[Device]
) -> None:
    me = [cams[0].kem.public_key()]
    assert unlocked.handle_update(sim.seal(sim.full(LISTED, 4), me), sim.now).reason == "rollback"
    assert (
        unlocked.handle_update(sim.seal(sim.full(MORE, 6, expires_in=-1), me), sim.now).reason
        == "expired"
    )
    below = sim.seal(sim.full(MORE, 6), me, signers=sim.admins[:1])
    assert unlocked.handle_update(below, sim.now).reason == "below_threshold"
    delta = sim.seal(sim.delta(LISTED, [], MORE[2:], 6, 4), me)
    assert unlocked.handle_update(delta, sim.now).reason == "wrong_base"
    tampered = bytearray(sim.seal(sim.full(MORE, 6), me))
    tampered[-1] ^= 1
    assert unlocked.handle_update(bytes(tampered), sim.now).reason == "hash_mismatch"
    clear = sim.full(MORE, 6)
    assert unlocked.handle_update(clear, sim.now).reason == "not_sealed"
    good = sim.seal(sim.delta(LISTED, [], MORE[2:], 6, 5), me)
    assert unlocked.handle_update(good, sim.now).applied
    assert unlocked.matcher.match("EF-456-GH", 0.9) is not None


def test_copied_cache_file_is_useless_on_another_device(
    unlocked: WatchlistManager, sim: AdminSimulator, cams: list[Device]
) -> None:
    unlocked.close()
    thief = cams[1]
    shutil.copy(cams[0].state / "watchlist.sqlite", thief.state / "watchlist.sqlite")
    other = thief.open(sim)
    assert other.locked
    other.handle_key(thief.key_message(sim.now), sim.now)
    status = other.status(sim.now)
    assert status["cache_tampered"] and "another device" in status["cache_tampered"]
    assert len(other.matcher) == 0
    other.close()


def test_device_without_the_key_starts_locked_says_so_and_matches_once_it_arrives(
    unlocked: WatchlistManager, sim: AdminSimulator, cams: list[Device]
) -> None:
    unlocked.close()
    rebooted = cams[0].open(sim)  # memory-only policy: the key did not survive the reboot
    status = rebooted.status(sim.now)
    assert status["locked"] is True
    assert "waiting for the key from HQ" in status["key"]
    assert rebooted.matcher.match("12345-B-6", 0.9) is None
    newer = sim.seal(sim.full(MORE, 6), [cams[0].kem.public_key()])
    assert rebooted.handle_update(newer, sim.now).reason == "locked"  # held, not lost
    result = rebooted.handle_key(cams[0].key_message(sim.now), sim.now)
    assert result is not None and result.applied and result.reason == "unlocked"
    assert rebooted.status(sim.now)["locked"] is False
    assert rebooted.matcher.match("EF-456-GH", 0.9) is not None  # the held v6 was applied
    assert rebooted.handle_key(cams[0].key_message(sim.now), sim.now) is None  # retained again
    rebooted.close()


def test_key_message_forged_or_for_another_device_is_refused(
    sim: AdminSimulator, cams: list[Device]
) -> None:
    manager = cams[0].open(sim)
    forged = make_key_message(
        cams[0].name, cams[0].kem.public_key(), b"\x00" * 32, sim.now, Ed25519PrivateKey.generate()
    )
    result = manager.handle_key(forged, sim.now)
    assert result is not None and result.reason == "bad_key_message"
    result = manager.handle_key(cams[1].key_message(sim.now), sim.now)
    assert result is not None and result.reason == "bad_key_message"
    assert manager.locked
    manager.close()


def test_grace_mode_boots_offline_within_its_window_only(
    sim: AdminSimulator, cams: list[Device]
) -> None:
    hour = 3600.0
    first = cams[0].open(sim, grace_s=hour)
    first.handle_key(cams[0].key_message(sim.now), sim.now)
    assert first.handle_update(
        sim.seal(sim.full(LISTED, 5), [cams[0].kem.public_key()]), sim.now
    ).applied
    first.close()
    kept = json.loads((cams[0].state / "grace").read_text())
    assert LISTED[0].plate.encode() not in base64.b64decode(kept["message"])
    offline = cams[0].open(sim, grace_s=hour)
    assert not offline.locked and offline.matcher.match("12345-B-6", 0.9) is not None
    offline.close()
    sim.now += int(hour) + 1
    late = cams[0].open(sim, grace_s=hour)
    assert late.locked and not (cams[0].state / "grace").exists()
    late.close()
    memory = cams[0].open(sim)
    assert memory.locked
    memory.close()


def test_refusal_details_name_no_plate() -> None:
    detail = "delta removes 12345-B-6, which the base list does not have"
    assert "12345-B-6" not in redact(detail)
    assert "AB-123-CD" not in redact("entry line b'AB-123-CD\\tstolen' is bad")
    assert (
        redact("version 5 is older than the current 6") == "version 5 is older than the current 6"
    )


def test_ledger_names_the_hit_plate_only_sealed_to_hq() -> None:
    hq = X25519PrivateKey.generate()
    detail = seal_hit_detail(hq.public_key(), "cam-00", "12345-B-6", "DGSN-2026-0001")
    assert "12345-B-6" not in json.dumps(detail)
    assert open_hit_detail(hq, "cam-00", detail) == {
        "plate": "12345-B-6",
        "case_ref": "DGSN-2026-0001",
    }


def wait_for(condition: object, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@pytest.mark.broker
def test_agent_without_the_key_reads_says_so_and_alerts_as_soon_as_hq_sends_it(
    tmp_path: Path,
) -> None:
    with LocalBroker(workdir=tmp_path / "broker") as broker:
        config = parse_config(
            {
                "device": {"id": "cam-locked-01", "state_dir": str(tmp_path / "device")},
                "capture": {
                    "uri": str(DEFAULT_SAMPLES_DIR / "street_clip.mp4"),
                    "loop": True,
                    "realtime": True,
                },
                "mqtt": {"port": broker.port, "ack_timeout_s": 2.0, "reconnect_max_s": 1.0},
                "hq": {
                    "database_url": f"sqlite:///{tmp_path / 'hq.sqlite'}",
                    "keys_dir": str(tmp_path / "hq-keys"),
                },
                "status": {"metrics_port": 0, "interval_s": 0.2},
                "evidence": {"enabled": False},
            }
        )
        assert config.watchlist.key_policy == "memory"  # the default
        enrol_local(config)
        signer = FleetSigner.load_or_create(tmp_path / "hq-watchlist", "test-fleet", time.time())
        provision_watchlist(config, signer, DEFAULT_SAMPLES_DIR / "watchlist.csv", time.time())
        agent = Agent(config)
        agent.start()
        runner = threading.Thread(target=agent.run)
        runner.start()
        try:
            assert wait_for(lambda: agent.pipeline.stats.reads > 20)  # it reads plates...
            assert agent.status()["watchlist_locked"] is True  # ...says it cannot match...
            assert "no watchlist alerts" in str(agent.status()["watchlist_key"])
            assert wait_for(
                lambda: (read_status(config.device.state_dir) or {}).get("watchlist_locked")
            )
            assert agent.stats.hits_raised == 0  # ...and raises nothing
            assert agent.watchlist is not None
            assert "waiting for the key from HQ" in agent.watchlist.status(time.time())["key"]
            with WatchlistKeyRegistry(config.hq.database_url) as registry:
                publish_key_messages(
                    registry,
                    HqKeys.load(config.hq.keys_dir).signing,
                    BrokerTarget(port=broker.port),
                    config.mqtt.topic_prefix,
                    time.time(),
                )
            assert wait_for(lambda: agent.stats.hits_raised > 0)
            assert agent.status()["watchlist_locked"] is False
        finally:
            agent.stop()
            runner.join(30)
            agent.shutdown()


def test_enrolment_registers_the_watchlist_key_and_migration_needs_the_enrolled_key(
    tmp_path: Path,
) -> None:
    hq = parse_config(
        {
            "hq": {
                "keys_dir": str(tmp_path / "hq" / "keys"),
                "database_url": f"sqlite:///{tmp_path / 'hq' / 'hq.sqlite'}",
            }
        }
    )
    new = parse_config({"device": {"id": "car-new", "state_dir": str(tmp_path / "car-new")}})
    create_request(new, tmp_path / "req-new")
    assert not any(b"PRIVATE" in p.read_bytes() for p in (tmp_path / "req-new").iterdir())
    answer_request(hq, tmp_path / "req-new", "car-new", tmp_path / "pack-new", root=None)
    # a device enrolled before confidential lists: only its signing key is registered
    old = parse_config({"device": {"id": "car-old", "state_dir": str(tmp_path / "car-old")}})
    create_request(old, tmp_path / "req-old")
    for leftover in (tmp_path / "req-old").glob("*.kem.*"):
        leftover.unlink()
    answer_request(hq, tmp_path / "req-old", "car-old", tmp_path / "pack-old", root=None)
    create_kem_request(old, tmp_path / "mig")
    forged = tmp_path / "mig-forged"
    shutil.copytree(tmp_path / "mig", forged)
    (forged / f"car-old{KEM_SIG_SUFFIX}").write_text("00" * 64)
    with pytest.raises(ConfigError, match="not signed by its enrolled signing key"):
        answer_kem_request(hq, forged, "car-old")
    answer_kem_request(hq, tmp_path / "mig", "car-old")
    with WatchlistKeyRegistry(hq.hq.database_url) as registry:
        ids = {sealed.kem_keyid(k) for k in registry.recipients()}
    for device in (new, old):
        kem = load_x25519_private(device.device.keys_path / KEM_KEY, "watchlist key")
        assert sealed.kem_keyid(kem.public_key()) in ids


def retained(broker: LocalBroker, topic: str, wait_s: float = 3.0) -> bytes | None:
    """The retained payload on ``topic``, or None if the broker holds none."""
    got: list[bytes] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            got.append(msg.payload)
            done.set()

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        done.wait(wait_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0] if got else None


@pytest.mark.broker
def test_revoked_device_never_receives_its_key_again(tmp_path: Path, cams: list[Device]) -> None:
    url = f"sqlite:///{tmp_path / 'hq.sqlite'}"
    with (
        LocalBroker(workdir=tmp_path / "broker") as broker,
        HqDatabase(url) as db,
        WatchlistKeyRegistry(url) as registry,
    ):
        for cam in cams[:2]:
            db.enrol_device(cam.name, Ed25519PrivateKey.generate().public_key(), 0)
            registry.register(cam.name, cam.kem.public_key(), 0)
        target = BrokerTarget(port=broker.port)
        assert publish_key_messages(registry, HQ_SIGNING, target, "raqib/v1", 0) == (2, 0)
        lost, kept = cams[0], cams[1]
        topic = "raqib/v1/devices/{}/watchlist-key"
        assert retained(broker, topic.format(lost.name)) is not None
        db.revoke_device(lost.name, 1)
        assert publish_key_messages(registry, HQ_SIGNING, target, "raqib/v1", 1) == (1, 1)
        assert retained(broker, topic.format(lost.name), wait_s=1.0) is None  # withdrawn
        message = retained(broker, topic.format(kept.name))
        assert message is not None
        assert (
            kept.keys().open(message)[0].key
            == {d.device_id: d.cache_key for d in registry.devices()}[kept.name]
        )


def test_clear_cache_from_before_encryption_is_erased_not_kept(
    sim: AdminSimulator, cams: list[Device]
) -> None:
    path = cams[0].state / "watchlist.sqlite"
    old = WatchlistManager.open(path, sim.root)  # a device before confidential lists
    assert old.handle_update(sim.full(LISTED, 5), sim.now).applied
    old.close()
    assert files_hold(cams[0].state, "12345-B-6") != []
    upgraded = cams[0].open(sim)
    upgraded.handle_key(cams[0].key_message(sim.now), sim.now)
    assert upgraded.status(sim.now)["version"] is None  # waits for a sealed list
    upgraded.close()
    for entry in LISTED:
        assert files_hold(cams[0].state, entry.plate) == []


def test_new_key_from_hq_keeps_the_list_under_the_new_key(
    unlocked: WatchlistManager, sim: AdminSimulator, cams: list[Device]
) -> None:
    cams[0].cache_key = b"\x42" * 32
    result = unlocked.handle_key(cams[0].key_message(sim.now), sim.now)
    assert result is not None and result.applied
    assert unlocked.matcher.match("12345-B-6", 0.9) is not None
    unlocked.close()
    rebooted = cams[0].open(sim)
    rebooted.handle_key(cams[0].key_message(sim.now), sim.now)
    assert (
        rebooted.status(sim.now)["version"] == 5 and not rebooted.status(sim.now)["cache_tampered"]
    )
    rebooted.close()

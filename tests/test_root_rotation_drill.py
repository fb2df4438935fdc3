"""The root rotation drill, end to end: admins rotate the fleet's root with the real CLI, the
bundle travels over a real Mosquitto to a device's real uplink, updater and cache; a root
that has expired stops lists until a rotation reaches the device."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from transport_kit import DEVICE, PATIENCE_S, Fleet

from agent.broker import LocalBroker
from agent.config import MqttConfig
from agent.transport.outbox import Outbox
from agent.transport.topics import Topics
from agent.transport.uplink import Uplink
from agent.watchlist.admin import load_root
from agent.watchlist.cli import register
from agent.watchlist.manager import UpdateResult, WatchlistManager
from agent.watchlist.updater import UpdateWorker

pytestmark = [pytest.mark.broker, pytest.mark.security]

DAY = 86_400
CSV = "plate,reason,case_ref,priority,expires_at\nAB-123-CD,stolen,C-1,2,\n"


def cli(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="raqib")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["watchlist", *map(str, argv)])
    code: int = args.handler(args)
    return code


class Admins:
    """The fleet admins' desk: key files, roots and lists made with ``raqib watchlist``."""

    def __init__(self, where: Path, broker: LocalBroker) -> None:
        self.dir = where
        where.mkdir(parents=True, exist_ok=True)
        self.publish_to = ["--host", broker.host, "--port", str(broker.port), "--timeout", "5"]
        for name in ("root1", "root2", "admin-a", "admin-b"):
            assert cli("keygen", where / name) == 0
        (where / "list.csv").write_text(CSV, encoding="utf-8")

    def root(self, version: int, admin: str, *, issued: int, days: float) -> Path:
        out = self.dir / f"root-{version}.json"
        args: list[str | Path] = ["root", "--out", out, "--admin-key", self.dir / f"{admin}.pub"]
        args += ["--issued-at", str(issued), "--expires-in-days", str(days)]
        if version == 1:
            args += ["--fleet", "rabat", "--root-key", self.dir / "root1.pub"]
            args += ["--sign", self.dir / "root1.key"]
        else:  # new root key, signed by the old root key and the new one
            args += ["--previous", self.dir / "root-1.json", "--root-key", self.dir / "root2.pub"]
            args += ["--sign", self.dir / "root1.key", "--sign", self.dir / "root2.key"]
        assert cli(*args) == 0
        return out

    def list(self, version: int, signer: str, *, carry: Path | None = None) -> Path:
        out = self.dir / f"v{version}-{signer}.rqwl"
        args: list[str | Path] = ["build", self.dir / "list.csv", "--out", out]
        args += ["--fleet", "rabat", "--version", str(version), "--expires-in-days", "7"]
        if carry is not None:
            args += ["--root", carry]
        assert cli(*args) == 0
        assert cli("sign", out, "--key", self.dir / f"{signer}.key") == 0
        return out

    def publish(self, bundle: Path) -> None:
        # the drill is about roots: its device opens clear lists (no device keys), so the clear
        # bundle goes out as is; sealing is tests/test_watchlist_confidential.py's concern
        assert cli("publish", bundle, "--clear", *self.publish_to) == 0


class Device:
    """A device's real watchlist path: uplink subscription -> updater thread -> cache."""

    def __init__(self, where: Path, anchor: Path, config: MqttConfig) -> None:
        self.results: list[UpdateResult] = []
        self.manager = WatchlistManager.open(where / "watchlist.sqlite", load_root(anchor))
        self.worker = UpdateWorker(self.manager, self.results.append)
        self.outbox = Outbox(where / "outbox.sqlite")
        self.uplink = Uplink(config, Fleet().sealer(DEVICE), self.outbox)
        self.uplink.subscribe(Topics(config.topic_prefix, DEVICE).watchlist, self.worker.offer)
        self.worker.start()
        self.uplink.start()

    def close(self) -> None:
        self.uplink.stop()
        self.worker.stop()
        self.outbox.close()
        self.manager.close()


@pytest.fixture
def admins(tmp_path: Path, broker: LocalBroker) -> Admins:
    return Admins(tmp_path / "admin", broker)


@pytest.fixture
def device(tmp_path: Path, admins: Admins, mqtt_config: MqttConfig) -> Iterator[Device]:
    anchor = admins.root(1, "admin-a", issued=int(time.time()) - DAY, days=30)
    made = Device(tmp_path / "device", anchor, mqtt_config)
    yield made
    made.close()


def test_rotation_drill_new_root_and_admin_reach_the_device_and_the_old_admin_is_out(
    admins: Admins, device: Device, wait_until
) -> None:
    admins.publish(admins.list(1, "admin-a"))
    assert wait_until(lambda: len(device.results) == 1, PATIENCE_S)
    assert device.results[0].applied
    # the drill: root v2 (new root key, admin b replaces admin a), carried by list v2
    root2 = admins.root(2, "admin-b", issued=int(time.time()), days=365)
    admins.publish(admins.list(2, "admin-b", carry=root2))
    assert wait_until(lambda: len(device.results) == 2, PATIENCE_S)
    assert device.results[1].applied, device.results[1]
    status = device.manager.status(time.time())
    assert (status["version"], status["root_version"]) == (2, 2)
    assert status["root_expires_at"] == load_root(root2).expires_at
    # the dropped admin key can no longer sign for the fleet
    admins.publish(admins.list(3, "admin-a"))
    assert wait_until(lambda: len(device.results) == 3, PATIENCE_S)
    assert (device.results[2].applied, device.results[2].reason) == (False, "revoked_key")
    assert device.manager.status(time.time())["version"] == 2


def test_expired_root_refuses_lists_until_a_rotation_arrives(
    tmp_path: Path, admins: Admins
) -> None:
    """A device that slept through the root's expiry: a list under the old root is refused,
    the rotation carried in a list brings it back (TUF: an expired root still vouches for
    its successor)."""
    issued = int(time.time()) - 40 * DAY
    anchor = admins.root(1, "admin-a", issued=issued, days=30)  # expired 10 days ago
    root2 = admins.root(2, "admin-b", issued=int(time.time()) - DAY, days=365)
    manager = WatchlistManager.open(tmp_path / "sleeper.sqlite", load_root(anchor))
    try:
        now = time.time()
        assert manager.status(now)["root_expired"] is True
        stale = manager.handle_update(admins.list(1, "admin-a").read_bytes(), now)
        assert (stale.applied, stale.reason) == (False, "expired")
        assert "root v1 expired" in (stale.detail or "")
        rotated = manager.handle_update(admins.list(2, "admin-b", carry=root2).read_bytes(), now)
        assert rotated.applied, rotated
        assert manager.status(now)["root_expired"] is False
    finally:
        manager.close()


def test_root_without_expiry_is_refused_by_no_one_but_made_no_more(tmp_path: Path) -> None:
    """Roots made before expiry existed still parse; the CLI now always sets one."""
    for name in ("r", "a"):
        assert cli("keygen", tmp_path / name) == 0
    out = tmp_path / "root.json"
    args = ["root", "--out", out, "--fleet", "f", "--root-key", tmp_path / "r.pub"]
    args += ["--admin-key", tmp_path / "a.pub", "--sign", tmp_path / "r.key"]
    assert cli(*args) == 0
    root = load_root(out)
    assert root.expires_at is not None
    assert 364 * DAY < root.expires_at - root.issued_at <= 365 * DAY

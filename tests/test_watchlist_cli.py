"""The admin CLI end to end: keys, root, build, sign (2 of 3), diff, verify, show, rotation,
and a retained publish that a late subscriber still receives."""

from __future__ import annotations

import argparse
import json
import stat
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from agent.broker import LocalBroker
from agent.watchlist.cli import register

NOW = 1_800_000_000


def cli(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="raqib")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["watchlist", *map(str, argv)])
    code: int = args.handler(args)
    return code


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """Keys for one root and three admins, root v1 with a 2-of-3 threshold, list v1 signed."""
    for name in ("root", "a", "b", "c"):
        assert cli("keygen", tmp_path / name) == 0
    admins = [arg for n in "abc" for arg in ("--admin-key", tmp_path / f"{n}.pub")]
    assert (
        cli(
            "root",
            "--out",
            tmp_path / "root-1.json",
            "--fleet",
            "rabat",
            "--root-key",
            tmp_path / "root.pub",
            *admins,
            "--threshold",
            "2",
            "--sign",
            tmp_path / "root.key",
            "--issued-at",
            str(NOW),
        )
        == 0
    )
    csv = tmp_path / "v1.csv"
    csv.write_text(
        "plate,reason,case_ref,priority,expires_at\n"
        "AB-123-CD,stolen,C-1,2,\n"
        "12345 ب 6,wanted,C-2,3,1900000000\n",
        encoding="utf-8",
    )
    build = ["build", csv, "--out", tmp_path / "v1.rqwl", "--fleet", "rabat", "--version", "1"]
    assert cli(*build, "--issued-at", str(NOW), "--expires-in-days", "30") == 0
    for signer in ("a", "b"):
        assert cli("sign", tmp_path / "v1.rqwl", "--key", tmp_path / f"{signer}.key") == 0
    return tmp_path


@pytest.fixture
def sealed(fleet: Path) -> Path:
    """v1 sealed for two devices (the recipients file HQ writes), its release signed 2 of 3."""
    cams = {f"cam-{i}": X25519PrivateKey.generate() for i in range(2)}
    raw = {
        name: key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        for name, key in cams.items()
    }
    (fleet / "fleet.json").write_text(json.dumps({"devices": raw}), encoding="utf-8")
    out = fleet / "v1.rqws"
    assert cli("seal", fleet / "v1.rqwl", "--recipients", fleet / "fleet.json", "--out", out) == 0
    for signer in ("a", "b"):
        assert cli("sign", out, "--key", fleet / f"{signer}.key") == 0
    return out


def test_sealed_list_names_no_plate_and_its_release_verifies(
    sealed: Path, fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = sealed.read_bytes()
    assert b"AB-123-CD" not in data and b"12345-B-6" not in data
    capsys.readouterr()
    assert cli("verify", sealed, "--root", fleet / "root-1.json", "--now", str(NOW)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] and report["recipient_count"] == 2 and report["signatures"] == 2
    assert cli("show", sealed) == 0
    assert "AB-123-CD" not in capsys.readouterr().out


def test_clear_list_is_not_published_without_clear(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("publish", fleet / "v1.rqwl", "--port", "1", "--timeout", "1") == 2
    assert "refusing to publish a clear list" in capsys.readouterr().err


def test_private_keys_are_0600_and_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("keygen", tmp_path / "k") == 0
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600
    keyid = json.loads(capsys.readouterr().out)["keyid"]
    assert len(keyid) == 64
    assert cli("keygen", tmp_path / "k") == 1
    assert "refusing to overwrite" in capsys.readouterr().err


def test_list_signed_by_two_of_three_verifies(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert cli("verify", fleet / "v1.rqwl", "--root", fleet / "root-1.json", "--now", NOW) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["verified"], out["version"], out["entries"], out["signatures"]) == (True, 1, 2, 2)
    assert cli("show", fleet / "v1.rqwl", "--entries") == 0
    shown = capsys.readouterr().out
    assert "12345-B-6\twanted\tC-2\t3\t1900000000" in shown


@pytest.mark.security
def test_list_signed_by_one_of_three_fails_verify(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = fleet / "v1.csv"
    out = fleet / "v2.rqwl"
    assert cli("build", csv, "--out", out, "--fleet", "rabat", "--version", "2") == 0
    assert cli("sign", out, "--key", fleet / "a.key") == 0
    assert cli("verify", out, "--root", fleet / "root-1.json") == 1
    assert "below_threshold" in capsys.readouterr().err


def test_diff_makes_a_delta_that_verifies_against_its_base(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = fleet / "v2.csv"
    csv.write_text("plate,reason\nAB-123-CD,stolen\nEF-456-GH,wanted\n", encoding="utf-8")
    assert cli("build", csv, "--out", fleet / "v2.rqwl", "--fleet", "rabat", "--version", "2") == 0
    assert cli("diff", fleet / "v1.rqwl", fleet / "v2.rqwl", "--out", fleet / "d2.rqwl") == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["signed"]["kind"] == "delta"
    assert summary["signed"]["changes"] == {"upserts": 2, "removes": 1}
    for signer in ("b", "c"):
        assert cli("sign", fleet / "d2.rqwl", "--key", fleet / f"{signer}.key") == 0
    root = fleet / "root-1.json"
    assert cli("verify", fleet / "d2.rqwl", "--root", root, "--current", fleet / "v1.rqwl") == 0
    assert cli("verify", fleet / "d2.rqwl", "--root", root) == 1
    assert "wrong_base" in capsys.readouterr().err


def test_root_rotation_revokes_a_key_and_travels_in_the_bundle(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rotate = ["root", "--out", fleet / "root-2.json", "--previous", fleet / "root-1.json"]
    rotate += ["--root-key", fleet / "root.pub", "--admin-key", fleet / "a.pub"]
    rotate += ["--admin-key", fleet / "c.pub", "--threshold", "1", "--sign", fleet / "root.key"]
    assert cli(*rotate) == 0
    assert json.loads(capsys.readouterr().out)["root_version"] == 2
    build = ["build", fleet / "v1.csv", "--fleet", "rabat", "--version", "2"]
    assert cli(*build, "--out", fleet / "v2.rqwl", "--root", fleet / "root-2.json") == 0
    assert cli("sign", fleet / "v2.rqwl", "--key", fleet / "a.key") == 0
    assert cli("verify", fleet / "v2.rqwl", "--root", fleet / "root-1.json") == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["root_version"] == 2
    assert cli(*build, "--out", fleet / "v3.rqwl", "--root", fleet / "root-2.json") == 0
    assert cli("sign", fleet / "v3.rqwl", "--key", fleet / "b.key") == 0
    assert cli("verify", fleet / "v3.rqwl", "--root", fleet / "root-1.json") == 1
    assert "revoked_key" in capsys.readouterr().err


def _retained(broker: LocalBroker, topic: str) -> bytes:
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
        assert done.wait(5), "no retained message"
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


@pytest.mark.broker
def test_publish_is_retained_for_the_fleet_and_for_one_device(
    sealed: Path, broker: LocalBroker
) -> None:
    where = ["--host", broker.host, "--port", str(broker.port), "--timeout", "5"]
    assert cli("publish", sealed, *where) == 0
    assert cli("publish", sealed, *where, "--device", "cam-7") == 0
    payload = sealed.read_bytes()
    assert _retained(broker, "raqib/v1/watchlist") == payload
    assert _retained(broker, "raqib/v1/devices/cam-7/watchlist") == payload


@pytest.mark.broker
def test_publish_without_a_broker_fails_clearly(
    sealed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--host", "127.0.0.1", "--port", "1", "--timeout", "1"]
    assert cli("publish", sealed, *where) == 1
    assert "cannot connect" in capsys.readouterr().err

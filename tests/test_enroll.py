"""Field enrolment: keys stay on the device, HQ certifies and registers it, revocation bites."""

from __future__ import annotations

from pathlib import Path

import pytest
from transport_kit import connects

from agent.broker import LocalBroker, free_port
from agent.config import RaqibConfig, parse_config
from agent.enroll import answer_request, create_request, install_pack
from agent.errors import ConfigError
from agent.pki import HqPublicKeys
from hq.db import HqDatabase
from hq.enrol import revoke_device_tls, setup_local_tls

pytestmark = pytest.mark.device


def device_config(tmp_path: Path, device_id: str = "car-0042") -> RaqibConfig:
    return parse_config({"device": {"id": device_id, "state_dir": str(tmp_path / device_id)}})


def hq_config(tmp_path: Path) -> RaqibConfig:
    return parse_config(
        {
            "hq": {
                "keys_dir": str(tmp_path / "hq" / "keys"),
                "database_url": f"sqlite:///{tmp_path / 'hq' / 'hq.sqlite'}",
            }
        }
    )


def enrol(tmp_path: Path, device: RaqibConfig, hq: RaqibConfig) -> Path:
    request = tmp_path / "usb" / "request"
    pack = tmp_path / "usb" / "pack"
    create_request(device, request)
    answer_request(hq, request, device.device.id, pack, root=None)
    install_pack(device, pack)
    return pack


def test_three_step_enrolment_keeps_private_keys_on_the_device(tmp_path: Path) -> None:
    device, hq = device_config(tmp_path), hq_config(tmp_path)
    enrol(tmp_path, device, hq)
    keys = device.device.keys_path
    for private in (keys / "device.key", keys / "tls" / "tls.key"):
        assert private.stat().st_mode & 0o777 == 0o600
    carried = list((tmp_path / "usb").rglob("*"))
    assert carried
    assert not any(b"PRIVATE KEY" in f.read_bytes() for f in carried if f.is_file())
    HqPublicKeys.load(keys)  # the device can now seal to HQ and check its acks
    db = HqDatabase(hq.hq.database_url)
    try:
        assert "car-0042" in db.device_keys()
    finally:
        db.close()


def test_pack_for_another_device_is_refused(tmp_path: Path) -> None:
    hq = hq_config(tmp_path)
    pack = enrol(tmp_path, device_config(tmp_path, "car-0042"), hq)
    other = device_config(tmp_path, "car-0043")
    create_request(other, tmp_path / "req-43")
    with pytest.raises(ConfigError, match="not for device 'car-0043'"):
        install_pack(other, pack)


def test_request_renamed_to_another_device_is_refused_at_hq(tmp_path: Path) -> None:
    device, hq = device_config(tmp_path), hq_config(tmp_path)
    request = tmp_path / "request"
    create_request(device, request)
    (request / "car-0042.csr.pem").rename(request / "car-9999.csr.pem")
    (request / "car-0042.pub.pem").rename(request / "car-9999.pub.pem")
    with pytest.raises(ConfigError, match="not for device 'car-9999'"):
        answer_request(hq, request, "car-9999", tmp_path / "pack", root=None)


def test_certificate_from_another_ca_is_refused_on_install(tmp_path: Path) -> None:
    device = device_config(tmp_path)
    pack = enrol(tmp_path, device, hq_config(tmp_path))
    rogue = enrol(tmp_path / "rogue", device_config(tmp_path / "rogue"), hq_config(tmp_path / "x"))
    (pack / "ca.crt").write_bytes((rogue / "ca.crt").read_bytes())
    with pytest.raises(ConfigError, match="not issued by the pack's CA"):
        install_pack(device, pack)


@pytest.mark.broker
def test_enrolled_device_connects_with_its_certificate_and_not_after_revocation(
    tmp_path: Path,
) -> None:
    device, hq = device_config(tmp_path), hq_config(tmp_path)
    enrol(tmp_path, device, hq)
    ca_dir = hq.hq.keys_dir / "ca"
    tls = setup_local_tls(ca_dir, tmp_path / "broker-tls")
    tls_dir = device.device.keys_path / "tls"
    files = (tls_dir / "ca.crt", tls_dir / "tls.crt", tls_dir / "tls.key")
    port = free_port()
    with LocalBroker(port=port, workdir=tmp_path / "broker", tls=tls) as broker:
        mqtt = parse_config({"mqtt": {"port": port}}).mqtt
        assert connects(mqtt, files)
        assert not connects(mqtt, (files[0], None, None))  # no certificate, no entry
        assert tls.crl is not None
        revoke_device_tls(ca_dir, files[1], tls.crl)
        broker.restart()
        assert not connects(mqtt, files)

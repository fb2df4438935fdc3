"""`raqib hq revoke-device --broker`: a revoked camera is cut off by the running broker at once,
without anyone restarting or reloading it by hand (real Mosquitto, dynamic security plugin)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from transport_kit import PATIENCE_S, Fleet, RawClient, connects

from agent.broker import CONTROL_USER, LocalBroker, free_port
from agent.cli import main
from agent.config import MqttConfig
from agent.errors import ConfigError
from agent.pki import TlsFiles
from hq.broker_control import write_dynsec_config
from hq.db import HqDatabase
from hq.enrol import issue_device_tls, issue_hq_tls, setup_local_tls, tls_overrides

pytestmark = [pytest.mark.broker, pytest.mark.security]

A, B = "cam-a1", "cam-b2"


@dataclass
class Site:
    broker: LocalBroker
    keys_dir: Path
    certs: dict[str, TlsFiles]
    base: MqttConfig

    def config(self, who: str) -> MqttConfig:
        return MqttConfig.model_validate(
            {**self.base.model_dump(), **tls_overrides(self.certs[who])}
        )

    def tls(self, who: str) -> tuple[Path, Path | None, Path | None]:
        files = self.certs[who]
        return files.ca, files.cert, files.key


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    keys_dir = tmp_path / "hq-keys"
    ca_dir = keys_dir / "ca"
    tls = setup_local_tls(ca_dir, tmp_path / "broker-tls")
    dynsec = tmp_path / "broker-tls" / "dynamic-security.json"
    write_dynsec_config(dynsec)
    tls = type(tls)(tls.ca, tls.cert, tls.key, tls.crl, tls.topic_prefix, dynsec)
    certs = {d: issue_device_tls(ca_dir, d, tmp_path / d) for d in (A, B)}
    certs[CONTROL_USER] = issue_hq_tls(ca_dir, tmp_path / "control", user=CONTROL_USER)
    port = free_port()
    with LocalBroker(port=port, workdir=tmp_path / "broker", tls=tls) as broker:
        base = MqttConfig(port=port, keepalive_s=5, ack_timeout_s=1.0, reconnect_max_s=1.0)
        yield Site(broker, keys_dir, certs, base)


def hq_config(tmp_path: Path, site: Site) -> Path:
    """The fleet admin's config: the database, HQ's keys and CA, the hq-control certificate."""
    files = site.certs[CONTROL_USER]
    path = tmp_path / "admin.toml"
    path.write_text(
        f'[hq]\ndatabase_url = "sqlite:///{tmp_path / "hq.sqlite"}"\n'
        f'keys_dir = "{site.keys_dir}"\n'
        f'[mqtt]\nport = {site.base.port}\ntls_ca = "{files.ca}"\n'
        f'tls_cert = "{files.cert}"\ntls_key = "{files.key}"\n',
        encoding="utf-8",
    )
    return path


def test_revoked_connected_device_is_kicked_and_refused_without_a_manual_reload(
    tmp_path: Path, site: Site, wait_until
) -> None:
    fleet = Fleet()
    with HqDatabase(f"sqlite:///{tmp_path / 'hq.sqlite'}") as db:
        fleet.enrol(db, A, B)
    revoked = RawClient(site.config(A), A, tls=site.tls(A))
    other = RawClient(site.config(B), B, tls=site.tls(B))
    watcher = RawClient(site.config(CONTROL_USER), "watch", tls=site.tls(CONTROL_USER))
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text(f"{site.broker.pid}\n", encoding="ascii")
    try:
        assert wait_until(revoked._client.is_connected, PATIENCE_S)
        args = ["hq", "revoke-device", A, "--cert", str(site.certs[A].cert)]
        args += ["--crl", str(site.broker.tls.crl if site.broker.tls else "")]
        args += ["--broker", "--broker-pid-file", str(pid_file)]
        assert main([*args, "--config", str(hq_config(tmp_path, site))]) == 0
        # kicked at once, and its own client's reconnect attempts fail from now on
        assert wait_until(lambda: not revoked._client.is_connected(), 3.0)
        time.sleep(2.5)  # paho retries every second
        assert not revoked._client.is_connected()
        assert not connects(site.config(A), site.tls(A))
        # nobody else is touched
        assert other._client.is_connected()
        assert connects(site.config(B), site.tls(B))
        # and the block survives a broker restart (the plugin saved its state)
        site.broker.restart()
        assert not connects(site.config(A), site.tls(A))
        assert connects(site.config(B), site.tls(B))
    finally:
        for client in (revoked, other, watcher):
            client.close()


def test_kick_alone_does_not_keep_a_certificate_out_so_the_crl_reloads_first(
    site: Site, wait_until
) -> None:
    """Why revoke-device reloads the CRL *before* kicking: Mosquitto does not ask the plugin
    about clients that log in by certificate, so a kicked device with a valid certificate
    could come straight back."""
    from hq.broker_control import BrokerControl

    device = RawClient(site.config(A), A, tls=site.tls(A))
    try:
        assert wait_until(device._client.is_connected, PATIENCE_S)
        BrokerControl(site.config(CONTROL_USER)).block(A)
        # kicked: its client connects again, and the broker lets it
        assert wait_until(lambda: len(device.connect_codes) == 2, PATIENCE_S)
        assert not device.connect_codes[1].is_failure
    finally:
        device.close()
    assert "disconnected by administrative action" in site.broker.log_tail(20000)


def test_a_device_cannot_take_the_control_identity(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reserved"):
        issue_device_tls(tmp_path / "ca", CONTROL_USER, tmp_path / "out")


def test_control_client_refused_for_a_device_certificate(site: Site) -> None:
    from agent.errors import TransportError
    from hq.broker_control import BrokerControl

    with pytest.raises(TransportError):
        BrokerControl(site.config(B), timeout_s=2.0).block(A)


def test_shipped_dynsec_state_is_what_the_code_generates() -> None:
    import json

    from hq.broker_control import dynsec_config

    shipped = Path(__file__).parent.parent / "deploy" / "mosquitto" / "dynamic-security.json"
    assert json.loads(shipped.read_text(encoding="utf-8")) == dynsec_config()

"""Across hosts: devices, broker, two HQ ingest hosts and the database each on their own
simulated host (network namespaces on a bridge, made by the test), with faults on the links:
a partition (cable pulled), an iptables DROP, latency and lost connections through a proxy,
a broker killed and restarted, an ingest host killed under load. Every hit arrives once.

Needs root and ``ip netns`` + ``iptables`` (scripts/setup.sh); skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from netns_kit import SUBNET, Hosts, unavailable
from netns_roles import make_device_key

from agent.pki import CertificateAuthority, HqKeys, cert_pem, make_tls_key, private_pem
from hq.enrol import issue_device_tls, issue_hq_tls

REASON = unavailable()
pytestmark = [
    pytest.mark.fleet,
    pytest.mark.faults,
    pytest.mark.broker,
    pytest.mark.skipif(REASON is not None, reason=f"multi-host tests: {REASON}"),
]

ROOT = Path(__file__).parent.parent
PYTHON = sys.executable
HOSTS = ["devices", "broker", "hq1", "hq2", "db"]
DEVICES = 6
BROKER_PORT, DB_PORT, PROXY_PORT = 8883, 5432, 18883


@dataclass
class Site:
    hosts: Hosts
    work: Path

    def wait(self, name: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.work / name).exists():
            assert time.monotonic() < deadline, f"{name} not there after {timeout} s: {self.logs()}"
            time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in self.work.glob("*.log")
        )

    def start_ingest(self, host: str) -> None:
        raqib = f"{ROOT}/.venv/bin/raqib hq ingest --workers 1 --config {self.work}/hq.toml"
        script = f"hostname {host} && exec {raqib}"
        self.hosts.run(host, ["unshare", "--uts", "sh", "-c", script], self.work / f"{host}.log")


def _write_plan(work: Path, hosts: Hosts, *, partition_s: float) -> None:
    ca_dir = work / "ca"
    ca = CertificateAuthority.load_or_create(ca_dir)
    key = make_tls_key()
    tls_dir = work / "broker-tls"
    tls_dir.mkdir(parents=True)
    (tls_dir / "ca.crt").write_bytes(cert_pem(ca.cert))
    (tls_dir / "broker.crt").write_bytes(
        cert_pem(ca.issue_server(key, [hosts.ip("broker"), "127.0.0.1"]))
    )
    (tls_dir / "broker.key").write_bytes(private_pem(key))
    (tls_dir / "crl.pem").write_bytes(ca.crl_pem())
    hq = HqKeys.load_or_create(work / "hq-keys")
    hq.public().save(work / "hq-public")
    ingest = issue_hq_tls(ca_dir, work / "hq-tls")
    devices = [f"cam-host-{n:02d}" for n in range(DEVICES)]
    device_keys = {d: make_device_key(work / "keys" / f"{d}.key") for d in devices}
    base = {"keepalive_s": 5, "ack_timeout_s": 3.0, "reconnect_max_s": 2.0}
    device_mqtt = {}
    for d in devices:
        files = issue_device_tls(ca_dir, d, work / "tls" / d)
        device_mqtt[d] = base | {
            "host": "127.0.0.1",
            "port": PROXY_PORT,
            "tls_ca": str(files.ca),
            "tls_cert": str(files.cert),
            "tls_key": str(files.key),
        }
    plan = {
        "subnet": f"{SUBNET}.0/24",
        "broker_ip": hosts.ip("broker"),
        "broker_port": BROKER_PORT,
        "broker_tls": {
            k: str(tls_dir / f)
            for k, f in (
                ("ca", "ca.crt"),
                ("cert", "broker.crt"),
                ("key", "broker.key"),
                ("crl", "crl.pem"),
            )
        },
        "db_ip": hosts.ip("db"),
        "db_port": DB_PORT,
        "device_keys": device_keys,
        "device_key_files": {d: str(work / "keys" / f"{d}.key") for d in devices},
        "device_mqtt": device_mqtt,
        "hq_public": str(work / "hq-public"),
        "proxy": {"port": PROXY_PORT, "delay_s": 0.03, "cut_every_s": 8.0},
        "put_every_s": 0.5,
        "drain_s": 90.0 + partition_s,
    }
    (work / "plan.json").write_text(json.dumps(plan))
    (work / "hq.toml").write_text(
        f'[mqtt]\nhost = "{hosts.ip("broker")}"\nport = {BROKER_PORT}\nkeepalive_s = 5\n'
        f'reconnect_max_s = 2.0\ntls_ca = "{ingest.ca}"\ntls_cert = "{ingest.cert}"\n'
        f'tls_key = "{ingest.key}"\n'
        f'[hq]\ndatabase_url = "postgresql+psycopg://postgres@{hosts.ip("db")}:{DB_PORT}/postgres"\n'
        f'keys_dir = "{work / "hq-keys"}"\n'
        '[logging]\nlevel = "INFO"\n'
    )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    hosts = Hosts(HOSTS)
    work = tmp_path / "site"
    work.mkdir()
    tmp_path.chmod(0o755)  # PostgreSQL runs as its own user
    hosts.up()
    try:
        yield Site(hosts, work)
    finally:
        (work / "stop-producing").touch()
        (work / "stop").touch()
        hosts.down()


def _role(site: Site, host: str, role: str) -> None:
    env_python = [PYTHON, str(ROOT / "tests" / "netns_roles.py"), role, str(site.work)]
    site.hosts.run(host, env_python, site.work / f"{role}.log")


def _bring_up(site: Site, partition_s: float) -> None:
    _write_plan(site.work, site.hosts, partition_s=partition_s)
    site.work.chmod(0o755)
    _role(site, "db", "db")
    _role(site, "broker", "broker")
    site.wait("db.ready")
    site.wait("broker.ready")
    site.start_ingest("hq1")
    site.start_ingest("hq2")
    _role(site, "devices", "devices")
    site.wait("devices.ready")


def _finish(site: Site) -> tuple[dict[str, list[int]], dict[str, list[int]], dict[str, int]]:
    (site.work / "stop-producing").touch()
    site.wait("devices-report.json", 300)
    report = json.loads((site.work / "devices-report.json").read_text())
    (site.work / "stop").touch()
    site.wait("db-report.json", 60)
    stored = json.loads((site.work / "db-report.json").read_text())
    return report["put"], stored, report["depth"]


def _kill_broker(site: Site) -> None:
    pid = int((site.work / "broker.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # a crash; the broker host brings it back (persistence on)


def _kill_ingest_host(site: Site, host: str) -> None:
    """SIGKILL (``ip netns exec``, ``unshare`` and ``sh`` all exec: the pid is the worker's)."""
    for proc in site.hosts.procs:
        args = list(proc.args)  # type: ignore[arg-type]
        if "unshare" in args and f"hostname {host} " in args[-1]:
            proc.kill()


def _ingest_alive(site: Site) -> list[str]:
    alive = []
    for proc in site.hosts.procs:
        args = list(proc.args)  # type: ignore[arg-type]
        if "unshare" in args and proc.poll() is None:
            alive.append(args[-1].split()[1])
    return alive


def _faults(site: Site, partition_s: float) -> None:
    hosts = site.hosts
    time.sleep(3)
    hosts.link("devices", up=False)  # the fleet loses its network; cameras keep recording hits
    time.sleep(partition_s)
    hosts.link("devices", up=True)
    time.sleep(4)
    hosts.firewall("broker", drop=True)  # the broker host vanishes from the network
    time.sleep(6)
    hosts.firewall("broker", drop=False)
    time.sleep(4)
    crashed = (site.work / "broker.pid").read_text()
    _kill_broker(site)
    time.sleep(5)
    assert (site.work / "broker.pid").read_text() != crashed, "the broker came back"
    _kill_ingest_host(site, "hq1")  # under load: hq2 carries on through the shared group
    time.sleep(6)
    assert _ingest_alive(site) == ["hq2"]


def _assert_exactly_once(
    put: dict[str, list[int]], stored: dict[str, list[int]], depth: dict[str, int]
) -> None:
    assert set(put) == set(stored)
    for device, seqs in put.items():
        assert depth[device] == 0, f"{device}: {depth[device]} never acked"
        assert len(seqs) > 10
        assert sorted(stored[device]) == sorted(seqs), f"{device}: lost or duplicated hits"


def test_every_hit_arrives_once_across_hosts_through_link_faults_and_crashes(site: Site) -> None:
    _bring_up(site, partition_s=15)
    _faults(site, partition_s=15)
    put, stored, depth = _finish(site)
    _assert_exactly_once(put, stored, depth)


@pytest.mark.slow
def test_a_partition_of_two_minutes_loses_nothing(site: Site) -> None:
    _bring_up(site, partition_s=120)
    time.sleep(3)
    site.hosts.firewall("devices", drop=True)  # iptables DROP inside the devices' host
    time.sleep(120)
    site.hosts.firewall("devices", drop=False)
    time.sleep(5)
    put, stored, depth = _finish(site)
    _assert_exactly_once(put, stored, depth)

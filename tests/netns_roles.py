"""What runs on each simulated host of tests/test_fleet_hosts.py (started with `ip netns exec`).

    python tests/netns_roles.py broker  WORKDIR   # Mosquitto, restarted if it dies (as systemd)
    python tests/netns_roles.py db      WORKDIR   # PostgreSQL; enrols the devices; serves queries
    python tests/netns_roles.py devices WORKDIR   # real uplinks + outboxes putting hits

Each reads WORKDIR/plan.json and talks to the test through files in WORKDIR:
``{role}.ready``, ``stop-producing``, ``stop``, ``devices-report.json``, ``db-report.json``.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

STOP = {"flag": False}


def _on_term(*_a: object) -> None:
    STOP["flag"] = True


def _wait(workdir: Path, name: str) -> None:
    while not (workdir / name).exists() and not STOP["flag"]:
        time.sleep(0.1)


def broker(workdir: Path, plan: dict[str, Any]) -> None:
    from agent.broker import BrokerTls, LocalBroker

    tls = BrokerTls(*(Path(plan["broker_tls"][k]) for k in ("ca", "cert", "key", "crl")))
    mosquitto = LocalBroker(
        port=plan["broker_port"], workdir=workdir / "broker", tls=tls, host="0.0.0.0"
    )
    mosquitto.start()
    (workdir / "broker.pid").write_text(str(mosquitto.pid))
    (workdir / "broker.ready").touch()
    while not STOP["flag"]:
        time.sleep(0.2)
        if not mosquitto.running:  # killed by the test: come back like a systemd service
            time.sleep(1.0)
            mosquitto.start()
            (workdir / "broker.pid").write_text(str(mosquitto.pid))
    mosquitto.stop()


def db(workdir: Path, plan: dict[str, Any]) -> None:
    from agent.pki import ed25519_public_from_pem
    from hq.db import HqDatabase
    from hq.pgcluster import ThrowawayPostgres

    pg = ThrowawayPostgres(
        listen=f"127.0.0.1,{plan['db_ip']}", trust_network=plan["subnet"], port=plan["db_port"]
    )
    pg.start()
    try:
        with HqDatabase(pg.url) as database:
            for device, pem in plan["device_keys"].items():
                key = ed25519_public_from_pem(pem.encode("ascii"), device)
                database.enrol_device(device, key, time.time())
        (workdir / "db.ready").touch()
        _wait(workdir, "stop")
        with HqDatabase(pg.url) as database:
            stored: dict[str, list[int]] = {}
            for device in plan["device_keys"]:
                stored[device] = database.hit_seqs(device)
        (workdir / "db-report.json").write_text(json.dumps(stored))
    finally:
        pg.stop()


def devices(workdir: Path, plan: dict[str, Any]) -> None:
    from netns_kit import LossyProxy
    from transport_kit import sample_hit

    from agent.config import MqttConfig
    from agent.messages import HIT_KIND, hit_body
    from agent.pki import HqPublicKeys, load_ed25519_private
    from agent.transport.outbox import PRIORITY_HIT, Outbox
    from agent.transport.sealer import Sealer
    from agent.transport.topics import Topics
    from agent.transport.uplink import Uplink

    hq = HqPublicKeys.load(Path(plan["hq_public"]))
    proxy = plan.get("proxy")
    if proxy is not None:  # latency and lost connections between devices and broker
        LossyProxy(
            proxy["port"],
            (plan["broker_ip"], plan["broker_port"]),
            delay_s=proxy["delay_s"],
            cut_every_s=proxy["cut_every_s"],
        )
    sims = []
    for device, mqtt in plan["device_mqtt"].items():
        key = load_ed25519_private(Path(plan["device_key_files"][device]), "key")
        sealer = Sealer(device, key, hq)
        box = Outbox(workdir / "outboxes" / f"{device}.sqlite")
        uplink = Uplink(MqttConfig.model_validate(mqtt), sealer, box, heartbeat_s=5.0)
        uplink.start()
        sims.append(
            (device, sealer, box, uplink, Topics(mqtt.get("topic_prefix", "raqib/v1"), device))
        )
    (workdir / "devices.ready").touch()
    put: dict[str, list[int]] = {d: [] for d, *_ in sims}
    n = 0
    while not (workdir / "stop-producing").exists() and not STOP["flag"]:
        for device, sealer, box, uplink, topics in sims:
            n += 1
            maker = sealer.maker(HIT_KIND, topics.hits, hit_body(sample_hit(n, device)))
            put[device].append(box.put(HIT_KIND, topics.hits, maker, PRIORITY_HIT))
            uplink.wake()
        time.sleep(plan["put_every_s"])
    deadline = time.monotonic() + plan["drain_s"]
    while any(box.depth() for _d, _s, box, _u, _t in sims) and time.monotonic() < deadline:
        time.sleep(0.2)
    depth = {d: box.depth() for d, _s, box, _u, _t in sims}
    (workdir / "devices-report.json").write_text(json.dumps({"put": put, "depth": depth}))
    for _d, _s, box, uplink, _t in sims:
        uplink.stop(timeout=1.0)
        box.close()


def make_device_key(path: Path) -> str:
    """A device signing key written for the devices host; returns its public PEM."""
    from agent.pki import public_pem, write_private

    key = Ed25519PrivateKey.generate()
    write_private(path, key)
    return public_pem(key.public_key()).decode("ascii")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_term)
    role, where = sys.argv[1], Path(sys.argv[2])
    sys.path.insert(0, str(Path(__file__).parent))
    plan_doc = json.loads((where / "plan.json").read_text())
    {"broker": broker, "db": db, "devices": devices}[role](where, plan_doc)

"""Alert latency: from the camera's frame to the officer's buzzer, measured on the real daemon.

``bench_alert_latency`` runs the whole agent (``agent.daemon.Agent``, the same
object systemd starts) on the sample clip at camera speed, looped, with the
recorder recording every frame (software H.264, sealed segments) and the
uplink busy (a local Mosquitto, a steady stream of ledger-sized messages that
HQ never acknowledges, so they are sent again and again). For each watchlist
hit it takes the time the alert adapter fired and subtracts:

* ``alert_latency_ms``: the capture time of the first frame in which the
  reader read that plate (what the officer experiences: it includes waiting
  for the tracker's second read);
* ``alert_processing_ms``: the capture time of the frame that confirmed the
  track (queues, reader, tracker, matcher, alert; no voting wait).

Capture time is ``Frame.timestamp``: the wall-clock time the frame left the
source, paced at the clip's frame rate as a camera delivers them.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from agent.alerts import describe_hit
from agent.broker import LocalBroker
from agent.config import DEFAULT_SAMPLES_DIR, RaqibConfig, with_overrides
from agent.daemon import Agent
from agent.evidence.entry import MESSAGE_KIND as LEDGER_KIND
from agent.reads import Hit
from agent.transport.outbox import PRIORITY_LEDGER
from agent.watchlist.provision import FleetSigner, provision_watchlist
from firmware_glue.alert import SimulatedAlert

log = logging.getLogger(__name__)

CLIP: Final = DEFAULT_SAMPLES_DIR / "street_clip.mp4"
WATCHLIST: Final = DEFAULT_SAMPLES_DIR / "watchlist.csv"
PASSES: Final = 4
"""Times the clip is played (13 s each); the sample watchlist gives 3 hits per pass."""
UPLINK_LOAD_PER_S: Final = 20.0
"""Messages a second put into the outbox beside the hits (never acknowledged: resent)."""

Figures = dict[str, float]


@dataclass(slots=True)
class _Timed:
    first_read_ms: list[float] = field(default_factory=list)
    confirm_ms: list[float] = field(default_factory=list)


class _TimedAgent(Agent):
    """The daemon, noting when the alert adapter fired for each hit."""

    timed: _Timed

    def _on_hit(self, hit: Hit) -> None:
        adapter = self.alerter.adapter
        if not isinstance(adapter, SimulatedAlert):
            raise TypeError("the latency bench needs the simulated alert adapter")
        before = len(adapter.events)
        super()._on_hit(hit)
        message = describe_hit(hit)  # other threads may alert too (e.g. a full disk)
        fired = next(e.at for e in adapter.events[before:] if e.message == message)
        self.timed.first_read_ms.append((fired - hit.read.first_seen) * 1000)
        self.timed.confirm_ms.append((fired - hit.read.last_seen) * 1000)


def _bench_config(config: RaqibConfig, root: Path, port: int) -> RaqibConfig:
    return with_overrides(
        config,
        device={"id": "cam-latency-01", "state_dir": str(root / "device")},
        capture={"source": "file", "uri": str(CLIP), "realtime": True, "loop": True},
        mqtt={"host": "127.0.0.1", "port": port, "ack_timeout_s": 2.0, "tls_ca": None},
        alert={"adapter": "simulated"},
        evidence={"enabled": True, "button": "none", "record_on_hit": True},
        status={"metrics_port": 0},
        hq={"database_url": f"sqlite:///{root / 'hq.sqlite'}", "keys_dir": str(root / "hq-keys")},
        # no HQ key service in the bench: the grace copy made at enrolment opens the sealed list
        watchlist={"key_policy": "grace"},
    )


def _provision(config: RaqibConfig, root: Path) -> None:
    """Enrolment the real way (device keys, HQ's public keys, list key), then a sealed list."""
    from hq.enrol import enrol_local  # the bench plays HQ's part too

    enrol_local(config)
    signer = FleetSigner.load_or_create(root / "fleet", "latency-bench", time.time())
    provision_watchlist(config, signer, WATCHLIST, time.time())


def _uplink_load(agent: Agent, stop: threading.Event) -> None:
    """Keep the outbox and the uplink busy with ledger-sized messages HQ never acknowledges."""
    body: dict[str, object] = {"kind": "bench-load", "pad": "x" * 600}
    topic = agent.topics.ledger
    while not stop.wait(1.0 / UPLINK_LOAD_PER_S):
        agent.outbox.put(
            LEDGER_KIND, topic, agent.sealer.maker(LEDGER_KIND, topic, body), PRIORITY_LEDGER
        )
        agent.uplink.wake()


def _percentiles(name: str, values: list[float]) -> Figures:
    if not values:
        return {f"{name}_p50": float("nan"), f"{name}_p99": float("nan")}
    array = np.asarray(values)
    return {
        f"{name}_p50": round(float(np.percentile(array, 50)), 1),
        f"{name}_p99": round(float(np.percentile(array, 99)), 1),
    }


def bench_alert_latency(config: RaqibConfig, passes: int = PASSES) -> Figures:
    """p50/p99 of frame-to-alert latency on the real agent, recorder and uplink busy."""
    with tempfile.TemporaryDirectory(prefix="raqib-latency-") as tmp:
        root = Path(tmp)
        with LocalBroker(workdir=root / "broker") as broker:
            cfg = _bench_config(config, root, broker.port)
            _provision(cfg, root)
            agent = _TimedAgent(cfg)
            agent.timed = _Timed()
            agent.start()
            stop = threading.Event()
            load = threading.Thread(target=_uplink_load, args=(agent, stop), daemon=True)
            load.start()
            agent.record(True, {"reason": "latency bench"})
            seconds = passes * 13.3
            timer = threading.Timer(seconds, agent.stop)
            timer.start()
            try:
                agent.run()
            finally:
                timer.cancel()
                stop.set()
                load.join(2.0)
                status = agent.status()
                agent.shutdown()
    timed = agent.timed
    return {
        **_percentiles("alert_latency_ms", timed.first_read_ms),
        **_percentiles("alert_processing_ms", timed.confirm_ms),
        "alert_latency_hits": len(timed.first_read_ms),
        "alert_latency_frames_dropped": float(status["frames_dropped"] or 0),
        "alert_latency_recorded_segments": float(status.get("evidence_segments") or 0),
        "alert_latency_outbox_depth": float(status["outbox_depth"] or 0),
    }

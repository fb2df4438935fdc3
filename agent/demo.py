"""`raqib demo`: broker, HQ ingest and agent on the sample clip, all on this machine.

Everything the demo makes stays in one work directory (device state, HQ
database, broker persistence) so a person can look at it afterwards.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agent.broker import LocalBroker
from agent.config import RaqibConfig, with_overrides
from agent.daemon import Agent
from agent.hq.db import HqDatabase
from agent.hq.ingest import IngestService
from agent.messages import HitRecord

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class DemoResult:
    sent: int
    stored: int
    frames: int

    @property
    def lost(self) -> int:
        return max(0, self.sent - self.stored)

    def summary(self) -> str:
        return f"demo: {self.sent} hits sent, {self.stored} stored at HQ, {self.lost} lost"


def _print_hit(device_id: str, seq: int, record: HitRecord) -> None:
    where = f" at {record.lat:.5f},{record.lon:.5f}" if record.lat is not None else ""
    print(
        f"HQ stored hit #{seq} from {device_id}: {record.plate} ({record.format}, "
        f"{record.match}, conf {record.confidence:.2f}) -> {record.reason} "
        f"case {record.case_ref or '-'}{where}",
        flush=True,
    )


def demo_config(base: RaqibConfig, workdir: Path, broker_port: int) -> RaqibConfig:
    return with_overrides(
        base,
        device={"state_dir": str(workdir / "device")},
        mqtt={"host": "127.0.0.1", "port": broker_port},
        hq={"database_url": f"sqlite:///{workdir / 'hq' / 'hq.sqlite'}"},
        status={"metrics_port": 0},
    )


def run_demo(base: RaqibConfig, workdir: Path | None) -> DemoResult:
    """Run the whole flow once; returns what was sent and what HQ stored."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="raqib-demo-") as tmp:
            return _run_in(base, Path(tmp))
    workdir.mkdir(parents=True, exist_ok=True)
    return _run_in(base, workdir.resolve())


def _run_in(base: RaqibConfig, workdir: Path) -> DemoResult:
    with LocalBroker(workdir=workdir / "broker") as broker:
        config = demo_config(base, workdir, broker.port)
        db = HqDatabase(config.hq.database_url)
        before = db.count_hits()  # a reused work directory keeps earlier runs' hits
        ingest = IngestService(config.mqtt, db, on_stored=_print_hit)
        ingest.start()
        try:
            agent = Agent(config)
            agent.start()
            try:
                agent.run(until_end=True)
                if not agent.wait_delivered(DELIVERY_TIMEOUT_S):
                    log.error("demo: HQ did not acknowledge every hit in time")
            finally:
                agent.shutdown()
        finally:
            ingest.stop()
        stored = db.count_hits() - before
        db.close()
    print(f"demo: work directory {workdir}", flush=True)
    return DemoResult(
        sent=agent.stats.hits_raised, stored=stored, frames=agent.pipeline.stats.frames
    )

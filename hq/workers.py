"""`raqib hq ingest --workers N`: N ingest processes on one shared subscription, supervised.

Each worker is its own process (its own GIL, its own MQTT client id
``{group}-{host}-{n}`` so it resumes its session after a restart); the broker
spreads messages over them. The supervisor restarts a worker that dies and
stops them all (SIGTERM, then SIGKILL after a grace period) when it is told to.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import threading
from multiprocessing.process import BaseProcess
from typing import Final

from agent.config import RaqibConfig
from agent.logs import setup_logging
from agent.pki import HqKeys
from hq.db import HqDatabase
from hq.ingest import IngestService, default_client_id

log = logging.getLogger(__name__)

RESTART_CHECK_S: Final = 1.0
STOP_GRACE_S: Final = 10.0


def run_worker(config: RaqibConfig, index: int, stop: threading.Event) -> None:
    """One ingest worker until ``stop`` is set; raises ConfigError/StorageError at start."""
    keys = HqKeys.load(config.hq.keys_dir)
    db = HqDatabase(config.hq.database_url)
    service = IngestService(config.mqtt, db, keys, client_id=f"{default_client_id()}-{index}")
    service.start()
    log.info("hq ingest worker %d running", index)
    try:
        stop.wait()
    finally:
        service.stop()
        db.close()


def _child(config: RaqibConfig, index: int) -> None:
    setup_logging(config.logging.level, config.logging.format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_worker(config, index, stop)


class WorkerPool:
    """N worker processes, restarted when one dies, until ``stop``."""

    def __init__(self, config: RaqibConfig, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._config = config
        self._ctx = mp.get_context("spawn")
        self._procs: list[BaseProcess | None] = [None] * workers
        self.restarts = 0

    def _spawn(self, index: int) -> BaseProcess:
        proc = self._ctx.Process(
            target=_child, args=(self._config, index), name=f"hq-ingest-{index}", daemon=False
        )
        proc.start()
        self._procs[index] = proc
        return proc

    def start(self) -> None:
        for index in range(len(self._procs)):
            self._spawn(index)

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p is not None and p.pid is not None]

    def supervise(self, stop: threading.Event) -> None:
        """Restart dead workers every second until ``stop`` is set, then stop them all."""
        while not stop.wait(RESTART_CHECK_S):
            for index, proc in enumerate(self._procs):
                if proc is not None and not proc.is_alive():
                    log.warning(
                        "hq ingest worker %d exited with %s; restarting", index, proc.exitcode
                    )
                    self.restarts += 1
                    self._spawn(index)
        self.stop()

    def stop(self) -> None:
        for proc in self._procs:
            if proc is not None and proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            if proc is None:
                continue
            proc.join(STOP_GRACE_S)
            if proc.is_alive():
                proc.kill()
                proc.join()

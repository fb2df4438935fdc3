"""Where the camera is: gpsd, an NMEA serial receiver, or a replayed NMEA log.

Each adapter runs a small reader thread and keeps only the latest fix; the
pipeline asks ``latest()`` when it raises a hit and never waits for the
receiver. A fix older than ``max_age_s`` is not reported (a stale position in
evidence is worse than none).
"""

from __future__ import annotations

import calendar
import dataclasses
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from agent.errors import InputError, TransportError
from agent.reads import GnssFix
from firmware_glue.nmea import FixAssembler, NmeaError

log = logging.getLogger(__name__)


class GnssAdapter(Protocol):
    def start(self) -> None: ...

    def latest(self) -> GnssFix | None: ...

    def stop(self) -> None: ...


class _LatestFix:
    """Thread plumbing shared by the adapters: a reader loop and the newest fix."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.time) -> None:
        self._max_age_s = max_age_s
        self._clock = clock
        self._fix: GnssFix | None = None
        self._received_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bad_sentences = 0

    def _publish(self, fix: GnssFix) -> None:
        with self._lock:
            self._fix, self._received_at = fix, self._clock()

    def latest(self) -> GnssFix | None:
        with self._lock:
            if self._fix is None or self._clock() - self._received_at > self._max_age_s:
                return None
            return self._fix

    def _feed_lines(self, lines: Iterator[str], assembler: FixAssembler) -> None:
        for line in lines:
            if self._stop.is_set():
                return
            try:
                fix = assembler.feed(line)
            except NmeaError:
                self.bad_sentences += 1
                continue
            if fix is not None:
                self._publish(fix)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._read()
            except (TransportError, InputError, OSError) as exc:
                log.warning("gnss: %s; retrying", exc)
            self._stop.wait(1.0)

    def _read(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="gnss", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


class NmeaReplayGnss(_LatestFix):
    """Simulator: replays an NMEA log file line by line at ``interval_s``, looping.

    Positions come from the log; each fix is stamped with the time it is
    replayed, as a live receiver's would be, so evidence never carries a fix
    dated months before the footage.
    """

    def __init__(self, path: Path, interval_s: float = 0.5, max_age_s: float = 10.0) -> None:
        super().__init__(max_age_s)
        self._path = path
        self._interval_s = interval_s

    def _lines(self) -> Iterator[str]:
        with self._path.open(encoding="ascii", errors="replace") as handle:
            for line in handle:
                yield line
                if line.startswith("$") and "RMC" in line[:7]:
                    self._stop.wait(self._interval_s)

    def _read(self) -> None:
        if not self._path.is_file():
            raise TransportError(f"NMEA log {self._path} does not exist")
        self._feed_lines(self._lines(), FixAssembler())

    def _publish(self, fix: GnssFix) -> None:
        super()._publish(dataclasses.replace(fix, timestamp=self._clock()))


class NmeaSerialGnss(_LatestFix):
    """A receiver on a serial port (e.g. /dev/ttyAMA0), already set to its baud rate."""

    def __init__(self, device: Path, max_age_s: float = 5.0) -> None:
        super().__init__(max_age_s)
        self._device = device

    def _read(self) -> None:
        try:
            handle = self._device.open(encoding="ascii", errors="replace")
        except OSError as exc:
            raise TransportError(f"cannot open GNSS port {self._device}: {exc}") from exc
        with handle:
            self._feed_lines(iter(handle.readline, ""), FixAssembler())


class GpsdGnss(_LatestFix):
    """gpsd's JSON protocol on localhost:2947 (no client library needed)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 2947, max_age_s: float = 5.0) -> None:
        super().__init__(max_age_s)
        self._address = (host, port)

    def _read(self) -> None:
        try:
            sock = socket.create_connection(self._address, timeout=5)
        except OSError as exc:
            raise TransportError(f"cannot reach gpsd at {self._address}: {exc}") from exc
        with sock, sock.makefile("r", encoding="utf-8", errors="replace") as stream:
            sock.sendall(b'?WATCH={"enable":true,"json":true};\n')
            for line in stream:
                if self._stop.is_set():
                    return
                fix = parse_gpsd_tpv(line)
                if fix is not None:
                    self._publish(fix)


def parse_gpsd_tpv(line: str) -> GnssFix | None:
    """A fix from a gpsd TPV report with mode 2 or 3; None for anything else."""
    try:
        report = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(report, dict) or report.get("class") != "TPV" or report.get("mode", 0) < 2:
        return None
    try:
        lat, lon = float(report["lat"]), float(report["lon"])
        accuracy = float(report.get("eph") or report.get("epx") or 25.0)
        stamp = report.get("time", "")
        ts = (
            calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
            if stamp
            else time.time()
        )
    except (KeyError, TypeError, ValueError):
        return None
    return GnssFix(lat, lon, accuracy, ts)

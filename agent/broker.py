"""A local Mosquitto broker for the demo and the tests (plain TCP on 127.0.0.1).

It runs the system ``mosquitto`` binary with the limits the design asks for:
queues of up to 100,000 messages per client (Mosquitto's default drops a
client's queue past 1,000), 100 in flight, and persistence in ``workdir`` so a
restart keeps sessions and queued messages. TLS, client certificates and ACLs
are the production broker's configuration (``deploy/``), not this one's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Final

from agent.errors import TransportError

log = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
_CANDIDATES: Final = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> str:
    """The path of the mosquitto binary; raises TransportError if it is not installed."""
    for candidate in _CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise TransportError("mosquitto is not installed (apt install mosquitto): no broker to start")


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class LocalBroker:
    """A Mosquitto process on 127.0.0.1 that can be stopped and restarted on the same port."""

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        *,
        binary: str | None = None,
        start_timeout_s: float = 10.0,
    ) -> None:
        self.host = HOST
        self.port = port if port is not None else free_port()
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="raqib-broker-")
            workdir = Path(self._tempdir.name)
        self.workdir = workdir
        self._binary = binary
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _write_config(self) -> None:
        # Running as root, mosquitto drops to the user named here; naming the
        # current user keeps it able to write its persistence file in workdir.
        user = pwd.getpwuid(os.getuid()).pw_name
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "persistence_file mosquitto.db",
            "autosave_interval 30",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            "set_tcp_nodelay true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            f"user {user}",
        ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self) -> None:
        """Start mosquitto and wait until it accepts connections; raises TransportError if not."""
        if self.running:
            return
        binary = self._binary or find_mosquitto()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._log = self.log_path.open("ab")
        log_offset = self._log.tell()
        try:
            self._process = subprocess.Popen(
                [binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
            )
        except OSError as exc:
            self._close_log()
            raise TransportError(f"cannot run {binary}: {exc.strerror or exc}") from exc
        self._wait_ready(self._process, log_offset)
        log.info("mosquitto listening on %s:%d (pid %d)", self.host, self.port, self._process.pid)

    def _says_running(self, log_offset: int) -> bool:
        # Another process may hold the port: only our own "running" line counts.
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(log_offset)
                return b" running" in fh.read()
        except OSError:
            return False

    def _wait_ready(self, process: subprocess.Popen[bytes], log_offset: int) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                code = process.returncode
                self._process = None
                self._close_log()
                raise TransportError(
                    f"mosquitto exited with status {code} at start: {self.log_tail()}"
                )
            if self._says_running(log_offset) and _accepts(self.host, self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise TransportError(
            f"mosquitto did not accept connections on {self.host}:{self.port} "
            f"within {self._start_timeout_s:.0f} s: {self.log_tail()}"
        )

    def log_tail(self, max_chars: int = 2000) -> str:
        """The end of the broker's log, for error messages."""
        try:
            text = self.log_path.read_bytes()[-max_chars:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return text.strip() or "(empty log)"

    def stop(self, timeout: float = 5.0, *, kill: bool = False) -> None:
        """Stop the broker: SIGTERM (it saves its persistence file), or SIGKILL (a crash)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()

    def restart(self, *, kill: bool = False) -> None:
        """Stop and start again on the same port with the same persistence file."""
        self.stop(kill=kill)
        self.start()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the broker and delete its working directory if this object created it."""
        self.stop()
        if self._tempdir is not None:
            with contextlib.suppress(OSError):
                self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

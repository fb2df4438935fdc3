"""A throw-away PostgreSQL cluster on loopback, for benchmarks and tests.

``initdb`` + ``pg_ctl`` from Debian's ``postgresql`` package in a temporary
directory (as the ``postgres`` user when run as root), on a free port of
127.0.0.1, with ``fsync`` on: the same durability as production. It is removed
on ``stop``. Raises TransportError if the server binaries are not installed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from agent.broker import free_port
from agent.errors import TransportError


def pg_bin() -> Path:
    """The directory of ``pg_ctl`` and ``initdb``; TransportError if PostgreSQL is missing."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise TransportError("PostgreSQL server binaries are not installed (apt install postgresql)")


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


class ThrowawayPostgres:
    """``with ThrowawayPostgres() as pg: pg.url`` -- a fresh cluster, gone afterwards."""

    def __init__(
        self,
        *,
        max_connections: int = 200,
        extra: str = "",
        listen: str = "127.0.0.1",
        trust_network: str | None = None,
        port: int | None = None,
    ) -> None:
        """``listen``: addresses (comma separated); ``trust_network``: a CIDR whose clients
        may connect too (a test's own network namespaces), besides loopback."""
        self._bin = pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix="raqib-pg-"))
        self.port = port if port is not None else free_port()
        self._trust_network = trust_network
        self._options = (
            f"-p {self.port} -k {self.root / 'sock'} -c listen_addresses={listen} "
            f"-c fsync=on -c max_connections={max_connections} {extra}"
        )
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, argv: list[str], timeout: float = 120) -> None:
        try:
            subprocess.run(_as_postgres(argv), check=True, capture_output=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            raise TransportError(f"PostgreSQL {argv[0]}: {exc} {detail[-500:]!r}") from exc

    def start(self) -> None:
        (self.root / "sock").mkdir(exist_ok=True)
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            for path in (self.root, self.root / "sock"):
                os.chown(path, pg.pw_uid, pg.pw_gid)
        self._run(
            [str(self._bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
        )
        if self._trust_network is not None:
            with (self.data / "pg_hba.conf").open("a", encoding="ascii") as hba:
                hba.write(f"host all all {self._trust_network} trust\n")
        ctl = [str(self._bin / "pg_ctl"), "-D", str(self.data), "-o", self._options]
        self._run([*ctl, "-l", str(self.root / "log"), "-w", "start"], timeout=60)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        ctl = [str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"]
        with contextlib.suppress(TransportError):
            self._run(ctl, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

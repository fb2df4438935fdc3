"""HQ's remote commands on the device: verify, remember, execute, answer.

A command arrives on ``{prefix}/devices/{id}/commands`` (``agent.envelope`` has
its format). The device acts on it only if, in this order:

1. it is well formed and its signature verifies against HQ's signing key;
2. it names this device;
3. it is fresh: not expired, not issued more than ``CLOCK_SKEW_S`` in the future,
   valid for at most ``MAX_COMMAND_TTL_S``;
4. its id was never seen before. Ids are written to ``commands.sqlite``
   (``synchronous=FULL``) *before* the command runs, and kept until the command
   has expired, so neither a replay nor a restart in the middle runs it twice.

A refused command gets one warning line naming the reason and no reply (its id
cannot be trusted); the daemon goes on. An accepted one runs its handler and
answers with a ``command_reply`` through the durable outbox, ``ok`` false with
the reason when the handler could not do it (recording off, bad arguments, an
action this device does not know).

Payloads are handed over on paho's network thread and handled on this module's
own thread, so a slow handler never stalls the MQTT connection.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Column, Float, MetaData, String, Table, delete, insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from agent.envelope import CLOCK_SKEW_S, Command, check_command_fresh, decode_command
from agent.errors import CommandError, InputError, PayloadError, StorageError
from agent.messages import command_reply_body
from agent.sqlite import sqlite_engine
from agent.transport.outbox import create_private_file

log = logging.getLogger(__name__)

SEEN_FILE: Final = "commands.sqlite"
MAX_PENDING_COMMANDS: Final = 16

CommandHandler = Callable[[Command], str]
"""Carries out one verified command; returns a short detail for the reply, or raises
CommandError (or another InputError) saying why it could not."""
Reply = Callable[[dict[str, Any]], None]
"""Queues a ``command_reply`` body for HQ (the outbox); StorageError if it cannot."""

_metadata = MetaData()
_seen = Table(
    "seen_commands",
    _metadata,
    Column("command_id", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
)


class SeenCommands:
    """Every command id this device accepted, kept durably until the command expires."""

    def __init__(self, path: Path) -> None:
        """Open (or create) the file; raises StorageError if it cannot be opened."""
        self.path = path
        try:
            create_private_file(path)
        except OSError as exc:
            raise StorageError(f"command memory {path}: cannot create: {exc}") from exc
        self._engine = sqlite_engine(path)
        self._lock = threading.Lock()
        with self._transaction("open") as conn:
            _metadata.create_all(conn)

    @contextmanager
    def _transaction(self, operation: str) -> Any:
        try:
            with self._lock, self._engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except DBAPIError as exc:
            reason = exc.orig if exc.orig is not None else exc
            raise StorageError(f"command memory {self.path}: cannot {operation}: {reason}") from exc

    def first_time(self, command: Command, now: float) -> bool:
        """Remember ``command``; False if it was seen before (a replay).

        Ids of commands expired longer than the clock skew ago are forgotten: such a
        command is refused as stale anyway. Raises StorageError if the disk refuses.
        """
        try:
            with self._transaction("remember a command") as conn:
                _forget_expired(conn, now)
                conn.execute(
                    insert(_seen).values(
                        command_id=command.command_id,
                        expires_at=command.expires_at,
                        seen_at=now,
                    )
                )
        except IntegrityError:
            return False
        return True

    def close(self) -> None:
        self._engine.dispose()


def _forget_expired(conn: Connection, now: float) -> None:
    conn.execute(delete(_seen).where(_seen.c.expires_at < now - CLOCK_SKEW_S))


def device_handlers(
    record: Callable[[bool, dict[str, Any]], bool],
    send_status: Callable[[], None],
    dispose: Callable[[dict[str, Any]], str],
) -> dict[str, CommandHandler]:
    """The actions a device carries out: recording (the ledger names the command), a
    heartbeat now, an officer's verdict (``DispositionDesk.from_command``)."""

    def recording(start: bool) -> CommandHandler:
        def run(command: Command) -> str:
            detail = {"command_id": command.command_id, "args": command.args}
            if not record(start, detail):
                raise CommandError("recording is turned off on this device")
            return "recording start requested" if start else "recording stop requested"

        return run

    def status(_command: Command) -> str:
        send_status()
        return "status sent"

    return {
        "start_recording": recording(True),
        "stop_recording": recording(False),
        "send_status": status,
        "disposition": lambda command: dispose(command.args),
    }


class CommandService:
    """Verifies and executes HQ's commands on its own thread and queues each reply."""

    def __init__(
        self,
        device_id: str,
        hq_signing_key: Ed25519PublicKey,
        seen: SeenCommands,
        handlers: Mapping[str, CommandHandler],
        reply: Reply,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._device_id = device_id
        self._key = hq_signing_key
        self._seen = seen
        self._handlers = dict(handlers)
        self._reply = reply
        self._clock = clock
        self._queue: queue.Queue[bytes | None] = queue.Queue(MAX_PENDING_COMMANDS)
        self._thread: threading.Thread | None = None
        self.counts = {"received": 0, "executed": 0, "failed": 0, "refused": 0, "dropped": 0}

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("command service already started")
        self._thread = threading.Thread(target=self._run, name="commands", daemon=True)
        self._thread.start()

    def offer(self, payload: bytes) -> None:
        """Queue one payload (called on the MQTT thread; never blocks)."""
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self.counts["dropped"] += 1
            log.warning("remote command dropped: %d already waiting", MAX_PENDING_COMMANDS)

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the command in hand and close the memory of seen commands."""
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                log.warning("command service busy at shutdown")
            self._thread.join(timeout)
            self._thread = None
        self._seen.close()

    def _run(self) -> None:
        while (payload := self._queue.get()) is not None:
            try:
                self.handle(payload)
            except Exception:  # the command thread must outlive any bug
                log.exception("remote command: unexpected error")

    def handle(self, payload: bytes) -> dict[str, Any] | None:
        """Verify and carry out one command; returns the reply queued, or None if refused."""
        self.counts["received"] += 1
        now = self._clock()
        try:
            command = self._accept(payload, now)
        except (PayloadError, StorageError) as exc:
            self.counts["refused"] += 1
            log.warning("remote command refused: %s", exc, extra={"device": self._device_id})
            return None
        ok, detail = self._execute(command)
        self.counts["executed" if ok else "failed"] += 1
        log.info(
            "remote command %s %s: %s",
            command.action,
            "done" if ok else "failed",
            detail,
            extra={"command_id": command.command_id},
        )
        body = command_reply_body(command.command_id, command.action, ok, detail, self._clock())
        try:
            self._reply(body)
        except StorageError as exc:
            log.error("reply to command %s not queued: %s", command.command_id, exc)
        return body

    def _accept(self, payload: bytes, now: float) -> Command:
        """The verified, fresh, first-seen command; PayloadError (or StorageError) if not."""
        command = decode_command(payload, self._device_id, self._key)
        check_command_fresh(command, now)
        if not self._seen.first_time(command, now):
            raise PayloadError(
                f"command {command.command_id} ({command.action}) was already received: a replay"
            )
        return command

    def _execute(self, command: Command) -> tuple[bool, str]:
        handler = self._handlers.get(command.action)
        if handler is None:
            return False, f"action {command.action!r} is not supported by this device"
        try:
            return True, handler(command)
        except InputError as exc:
            return False, str(exc)
        except Exception as exc:  # a failing action must not take the device down
            log.exception("remote command %s failed", command.action)
            return False, f"failed on the device: {type(exc).__name__}"

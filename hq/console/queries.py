"""Read-only questions the pages ask of HQ's ingest tables that ``HqDatabase`` does not answer.

The console never writes the ingest's tables here: writes (dispositions,
commands, enrolment, revocation) go through ``HqDatabase`` so the ingest and the
console keep one set of rules.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from agent.errors import StorageError
from agent.sqlite import READ_ONLY_OPTION
from hq.db import _engine_for, device_messages, hits

LEDGER_KIND = "ledger"


class HitQueries:
    """Hits by id and after an id (the live list), and each device's officer."""

    def __init__(self, url: str) -> None:
        self._engine, sqlite, self.url = _engine_for(url)
        self._lock: AbstractContextManager[Any] = (
            threading.RLock() if sqlite else contextlib.nullcontext()
        )

    @contextmanager
    def _read(self, operation: str) -> Iterator[Connection]:
        try:
            with self._lock, self._engine.connect() as conn:
                yield conn.execution_options(**{READ_ONLY_OPTION: True})
        except DBAPIError as exc:
            raise StorageError(f"HQ database {self.url}: cannot {operation}: {exc.orig}") from exc

    def close(self) -> None:
        self._engine.dispose()

    def hits_after(self, after_id: int, limit: int = 50) -> list[dict[str, Any]]:
        """Hits stored after ``after_id``, newest first, without their crops."""
        columns = [c for c in hits.c if c.name != "crop_jpeg"]
        query = select(*columns).where(hits.c.id > after_id).order_by(hits.c.id.desc())
        with self._read("list hits") as conn:
            return [dict(row._mapping) for row in conn.execute(query.limit(limit))]

    def hit(self, hit_id: int) -> dict[str, Any] | None:
        with self._read("read a hit") as conn:
            row = conn.execute(select(hits).where(hits.c.id == hit_id)).first()
        return dict(row._mapping) if row is not None else None

    def positions(self, limit: int = 200) -> list[tuple[int, float, float]]:
        """``(hit id, lat, lon)`` of the newest hits that carry a position."""
        query = (
            select(hits.c.id, hits.c.lat, hits.c.lon)
            .where(hits.c.lat.is_not(None), hits.c.lon.is_not(None))
            .order_by(hits.c.id.desc())
            .limit(limit)
        )
        with self._read("list positions") as conn:
            return [(int(r.id), float(r.lat), float(r.lon)) for r in conn.execute(query)]

    def officers(self) -> dict[str, str]:
        """Each device's officer, as its newest ledger entry names them."""
        newest = (
            select(func.max(device_messages.c.id))
            .where(device_messages.c.kind == LEDGER_KIND)
            .group_by(device_messages.c.device_id)
        )
        query = select(device_messages.c.device_id, device_messages.c.body).where(
            device_messages.c.id.in_(newest)
        )
        with self._read("read officers") as conn:
            rows = conn.execute(query).all()
        found: dict[str, str] = {}
        for row in rows:
            try:
                body = json.loads(row.body)
            except json.JSONDecodeError:
                continue
            officer = body.get("officer") if isinstance(body, dict) else None
            if isinstance(officer, str) and officer:
                found[row.device_id] = officer
        return found

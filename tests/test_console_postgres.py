"""The console's tables on PostgreSQL: users and sessions, and an audit log the database
itself keeps append-only (a trigger refuses UPDATE, DELETE and TRUNCATE)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from console_kit import PASSWORD, ConsoleServer, Http, console_config
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from test_hq_postgres import pg_url  # noqa: F401  (the throw-away cluster fixture)

from agent.config import with_overrides
from hq.console.app import open_store
from hq.console.store import Actor


def test_console_on_postgres_logs_in_and_keeps_the_audit_log_append_only(
    pg_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = with_overrides(console_config(tmp_path), hq={"database_url": pg_url})
    store = open_store(config)
    try:
        store.create_user("pg-olga", PASSWORD, "operator", time.time())
        store.audit.record(Actor("pg-olga", "operator", "127.0.0.1"), "view", "hit 1", "ok", 1.0)
    finally:
        store.close()
    with ConsoleServer(config) as console:
        http = Http(console.port)
        assert http.login("pg-olga").status == 303
        assert http.get("/operator").status == 200
    engine = create_engine(pg_url)
    try:
        for statement in (
            "UPDATE console_audit_log SET actor = 'nobody'",
            "DELETE FROM console_audit_log",
            "TRUNCATE console_audit_log",
        ):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()
    store = open_store(config)
    try:
        checked, broken = store.audit.verify_chain()
        assert broken is None and checked >= 3  # the record above, the login, the page view
        actions = [e["action"] for e in store.audit.entries(0, actor="pg-olga", oldest_first=True)]
        assert actions[:3] == ["view", "login", "view_hits"]
    finally:
        store.close()

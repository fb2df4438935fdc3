"""The console's defences, over real HTTP against the real server and database.

Brute force is locked out, forged cross-site posts are refused, a role never
reaches another role's pages, sessions end, every page carries the security
headers with no inline script, and the audit log cannot be rewritten.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from console_kit import (
    PASSWORD,
    Clock,
    ConsoleServer,
    Http,
    add_users,
    console_config,
    hidden,
)

from agent.config import RaqibConfig
from hq.console.app import open_store
from hq.console.store import Actor, ConsoleStore

pytestmark = pytest.mark.security


@pytest.fixture
def config(tmp_path: Path) -> RaqibConfig:
    made = console_config(tmp_path, lockout_failures=3, lockout_s=60, session_lifetime_s=600)
    add_users(made)
    return made


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def console(config: RaqibConfig, clock: Clock) -> Iterator[ConsoleServer]:
    with ConsoleServer(config, clock) as running:
        yield running


def audit_rows(config: RaqibConfig) -> list[dict[str, object]]:
    store = open_store(config)
    try:
        return store.audit.entries(0, oldest_first=True)
    finally:
        store.close()


def test_login_brute_force_locks_the_account_even_for_the_right_password(
    console: ConsoleServer, config: RaqibConfig, clock: Clock
) -> None:
    http = Http(console.port)
    for _ in range(3):
        assert http.login("olga", "not the password at all").status == 401
    locked = http.login("olga", PASSWORD)
    assert locked.status == 429
    assert "locked" in locked.text
    assert "raqib_session" not in http.cookies
    clock.offset = 61.0  # lockout_s has passed
    assert http.login("olga", PASSWORD).status == 303
    outcomes = [(r["action"], r["target"], r["outcome"]) for r in audit_rows(config)]
    assert outcomes.count(("login", "olga", "failed")) == 4
    assert outcomes[-1] == ("login", "olga", "ok")


def test_one_address_trying_many_names_is_locked_out(console: ConsoleServer) -> None:
    http = Http(console.port)
    for n in range(9):  # 3 x lockout_failures, each name tried once
        assert http.login(f"nobody{n}", "guess guess guess").status == 401
    assert http.login("amina", PASSWORD).status == 429


def test_post_without_the_csrf_token_is_refused_and_logged(
    console: ConsoleServer, config: RaqibConfig
) -> None:
    http = Http(console.port)
    assert http.login("farid").status == 303
    token = http.csrf("/fleet/users")
    form = {"username": "mallory", "role": "fleet_admin", "password": "x" * 16}
    assert http.post("/fleet/users", form).status == 403
    assert http.post("/fleet/users", {**form, "csrf": "forged"}).status == 403
    cross_site = http.post("/fleet/users", {**form, "csrf": token}, Origin="https://evil.example")
    assert cross_site.status == 403
    assert "mallory" not in http.get("/fleet/users").text
    assert http.post("/fleet/users", {**form, "csrf": token}).status == 303
    refused = [r for r in audit_rows(config) if r["outcome"] == "refused"]
    assert len(refused) == 3 and all(r["actor"] == "farid" for r in refused)


def test_login_form_without_its_csrf_cookie_is_refused(console: ConsoleServer) -> None:
    http = Http(console.port)
    reply = http.post("/login", {"csrf": "x", "username": "olga", "password": PASSWORD})
    assert reply.status == 403
    assert "raqib_session" not in http.cookies


@pytest.mark.parametrize(
    ("user", "refused"),
    [
        ("olga", ["/fleet", "/fleet/users", "/audit", "/audit/log", "/audit/log.csv"]),
        ("farid", ["/operator", "/operator/hits.part", "/audit", "/audit/log"]),
        ("amina", ["/operator", "/fleet", "/fleet/watchlists", "/fleet/devices.part"]),
    ],
)
def test_a_role_is_refused_the_pages_of_the_others(
    console: ConsoleServer, config: RaqibConfig, user: str, refused: list[str]
) -> None:
    http = Http(console.port)
    assert http.login(user).status == 303
    for path in refused:
        assert http.get(path).status == 403, path
    denied = [r["target"] for r in audit_rows(config) if r["outcome"] == "denied"]
    assert denied == refused


def test_another_roles_post_is_refused_even_with_a_valid_token(console: ConsoleServer) -> None:
    http = Http(console.port)
    http.login("olga")
    token = http.csrf("/operator")
    reply = http.post("/fleet/devices/cam-x/revoke", {"csrf": token})
    assert reply.status == 403


def test_session_ends_at_its_lifetime_and_after_idling(
    console: ConsoleServer, clock: Clock
) -> None:
    http = Http(console.port)
    http.login("olga")
    assert http.get("/operator").status == 200
    clock.offset = 601.0  # session_lifetime_s = 600
    ended = http.get("/operator")
    assert ended.status == 303 and ended.headers["location"].startswith("/login")
    assert http.get("/operator/hits.part").status == 401
    clock.offset = 0.0
    http.login("olga")
    clock.offset = 300.0
    assert http.get("/operator").status == 200
    clock.offset = 300.0 + 1801.0  # idle_timeout_s = 1800 since the last request
    assert http.get("/operator").status == 303


def test_logout_ends_the_session_on_the_server(console: ConsoleServer) -> None:
    http = Http(console.port)
    http.login("amina")
    cookie = http.cookies["raqib_session"]
    assert http.post("/logout", {"csrf": http.csrf("/audit")}).status == 303
    replay = Http(console.port, {"raqib_session": cookie})
    assert replay.get("/audit").status == 303


SCRIPT_RE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
HANDLER_RE = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


@pytest.mark.parametrize(
    ("user", "pages"),
    [
        (None, ["/login"]),
        ("olga", ["/operator"]),
        ("farid", ["/fleet", "/fleet/watchlists", "/fleet/users"]),
        ("amina", ["/audit", "/audit/log"]),
    ],
)
def test_every_page_has_the_security_headers_and_no_inline_script(
    console: ConsoleServer, user: str | None, pages: list[str]
) -> None:
    http = Http(console.port)
    if user:
        http.login(user)
    for path in pages:
        reply = http.get(path)
        assert reply.status == 200, path
        csp = reply.headers["content-security-policy"]
        assert (
            "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        )
        assert "frame-ancestors 'none'" in csp
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["referrer-policy"] == "same-origin"
        assert reply.headers["cache-control"] == "no-store"
        assert not SCRIPT_RE.search(reply.text), path
        assert not HANDLER_RE.search(reply.text), path


def test_session_cookie_is_httponly_and_samesite_strict(console: ConsoleServer) -> None:
    http = Http(console.port)
    http.get("/login")
    token = http.cookies["raqib_login_csrf"]
    conn_reply = http.post("/login", {"csrf": token, "username": "olga", "password": PASSWORD})
    (cookie,) = [c for c in conn_reply.set_cookies if c.startswith("raqib_session=")]
    assert (
        "HttpOnly" in cookie
        and "SameSite=strict" in cookie
        and re.search(r"Max-Age=(599|600);", cookie)
    )


def test_next_after_login_never_leaves_the_console(console: ConsoleServer) -> None:
    http = Http(console.port)
    page = http.get("/login")
    reply = http.post(
        "/login",
        {
            "csrf": hidden(page.text, "csrf"),
            "username": "olga",
            "password": PASSWORD,
            "next": "//evil.example/",
        },
    )
    assert reply.headers["location"] == "/operator"


def test_passwords_are_stored_as_argon2id_hashes(config: RaqibConfig) -> None:
    path = config.hq.database_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as db, db:
        hashes = [row[0] for row in db.execute("SELECT password_hash FROM console_users")]
    assert len(hashes) == 3
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)


def test_audit_log_refuses_update_and_delete_and_its_chain_shows_tampering(
    config: RaqibConfig,
) -> None:
    store = ConsoleStore(config.hq.database_url)
    try:
        assert store.audit.verify_chain() == (0, None)
        for n in range(3):
            store.audit.record(
                Actor("olga", "operator", "127.0.0.1"), "view", f"hit {n}", "ok", 1.0
            )
        assert store.audit.verify_chain() == (3, None)
    finally:
        store.close()
    path = config.hq.database_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as db, db:
        for statement in (
            "UPDATE console_audit_log SET actor = 'nobody'",
            "DELETE FROM console_audit_log WHERE id = 2",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(statement)
        # someone with the database file drops the guard and rewrites history
        db.execute("DROP TRIGGER console_audit_log_no_update")
        db.execute("UPDATE console_audit_log SET target = 'hit 9' WHERE id = 2")
    store = ConsoleStore(config.hq.database_url)
    try:
        assert store.audit.verify_chain() == (3, 2)
    finally:
        store.close()


def test_create_admin_command_makes_a_fleet_admin_who_can_log_in(tmp_path: Path) -> None:
    config = console_config(tmp_path)
    toml = tmp_path / "hq.toml"
    toml.write_text(
        f'[hq]\ndatabase_url = "{config.hq.database_url}"\n[console]\nsecure_cookies = false\n',
        encoding="utf-8",
    )
    raqib = Path(sys.executable).with_name("raqib")
    done = subprocess.run(
        [str(raqib), "hq", "create-admin", "root-admin", "--config", str(toml), "--password-stdin"],
        input="a long enough password\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    short = subprocess.run(
        [str(raqib), "hq", "create-admin", "shorty", "--config", str(toml), "--password-stdin"],
        input="short\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert short.returncode == 1 and "12 characters" in short.stderr
    store = open_store(config)
    try:
        assert store.login("root-admin", "a long enough password", "-", time.time()).session
        users = {u["username"]: u["role"] for u in store.list_users()}
        assert users == {"root-admin": "fleet_admin"}
        assert store.audit.entries(1)[0]["actor"] == "system"
    finally:
        store.close()

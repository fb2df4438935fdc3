"""The console's own tables on HQ's database: users, sessions, login lockouts, the audit log.

They sit on the same database URL as the ingest's tables (SQLite or PostgreSQL)
but in their own ``MetaData``, so the ingest never depends on the console.

Passwords are Argon2id hashes (``argon2-cffi``, RFC 9106 parameters). A session
cookie holds a random token; the database keeps only its SHA-256, so a copy of
the database does not log anyone in. A session ends ``session_lifetime_s`` after
login or ``idle_timeout_s`` after its last request, whichever comes first.

Lockout: ``lockout_failures`` failed logins in a row lock the account for
``lockout_s``; three times as many from one address lock that address (one
person trying many names). A locked account is refused even with the right
password, and the refusal says only "locked", never whether the password was right.

The audit log is append-only: the store has no update or delete, the database
refuses both (triggers on SQLite and PostgreSQL), and each row carries the
SHA-256 of the row before it, so a row removed or changed behind the database's
back breaks :meth:`AuditLog.verify_chain`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from agent.errors import ConfigError, StorageError
from hq.console.roles import AUDITOR, FLEET_ADMIN, LANGUAGES, OPERATOR, ROLES
from hq.db import SqlAccess, _Id

log = logging.getLogger(__name__)
__all__ = ["AUDITOR", "FLEET_ADMIN", "LANGUAGES", "OPERATOR", "ROLES", "ConsoleStore"]

USERNAME_MAX: Final = 64
PASSWORD_MIN: Final = 12
ADDRESS_FACTOR: Final = 3
GENESIS: Final = "0" * 64
TOUCH_S: Final = 10.0

console_metadata = MetaData()
users = Table(
    "console_users",
    console_metadata,
    Column("username", String(USERNAME_MAX), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("language", String(8), nullable=False, default="en"),
    Column("created_at", Float, nullable=False),
    Column("failures", Integer, nullable=False, default=0),
    Column("locked_until", Float, nullable=True),
)
sessions = Table(
    "console_sessions",
    console_metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("username", String(USERNAME_MAX), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("address", Text, nullable=False),
)
address_failures = Table(
    "console_address_failures",
    console_metadata,
    Column("address", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("locked_until", Float, nullable=True),
)
audit_log = Table(
    "console_audit_log",
    console_metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", Text, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("address", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_console_audit_log_at", "at"),
)

watchlist_publications = Table(
    "console_watchlist_publications",
    console_metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("version", Integer, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("fleet", Text, nullable=False),
    Column("entries", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("published_by", Text, nullable=False),
    Column("published_at", Float, nullable=False),
)

_SQLITE_GUARDS = [
    "CREATE TRIGGER IF NOT EXISTS console_audit_log_no_update BEFORE UPDATE ON console_audit_log "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS console_audit_log_no_delete BEFORE DELETE ON console_audit_log "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
]
_POSTGRES_GUARDS = [
    "CREATE OR REPLACE FUNCTION console_audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
    "DROP TRIGGER IF EXISTS console_audit_log_append_only ON console_audit_log",
    "CREATE TRIGGER console_audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
    "ON console_audit_log FOR EACH STATEMENT EXECUTE FUNCTION console_audit_log_refuse()",
]


@event.listens_for(audit_log, "after_create")
def _append_only(_target: Table, connection: Connection, **_kw: Any) -> None:
    guards = _SQLITE_GUARDS if connection.dialect.name == "sqlite" else _POSTGRES_GUARDS
    for statement in guards:
        connection.exec_driver_sql(statement)


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: str
    language: str


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    user: User
    csrf: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class LoginResult:
    """``session`` on success; else ``reason``: ``bad_credentials`` or ``locked``."""

    session: Session | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who does something, from where: every audit entry names one."""

    name: str
    role: str
    address: str


SYSTEM: Final = Actor("system", "system", "-")


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def check_username(name: str) -> str:
    if not name or len(name) > USERNAME_MAX or not name.replace("-", "").replace(".", "").isalnum():
        raise ConfigError("a user name is 1-64 letters, digits, dots and dashes")
    return name


def check_password(password: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise ConfigError(f"a password has at least {PASSWORD_MIN} characters")
    return password


class ConsoleStore(SqlAccess):
    """Users, sessions and the audit log; database failures raise StorageError."""

    _what = "console database"

    def __init__(
        self,
        url: str,
        *,
        session_lifetime_s: float = 8 * 3600.0,
        idle_timeout_s: float = 1800.0,
        lockout_failures: int = 5,
        lockout_s: float = 900.0,
        hasher: PasswordHasher | None = None,
    ) -> None:
        super().__init__(url)
        self._audit_lock = threading.Lock()
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        self.session_lifetime_s = session_lifetime_s
        self.idle_timeout_s = idle_timeout_s
        self.lockout_failures = lockout_failures
        self.lockout_s = lockout_s
        try:
            with self._write("create the console tables") as conn:
                console_metadata.create_all(conn)
        except StorageError:
            self._engine.dispose()
            raise
        self.audit = AuditLog(self)

    # -- users --------------------------------------------------------------------------

    def create_user(
        self, username: str, password: str, role: str, now: float, language: str = "en"
    ) -> User:
        """Add a user; raises ConfigError for a bad name, password, role or a taken name."""
        check_username(username)
        check_password(password)
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}")
        if language not in LANGUAGES:
            raise ConfigError(f"language must be one of {', '.join(LANGUAGES)}")
        row = {
            "username": username,
            "password_hash": self._hasher.hash(password),
            "role": role,
            "language": language,
            "created_at": now,
            "failures": 0,
        }
        try:
            with self._write("create a user") as conn:
                conn.execute(insert(users).values(**row))
        except IntegrityError as exc:
            raise ConfigError(f"user {username!r} already exists") from exc
        return User(username, role, language)

    def set_password(self, username: str, password: str) -> bool:
        check_password(password)
        with self._write("set a password") as conn:
            result = conn.execute(
                update(users)
                .where(users.c.username == username)
                .values(password_hash=self._hasher.hash(password), failures=0, locked_until=None)
            )
        return bool(result.rowcount)

    def unlock(self, username: str) -> bool:
        with self._write("unlock a user") as conn:
            result = conn.execute(
                update(users)
                .where(users.c.username == username)
                .values(failures=0, locked_until=None)
            )
        return bool(result.rowcount)

    def list_users(self) -> list[dict[str, Any]]:
        query = select(
            users.c.username,
            users.c.role,
            users.c.language,
            users.c.created_at,
            users.c.failures,
            users.c.locked_until,
        ).order_by(users.c.username)
        with self._read("list users") as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def set_language(self, username: str, language: str) -> None:
        if language not in LANGUAGES:
            raise ConfigError(f"language must be one of {', '.join(LANGUAGES)}")
        with self._write("set a language") as conn:
            conn.execute(
                update(users).where(users.c.username == username).values(language=language)
            )

    # -- login and sessions --------------------------------------------------------------

    def login(self, username: str, password: str, address: str, now: float) -> LoginResult:
        """Check a password (Argon2id) with lockout; a session on success."""
        with self._read("read a user") as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
            by_address = conn.execute(
                select(address_failures).where(address_failures.c.address == address[:64])
            ).first()
        if _locked(row, now) or _locked(by_address, now):
            self._hash_anyway(password)
            return LoginResult(None, "locked")
        stored = row.password_hash if row is not None else self._dummy_hash
        if not self._verify(stored, password) or row is None:
            self._note_failure(username if row is not None else None, address, now)
            return LoginResult(None, "bad_credentials")
        if self._hasher.check_needs_rehash(stored):
            self.set_password(username, password)
        return LoginResult(self._open_session(row, address, now))

    def _hash_anyway(self, password: str) -> None:
        """Spend the same time on a locked account as on a real check."""
        self._verify(self._dummy_hash, password)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _note_failure(self, username: str | None, address: str, now: float) -> None:
        with self._write("count a failed login") as conn:
            if username is not None:
                row = conn.execute(select(users).where(users.c.username == username)).one()
                failures = int(row.failures) + 1
                locked = now + self.lockout_s if failures >= self.lockout_failures else None
                conn.execute(
                    update(users)
                    .where(users.c.username == username)
                    .values(failures=failures, locked_until=locked)
                )
            key = address[:64]
            held = conn.execute(
                select(address_failures).where(address_failures.c.address == key)
            ).first()
            count = (int(held.failures) if held is not None else 0) + 1
            limit = self.lockout_failures * ADDRESS_FACTOR
            until = now + self.lockout_s if count >= limit else None
            if held is None:
                conn.execute(
                    insert(address_failures).values(address=key, failures=count, locked_until=until)
                )
            else:
                conn.execute(
                    update(address_failures)
                    .where(address_failures.c.address == key)
                    .values(failures=count, locked_until=until)
                )

    def _open_session(self, row: Any, address: str, now: float) -> Session:
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = now + self.session_lifetime_s
        with self._write("open a session") as conn:
            conn.execute(
                update(users)
                .where(users.c.username == row.username)
                .values(failures=0, locked_until=None)
            )
            conn.execute(delete(sessions).where(sessions.c.expires_at < now))
            conn.execute(
                insert(sessions).values(
                    token_sha256=_sha(token),
                    username=row.username,
                    csrf=csrf,
                    created_at=now,
                    last_seen=now,
                    expires_at=expires,
                    address=address,
                )
            )
        return Session(token, User(row.username, row.role, row.language), csrf, expires)

    def session(self, token: str, now: float) -> Session | None:
        """The live session of this cookie token; None if there is none or it has ended.

        Its idle clock restarts at most every ``TOUCH_S`` (the live tables poll every few
        seconds; each poll need not be a database write).
        """
        if not token or len(token) > 128:
            return None
        key = _sha(token)
        with self._read("read a session") as conn:
            row = conn.execute(
                select(sessions, users.c.role, users.c.language)
                .join(users, users.c.username == sessions.c.username)
                .where(sessions.c.token_sha256 == key)
            ).first()
        if row is None:
            return None
        if row.expires_at <= now or now - row.last_seen > self.idle_timeout_s:
            self.logout(token)
            return None
        if now - row.last_seen >= TOUCH_S:
            with self._write("touch a session") as conn:
                conn.execute(
                    update(sessions).where(sessions.c.token_sha256 == key).values(last_seen=now)
                )
        return Session(token, User(row.username, row.role, row.language), row.csrf, row.expires_at)

    def logout(self, token: str) -> None:
        with self._write("close a session") as conn:
            conn.execute(delete(sessions).where(sessions.c.token_sha256 == _sha(token)))

    # -- watchlist publications ----------------------------------------------------------

    def note_publication(self, row: dict[str, Any]) -> None:
        with self._write("note a watchlist publication") as conn:
            conn.execute(insert(watchlist_publications).values(**row))

    def publications(self, limit: int = 50) -> list[dict[str, Any]]:
        query = (
            select(watchlist_publications).order_by(watchlist_publications.c.id.desc()).limit(limit)
        )
        with self._read("list watchlist publications") as conn:
            return [dict(row._mapping) for row in conn.execute(query)]


def _locked(row: Any, now: float) -> bool:
    return row is not None and row.locked_until is not None and float(row.locked_until) > now


_CHAIN_FIELDS: Final = ("at", "actor", "role", "action", "target", "outcome", "address", "detail")


def entry_hash(prev: str, entry: dict[str, Any]) -> str:
    """The SHA-256 naming an audit entry: the previous hash and the entry's fields, as JSON."""
    fields = {key: entry[key] for key in _CHAIN_FIELDS}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _sha(prev + canonical)


class AuditLog:
    """Append-only record of every console action and every view of a crop or footage."""

    def __init__(self, store: ConsoleStore) -> None:
        self._store = store

    def record(
        self,
        actor: Actor,
        action: str,
        target: str,
        outcome: str,
        now: float,
        *,
        detail: str = "",
    ) -> None:
        """Append one entry; raises StorageError (the caller must then refuse the action)."""
        entry = {
            "at": now,
            "actor": actor.name,
            "role": actor.role,
            "action": action,
            "target": target[:512],
            "outcome": outcome,
            "address": actor.address,
            "detail": detail[:2000],
        }
        store = self._store
        with store._audit_lock, store._write("append to the audit log") as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("LOCK TABLE console_audit_log IN SHARE ROW EXCLUSIVE MODE"))
            prev = conn.execute(
                select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)
            ).scalar()
            prev = prev or GENESIS
            conn.execute(
                insert(audit_log).values(**entry, prev_hash=prev, hash=entry_hash(prev, entry))
            )

    def entries(
        self, limit: int = 200, *, actor: str | None = None, oldest_first: bool = False
    ) -> list[dict[str, Any]]:
        order = audit_log.c.id.asc() if oldest_first else audit_log.c.id.desc()
        query = select(audit_log).order_by(order)
        if actor:
            query = query.where(audit_log.c.actor == actor)
        if limit > 0:
            query = query.limit(limit)
        with self._store._read("read the audit log") as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def verify_chain(self) -> tuple[int, int | None]:
        """(entries checked, id of the first entry whose hash does not follow, or None)."""
        prev = GENESIS
        rows = self.entries(0, oldest_first=True)
        for row in rows:
            if row["prev_hash"] != prev or entry_hash(prev, row) != row["hash"]:
                return len(rows), int(row["id"])
            prev = row["hash"]
        return len(rows), None

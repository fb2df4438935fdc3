"""The device cache: updates survive restarts, deltas are stored small and compacted,
a crash mid-apply leaves the old list, staleness is reported, the file is private."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from agent.watchlist import cache as cache_module
from agent.watchlist.cache import WatchlistCache
from agent.watchlist.content import ListEntry
from agent.watchlist.manager import WatchlistManager
from agent.watchlist.simulator import AdminSimulator

BASE = [ListEntry(f"AB-{i:03d}-CD", "stolen", f"C-{i}", 1 + i % 3) for i in range(1, 40)]


@pytest.fixture
def sim() -> AdminSimulator:
    return AdminSimulator()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "watchlist.sqlite"


@pytest.fixture
def device(path: Path, sim: AdminSimulator) -> Iterator[WatchlistManager]:
    manager = WatchlistManager.open(path, sim.root)
    assert manager.handle_update(sim.full(BASE, 1), sim.now).applied
    yield manager
    manager.close()


def _rows(path: Path) -> list[tuple[str, int]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT kind, version FROM wl_lists ORDER BY seq").fetchall()


def test_full_and_delta_survive_a_restart(
    path: Path, device: WatchlistManager, sim: AdminSimulator
) -> None:
    added = ListEntry("ZZ-999-ZZ", "wanted", "C-new", 4)
    delta = sim.delta(BASE, ["AB-001-CD"], [added], version=2, base_version=1)
    assert device.handle_update(delta, sim.now).applied
    assert _rows(path) == [("base", 1), ("delta", 2)]
    device.close()
    reopened = WatchlistManager.open(path, sim.root)
    try:
        status = reopened.status(sim.now)
        assert (status["version"], status["entries"], status["stale"]) == (2, 39, False)
        assert status["cache_tampered"] is None
        match = reopened.matcher.match("ZZ-999-ZZ", 0.5, sim.now)
        assert match is not None and match.entry.case_ref == "C-new"
        assert reopened.matcher.match("AB-001-CD", 0.99, sim.now) is None
        # a delta against the reloaded list still applies
        after = [e for e in BASE if e.plate != "AB-001-CD"] + [added]
        assert reopened.handle_update(sim.delta(after, ["ZZ-999-ZZ"], [], 3, 2), sim.now).applied
    finally:
        reopened.close()


def test_many_deltas_are_compacted_into_one_base(
    path: Path, device: WatchlistManager, sim: AdminSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "MAX_DELTA_ROWS", 3)
    entries = list(BASE)
    for version in range(2, 7):
        new = ListEntry(f"XY-{version:03d}-ZZ", "stolen")
        assert device.handle_update(
            sim.delta(entries, [], [new], version, version - 1), sim.now
        ).applied
        entries.append(new)
    assert len(_rows(path)) <= 4
    device.cache.compact()
    assert _rows(path) == [("base", 6)]
    device.close()
    reopened = WatchlistManager.open(path, sim.root)
    try:
        assert reopened.status(sim.now)["version"] == 6
        assert len(reopened.matcher) == len(entries)
    finally:
        reopened.close()


def test_crash_in_the_middle_of_an_apply_keeps_the_old_list(
    path: Path, device: WatchlistManager, sim: AdminSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("UPDATE wl_state", {}, Exception("disk I/O error"))

    monkeypatch.setattr(WatchlistCache, "_write_state", fail)
    result = device.handle_update(sim.full([ListEntry("NE-000-WW", "x")], 2), sim.now)
    assert (result.applied, result.reason, result.version) == (False, "storage_error", 1)
    assert device.matcher.match("AB-002-CD", 0.5, sim.now) is not None
    monkeypatch.undo()
    assert _rows(path) == [("base", 1)]
    device.close()
    reopened = WatchlistManager.open(path, sim.root)
    try:
        assert reopened.status(sim.now)["version"] == 1
    finally:
        reopened.close()


def test_expired_list_is_kept_and_reported_stale(path: Path, sim: AdminSimulator) -> None:
    manager = WatchlistManager.open(path, sim.root)
    try:
        assert manager.handle_update(sim.full(BASE, 1, expires_in=60), sim.now).applied
        assert manager.status(sim.now)["stale"] is False
        later = sim.now + 61
        status = manager.status(later)
        assert status["stale"] is True
        assert status["expires_at"] == sim.now + 60
        assert manager.matcher.match("AB-002-CD", 0.5, later) is not None
    finally:
        manager.close()


def test_empty_cache_reports_no_list_and_stale(path: Path, sim: AdminSimulator) -> None:
    manager = WatchlistManager.open(path, sim.root)
    try:
        status = manager.status(sim.now)
        assert (status["version"], status["entries"], status["stale"]) == (None, 0, True)
        assert manager.matcher.match("AB-002-CD", 0.99, sim.now) is None
    finally:
        manager.close()


def test_cache_is_private_and_durable(path: Path, device: WatchlistManager) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    with device.cache._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_the_fuzzy_change_limit_holds_through_a_full_list_a_delta_and_a_restart(
    path: Path, sim: AdminSimulator
) -> None:
    """``[watchlist] fuzzy_max_changes`` reaches every matcher the device builds."""
    two_off = "A8-0I2-C0"  # AB-012-CD with B/8 and D/0 confused (I/1 counts none)
    lenient = WatchlistManager.open(path, sim.root, max_changes=2)
    try:
        assert lenient.handle_update(sim.full(BASE, 1), sim.now).applied
        assert lenient.matcher.match(two_off, 0.95, sim.now) is not None
        delta = sim.delta(BASE, [], [ListEntry("ZZ-999-ZZ", "wanted")], version=2, base_version=1)
        assert lenient.handle_update(delta, sim.now).applied
        match = lenient.matcher.match(two_off, 0.95, sim.now)
        assert match is not None and match.entry.plate == "AB-012-CD"
    finally:
        lenient.close()
    default = WatchlistManager.open(path, sim.root)
    try:
        assert default.matcher.match("ZZ-999-ZZ", 0.5, sim.now) is not None
        assert default.matcher.match(two_off, 0.95, sim.now) is None
        assert default.matcher.match("A8-0I2-CD", 0.95, sim.now) is not None  # one change
    finally:
        default.close()

"""The durable outbox: nothing for HQ is lost or renumbered, whatever happens to the process."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import event

from agent.errors import StorageError
from agent.transport.outbox import PRIORITY_HIT, PRIORITY_LEDGER, PRIORITY_STATUS, Outbox

TOPIC = "raqib/v1/devices/cam-01/hits"


def payload_of(seq: int) -> bytes:
    return f"message {seq}".encode()


def put(outbox: Outbox, priority: int = PRIORITY_HIT, kind: str = "hit") -> int:
    return outbox.put(kind, TOPIC, payload_of, priority)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.sqlite"


def test_put_assigns_increasing_sequence_numbers_from_one_and_builds_payload_with_it(
    path: Path,
) -> None:
    with Outbox(path) as outbox:
        assert [put(outbox) for _ in range(3)] == [1, 2, 3]
        assert [item.payload for item in outbox.due(0.0, 10.0, 10)] == [
            b"message 1",
            b"message 2",
            b"message 3",
        ]
        assert outbox.depth() == 3
        assert outbox.next_seq == 4


def test_messages_survive_close_and_reopen(path: Path) -> None:
    with Outbox(path) as outbox:
        put(outbox)
        put(outbox, PRIORITY_STATUS, "status")
    with Outbox(path) as reopened:
        items = reopened.due(0.0, 10.0, 10)
    assert [(i.seq, i.kind, i.topic, i.priority, i.payload) for i in items] == [
        (1, "hit", TOPIC, PRIORITY_HIT, b"message 1"),
        (2, "status", TOPIC, PRIORITY_STATUS, b"message 2"),
    ]


def test_sequence_numbers_are_never_reused_after_acks_and_reopen(path: Path) -> None:
    with Outbox(path) as outbox:
        seqs = [put(outbox) for _ in range(5)]
        assert outbox.ack(seqs) == 5
        assert outbox.depth() == 0
    with Outbox(path) as reopened:
        assert reopened.depth() == 0
        assert put(reopened) == 6


def test_a_failed_payload_build_stores_nothing_and_consumes_no_number(path: Path) -> None:
    def broken(_seq: int) -> bytes:
        raise ValueError("cannot encode")

    with Outbox(path) as outbox:
        put(outbox)
        with pytest.raises(ValueError, match="cannot encode"):
            outbox.put("hit", TOPIC, broken, PRIORITY_HIT)
        assert outbox.depth() == 1
        assert put(outbox) == 2


def test_due_sends_hits_before_ledger_before_status_then_oldest_first(path: Path) -> None:
    with Outbox(path) as outbox:
        status = put(outbox, PRIORITY_STATUS, "status")
        ledger = put(outbox, PRIORITY_LEDGER, "ledger")
        hit1 = put(outbox)
        hit2 = put(outbox)
        assert [i.seq for i in outbox.due(0.0, 10.0, 10)] == [hit1, hit2, ledger, status]
        assert [i.seq for i in outbox.due(0.0, 10.0, 2)] == [hit1, hit2]


def test_sent_message_is_due_again_only_after_resend_interval(path: Path) -> None:
    with Outbox(path) as outbox:
        a, b = put(outbox), put(outbox)
        outbox.mark_sent([a], now=100.0)
        assert [i.seq for i in outbox.due(now=105.0, resend_after=10.0, limit=10)] == [b]
        due_later = outbox.due(now=110.0, resend_after=10.0, limit=10)
        assert [i.seq for i in due_later] == [a, b]
        assert due_later[0].last_sent_at == 100.0
        assert due_later[1].last_sent_at is None


def test_reset_sent_makes_every_unacked_message_due_at_once(path: Path) -> None:
    with Outbox(path) as outbox:
        seqs = [put(outbox) for _ in range(3)]
        outbox.mark_sent(seqs, now=100.0)
        assert outbox.due(now=101.0, resend_after=10.0, limit=10) == []
        assert outbox.reset_sent() == 3
        assert [i.seq for i in outbox.due(now=101.0, resend_after=10.0, limit=10)] == seqs


def test_ack_deletes_only_named_messages_and_ignores_unknown_or_repeated_acks(path: Path) -> None:
    with Outbox(path) as outbox:
        a, b, c = put(outbox), put(outbox), put(outbox)
        assert outbox.ack([b, 999]) == 1
        assert outbox.ack([b]) == 0
        assert [i.seq for i in outbox.due(0.0, 10.0, 10)] == [a, c]
        assert outbox.depth() == 2


def test_ack_of_thousands_at_once_is_accepted(path: Path) -> None:
    with Outbox(path) as outbox:
        seqs = [put(outbox, PRIORITY_STATUS) for _ in range(600)]
        outbox.mark_sent(seqs, now=1.0)
        assert outbox.ack(seqs) == 600
        assert outbox.depth() == 0


def test_full_outbox_refuses_a_hit_rather_than_dropping_one(path: Path) -> None:
    with Outbox(path, max_messages=3) as outbox:
        for _ in range(3):
            put(outbox)
        with pytest.raises(StorageError, match="full"):
            put(outbox)
        assert outbox.depth() == 3


def test_full_outbox_drops_oldest_status_report_to_keep_a_hit(path: Path) -> None:
    with Outbox(path, max_messages=3) as outbox:
        old_status = put(outbox, PRIORITY_STATUS, "status")
        put(outbox, PRIORITY_STATUS, "status")
        put(outbox, PRIORITY_LEDGER, "ledger")
        hit = put(outbox)
        seqs = [i.seq for i in outbox.due(0.0, 10.0, 10)]
        assert hit in seqs
        assert old_status not in seqs
        assert outbox.depth() == 3
        with pytest.raises(StorageError, match="full"):
            put(outbox, PRIORITY_STATUS, "status")  # nothing less important left to drop


def test_unwritable_location_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(StorageError, match="cannot create"):
        Outbox(blocker / "outbox.sqlite")


def test_a_file_that_is_not_a_database_raises_storage_error(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=f"outbox {path}"):
        Outbox(path)


def cap_file_pages(outbox: Outbox, pages: int) -> None:
    """Make SQLite refuse to grow the file past ``pages``, as a full disk would."""
    engine = outbox._engine
    assert engine is not None
    engine.dispose()

    @event.listens_for(engine, "connect")
    def _cap(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count={pages}")


def test_disk_full_during_put_raises_storage_error_and_keeps_what_was_stored(path: Path) -> None:
    with Outbox(path) as outbox:
        put(outbox)
    # Cap the file at its current size: the next page allocation fails like a full disk.
    conn = sqlite3.connect(path)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    with Outbox(path) as outbox:
        cap_file_pages(outbox, pages)
        with pytest.raises(StorageError, match="full"):
            for _ in range(50):
                outbox.put("hit", TOPIC, lambda _s: b"x" * 8192, PRIORITY_HIT)
    with Outbox(path) as reopened:
        assert reopened.due(0.0, 10.0, 100)[0].payload == b"message 1"


def test_closed_outbox_refuses_use(path: Path) -> None:
    outbox = Outbox(path)
    outbox.close()
    outbox.close()
    with pytest.raises(RuntimeError, match="closed"):
        put(outbox)


def test_concurrent_puts_and_acks_keep_numbers_unique_and_depth_exact(path: Path) -> None:
    with Outbox(path) as outbox:
        results: list[list[int]] = [[], []]

        def producer(slot: int) -> None:
            for _ in range(40):
                results[slot].append(put(outbox))

        def acker() -> None:
            for _ in range(40):
                items = outbox.due(0.0, 0.0, 5)
                outbox.ack([i.seq for i in items])

        threads = [threading.Thread(target=producer, args=(n,)) for n in range(2)]
        threads.append(threading.Thread(target=acker))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        seqs = results[0] + results[1]
        assert sorted(seqs) == list(range(1, 81))
        assert outbox.depth() == len(outbox.due(0.0, 0.0, 1000))


def test_put_many_is_one_transaction_with_consecutive_numbers(path: Path) -> None:
    with Outbox(path) as outbox:
        put(outbox)
        assert outbox.put_many("hit", TOPIC, [payload_of] * 3, PRIORITY_HIT) == [2, 3, 4]
        assert [i.payload for i in outbox.due(0.0, 10.0, 10)][1:] == [
            b"message 2",
            b"message 3",
            b"message 4",
        ]
        assert outbox.next_seq == 5


def test_put_many_that_does_not_fit_stores_nothing(path: Path) -> None:
    with Outbox(path, max_messages=3) as outbox:
        put(outbox)
        with pytest.raises(StorageError, match="full"):
            outbox.put_many("hit", TOPIC, [payload_of] * 3, PRIORITY_HIT)
        assert outbox.depth() == 1
        assert outbox.next_seq == 2


@pytest.mark.slow
def test_outbox_survives_100000_queued_messages_and_drains_in_order(path: Path) -> None:
    """An hour-long dead zone at a busy site: 100,000 messages wait, nothing is lost."""
    body = b"x" * 300
    with Outbox(path, max_messages=100_000) as outbox:
        for _ in range(100):
            outbox.put_many("hit", TOPIC, [lambda _s: body] * 1000, PRIORITY_HIT)
        with pytest.raises(StorageError, match="full"):
            put(outbox)  # the bound holds: the 100,001st hit is refused, not dropped silently
    with Outbox(path, max_messages=100_000) as outbox:
        assert outbox.depth() == 100_000
        drained: list[int] = []
        while items := outbox.due(0.0, 0.0, 5000):
            drained += [i.seq for i in items]
            outbox.ack([i.seq for i in items])
        assert drained == list(range(1, 100_001))
        assert outbox.depth() == 0

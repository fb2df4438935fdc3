"""The tracker: one vehicle passing makes one voted read, alerted while still in view."""

from __future__ import annotations

from agent.reads import PlateRead
from agent.tracking import Tracker, within_one_edit


def read(text: str, conf: float = 0.9) -> PlateRead:
    return PlateRead(text, "MA", conf, (10, 10, 100, 25))


def test_one_edit_distance() -> None:
    assert within_one_edit("12345-B-6", "12345-B-6")
    assert within_one_edit("12345-B-6", "12346-B-6")
    assert within_one_edit("12345-B-6", "1234-B-6")
    assert not within_one_edit("12345-B-6", "12366-B-6")
    assert not within_one_edit("AB-123-CD", "AB-12-C")


def test_track_is_confirmed_after_min_reads_not_before() -> None:
    tracker = Tracker(gap_s=1.0, min_reads=3)
    assert tracker.observe([read("12345-B-6")], 0.00, 0) == []
    assert tracker.observe([read("12345-B-6")], 0.04, 1) == []
    confirmed = tracker.observe([read("12345-B-6")], 0.08, 2)
    assert [c.text for c in confirmed] == ["12345-B-6"]
    assert confirmed[0].n_reads == 3
    assert tracker.observe([read("12345-B-6")], 0.12, 3) == []  # reported once


def test_noisy_reads_of_one_vehicle_vote_the_majority_text() -> None:
    tracker = Tracker(gap_s=1.0, min_reads=2)
    texts = ["12345-B-6", "12845-B-6", "12345-B-6", "12345-8-6", "12345-B-6"]
    reported = []
    for i, text in enumerate(texts):
        reported += tracker.observe([read(text)], i * 0.04, i)
    assert tracker.open_tracks == 1
    assert reported[-1].text == "12345-B-6"
    assert len({r.track_id for r in reported}) == 1


def test_two_vehicles_in_one_frame_are_two_tracks() -> None:
    tracker = Tracker(gap_s=1.0, min_reads=1)
    confirmed = tracker.observe([read("12345-B-6"), read("AB-123-CD")], 0.0, 0)
    assert sorted(c.text for c in confirmed) == ["12345-B-6", "AB-123-CD"]
    assert len({c.track_id for c in confirmed}) == 2


def test_same_plate_after_the_gap_is_a_new_pass() -> None:
    tracker = Tracker(gap_s=1.0, min_reads=1)
    first = tracker.observe([read("12345-B-6")], 0.0, 0)
    again = tracker.observe([read("12345-B-6")], 5.0, 125)
    assert first[0].track_id != again[0].track_id


def test_recent_reads_are_forgotten_after_retention() -> None:
    tracker = Tracker(gap_s=1.0, min_reads=1, retention_s=60.0)
    tracker.observe([read("12345-B-6")], 0.0, 0)
    assert [r.text for r in tracker.recent(10.0)] == ["12345-B-6"]
    assert tracker.recent(61.5) == []

"""A small fleet through the whole real stack (`raqib bench fleet` with a few dozen devices):
every message stored exactly once, hits timed, a 1,000-entry delta rolled out to all."""

from __future__ import annotations

import math

import pytest

from agent.messages import parse_status_body
from hq.fleet.bench import FleetOptions, run_fleet_bench
from hq.fleet.devices import Mix

pytestmark = [pytest.mark.fleet, pytest.mark.broker, pytest.mark.slow]


def test_small_fleet_loses_and_duplicates_nothing_and_takes_the_new_list() -> None:
    devices = 30
    figures = run_fleet_bench(
        FleetOptions(devices=devices, duration_s=16.0, mix=Mix(hit_every_s=60.0, compression=10.0))
    )
    assert figures["devices"] == devices
    assert figures["devices_reported"] == devices
    assert figures["drained"] == 1.0
    assert figures["lost"] == 0
    assert figures["duplicated"] == 0
    assert figures["hits_stored"] == figures["hits_put"] > 0
    assert figures["hits_timed"] > 0 and not math.isnan(figures["hit_latency_ms_p99"])
    assert figures["rollout_devices"] == devices
    assert 0 < figures["rollout_s_p99"] < 60
    assert figures["messages_per_s"] > 0


def test_the_daemons_heartbeat_fields_are_accepted_by_hq() -> None:
    """Found by the fleet simulator: HQ refused every heartbeat that named its list's state."""
    body = {"online": True, "watchlist_version": 7, "watchlist_stale": False}
    status = parse_status_body(body | {"watchlist_last_refusal": "expired"})
    assert status.ignored == ()
    assert status.fields["watchlist_stale"] is False
    assert status.fields["watchlist_last_refusal"] == "expired"

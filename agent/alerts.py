"""Alerting the officer: a log line and the board's alert adapter, never blocking the pipeline."""

from __future__ import annotations

import logging

from agent.config import AlertConfig
from agent.reads import Hit
from firmware_glue.alert import AlertAdapter, GpioAlert, SimulatedAlert

log = logging.getLogger(__name__)


def make_alert_adapter(config: AlertConfig) -> AlertAdapter:
    if config.adapter == "gpio":
        return GpioAlert(config.gpio_led, config.gpio_buzzer)
    return SimulatedAlert()


def describe_hit(hit: Hit) -> str:
    entry = hit.match.entry
    kind = "" if hit.match.kind == "exact" else f" (fuzzy: read {hit.read.text})"
    return f"{entry.plate} {entry.reason.upper()}{kind} case {entry.case_ref or '-'}"


class Alerter:
    """Turns a hit into an officer alert; adapter failures are logged, not raised."""

    def __init__(self, adapter: AlertAdapter) -> None:
        self.adapter = adapter

    def alert(self, hit: Hit) -> None:
        message = describe_hit(hit)
        # The log names no plate: the journal stays on the device's disk (docs/watchlist.md).
        log.warning(
            "ALERT watchlist %s (%s match, priority %d)",
            hit.match.entry.reason.upper(),
            hit.match.kind,
            hit.match.entry.priority,
            extra={"match": hit.match.kind, "confidence": round(hit.read.confidence, 3)},
        )
        try:
            self.adapter.signal(hit.match.entry.priority, message)
        except Exception:  # a broken buzzer must not stop plate reading
            log.exception("alert adapter failed")

    def close(self) -> None:
        self.adapter.close()

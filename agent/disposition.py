"""The officer's verdict on an alert: confirmed or rejected, from the button or from HQ.

After an alert, the record button answers it for ``window_s`` seconds (default
60): a press shorter than ``long_press_s`` (default 1.5 s) **confirms** the
latest alert, a press held at least that long **rejects** it. Once the alert has
its verdict, or the window has passed, the button toggles recording again as
before. A ``disposition`` remote command (``{"verdict": ..., "hit_seq": ...,
"note": ...}``, ``hit_seq`` defaulting to the latest alert) does the same from HQ.

Each verdict becomes a ``disposition`` message, signed and sealed like a hit
and queued in the durable outbox, so HQ gets it even if the device is offline
now. Pure apart from the clock and the ``send`` callback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from agent.errors import CommandError, PayloadError, StorageError
from agent.messages import DEVICE_VERDICTS, MAX_NOTE_CHARS, disposition_body

log = logging.getLogger(__name__)

DEFAULT_WINDOW_S: Final = 60.0
DEFAULT_LONG_PRESS_S: Final = 1.5

Send = Callable[[dict[str, Any]], None]
"""Queues a disposition body for HQ; raises StorageError if it cannot be kept."""
Feedback = Callable[[str], None]


@dataclass(slots=True)
class _Alert:
    hit_seq: int
    at: float
    disposed: bool = False


class DispositionDesk:
    """Turns button presses and commands into dispositions of the latest alert."""

    def __init__(
        self,
        send: Send,
        *,
        officer: str = "",
        window_s: float = DEFAULT_WINDOW_S,
        long_press_s: float = DEFAULT_LONG_PRESS_S,
        clock: Callable[[], float] = time.time,
        feedback: Feedback | None = None,
    ) -> None:
        self._send = send
        self._officer = officer
        self._window_s = window_s
        self._long_press_s = long_press_s
        self._clock = clock
        self._feedback = feedback
        self._latest: _Alert | None = None
        self._lock = threading.Lock()
        self.sent: list[dict[str, Any]] = []
        """Bodies handed to ``send`` (status, tests)."""

    def alerted(self, hit_seq: int) -> None:
        """A hit was alerted and queued for HQ under ``hit_seq``: the button now answers it."""
        with self._lock:
            self._latest = _Alert(hit_seq, self._clock())

    def on_button(self, held_s: float) -> bool:
        """A press of ``held_s`` seconds; True if it was a verdict (recording not toggled)."""
        with self._lock:
            alert = self._latest
            if alert is None or alert.disposed or self._clock() - alert.at > self._window_s:
                return False
            alert.disposed = True
        verdict = "rejected" if held_s >= self._long_press_s else "confirmed"
        try:
            self._dispose(alert.hit_seq, verdict, "", "button")
        except (StorageError, PayloadError) as exc:
            log.error("officer's %s of hit %d not queued for HQ: %s", verdict, alert.hit_seq, exc)
            self._tell(f"{verdict.upper()} NOT SENT: {exc}")
            return True
        self._tell(f"alert {verdict}")
        return True

    def from_command(self, args: dict[str, Any]) -> str:
        """The ``disposition`` remote command; raises CommandError if it cannot be done."""
        verdict = args.get("verdict")
        if verdict not in DEVICE_VERDICTS:
            raise CommandError(f"verdict must be one of {', '.join(DEVICE_VERDICTS)}")
        note = args.get("note", "")
        if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
            raise CommandError(f"note must be text of at most {MAX_NOTE_CHARS} characters")
        hit_seq = args.get("hit_seq")
        with self._lock:
            latest = self._latest
            if hit_seq is None:
                if latest is None:
                    raise CommandError("no alert on this device to give a verdict on")
                hit_seq = latest.hit_seq
            if latest is not None and latest.hit_seq == hit_seq:
                latest.disposed = True
        if not isinstance(hit_seq, int) or isinstance(hit_seq, bool) or hit_seq < 1:
            raise CommandError("hit_seq must be a hit's sequence number")
        try:
            self._dispose(hit_seq, str(verdict), note, "command")
        except (StorageError, PayloadError) as exc:
            raise CommandError(f"disposition not queued: {exc}") from exc
        return f"hit {hit_seq} {verdict}"

    def _dispose(self, hit_seq: int, verdict: str, note: str, source: str) -> None:
        body = disposition_body(
            hit_seq, verdict, note, source, at=self._clock(), officer=self._officer
        )
        self._send(body)
        self.sent.append(body)
        log.info(
            "officer %s hit %d (%s)",
            verdict,
            hit_seq,
            source,
            extra={"hit_seq": hit_seq, "verdict": verdict, "source": source},
        )

    def _tell(self, message: str) -> None:
        if self._feedback is None:
            return
        try:
            self._feedback(message)
        except Exception:  # a broken buzzer must not lose the verdict
            log.exception("alert adapter failed")

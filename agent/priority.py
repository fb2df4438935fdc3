"""Thread priorities: the plate reader first, the work that can wait after it.

On a board with four slow cores the officer's alert depends on the reader's
thread getting a core the moment a frame arrives. The recorder (its own frame
queue, several seconds deep) and the uplink (a durable outbox) can fall a
little behind without losing anything, so their threads run at a lower CPU
priority: Linux schedules threads individually, and raising a thread's nice
value needs no privilege (under the unit's seccomp filter a refusal is EPERM,
which is logged and ignored).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Final

log = logging.getLogger(__name__)

BACKGROUND_NICE: Final = 5
"""How much lower than the reader the recorder and uplink threads run."""


def lower_this_thread(step: int = BACKGROUND_NICE) -> bool:
    """Raise the calling thread's nice value by ``step``; False if the system refused."""
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + step))
    except (OSError, AttributeError) as exc:  # not Linux, or a sandbox refusing it
        log.debug("thread priority unchanged: %s", exc)
        return False
    return True

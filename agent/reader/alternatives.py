"""The few best other reads of a plate: the characters the recogniser was unsure of, swapped.

A plate read ``AB-123-CD`` whose ``8``/``B`` or ``0``/``O`` the model nearly
read the other way is handed to the matcher with that other reading too, so a
doubt on a listed plate becomes a fuzzy match instead of a miss
(:meth:`agent.watchlist.matcher.Matcher.match`, ``alternatives``).

From the CTC probabilities of a greedy read: for each emitted character, the
runner-up class over the time steps of its run; a character is *in doubt*
when the runner-up reaches :data:`DOUBT_RATIO` of the winner's probability. The
alternatives are the read with one doubtful character swapped (most probable
first) and with the two most doubtful swapped together, at most
:data:`MAX_ALTERNATIVES`. Pure numpy, no model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

DOUBT_RATIO: Final = 0.15
"""A runner-up at least this share of the winner's probability makes a character doubtful."""
MAX_ALTERNATIVES: Final = 3

Probs = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Doubt:
    """Character ``index`` of the read might be ``other`` (``ratio``: runner-up / winner)."""

    index: int
    other: str
    ratio: float


def doubts(probs: Probs, tokens: str, steps: list[int], charset: str) -> list[Doubt]:
    """The doubtful characters of a greedy read (``tokens`` emitted at ``steps``), most
    doubtful first. ``probs`` is ``T x (len(charset) + 1)``, class 0 the blank. A character
    the model did not emit at its step (a bare stroke put back from the strip,
    :mod:`agent.reader.strokes`) has no runner-up and is never in doubt."""
    if len(tokens) != len(steps):
        raise ValueError(f"{len(tokens)} tokens but {len(steps)} steps")
    best = probs.argmax(axis=1)
    out: list[Doubt] = []
    for i, (token, start) in enumerate(zip(tokens, steps, strict=True)):
        cls = charset.index(token) + 1
        if best[start] != cls:
            continue
        end = start + 1
        while end < len(best) and best[end] == cls:
            end += 1
        run = probs[start:end]
        winner = float(run[:, cls].max())
        others = run.max(axis=0).copy()
        others[0] = others[cls] = 0.0
        runner_up = int(others.argmax())
        ratio = float(others[runner_up]) / max(winner, 1e-9)
        if ratio >= DOUBT_RATIO:
            out.append(Doubt(i, charset[runner_up - 1], ratio))
    return sorted(out, key=lambda d: d.ratio, reverse=True)


def alternative_tokens(tokens: str, found: list[Doubt]) -> list[str]:
    """The read with one doubt swapped (most doubtful first), then the two most doubtful
    swapped together; at most :data:`MAX_ALTERNATIVES`, none equal to ``tokens``."""
    out: list[str] = []

    def swapped(*ds: Doubt) -> str:
        chars = list(tokens)
        for d in ds:
            chars[d.index] = d.other
        return "".join(chars)

    singles = [swapped(d) for d in found[:MAX_ALTERNATIVES]]
    pair = [swapped(found[0], found[1])] if len(found) >= 2 else []
    candidates = singles[:2] + pair + singles[2:]
    for c in candidates:
        if c != tokens and c not in out:
            out.append(c)
    return out[:MAX_ALTERNATIVES]

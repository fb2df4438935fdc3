"""Greedy (best-path) CTC decoding in numpy, with a per-plate confidence.

The recogniser outputs ``T x C`` logits, class 0 the CTC blank and class ``i + 1``
the ``i``-th character of the charset. Best path: take the arg-max class per time
step, merge repeats, drop blanks.

Confidence choice: each emitted character gets the *peak* softmax probability
over the run of time steps that emitted it; the plate's confidence is the
*product* of those peaks. Under the usual CTC independence assumption this is
the probability that every character is right, so one doubtful character drags
the whole read down (a mean would hide it), and it lies in [0, 1]. An empty
read has confidence 0.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BLANK = 0

FloatArray = npt.NDArray[np.float32]


def softmax(logits: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """Row-wise softmax of a ``T x C`` array (numerically stable); may write into ``out``."""
    result: FloatArray = np.subtract(logits, logits.max(axis=-1, keepdims=True), out=out)
    np.exp(result, out=result)
    result /= result.sum(axis=-1, keepdims=True)
    return result


def greedy_decode(
    logits: FloatArray, charset: str, blank: int = BLANK, *, probabilities: bool = False
) -> tuple[str, float]:
    """Decode ``T x C`` logits (or probabilities, if ``probabilities``) to ``(text, confidence)``.

    ``charset[k]`` is the character of class ``k + 1`` when ``blank == 0``.
    Raises ``ValueError`` if the class count does not match the charset.
    """
    if logits.ndim != 2 or logits.shape[1] != len(charset) + 1:
        raise ValueError(
            f"expected T x {len(charset) + 1} scores for a {len(charset)}-character charset, "
            f"got shape {logits.shape}"
        )
    probs = logits if probabilities else softmax(logits.astype(np.float32, copy=False))
    best = probs.argmax(axis=1)
    peak = probs[np.arange(best.size), best]
    # A new character starts where the class changes and is not blank.
    starts = np.flatnonzero((best != blank) & np.concatenate(([True], best[1:] != best[:-1])))
    if starts.size == 0:
        return "", 0.0
    run_ids = np.cumsum(np.concatenate(([True], best[1:] != best[:-1])))  # run number per step
    emitted_runs = run_ids[starts]
    run_peak = np.zeros(int(run_ids[-1]) + 1, np.float32)
    np.maximum.at(run_peak, run_ids, peak)
    classes = best[starts]
    offset = 1 if blank == 0 else 0
    text = "".join(charset[int(c) - offset] for c in classes)
    return text, float(np.prod(run_peak[emitted_runs], dtype=np.float64))


# ------------------------------------------------------------ grammar-constrained

_ARABIC = "\u0623\u0628\u062f\u0647\u0648\u0637\u064a\u0634"


class PlateGrammar:
    """The plate layouts as sequences of character classes, for :func:`constrained_decode`.

    Moroccan ``D{1,5} A D{1,2}`` and temporary ``D{1,6} W W``; French SIV
    ``L L D D D L L`` (no I, O, U) and FNI ``D{1,4} L{1,3} D D``. Layouts using
    a class the charset lacks are left out.
    """

    def __init__(self, charset: str) -> None:
        index = {ch: i + 1 for i, ch in enumerate(charset)}
        names = {
            "D": "0123456789",
            "L": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "S": "ABCDEFGHJKLMNPQRSTVWXYZ",
            "A": _ARABIC,
            "W": "W",
        }
        self.classes = [
            np.array([index[c] for c in chars if c in index], np.int64) for chars in names.values()
        ]
        code = {name: i for i, name in enumerate(names)}
        layouts = [f"{'D' * n}A{'D' * m}" for n in range(1, 6) for m in (1, 2)]
        layouts += [f"{'D' * n}WW" for n in range(1, 7)]
        layouts.append("SSDDDSS")
        layouts += [f"{'D' * n}{'L' * m}DD" for n in range(1, 5) for m in range(1, 4)]
        layouts = [lay for lay in layouts if all(self.classes[code[c]].size for c in lay)]
        self.lengths = np.array([len(lay) for lay in layouts], np.int64)
        self.slots = int(self.lengths.max())
        self.slot_class = np.full((len(layouts), self.slots), -1, np.int64)
        for j, lay in enumerate(layouts):
            self.slot_class[j, : len(lay)] = [code[c] for c in lay]


def constrained_decode(probs: FloatArray, charset: str, grammar: PlateGrammar) -> tuple[str, float]:
    """Best CTC path (Viterbi) whose text fits one of the ``grammar``'s layouts.

    ``probs`` are ``T x C`` softmax probabilities, blank 0. Each layout slot
    takes the best character of its class at each step; a slot may follow the
    previous one without a blank only where their best characters differ (CTC
    would merge a repeat). A slot's character is the one with the highest
    summed log-probability over the steps the path spends in it; the
    confidence is the product of the slots' peak probabilities, as in
    :func:`greedy_decode`. Returns ``("", 0.0)`` when no layout fits in ``T``
    steps.
    """
    n_steps = probs.shape[0]
    logp = np.log(np.maximum(probs, 1e-12))
    n_tmpl, n_slots = grammar.slot_class.shape
    n_states = 2 * n_slots + 1
    best = np.full((n_steps, len(grammar.classes) + 1), -np.inf, np.float32)  # last: padding
    char = np.zeros((n_steps, len(grammar.classes) + 1), np.int64)
    for c, members in enumerate(grammar.classes):
        arg = logp[:, members].argmax(axis=1)
        char[:, c] = members[arg]
        best[:, c] = logp[np.arange(n_steps), char[:, c]]
    slot_best = best[:, grammar.slot_class]  # T x templates x slots (-1 -> padding column)
    slot_char = char[:, grammar.slot_class]
    emit = np.empty((n_steps, n_tmpl, n_states), np.float32)
    emit[:, :, 0::2] = logp[:, None, 0:1]
    emit[:, :, 1::2] = slot_best
    skip = np.full((n_steps, n_tmpl, n_states - 2), -np.inf, np.float32)
    skip[1:, :, 1::2] = np.where(slot_char[1:, :, 1:] != slot_char[:-1, :, :-1], 0.0, -np.inf)
    alpha = np.full((n_tmpl, n_states), -np.inf, np.float32)
    alpha[:, :2] = emit[0, :, :2]
    back = np.zeros((n_steps, n_tmpl, n_states), np.int8)
    stacked = np.full((3, n_tmpl, n_states), -np.inf, np.float32)
    for t in range(1, n_steps):
        stacked[0] = alpha
        stacked[1, :, 1:] = alpha[:, :-1]
        stacked[2, :, 2:] = alpha[:, :-2] + skip[t]
        back[t] = stacked.argmax(axis=0)
        alpha = stacked.max(axis=0) + emit[t]
    rows = np.arange(n_tmpl)
    last_slot = alpha[rows, 2 * grammar.lengths - 1]
    trailing = alpha[rows, 2 * grammar.lengths]
    final = np.maximum(last_slot, trailing)
    j = int(final.argmax())
    if not np.isfinite(final[j]):
        return "", 0.0
    end = 2 * grammar.lengths[j]
    state = int(end - 1 if last_slot[j] >= trailing[j] else end)
    path = np.empty(n_steps, np.int64)
    for t in range(n_steps - 1, -1, -1):
        path[t] = state
        state -= int(back[t, j, state])
    text, confidence = [], 1.0
    for k in range(int(grammar.lengths[j])):
        members = grammar.classes[int(grammar.slot_class[j, k])]
        steps = np.flatnonzero(path == 2 * k + 1)
        pick = int(members[int(logp[np.ix_(steps, members)].sum(axis=0).argmax())])
        text.append(charset[pick - 1])
        confidence *= float(probs[steps, pick].max())
    return "".join(text), confidence

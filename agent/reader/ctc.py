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

import threading

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
    text, confidence, _steps = greedy_decode_steps(
        logits, charset, blank, probabilities=probabilities
    )
    return text, confidence


def greedy_decode_steps(
    logits: FloatArray, charset: str, blank: int = BLANK, *, probabilities: bool = False
) -> tuple[str, float, list[int]]:
    """Same as :func:`greedy_decode`, plus the time step where each character's run starts.

    ``steps[i]`` is the first time step of the run that emitted ``text[i]``
    (``len(steps) == len(text)``, increasing): where along the strip the
    character was read, for :func:`agent.reader.layout.split_by_position`.
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
    changes = np.concatenate(([True], best[1:] != best[:-1]))
    starts = np.flatnonzero((best != blank) & changes)
    if starts.size == 0:
        return "", 0.0, []
    run_ids = np.cumsum(changes)  # run number per step
    emitted_runs = run_ids[starts]
    run_peak = np.zeros(int(run_ids[-1]) + 1, np.float32)
    np.maximum.at(run_peak, run_ids, peak)
    classes = best[starts]
    offset = 1 if blank == 0 else 0
    text = "".join(charset[int(c) - offset] for c in classes)
    confidence = float(np.prod(run_peak[emitted_runs], dtype=np.float64))
    return text, confidence, starts.tolist()


# ------------------------------------------------------------ grammar-constrained

_ARABIC = "\u0623\u0628\u062f\u0647\u0648\u0637\u064a\u0634"


_CLASS_CODES = {
    "d": "0123456789",
    "n": "123456789",  # a German number's first digit: never 0
    "l": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "s": "ABCDEFGHJKLMNPQRSTVWXYZ",  # French SIV: no I, O, U
    "e": "BCDFGHJKLMNPRSTVWXYZ",  # Spanish: consonants without Ñ, Q
    "a": _ARABIC,
}
"""Layout codes: a lower-case code is one of these classes, any other character itself."""


def _layouts() -> list[str]:
    """Every layout of :class:`PlateGrammar`, in :data:`_CLASS_CODES` notation."""
    d = "d"
    out = [f"{d * n}a{d * m}" for n in range(1, 6) for m in (1, 2)]  # MA 12345-B-6
    out += [f"{d * n}WW" for n in range(1, 7)]  # MA temporary 123456-WW
    out += [f"W18{d * n}" for n in range(1, 7)]  # MA W18-123456
    out.append(f"{d * 6}M")  # MA state 123456-M
    out += [f"{p}{d * n}" for p in ("CD", "CMD") for n in range(3, 6)]  # MA diplomatic
    out.append("ssdddss")  # FR SIV AB-123-CD
    out += [f"{d * n}{'l' * m}dd" for n in range(1, 5) for m in range(1, 4)]  # FR FNI
    out.append("ddddeee")  # ES 1234BCD
    out += ["1lllddd", "2lllddd"]  # BE 1ABC123 (the series began at 1 in 2010, at 2 in 2021)
    out.append("llddll")  # PT AB12CD
    out += [f"{'l' * n}n{d * m}" for n in (2, 3) for m in range(4) if n + m >= 3]  # DE AB1234
    out += ["Bddlll", "Bdddlll", "llddlll"]  # RO B 12 ABC, B 123 ABC; GB and RO AB 12 CDE
    return out


class PlateGrammar:
    """The plate layouts as sequences of character classes, for :func:`constrained_decode`.

    Moroccan ``D{1,5} A D{1,2}``, temporary ``D{1,6} W W``, ``W18 D{1,6}``,
    state ``D{6} M`` and diplomatic ``CD|CMD D{3,5}``; French SIV
    ``L L D D D L L`` (no I, O, U) and FNI ``D{1,4} L{1,3} D D``; European
    Spanish ``D{4} L{3}`` (consonants), Belgian ``1|2 L{3} D{3}``, Portuguese
    ``L{2} D{2} L{2}``, German-like ``L{2,3} D{1,4}`` (no leading ``0``, four
    characters at least), Romanian ``B D{2,3} L{3}`` and British (and Romanian
    county) ``L{2} D{2} L{3}``. Each slot is a
    class (a set of characters) or one literal character. Layouts using a
    character the charset lacks are left out (none may be left).
    """

    def __init__(self, charset: str) -> None:
        index = {ch: i + 1 for i, ch in enumerate(charset)}
        layouts = [lay for lay in _layouts() if all(_in(c, index) for c in lay)]
        codes = sorted({c for lay in layouts for c in lay})
        self.classes = [
            np.array([index[ch] for ch in _chars(c) if ch in index], np.int64) for c in codes
        ]
        code = {c: i for i, c in enumerate(codes)}
        self.lengths = np.array([len(lay) for lay in layouts], np.int64)
        self.slots = int(self.lengths.max()) if layouts else 0
        self.min_length = int(self.lengths.min()) if layouts else 0
        """The fewest characters of a layout: a shorter path fits none."""
        self.slot_class = np.full((len(layouts), self.slots), -1, np.int64)
        for j, lay in enumerate(layouts):
            self.slot_class[j, : len(lay)] = [code[c] for c in lay]
        self._index_states(len(charset) + 1)
        self._local = threading.local()

    def workspace(self, n_steps: int, n_tokens: int) -> _Workspace:
        """This thread's buffers for decoding ``n_steps x n_tokens`` probabilities (made on
        first use, then reused: a recogniser decodes outputs of one shape, thousands of
        times a minute)."""
        spaces: dict[tuple[int, int], _Workspace] | None = getattr(self._local, "spaces", None)
        if spaces is None:
            spaces = self._local.spaces = {}
        space = spaces.get((n_steps, n_tokens))
        if space is None:
            space = spaces[(n_steps, n_tokens)] = _Workspace(self, n_steps, n_tokens)
        return space

    def _index_states(self, n_tokens: int) -> None:
        """Gather indices for :func:`constrained_decode`, so that a decode builds its arrays
        with a few array takes instead of per-class and per-layout loops.

        The layouts' states sit in one flat row, each layout's blank, slot 1, blank, ...,
        slot L, blank, then one guard state that stays -inf (a shift by one or two states
        never carries a score from one layout into the next). ``member_pad``: each class's
        token ids, padded with ``n_tokens`` (a column of -inf appended to the log
        probabilities). ``emit_source``: per state, the column of the per-step scores it
        emits (a class's best, the blank's, or -inf). ``skip_source``: per state, the
        class pair whose best characters must differ for a path to enter it straight from
        the slot before (no blank between), or the column after the pairs (never allowed)."""
        n_classes = len(self.classes)
        width = max((len(m) for m in self.classes), default=0)
        self.member_pad = np.full((n_classes, width), n_tokens, np.int64)
        for c, members in enumerate(self.classes):
            self.member_pad[c, : len(members)] = members
        # ``member_pad`` flat, and each class's first index in it: a class's best token
        # is ``flat_members[class_base + its best member's column]``.
        self.flat_members = self.member_pad.ravel()
        self.class_base = np.arange(n_classes, dtype=np.int64)[None, :] * width
        blank_column, never = n_classes, n_classes + 1
        pairs: dict[tuple[int, int], int] = {}
        emit: list[int] = []
        skip: list[int] = []
        self.offsets = np.zeros(len(self.lengths), np.int64)
        for j, length in enumerate(self.lengths.tolist()):
            self.offsets[j] = len(emit)
            lay = self.slot_class[j, :length].tolist()
            for k, cls in enumerate(lay):
                emit += [blank_column, cls]
                skip += [-1, pairs.setdefault((lay[k - 1], cls), len(pairs)) if k else -1]
            emit += [blank_column, never]  # the last blank, the guard
            skip += [-1, -1]
        self.pair_classes = np.array(list(pairs) or [(0, 0)], np.int64).reshape(-1, 2)
        self.emit_source = np.array(emit, np.int64)
        never_pair = len(self.pair_classes)  # a column of -inf after the pairs'
        self.skip_source = np.array([never_pair if s < 0 else s for s in skip], np.int64)
        self.starts = np.zeros(len(emit), bool)
        self.starts[self.offsets] = True
        self.starts[self.offsets + 1] = True


def _chars(code: str) -> str:
    return _CLASS_CODES.get(code, code)


def _in(code: str, index: dict[str, int]) -> bool:
    """True when the charset has the literal ``code`` or some character of its class."""
    return any(ch in index for ch in _chars(code))


class _Workspace:
    """The arrays of one :func:`constrained_decode` pass, kept between passes, and the views
    of them that each forward step reads and writes, built once: for the shipped models'
    64 time steps the forward pass is 63 steps of four array operations on a row of about
    800 states, so building its arrays and slicing its rows anew on every call cost as much
    as the arithmetic.

    ``alpha`` has two columns of -inf before the states, so a state's predecessors one
    and two states back are plain views of the previous row (the first states' are -inf).
    """

    def __init__(self, grammar: PlateGrammar, n_steps: int, n_tokens: int) -> None:
        n_states = len(grammar.emit_source)
        n_classes = len(grammar.classes)
        width = grammar.member_pad.shape[1]
        self.logp = np.full((n_steps, n_tokens + 1), -np.inf, np.float32)  # last: padding
        self.scores = np.empty((n_steps, n_classes, width), np.float32)
        self.arg = np.empty((n_steps, n_classes), np.int64)
        # Where each step's row of ``scores`` starts in it, flattened.
        self.row_base = np.arange(n_steps, dtype=np.int64)[:, None] * (n_classes * width)
        # Per step: each class's best score, the blank's, and -inf (the columns states emit).
        self.columns = np.empty((n_steps, n_classes + 2), np.float32)
        self.columns[:, -1] = -np.inf
        self.emit = np.empty((n_steps, n_states), np.float32)
        # Per step and class pair: 0 where a slot may follow the one before it without a
        # blank, else -inf; the last column (never allowed) stays -inf.
        self.allowed = np.full((n_steps, len(grammar.pair_classes) + 1), -np.inf, np.float32)
        self.skip = np.empty((n_steps, n_states), np.float32)
        a = np.full((n_steps, n_states + 2), -np.inf, np.float32)
        self.alpha = a[:, 2:]
        self.jump = np.empty(n_states, np.float32)
        emit, skip = self.emit, self.skip
        self.steps = [
            (a[t - 1, 2:], a[t - 1, 1:-1], a[t - 1, :-2], skip[t], emit[t], a[t, 2:])
            for t in range(1, n_steps)
        ]


def constrained_decode(probs: FloatArray, charset: str, grammar: PlateGrammar) -> tuple[str, float]:
    """Best CTC path (Viterbi) whose text fits one of the ``grammar``'s layouts.

    ``probs`` are ``T x C`` softmax probabilities, blank 0. Each layout slot
    takes the best character of its class at each step; a slot may follow the
    previous one without a blank only where their best characters differ (CTC
    would merge a repeat). A slot's character is the one with the highest
    summed log-probability over the steps the path spends in it; the
    confidence is the product of the slots' peak probabilities, as in
    :func:`greedy_decode`. Returns ``("", 0.0)`` when no layout fits in ``T``
    steps. Safe from several threads: each decodes in buffers of its own
    (:meth:`PlateGrammar.workspace`).
    """
    n_steps = probs.shape[0]
    n_tmpl = grammar.slot_class.shape[0]
    if n_tmpl == 0 or n_steps == 0:
        return "", 0.0
    w = grammar.workspace(n_steps, probs.shape[1])
    logp = w.logp
    np.maximum(probs, 1e-12, out=logp[:, :-1])
    np.log(logp[:, :-1], out=logp[:, :-1])
    # Each class's best token per step (ties: the earlier member) and its score. The
    # grammar's indices are always in range: mode "clip" only spares numpy the buffered
    # copy it makes for an ``out`` under the default "raise".
    scores = np.take(logp, grammar.member_pad, axis=1, out=w.scores, mode="clip")
    arg = scores.argmax(axis=2, out=w.arg)
    np.add(arg, grammar.class_base, out=arg)  # each class's best, as an index into its row
    char = np.take(grammar.flat_members, arg)
    # The best scores themselves, taken at those indices: a gather of one value per class
    # costs a third of a second reduction over every member.
    np.add(arg, w.row_base, out=arg)
    np.take(scores.reshape(-1), arg, out=w.columns[:, :-2], mode="clip")
    w.columns[:, -2] = logp[:, 0]
    emit = np.take(w.columns, grammar.emit_source, axis=1, out=w.emit, mode="clip")
    # A slot follows the one before it without a blank only where their best characters
    # differ (CTC would merge a repeat); the step's first row unused.
    first, second = grammar.pair_classes[:, 0], grammar.pair_classes[:, 1]
    pairs = w.allowed[1:, :-1]
    pairs.fill(-np.inf)
    np.copyto(pairs, 0.0, where=char[1:, second] != char[:-1, first])
    skip = np.take(w.allowed, grammar.skip_source, axis=1, out=w.skip, mode="clip")
    # Forward pass: alpha[t] from alpha[t - 1] by stay / advance one / skip a blank.
    # No back-pointers in the loop (an argmax over 3 stacked arrays per step costs
    # more than the rest): the one path followed back is re-derived from alpha.
    alpha = w.alpha
    np.copyto(alpha[0], emit[0], where=grammar.starts)  # the rest of row 0 stays -inf
    maximum, add, jump = np.maximum, np.add, w.jump
    for stay, advance, two_back, skip_t, emit_t, cur in w.steps:
        maximum(stay, advance, out=cur)
        add(two_back, skip_t, out=jump)
        maximum(cur, jump, out=cur)
        add(cur, emit_t, out=cur)
    ends = grammar.offsets + 2 * grammar.lengths
    last_slot = alpha[-1, ends - 1]
    trailing = alpha[-1, ends]
    final = np.maximum(last_slot, trailing)
    j = int(final.argmax())
    if not np.isfinite(final[j]):
        return "", 0.0
    state = int(2 * grammar.lengths[j] - (1 if last_slot[j] >= trailing[j] else 0))
    own = slice(int(grammar.offsets[j]), int(ends[j]) + 1)
    path = _backtrack(alpha[:, own], skip[:, own], state)
    # The path's states never go down and visit every slot: slot k's steps are one run.
    slot_states = np.arange(1, 2 * int(grammar.lengths[j]), 2)
    lows = np.searchsorted(path, slot_states, "left").tolist()
    highs = np.searchsorted(path, slot_states, "right").tolist()
    text, confidence = [], 1.0
    for k, (low, high) in enumerate(zip(lows, highs, strict=True)):
        members = grammar.classes[int(grammar.slot_class[j, k])]
        pick = int(members[int(logp[low:high, members].sum(axis=0).argmax())])
        text.append(charset[pick - 1])
        confidence *= float(probs[low:high, pick].max())
    return "".join(text), confidence


def _backtrack(alpha: FloatArray, skip: FloatArray, state: int) -> npt.NDArray[np.int64]:
    """The state per time step of the best path of one layout that ends in ``state``.

    ``alpha`` is that layout's ``T x states`` forward scores, ``skip[t, s]``
    the penalty of reaching state ``s`` from ``s - 2`` at step ``t`` (0 or
    -inf). Each step goes back to the
    predecessor that gave ``alpha[t, state]`` (ties: the earlier state).
    """
    scores: list[list[float]] = alpha.tolist()
    skips: list[list[float]] = skip.tolist()
    path = np.empty(len(scores), np.int64)
    for t in range(len(scores) - 1, 0, -1):
        path[t] = state
        before = scores[t - 1]
        step, top = 0, before[state]
        if state >= 1 and before[state - 1] > top:
            step, top = 1, before[state - 1]
        if state >= 2 and before[state - 2] + skips[t][state] > top:
            step = 2
        state -= step
    path[0] = state
    return path

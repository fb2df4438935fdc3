"""CTC decoding on hand-made probability matrices: positions and the plate grammar."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from agent.reader.ctc import (
    PlateGrammar,
    constrained_decode,
    greedy_decode,
    greedy_decode_steps,
    softmax,
)
from agent.reader.plate_text import canonicalize, is_valid

CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\u0623\u0628\u062f\u0647\u0648\u0637\u064a\u0634"
"""The shipped recogniser's charset."""


def _probs(steps: list[tuple[str, float] | tuple[str, float, str, float]]) -> np.ndarray:
    """``T x C`` probabilities: per step the winner (``""`` = blank) and maybe a runner-up."""
    probs = np.full((len(steps), len(CHARSET) + 1), 0.001, np.float32)
    for t, step in enumerate(steps):
        for ch, p in zip(step[0::2], step[1::2], strict=True):
            assert isinstance(ch, str) and isinstance(p, float)
            probs[t, CHARSET.index(ch) + 1 if ch else 0] = p
    return probs / probs.sum(axis=1, keepdims=True)


def _spelled(text: str, fixes: dict[int, tuple[str, str]]) -> np.ndarray:
    """``text`` one character a step with a blank between; ``fixes[i]`` = (greedy, runner-up)."""
    steps: list[tuple[str, float] | tuple[str, float, str, float]] = []
    for i, ch in enumerate(text):
        if i in fixes:
            wrong, right = fixes[i]
            assert right == ch
            steps.append((wrong, 0.55, right, 0.4))
        else:
            steps.append((ch, 0.9))
        steps.append(("", 0.9))
    return _probs(steps)


def test_greedy_steps_are_where_each_character_run_starts() -> None:
    probs = _probs([("", 0.9), ("A", 0.8), ("A", 0.9), ("", 0.9), ("A", 0.7), ("B", 0.8)])
    text, confidence, steps = greedy_decode_steps(probs, CHARSET, probabilities=True)
    assert (text, steps) == ("AAB", [1, 4, 5])
    assert (text, confidence) == greedy_decode(probs, CHARSET, probabilities=True)


def test_greedy_steps_of_logits_and_of_an_empty_read() -> None:
    probs = _probs([("1", 0.9), ("", 0.9), ("2", 0.9)])
    assert greedy_decode_steps(np.log(probs), CHARSET)[::2] == ("12", [0, 2])
    assert greedy_decode_steps(_probs([("", 0.9)] * 4), CHARSET, probabilities=True) == (
        "",
        0.0,
        [],
    )
    with pytest.raises(ValueError, match="charset"):
        greedy_decode_steps(np.zeros((4, 3), np.float32), CHARSET)


@pytest.mark.parametrize(
    ("truth", "fixes", "canonical", "fmt"),
    [
        ("W18123456", {1: ("I", "1")}, "W18-123456", "MA"),
        ("123456M", {6: ("H", "M")}, "123456-M", "MA"),
        ("CD12319", {1: ("0", "D")}, "CD-123-19", "MA"),
        ("CMD123", {3: ("I", "1")}, "CMD-1-23", "MA"),
        ("1234BCD", {6: ("0", "D")}, "1234-BCD", "EU"),
        ("1ABC123", {4: ("I", "1")}, "1-ABC-123", "EU"),
        ("AB12CD", {5: ("0", "D")}, "AB-12-CD", "EU"),
        ("AB1234", {1: ("8", "B")}, "AB-1234", "EU"),
        ("45498\u062826", {5: ("8", "\u0628")}, "45498-B-26", "MA"),
        ("B123ABC", {4: ("0", "A")}, "B-123-ABC", "EU"),
        ("BT63UYN", {2: ("G", "6")}, "BT-63-UYN", "EU"),
    ],
    ids=[
        "w18",
        "state",
        "diplomatic-cd",
        "diplomatic-cmd",
        "es",
        "be",
        "pt",
        "de",
        "ma",
        "ro",
        "gb",
    ],
)
def test_constrained_decoding_reads_the_new_layouts(
    truth: str, fixes: dict[int, tuple[str, str]], canonical: str, fmt: str
) -> None:
    probs = _spelled(truth, fixes)
    greedy, greedy_conf = greedy_decode(probs, CHARSET, probabilities=True)
    assert greedy != truth
    text, confidence = constrained_decode(probs, CHARSET, PlateGrammar(CHARSET))
    assert text == truth
    assert canonicalize(text)[0] == canonical
    if canonicalize(canonical)[1] == fmt:  # the format once plate_text knows it
        assert is_valid(canonical, canonicalize(canonical)[1])
    assert 0.0 < confidence < greedy_conf


def test_the_grammar_never_fits_a_german_number_starting_with_zero() -> None:
    """A read the model spells ``AB012`` (the ``0`` sure) fits no German layout: the grammar
    takes another path, and never makes the ``AB-012`` plate that does not exist."""
    probs = _spelled("AB012", {})
    text, _ = constrained_decode(probs, CHARSET, PlateGrammar(CHARSET))
    assert text != "AB012"
    assert not text.startswith("AB0")
    nine = constrained_decode(_spelled("AB912", {}), CHARSET, PlateGrammar(CHARSET))[0]
    assert nine == "AB912"


def test_the_grammar_leaves_out_layouts_whose_characters_the_charset_lacks() -> None:
    full = PlateGrammar(CHARSET)
    latin = PlateGrammar(CHARSET[:36])  # no Arabic: no 12345-B-6 layouts
    assert len(latin.lengths) == len(full.lengths) - 10
    digits_only = PlateGrammar("0123456789")  # every layout has a letter
    assert len(digits_only.lengths) == 0
    probs = np.full((20, 11), 1 / 11, np.float32)
    assert constrained_decode(probs, "0123456789", digits_only) == ("", 0.0)


def test_no_layout_fits_in_too_few_time_steps() -> None:
    assert constrained_decode(_probs([("1", 0.9)]), CHARSET, PlateGrammar(CHARSET)) == ("", 0.0)


def test_constrained_decoding_finds_a_plate_in_random_32_step_outputs() -> None:
    grammar = PlateGrammar(CHARSET)
    rng = np.random.default_rng(5)
    for _ in range(20):
        m = softmax(rng.normal(0, 3, (32, len(CHARSET) + 1)).astype(np.float32))
        text, conf = constrained_decode(m, CHARSET, grammar)
        assert text
        assert 0.0 < conf <= 1.0


def _layout_read(logp: np.ndarray, classes: list[np.ndarray]) -> tuple[float, str]:
    """Best path score and text of one layout, decoded alone (float64, no shared state row,
    plain loops): the reference that :func:`constrained_decode`'s row of every layout
    must agree with."""
    steps, states = logp.shape[0], 2 * len(classes) + 1
    best = np.stack([logp[:, members].max(axis=1) for members in classes], axis=1)
    char = np.stack([members[logp[:, members].argmax(axis=1)] for members in classes], axis=1)
    alpha = np.full((steps, states), -np.inf)
    alpha[0, 0], alpha[0, 1] = logp[0, 0], best[0, 0]

    def skips(t: int, s: int) -> bool:  # into slot s // 2 straight from the slot before
        k = (s - 1) // 2
        return s % 2 == 1 and k > 0 and char[t, k] != char[t - 1, k - 1]

    for t in range(1, steps):
        for s in range(states):
            came = max(alpha[t - 1, s], alpha[t - 1, s - 1] if s else -np.inf)
            if skips(t, s):
                came = max(came, alpha[t - 1, s - 2])
            alpha[t, s] = came + (best[t, (s - 1) // 2] if s % 2 else logp[t, 0])
    state = states - 2 if alpha[-1, -2] >= alpha[-1, -1] else states - 1
    path = [state]
    for t in range(steps - 1, 0, -1):
        step, top = 0, alpha[t - 1, state]
        if state >= 1 and alpha[t - 1, state - 1] > top:
            step, top = 1, alpha[t - 1, state - 1]
        if skips(t, state) and alpha[t - 1, state - 2] > top:
            step = 2
        state -= step
        path.append(state)
    path.reverse()
    text = ""
    for k, members in enumerate(classes):
        in_slot = [t for t in range(steps) if path[t] == 2 * k + 1]
        text += CHARSET[int(members[logp[in_slot][:, members].sum(axis=0).argmax()]) - 1]
    return float(alpha[-1, -2:].max()), text


def test_constrained_decoding_reads_as_the_best_layout_decoded_alone() -> None:
    """Every layout's states share one row in the decoder, a guard state between layouts;
    what it reads must be what the best layout decoded alone reads: on random outputs, on
    a British plate followed by two stray characters (a row without guards pieced ``YA1``
    together from the Portuguese and the next layout), and on a doubled ``A`` that CTC
    merges (read as two slots, it gave ``AA1234``)."""
    grammar = PlateGrammar(CHARSET)
    rng = np.random.default_rng(11)
    cases = [softmax(rng.normal(0, 3, (24, len(CHARSET) + 1)).astype(np.float32)) for _ in range(6)]
    cases.append(_spelled("AB12CDXY1", {}))
    doubled: list[tuple[str, float]] = [("A", 0.9), ("A", 0.9)]
    for digit in "1234":
        doubled += [("", 0.9), (digit, 0.9)]
    cases.append(_probs(doubled))
    for probs in cases:
        logp = np.log(np.maximum(probs.astype(np.float64), 1e-12))
        reads = [
            _layout_read(logp, [grammar.classes[c] for c in grammar.slot_class[j, :length]])
            for j, length in enumerate(grammar.lengths.tolist())
        ]
        # Layouts tie exactly where one slot's extra step can be another slot of the same
        # class (``1O63``, ``1XO63``): the first layout in the grammar's order is kept.
        first_best = max(range(len(reads)), key=lambda j: (reads[j][0], -j))
        assert constrained_decode(probs, CHARSET, grammar)[0] == reads[first_best][1]


def _random_outputs(seed: int, steps: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (steps, len(CHARSET) + 1)
    return [softmax(rng.normal(0, 3, shape).astype(np.float32)) for _ in range(count)]


def test_a_grammar_reused_for_outputs_of_other_lengths_reads_as_a_fresh_one() -> None:
    """The decoder keeps its arrays between calls (one set per output shape): nothing of
    one read may leak into the next, whatever the lengths in between."""
    reused = PlateGrammar(CHARSET)
    outputs = _random_outputs(3, 32, 4) + _random_outputs(4, 9, 3) + _random_outputs(5, 32, 4)
    for probs in outputs + outputs[::-1]:
        expected = constrained_decode(probs, CHARSET, PlateGrammar(CHARSET))
        assert constrained_decode(probs, CHARSET, reused) == expected


def test_threads_sharing_one_grammar_each_read_their_own_outputs() -> None:
    """Each thread decodes in arrays of its own: two threads reading at once through one
    grammar read what one thread reads alone."""
    grammar = PlateGrammar(CHARSET)
    outputs = _random_outputs(7, 32, 40)
    alone = [constrained_decode(p, CHARSET, grammar) for p in outputs]
    results: dict[int, list[tuple[str, float]]] = {}

    def read(worker: int) -> None:
        order = outputs if worker == 0 else outputs[::-1]
        reads = [constrained_decode(p, CHARSET, grammar) for _ in range(5) for p in order]
        results[worker] = reads[-len(outputs) :] if worker == 0 else reads[-len(outputs) :][::-1]

    workers = [threading.Thread(target=read, args=(w,)) for w in (0, 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert results[0] == alone
    assert results[1] == alone

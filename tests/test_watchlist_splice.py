"""``splice``: both of its ways (run copies for a few changes, masks for many) give the list
a plain Python rebuild gives."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.watchlist.content import _splice_masked, _splice_runs, splice


def _reference(old: list[int], removed: set[int], inserts: list[tuple[int, int]]) -> list[int]:
    """Insert each value before old element p (in the given order), then drop removed ones."""
    out: list[int] = []
    for p in range(len(old) + 1):
        out += [value for at, value in inserts if at == p]
        if p < len(old) and p not in removed:
            out.append(old[p])
    return out


@st.composite
def _changes(draw: st.DrawFn) -> tuple[list[int], set[int], list[tuple[int, int]]]:
    n = draw(st.integers(0, 60))
    old = list(range(0, 2 * n, 2))
    removed = set(draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=n))) if n else set()
    at = sorted(draw(st.lists(st.integers(0, n), max_size=30)))
    inserts = [(p, 1000 + k) for k, p in enumerate(at)]  # the ways take them by position
    return old, removed, inserts


@settings(max_examples=300, deadline=None)
@given(_changes())
def test_both_ways_of_splicing_equal_a_plain_rebuild(
    case: tuple[list[int], set[int], list[tuple[int, int]]],
) -> None:
    old, removed, inserts = case
    want = _reference(old, removed, inserts)
    arrays = [np.array(old, np.int64), np.array([str(v).encode() for v in old], "S8")]
    gone = np.array(sorted(removed), np.int64)
    at = np.array([p for p, _ in inserts], np.int64)
    values = [np.array([v for _, v in inserts], np.int64)]
    values.append(np.array([str(v).encode() for _, v in inserts], "S8"))
    for way in (_splice_masked, _splice_runs):
        ints, texts = way(arrays, gone, at, values, len(want))
        assert ints.tolist() == want, way.__name__
        assert texts.tolist() == [str(v).encode() for v in want], way.__name__
    # the public entry point, with removals unsorted and inserts out of order
    shuffled = np.random.default_rng(len(old)).permutation(len(inserts))
    ints, _ = splice(
        arrays,
        np.array(sorted(removed, reverse=True), np.int64),
        at[shuffled],
        [v[shuffled] for v in values],
    )
    stable = _reference(old, removed, [inserts[k] for k in shuffled.tolist()])
    assert ints.tolist() == stable


def test_a_long_list_with_few_changes_and_a_short_list_rewritten_take_different_ways() -> None:
    """The choice is by density; the results do not depend on it (test above)."""
    long_list = [np.arange(10_000, dtype=np.int64)]
    out = splice(long_list, np.array([5]), np.array([7]), [np.array([-1])])[0]
    assert out[:8].tolist() == [0, 1, 2, 3, 4, 6, -1, 7] and len(out) == 10_000
    short = [np.arange(4, dtype=np.int64)]
    out = splice(short, np.arange(4), np.arange(4), [np.array([10, 11, 12, 13])])[0]
    assert out.tolist() == [10, 11, 12, 13]

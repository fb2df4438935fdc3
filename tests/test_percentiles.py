"""The reader's percentiles of grey levels are numpy's, to the bit, at a fraction of the cost."""

from __future__ import annotations

import numpy as np
import pytest

from agent.reader.percentiles import percentile, percentiles


@pytest.mark.parametrize("seed", range(4))
def test_percentiles_equal_numpys_to_the_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(500):
        height, width = (int(v) for v in rng.integers(1, 40, 2))
        gray = rng.integers(0, 256, (height, width * 3), dtype=np.uint8)
        if rng.random() < 0.5:  # few levels: ties between the order statistics
            gray = (gray // 60 * 60).astype(np.uint8)
        view = gray[:, ::3]  # not contiguous, as a crop's rows are
        for q in (90, 80, 75, 50, 10, 0, 100):
            assert percentile(view, q) == float(np.percentile(view, q))
        assert percentiles(view, (85, 10)) == [float(v) for v in np.percentile(view, (85, 10))]


def test_one_value_and_two_values() -> None:
    assert percentile(np.array([7], np.uint8), 90) == 7.0
    two = np.array([10, 20], np.uint8)
    assert percentile(two, 90) == float(np.percentile(two, 90)) == 19.0
    assert percentile(two, 25) == 12.5


def test_an_empty_or_a_float_array_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile(np.zeros((0, 4), np.uint8), 90)
    with pytest.raises(TypeError, match="integer"):
        percentile(np.zeros(4, np.float32), 90)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile(np.zeros(4, np.uint8), 101)

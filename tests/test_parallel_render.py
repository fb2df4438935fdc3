"""Seeded chunked rendering (models/parallel.py): the training samples do not depend on
how many worker processes drew them, so ``make models`` is reproducible on any machine."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))

import parallel  # a training script module (models/ is no package)


def draw(job: tuple[int, list[int]]) -> list[float]:
    """A stand-in renderer: ``count`` numbers from the chunk's own generator."""
    count, seed = job
    return [float(v) for v in np.random.default_rng(seed).random(count)]


def test_chunks_cover_every_sample_once_in_order() -> None:
    jobs = parallel.chunk_jobs(1201, seed=7, chunk=500)
    assert [count for count, _ in jobs] == [500, 500, 201]
    assert [seed for _, seed in jobs] == [[7, 0], [7, 1], [7, 2]]
    assert parallel.chunk_jobs(0, seed=7) == []


def test_samples_are_the_same_for_one_or_two_workers() -> None:
    n = parallel.CHUNK * 2 + 3
    alone = [v for part in parallel.seeded_chunks(draw, n, 11, workers=1) for v in part]
    shared = [v for part in parallel.seeded_chunks(draw, n, 11, workers=2) for v in part]
    assert len(alone) == n
    assert alone == shared


def test_another_seed_draws_other_samples() -> None:
    first = next(parallel.seeded_chunks(draw, 10, 11, workers=1))
    other = next(parallel.seeded_chunks(draw, 10, 12, workers=1))
    assert first != other

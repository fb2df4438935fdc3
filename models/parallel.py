"""Seeded, chunked sample rendering on worker processes, for the training scripts.

Rendering synthetic plates and scenes is pure Python/OpenCV work that keeps one
core busy while the other idles; splitting it into fixed chunks, each with its
own seed (``numpy.random.default_rng([seed, chunk])``), uses both cores of the
build machine and gives the same samples whatever the number of workers, so
``make models`` stays reproducible.

Workers are *spawned* (never forked): the parent may already hold TensorFlow's
thread pools, which a fork would copy mid-lock.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

CHUNK = 500
"""Samples per seeded chunk: part of the reproducibility contract (changing it
changes the samples)."""


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def chunk_jobs(n: int, seed: int, chunk: int = CHUNK) -> list[tuple[int, list[int]]]:
    """``(count, rng seed)`` of each chunk of ``n`` samples, in order."""
    return [(min(chunk, n - start), [seed, k]) for k, start in enumerate(range(0, n, chunk))]


def seeded_chunks(
    render: Callable[[tuple[int, list[int]]], T], n: int, seed: int, workers: int
) -> Iterator[T]:
    """``render((count, seed))`` of every chunk of ``n`` samples, in chunk order.

    ``render`` must be a module-level function (it is pickled to the workers)
    that draws everything from ``numpy.random.default_rng(seed)``.
    """
    jobs = chunk_jobs(n, seed)
    if workers <= 1 or len(jobs) <= 1:
        yield from map(render, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(render, jobs)

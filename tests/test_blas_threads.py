"""numpy's BLAS stays on one thread in the agent's processes (agent/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys

SHOW = "import agent, os, numpy; print(os.environ['OPENBLAS_NUM_THREADS'])"


def _blas_threads(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SHOW], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_the_agent_runs_numpys_blas_on_one_thread_unless_told_otherwise() -> None:
    """OpenBLAS threads spinning after the reader's small matrix products take the next
    frame's time on a two-core board; a caller's own setting still wins."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    assert _blas_threads(env) == "1"
    assert _blas_threads({**env, "OPENBLAS_NUM_THREADS": "2"}) == "2"

"""Raqib: on-device plate reading, watchlist matching and evidence for police cameras."""

import os

# numpy's OpenBLAS spreads even the reader's small matrix products (the letterbox's area
# weights, the line fitted to a plate's row of glyphs) over every core, then keeps its
# threads spinning for more work: on two cores that took the time of the frame after, and
# the reader's frame p99 on the sample clip went over its 25 ms budget in two of four runs
# (18.7-19.8 ms with one BLAS thread; docs/benchmarks.md). The reader runs on one core by
# design. This must run before numpy is first imported; a setting of the caller's wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"

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

"""Paired ratios between two sides of an interleaved run, with an interval.

Each round measures every side once, back to back, so a round's ratio (A's figure over B's in
that round) cancels what the machine was doing at the time. The median of those per-round
ratios is the run's figure; a percentile bootstrap over the rounds gives how far it could be
from the figure another run of the same length would print. The bootstrap draws from a fixed
seed, so the same rounds always give the same interval.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from typing import Any

RESAMPLES = 4000
CONFIDENCE = 0.95


def bootstrap_median_interval(
    values: Sequence[float], *, resamples: int = RESAMPLES, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The percentile interval of the median of `values`, resampled with replacement."""
    if not values:
        raise ValueError("no values")
    if len(values) == 1:
        return values[0], values[0]
    draw = random.Random(0)
    medians = sorted(
        statistics.median(draw.choices(values, k=len(values))) for _ in range(resamples)
    )
    tail = (1 - confidence) / 2
    low = medians[int(tail * (resamples - 1))]
    high = medians[int((1 - tail) * (resamples - 1) + 0.5)]
    return low, high


def paired_ratio(a: Sequence[float | None], b: Sequence[float | None]) -> dict[str, Any] | None:
    """A over B round by round: the median, its 95 % interval and every round's ratio.
    Rounds where either side has no figure are left out; None when none is left."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} rounds against {len(b)}")
    each = [x / y for x, y in zip(a, b, strict=True) if x and y]
    if not each:
        return None
    low, high = bootstrap_median_interval(each)
    return {
        "median": round(statistics.median(each), 3),
        "low": round(low, 3),
        "high": round(high, 3),
        "rounds": len(each),
        "each": [round(value, 3) for value in each],
    }

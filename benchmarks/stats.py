"""Ratios from interleaved rounds: the median of per-round ratios and their spread.

Round ``i`` of two implementations ran back to back (in rotated order), so their ratio in
that round compares them under the same conditions of the machine; the median over rounds
is less moved by one slow minute than the ratio of two medians, and the spread (min–max)
shows how much the rounds disagreed.

>>> round_ratios([200.0, 300.0, 100.0], [100.0, 100.0, 100.0])
{'ratio': 2.0, 'ratio_min': 1.0, 'ratio_max': 3.0, 'ratio_rounds': 3}
>>> round_ratios([200.0], [])["ratio"] is None
True
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def round_ratios(ours: Sequence[float], theirs: Sequence[float]) -> dict[str, Any]:
    """The median, min and max of ``ours[i] / theirs[i]`` over the rounds both have."""
    pairs = [a / b for a, b in zip(ours, theirs, strict=False) if a and b and b > 0]
    if not pairs:
        return {"ratio": None, "ratio_min": None, "ratio_max": None, "ratio_rounds": 0}
    return {
        "ratio": round(statistics.median(pairs), 3),
        "ratio_min": round(min(pairs), 3),
        "ratio_max": round(max(pairs), 3),
        "ratio_rounds": len(pairs),
    }

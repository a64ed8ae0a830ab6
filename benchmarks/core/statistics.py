"""Statistics over seeds: ``mean_ci`` and ``paired_difference`` give the mean, the sample std and a
95 % Student-t interval (the t quantile from scipy.special, ``stdtrit``, which ``scipy.stats.t.ppf``
calls: the same numbers without importing scipy.stats); ``format_ci`` writes them for tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import stdtrit


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict:
    """Mean, sample std (ddof=1) and the two-sided Student-t interval of the mean (None for one value)."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = float(np.mean(values))
    if n == 1:
        return {"mean": mean, "std": None, "ci95": None, "n": 1, "values": values}
    std = float(np.std(values, ddof=1))
    half = stdtrit(n - 1, 0.5 + level / 2) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n, "values": values}


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict:
    """``a - b`` paired by position (seed): mean, std and Student-t interval of the differences."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    return mean_ci([x - y for x, y in zip(a, b)], level)


def format_ci(stats: dict, fmt: str = ".1f", interval: bool = True) -> str:
    """``"92.4 ± 1.3 [90.8, 94.0]"`` (mean ± std [95 % interval]); just the mean for one value."""
    text = f"{stats['mean']:{fmt}}"
    if stats.get("std") is None:
        return text
    text += f" ± {stats['std']:{fmt}}"
    if interval and stats.get("ci95"):
        low, high = stats["ci95"]
        text += f" [{low:{fmt}}, {high:{fmt}}]"
    return text

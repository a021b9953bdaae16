"""Statistics over seeds: mean or median ± sample standard deviation, and the paired difference of two methods.

The paired difference takes, for every seed, method A's score minus method B's
score on the same data (same seed, so the same data order and the same
initialisation of the classification head). Its mean, a 95 % interval from
Student's t with n - 1 degrees of freedom (mean ± t · std / sqrt(n)), and the
number of seeds where A is higher: the interval says how far the mean could be
from the true effect of the method *over seeds*; it does not cover the sampling
of the evaluation examples.
"""

import math
import statistics
from dataclasses import dataclass
from typing import List, Sequence, Tuple


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def median_std(values: Sequence[float]) -> Tuple[float, float]:
    """Median and sample standard deviation (ddof=1; NaN for a single value), as the paper's Table 1."""
    values = list(values)
    return statistics.median(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def t_quantile_975(dof: int) -> float:
    """The 97.5 % quantile of Student's t with ``dof`` degrees of freedom (two-sided 95 %)."""
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


@dataclass
class PairedDifference:
    seeds: List[int]
    differences: List[float]  # A - B per seed
    mean: float
    std: float
    low: float = float("nan")  # 95 % interval of the mean difference (NaN for one seed)
    high: float = float("nan")
    wins: int = 0  # seeds where A > B
    ties: int = 0

    @property
    def interval_text(self) -> str:
        if math.isnan(self.low):
            return "n/a (one seed)"
        return f"[{self.low:+.2f}, {self.high:+.2f}]"


def paired(seeds: Sequence[int], a: Sequence[float], b: Sequence[float]) -> PairedDifference:
    """Per-seed A − B with mean, std, 95 % t interval and win count; A and B must cover the same seeds."""
    diffs = [round(x - y, 6) for x, y in zip(a, b)]
    mean, std = mean_std(diffs)
    n = len(diffs)
    low = high = float("nan")
    if n > 1:
        half = t_quantile_975(n - 1) * std / math.sqrt(n)
        low, high = mean - half, mean + half
    return PairedDifference(list(seeds), diffs, mean, std, low, high,
                            wins=sum(d > 0 for d in diffs), ties=sum(d == 0 for d in diffs))

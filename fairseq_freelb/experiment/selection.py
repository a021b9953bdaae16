"""The selection rule and the statistics of the report; pure functions of the finished runs.

The rule, as written into ``table.md`` (:data:`RULE`): among the FreeLB
settings, the one with the best mean accuracy on the *selection* half after
the last epoch is chosen (a tie goes to the setting listed first in the grid).
Its held-out mean ± std is reported next to vanilla's, with the per-seed
paired difference FreeLB − vanilla (same seed, same data) and that
difference's mean and std. The held-out half is never used to choose.
"""

import statistics
from dataclasses import dataclass
from typing import Dict, List, Sequence

from fairseq_freelb.commands import CommandError

RULE = (
    "Selection rule: among the FreeLB settings, pick the one with the best mean selection-half accuracy after the "
    "last epoch (a tie goes to the setting listed first); report its held-out mean ± std next to vanilla's and the "
    "per-seed paired difference (FreeLB − vanilla, same seed) with its mean and std. Nothing is chosen on the "
    "held-out half."
)


def mean_std(values: Sequence[float]) -> tuple:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


@dataclass
class SettingSummary:
    setting: str
    seeds: List[int]
    selection: List[float]  # last-epoch accuracy per seed, in seed order
    heldout: List[float]

    @property
    def selection_mean_std(self) -> tuple:
        return mean_std(self.selection)

    @property
    def heldout_mean_std(self) -> tuple:
        return mean_std(self.heldout)


def summarise(runs: Sequence, order: Sequence[str]) -> Dict[str, SettingSummary]:
    """Per setting (in ``order``), the seeds and last-epoch accuracies of its finished runs."""
    summary = {}
    for name in order:
        mine = sorted((r for r in runs if r.setting == name), key=lambda r: r.seed)
        if mine:
            summary[name] = SettingSummary(name, [r.seed for r in mine], [r.selection[-1] for r in mine],
                                           [r.heldout[-1] for r in mine])
    return summary


def select_freelb(summary: Dict[str, SettingSummary], freelb_settings: Sequence[str]) -> str:
    """The FreeLB setting with the best mean selection accuracy (first listed wins a tie); held-out is not read."""
    candidates = [name for name in freelb_settings if name in summary]
    if not candidates:
        raise CommandError("no finished FreeLB run to select from")
    seed_sets = {name: summary[name].seeds for name in candidates}
    if len({tuple(s) for s in seed_sets.values()}) != 1:
        raise CommandError(f"the FreeLB settings have different finished seeds {seed_sets}; finish every run first")
    best = candidates[0]
    for name in candidates[1:]:
        if summary[name].selection_mean_std[0] > summary[best].selection_mean_std[0]:
            best = name
    return best


@dataclass
class PairedDifference:
    seeds: List[int]
    differences: List[float]  # held-out accuracy, FreeLB − vanilla, per seed
    mean: float
    std: float


def paired_difference(chosen: SettingSummary, vanilla: SettingSummary) -> PairedDifference:
    """Held-out FreeLB − vanilla per seed; both must have finished the same seeds."""
    if chosen.seeds != vanilla.seeds:
        raise CommandError(f"paired difference needs the same seeds: {chosen.setting} has {chosen.seeds}, "
                         f"vanilla has {vanilla.seeds}")
    diffs = [round(f - v, 6) for f, v in zip(chosen.heldout, vanilla.heldout)]
    mean, std = mean_std(diffs)
    return PairedDifference(list(chosen.seeds), diffs, mean, std)


def per_epoch_band(runs: Sequence, setting: str, split: str) -> tuple:
    """(epochs, means, stds) of ``split`` accuracy ("selection" or "heldout") over the seeds of ``setting``."""
    series = [getattr(r, split) for r in runs if r.setting == setting]
    if not series:
        return [], [], []
    n = min(len(s) for s in series)
    stats = [mean_std([s[e] for s in series]) for e in range(n)]
    return list(range(1, n + 1)), [m for m, _ in stats], [s for _, s in stats]

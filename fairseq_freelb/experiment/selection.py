"""The selection rule and the statistics of the report; pure functions of the finished runs.

The rule, as written into ``table.md`` (:data:`RULE`): among the FreeLB
settings, the one with the best mean score on the *selection* side after the
last epoch is chosen (a tie goes to the setting listed first in the grid). The
score is the task's headline metric: accuracy (the demo's task, most GLUE
tasks, multiple choice), MCC (CoLA) or Pearson's r (STS-B). Its held-out
mean ± std is reported next to vanilla's, with the per-seed paired difference
FreeLB − vanilla (same seed, same data): its mean, 95 % interval and the count
of seeds where FreeLB wins. The held-out side is never used to choose.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Sequence

from fairseq_freelb.commands import CommandError
from fairseq_freelb.multiseed.stats import PairedDifference, mean_std, paired

RULE = (
    "Selection rule: among the FreeLB settings, pick the one with the best mean selection-side score after the "
    "last epoch (a tie goes to the setting listed first); report its held-out mean ± std next to vanilla's and the "
    "per-seed paired difference (FreeLB − vanilla, same seed) with its mean, 95 % interval (Student's t over seeds) "
    "and the number of seeds where FreeLB wins. Nothing is chosen on the held-out side."
)

__all__ = ["RULE", "PairedDifference", "SettingSummary", "mean_std", "paired_difference", "per_epoch_band",
           "select_freelb", "summarise"]


@dataclass
class SettingSummary:
    setting: str
    seeds: List[int]
    selection: List[float]  # last-epoch headline score per seed, in seed order
    heldout: List[float]
    # Last-epoch score per seed of every other (side, metric), e.g. ("heldout", "f1"), ("heldout_mismatched", "accuracy").
    other: Dict[tuple, List[float]] = field(default_factory=dict)

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
            other = {}
            for side, by_metric in (getattr(mine[0], "scores", None) or {}).items():
                for metric in by_metric:
                    if all(r.scores.get(side, {}).get(metric) for r in mine):
                        other[(side, metric)] = [r.scores[side][metric][-1] for r in mine]
            summary[name] = SettingSummary(name, [r.seed for r in mine], [r.selection[-1] for r in mine],
                                           [r.heldout[-1] for r in mine], other)
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


def paired_difference(chosen: SettingSummary, vanilla: SettingSummary) -> PairedDifference:
    """Held-out FreeLB − vanilla per seed, with mean, std, 95 % interval and wins; both must have the same seeds."""
    if chosen.seeds != vanilla.seeds:
        raise CommandError(f"paired difference needs the same seeds: {chosen.setting} has {chosen.seeds}, "
                         f"vanilla has {vanilla.seeds}")
    return paired(chosen.seeds, chosen.heldout, vanilla.heldout)


def per_epoch_band(runs: Sequence, setting: str, split: str) -> tuple:
    """(epochs, means, stds) of ``split`` accuracy ("selection" or "heldout") over the seeds of ``setting``."""
    series = [getattr(r, split) for r in runs if r.setting == setting]
    if not series:
        return [], [], []
    n = min(len(s) for s in series)
    stats = [mean_std([s[e] for s in series]) for e in range(n)]
    return list(range(1, n + 1)), [m for m, _ in stats], [s for _, s in stats]

"""Robustness analysis: the maximum loss increase in the embedding ball (FreeLB, section 4.3).

For a dev sample X with label y and a fine-tuned model f, eq. 5 of the paper is

    DeltaL_max(X, eps) = max_{||delta|| <= eps} L(f(X + delta), y) - L(f(X), y)

where delta perturbs the word/subword token embeddings (not positions). The
paper compares vanilla, PGD and FreeLB models by the median and standard
deviation of DeltaL_max over the dev samples that every model classifies
correctly (Tables 5 and 8).

Usage (docs/robustness.md)::

    python -m fairseq_freelb.robustness --checkpoints vanilla.pt freelb.pt \\
        --data SST-2-bin --split valid --output-dir robustness/

One job per module:

* :mod:`.arguments`: the flags (dataclass configs), their parser and checks;
* :mod:`.attack`: PGD in token-embedding space and footnote 12's eps search;
* :mod:`.checkpoints`: loading the models and refusing mismatched ones;
* :mod:`.report`: samples.csv, summary.md, delta_loss.png;
* :mod:`.driver`: sample selection, the analysis, ``main``;
* ``__main__``: ``python -m fairseq_freelb.robustness``.

The loss is the criterion's own (any plugin criterion that defines
``adversarial_inputs(sample)``), so classification, regression and
multiple-choice ranking tasks are served the same way.
"""

from fairseq_freelb.robustness.arguments import AttackConfig, RobustnessConfig, RobustnessError
from fairseq_freelb.robustness.attack import AttackResult, EmbeddingAttack, search_eps, slice_sample
from fairseq_freelb.robustness.driver import analyse, main

__all__ = [
    "AttackConfig",
    "AttackResult",
    "EmbeddingAttack",
    "RobustnessConfig",
    "RobustnessError",
    "analyse",
    "main",
    "search_eps",
    "slice_sample",
]

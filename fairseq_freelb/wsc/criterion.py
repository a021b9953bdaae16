"""``--criterion freelb_wsc``: rank a WSC group's candidates by their masked-LM scores, FreeLB over the group.

Each candidate is scored by :func:`fairseq_freelb.wsc.scoring.span_scores`;
the loss is cross-entropy over the scores of one group with the correct
candidate as target (the ``--wsc-cross-entropy`` variant of RoBERTa's WSC
training, Liu et al. 2019). For the adversarial step all candidate sequences
of one group form one perturbation group (:meth:`adversarial_inputs`): delta
is drawn, normalised and projected per group, over the concatenation of its
candidates' embeddings (Zhu et al. 2020, appendix A.1). Missing slots stay at
zero (:meth:`adversarial_masks`).

Validation logs ``accuracy`` per WSC row: the best-scoring candidate of a group
of two or more is predicted correct and the others wrong; a candidate alone
in its group is predicted wrong (there is nothing to rank it against).

A ``--restore-file`` whose masked-LM head was never trained (a model converted
from a source without one) is refused in one line.
"""

import logging
import math
import os
from dataclasses import dataclass
from typing import List

import torch.nn.functional as F
from fairseq.criterions import register_criterion
from fairseq.logging import metrics
from torch import Tensor

from fairseq_freelb.adapters.config import FAIRSEQ_DEFAULT_RESTORE_FILE, AdversarialConfig, AdversarialConfigError
from fairseq_freelb.adapters.criterion_base import AdversarialCriterionBase
from fairseq_freelb.adapters.adversarial_logging import reduce_adversarial_metrics
from fairseq_freelb.adapters.run_context import config_value
from fairseq_freelb.wsc.lm_head import lm_head_problem
from fairseq_freelb.wsc.scoring import candidate_inputs, predicted_labels, span_scores
from fairseq_freelb.wsc.task import WSCTask

logger = logging.getLogger(__name__)


@dataclass
class FreeLBWSCConfig(AdversarialConfig):
    pass


def check_restore_file_head(cfg) -> None:
    """Refuse a ``--restore-file`` without a trained masked-LM head (a missing file is the restore guard's)."""
    path = config_value(cfg, "restore_file", None)
    if not isinstance(path, str) or path in ("", FAIRSEQ_DEFAULT_RESTORE_FILE) or not os.path.isfile(path):
        return
    problem = lm_head_problem(path)
    if problem is not None:
        raise AdversarialConfigError(
            f"--restore-file {path} {problem}; --criterion freelb_wsc scores candidates with the masked-LM head, "
            "so it needs a model with a trained one (fairseq's roberta.* checkpoints have one)"
        )


@register_criterion("freelb_wsc", dataclass=FreeLBWSCConfig)
class FreeLBWSCCriterion(AdversarialCriterionBase):
    def __init__(self, cfg: FreeLBWSCConfig, task):
        super().__init__(cfg, task)
        if not isinstance(task, WSCTask):
            # a dataclass task's cfg names it in ._name, a legacy (argparse) task's args in .task
            name = (getattr(getattr(task, "cfg", None), "_name", None) or getattr(getattr(task, "args", None), "task", None)
                    or type(task).__name__)
            raise AdversarialConfigError(f"--criterion freelb_wsc cannot serve --task {name}; use --task freelb_wsc")
        check_restore_file_head(cfg)
        self.attach_to_task()

    def adversarial_inputs(self, sample) -> List[dict]:
        """The candidate slots' model calls, in call order: one group's perturbation."""
        return candidate_inputs(sample)

    def adversarial_masks(self, sample, masks: List[Tensor]) -> List[Tensor]:
        """Missing slots are placeholder rows, not part of the group: they stay unperturbed."""
        present = sample["choice_mask"]
        return [m & present[:, c].unsqueeze(1).to(m.device) for c, m in enumerate(masks)]

    def forward(self, model, sample, reduce=True):
        scores = span_scores(model, sample)
        present = sample["choice_mask"].to(scores.device)
        labels = sample["candidate_labels"].to(scores.device)
        sample_size = 0
        loss = scores.new_zeros(())
        if "target" in sample:
            target = sample["target"].view(-1).to(scores.device)
            ranked = target.ge(0)
            sample_size = int(ranked.sum())
            if sample_size:
                loss = F.cross_entropy(scores[ranked], target[ranked], reduction="sum")
        if not loss.requires_grad:
            loss.requires_grad_(True)
        known = labels.ge(0)
        predicted = predicted_labels(scores.detach(), present)
        logging_output = {
            "loss": loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": scores.size(0),
            "sample_size": sample_size,
            "ncorrect": (predicted.eq(labels) & known).sum(),
            "nrows": known.sum(),
        }
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        loss_sum = sum(log.get("loss", 0) for log in logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        metrics.log_scalar("loss", loss_sum / max(sample_size, 1) / math.log(2), sample_size, round=3)
        nrows = sum(log.get("nrows", 0) for log in logging_outputs)
        ncorrect = sum(log.get("ncorrect", 0) for log in logging_outputs)
        metrics.log_scalar("accuracy", 100.0 * ncorrect / max(nrows, 1), nrows, round=1)
        reduce_adversarial_metrics(logging_outputs)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

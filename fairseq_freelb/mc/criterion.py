"""``--criterion freelb_sentence_ranking``: multiple-choice ranking with per-question perturbations.

Each question is C sequences, one per candidate answer (``net_input1`` ..
``net_inputC``, the layout of fairseq's ``sentence_ranking`` task and of
``--task multiple_choice``). The ranking head maps each sequence's ``<s>``
representation to one score; the loss is cross-entropy over the C scores.
With ``--task multiple_choice`` a batch may mix questions with different
numbers of choices: ``sample["choice_mask"]`` marks the real ones, and the
others get a score of -inf (never scored, no gradient).

For the adversarial step all C model calls of a minibatch form one group
(:meth:`adversarial_inputs`), so FreeLB and every ``--adv-method`` draw,
normalise and project the perturbation per question, over the concatenation
of its candidates' embeddings (appendix A.1 of Zhu et al. 2020). Missing
choices are excluded from that group (:meth:`adversarial_masks`).
"""

from dataclasses import dataclass, field
from typing import List

import torch.nn.functional as F
from fairseq.criterions import register_criterion
from fairseq.tasks.sentence_ranking import SentenceRankingTask
from torch import Tensor

from fairseq_freelb.adapters.adversarial_logging import reduce_adversarial_metrics, reduce_loss_and_accuracy
from fairseq_freelb.adapters.config import AdversarialConfig
from fairseq_freelb.adapters.criterion_base import AdversarialCriterionBase, require_task
from fairseq_freelb.mc.scoring import candidate_inputs, choice_scores, present_choices
from fairseq_freelb.mc.task import MultipleChoiceTask


@dataclass
class FreeLBSentenceRankingConfig(AdversarialConfig):
    ranking_head_name: str = field(
        default="sentence_classification_head",
        metadata={"help": "name of the ranking head (one score per candidate sequence)"},
    )


@register_criterion("freelb_sentence_ranking", dataclass=FreeLBSentenceRankingConfig)
class FreeLBSentenceRankingCriterion(AdversarialCriterionBase):
    def __init__(self, cfg: FreeLBSentenceRankingConfig, task):
        super().__init__(cfg, task)
        require_task(
            "freelb_sentence_ranking",
            task,
            (SentenceRankingTask, MultipleChoiceTask),
            "use --task multiple_choice, or --task freelb_sentence_ranking for fairseq's sentence_ranking data",
        )
        self.ranking_head_name = cfg.ranking_head_name
        self.attach_to_task()

    def adversarial_inputs(self, sample) -> List[dict]:
        """The C model calls of :meth:`forward`, in call order: one question's perturbation group."""
        return candidate_inputs(sample)

    def adversarial_masks(self, sample, masks: List[Tensor]) -> List[Tensor]:
        """Leave missing-choice rows out of the perturbation group.

        Those rows are real ``<s> </s>`` sequences (an all-padding row makes
        attention produce NaN), but they are not part of the question: keeping
        them at zero keeps delta_0, the length L of the init scale, the ascent
        step and the projection norm over the question's real candidates only.
        """
        present = present_choices(sample)
        if present is None:
            return masks
        return [m & present[:, c].unsqueeze(1).to(m.device) for c, m in enumerate(masks)]

    def forward(self, model, sample, reduce=True):
        logits = choice_scores(model, sample, self.ranking_head_name)
        sample_size = logits.size(0)
        logging_output = {"ntokens": sample["ntokens"], "nsentences": sample_size, "sample_size": sample_size}
        if "target" in sample:
            targets = sample["target"].view(-1)
            loss = F.nll_loss(F.log_softmax(logits, dim=-1), targets, reduction="sum")
            logging_output["ncorrect"] = (logits.argmax(dim=1) == targets).sum()
        else:  # unlabelled (test) data: nothing to learn from
            loss = logits.new_zeros(()).requires_grad_(True)
        logging_output["loss"] = loss.data
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        reduce_loss_and_accuracy(logging_outputs)
        reduce_adversarial_metrics(logging_outputs)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

"""``--criterion freelb_sentence_prediction``: sentence classification and regression.

The loss is fairseq's ``sentence_prediction`` loss (cross-entropy, or MSE with
``--regression-target``); the ``--adv-*`` flags choose how the training step
perturbs the embeddings (:mod:`fairseq_freelb.train_step`). Validation and
inference compute the plain loss on unperturbed inputs.

Built on ``FairseqCriterion`` alone, with the ``(cfg, task)`` constructor,
so it does not depend on how a fairseq version builds its own
``SentencePredictionCriterion`` (``(task, head, regression)`` in 0.12.2,
``(cfg, task)`` in the 3.11 fork).
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.logging import metrics
from fairseq.tasks.sentence_prediction import SentencePredictionTask

from fairseq_freelb.config import AdversarialConfig, AdversarialConfigError, validate_adversarial_config
from fairseq_freelb.criterions.adversarial_logging import reduce_adversarial_metrics
from fairseq_freelb.train_step import Adversary, make_adversarial


@dataclass
class FreeLBSentencePredictionConfig(AdversarialConfig):
    classification_head_name: str = field(
        default="sentence_classification_head",
        metadata={"help": "name of the classification head to use"},
    )
    regression_target: bool = field(
        default=False,
        metadata={"help": "regression (e.g. STS-B): one output, MSE loss"},
    )


def require_task(criterion_name: str, task, task_class: type, hint: str) -> None:
    """Refuse a task this criterion cannot serve, naming the flag."""
    if not isinstance(task, task_class):
        raise AdversarialConfigError(
            f"--criterion {criterion_name} cannot serve --task {getattr(task.cfg, '_name', type(task).__name__)}; {hint}"
        )


@register_criterion("freelb_sentence_prediction", dataclass=FreeLBSentencePredictionConfig)
class FreeLBSentencePredictionCriterion(FairseqCriterion):
    def __init__(self, cfg: FreeLBSentencePredictionConfig, task):
        super().__init__(task)
        validate_adversarial_config(cfg)
        require_task(
            "freelb_sentence_prediction",
            task,
            SentencePredictionTask,
            "use --task sentence_prediction or --task freelb_sentence_prediction",
        )
        self.classification_head_name = cfg.classification_head_name
        self.regression_target = cfg.regression_target
        self.adversary = Adversary(cfg)
        make_adversarial(task, self.adversary)

    def adversarial_inputs(self, sample):
        """One model call per minibatch: its tokens form the whole example."""
        return [sample["net_input"]]

    def forward(self, model, sample, reduce=True):
        if self.classification_head_name not in getattr(model, "classification_heads", {}):
            raise ValueError(
                f"model has no classification head {self.classification_head_name!r} "
                "(--classification-head-name); use --task sentence_prediction to register it"
            )
        logits, _ = model(
            **sample["net_input"],
            features_only=True,
            classification_head_name=self.classification_head_name,
        )
        targets = model.get_targets(sample, [logits]).view(-1)
        sample_size = targets.numel()

        if self.regression_target:
            logits = logits.view(-1).float()
            loss = F.mse_loss(logits, targets.float(), reduction="sum")
        else:
            lprobs = F.log_softmax(logits, dim=-1, dtype=torch.float32)
            loss = F.nll_loss(lprobs, targets, reduction="sum")

        logging_output = {
            "loss": loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample_size,
            "sample_size": sample_size,
        }
        if not self.regression_target:
            logging_output["ncorrect"] = (logits.argmax(dim=1) == targets).sum()
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        loss_sum = sum(log.get("loss", 0) for log in logging_outputs)
        nsentences = sum(log.get("nsentences", 0) for log in logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        metrics.log_scalar("loss", loss_sum / max(sample_size, 1) / math.log(2), sample_size, round=3)
        if logging_outputs and "ncorrect" in logging_outputs[0]:
            ncorrect = sum(log.get("ncorrect", 0) for log in logging_outputs)
            metrics.log_scalar("accuracy", 100.0 * ncorrect / max(nsentences, 1), nsentences, round=1)
        reduce_adversarial_metrics(logging_outputs)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

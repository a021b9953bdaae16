"""``--criterion freelb_sentence_prediction``: sentence classification and regression.

The loss is fairseq's ``sentence_prediction`` loss (cross-entropy, or MSE with
``--regression-target``); the ``--adv-*`` flags choose how the training step
perturbs the embeddings (:mod:`fairseq_freelb.core.adversary`). Validation and
inference compute the plain loss on unperturbed inputs.

During validation it can also log GLUE's official metrics, usable as
``--best-checkpoint-metric``: ``--report-mcc`` (CoLA: ``mcc``),
``--report-acc-and-f1`` (MRPC, QQP: ``f1``, ``acc_and_f1``) and
``--report-pearson-and-spearman`` (STS-B: ``pearson``, ``spearman``,
``pearson_and_spearman``), all in percent like ``accuracy``. Classification
metrics come from a summed confusion matrix and Pearson's r from summed
moments; Spearman's rho needs every prediction, so with that flag the logging
outputs carry per-example tensors and are gathered rather than summed.

Built on ``FairseqCriterion`` alone, with the ``(cfg, task)`` constructor,
so it does not depend on how a fairseq version builds its own
``SentencePredictionCriterion`` (``(task, head, regression)`` in 0.12.2,
``(cfg, task)`` in the 3.11 fork).
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq.criterions import register_criterion
from fairseq.logging import metrics
from fairseq.tasks.sentence_prediction import SentencePredictionTask

from fairseq_freelb import metrics as glue_metrics
from fairseq_freelb.adapters.adversarial_logging import reduce_adversarial_metrics, reduce_loss_and_accuracy
from fairseq_freelb.adapters.config import AdversarialConfig
from fairseq_freelb.adapters.criterion_base import AdversarialCriterionBase, require_task
from fairseq_freelb.core.errors import AdversarialConfigError


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
    report_mcc: bool = field(
        default=False,
        metadata={"help": "log Matthews correlation x100 as 'mcc' in validation (CoLA; binary classification)"},
    )
    report_acc_and_f1: bool = field(
        default=False,
        metadata={"help": "log F1 x100 as 'f1' and (accuracy+F1)/2 as 'acc_and_f1' in validation (MRPC, QQP)"},
    )
    report_pearson_and_spearman: bool = field(
        default=False,
        metadata={
            "help": "log Pearson and Spearman correlations x100 as 'pearson', 'spearman' and their mean "
            "'pearson_and_spearman' in validation (STS-B; needs --regression-target)"
        },
    )
    positive_label: str = field(
        default="1",
        metadata={"help": "the label (as spelled in label/dict.txt) that is the positive class for F1 and MCC"},
    )


@register_criterion("freelb_sentence_prediction", dataclass=FreeLBSentencePredictionConfig)
class FreeLBSentencePredictionCriterion(AdversarialCriterionBase):
    def __init__(self, cfg: FreeLBSentencePredictionConfig, task):
        super().__init__(cfg, task)
        require_task(
            "freelb_sentence_prediction",
            task,
            SentencePredictionTask,
            "use --task sentence_prediction or --task freelb_sentence_prediction",
        )
        self.classification_head_name = cfg.classification_head_name
        self.regression_target = cfg.regression_target
        self.report_confusion = bool(cfg.report_mcc or cfg.report_acc_and_f1)
        self.report_mcc, self.report_acc_and_f1 = bool(cfg.report_mcc), bool(cfg.report_acc_and_f1)
        self.report_correlations = bool(cfg.report_pearson_and_spearman)
        self.positive_class = self._positive_class(cfg, task) if self.report_confusion else None
        if self.report_correlations and not self.regression_target:
            raise AdversarialConfigError("--report-pearson-and-spearman needs --regression-target")
        self.attach_to_task()

    def _positive_class(self, cfg, task) -> int:
        """The target index of ``--positive-label`` (targets are label-dictionary indices minus nspecial)."""
        flags = "--report-mcc/--report-acc-and-f1"
        if self.regression_target:
            raise AdversarialConfigError(f"{flags} need a classification task, not --regression-target")
        if int(task.cfg.num_classes) != 2:
            raise AdversarialConfigError(f"{flags} need --num-classes 2, got {task.cfg.num_classes}")
        labels = task.label_dictionary
        index = labels.index(cfg.positive_label)
        if index == labels.unk():
            known = " ".join(labels.symbols[labels.nspecial :])
            raise AdversarialConfigError(f"--positive-label {cfg.positive_label!r} is not in label/dict.txt ({known})")
        return index - labels.nspecial

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
            preds = logits.argmax(dim=1)
            logging_output["ncorrect"] = (preds == targets).sum()
            if self.report_confusion and not model.training:
                predicted, actual = preds == self.positive_class, targets == self.positive_class
                logging_output["glue_tp"] = (predicted & actual).sum()
                logging_output["glue_fp"] = (predicted & ~actual).sum()
                logging_output["glue_fn"] = (~predicted & actual).sum()
                logging_output["glue_tn"] = (~predicted & ~actual).sum()
        elif self.report_correlations and not model.training:
            x, y = logits.detach().double(), targets.detach().view(-1).double()
            logging_output.update(
                glue_n=x.numel(), glue_x=x.sum(), glue_y=y.sum(), glue_xx=(x * x).sum(), glue_yy=(y * y).sum(),
                glue_xy=(x * y).sum(), glue_pred=x.cpu(), glue_targ=y.cpu(),
            )
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        reduce_loss_and_accuracy(logging_outputs)
        reduce_glue_metrics(logging_outputs)
        reduce_adversarial_metrics(logging_outputs)

    def logging_outputs_can_be_summed(self) -> bool:
        # Spearman's rho needs the per-example predictions, which cannot be summed across workers.
        return not self.report_correlations


CONFUSION = ("glue_tp", "glue_fp", "glue_fn", "glue_tn")
MOMENTS = {"n": "glue_n", "x": "glue_x", "y": "glue_y", "xx": "glue_xx", "yy": "glue_yy", "xy": "glue_xy"}


def _meter_value(meters, key) -> float:
    return float(meters[key].sum)


def reduce_glue_metrics(logging_outputs) -> None:
    """Validation-only GLUE metrics, accumulated over the whole validation set.

    The statistics go into hidden (``_``-prefixed) sum or concat meters; the
    metrics are derived from them when the validation stats are read, so they
    cover every batch, not the mean of per-batch values.
    """
    if any("glue_tp" in log for log in logging_outputs):
        for key in CONFUSION:
            metrics.log_scalar_sum(f"_{key}", sum(float(log.get(key, 0)) for log in logging_outputs))

        def confusion(meters):
            return {key[5:]: _meter_value(meters, f"_{key}") for key in CONFUSION}

        def f1(meters):
            return 100.0 * glue_metrics.f1_from_confusion(**confusion(meters))

        def accuracy(meters):
            c = confusion(meters)
            total = sum(c.values())
            return 100.0 * (c["tp"] + c["tn"]) / total if total else 0.0

        metrics.log_derived("mcc", lambda m: round(100.0 * glue_metrics.mcc_from_confusion(**confusion(m)), 2))
        metrics.log_derived("f1", lambda m: round(f1(m), 2))
        metrics.log_derived("acc_and_f1", lambda m: round((accuracy(m) + f1(m)) / 2, 2))
    if any("glue_xy" in log for log in logging_outputs):
        for name, key in MOMENTS.items():
            metrics.log_scalar_sum(f"_{key}", sum(float(log.get(key, 0)) for log in logging_outputs))
        preds = [log["glue_pred"] for log in logging_outputs if "glue_pred" in log]
        targs = [log["glue_targ"] for log in logging_outputs if "glue_targ" in log]
        metrics.log_concat_tensor("_glue_pred", torch.cat(preds).view(-1))
        metrics.log_concat_tensor("_glue_targ", torch.cat(targs).view(-1))

        def pearson(meters):
            return 100.0 * glue_metrics.pearson_from_moments(
                **{name: _meter_value(meters, f"_{key}") for name, key in MOMENTS.items()}
            )

        def spearman(meters):
            return 100.0 * glue_metrics.spearman(
                meters["_glue_pred"].tensor.numpy(), meters["_glue_targ"].tensor.numpy()
            )

        metrics.log_derived("pearson", lambda m: round(pearson(m), 2))
        metrics.log_derived("spearman", lambda m: round(spearman(m), 2))
        metrics.log_derived("pearson_and_spearman", lambda m: round((pearson(m) + spearman(m)) / 2, 2))

"""Log entries shared by every criterion of the plugin: loss, accuracy, and the adversary at work."""

import math

from fairseq.logging import metrics


def reduce_adversarial_metrics(logging_outputs) -> None:
    """Log the mean loss at delta_0 and at the last pass (base 2, like ``loss``) and the mean ||delta||.

    The entries appear only in training logs of adversarial steps; validation
    has no perturbation and logs none of them.
    """
    if not any("adv_loss_init" in log for log in logging_outputs):
        return
    sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
    nsentences = sum(log.get("nsentences", 0) for log in logging_outputs)
    for key in ("adv_loss_init", "adv_loss_last"):
        total = sum(log.get(key, 0) for log in logging_outputs)
        metrics.log_scalar(key, total / max(sample_size, 1) / math.log(2), sample_size, round=3)
    norm = sum(log.get("adv_delta_norm", 0) for log in logging_outputs)
    metrics.log_scalar("adv_delta_norm", norm / max(nsentences, 1), nsentences, round=4)


def reduce_loss_and_accuracy(logging_outputs) -> None:
    """fairseq's ``loss`` (base 2, per sample) and, for classifiers, ``accuracy``."""
    loss_sum = sum(log.get("loss", 0) for log in logging_outputs)
    nsentences = sum(log.get("nsentences", 0) for log in logging_outputs)
    sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
    metrics.log_scalar("loss", loss_sum / max(sample_size, 1) / math.log(2), sample_size, round=3)
    if logging_outputs and "ncorrect" in logging_outputs[0]:
        ncorrect = sum(log.get("ncorrect", 0) for log in logging_outputs)
        metrics.log_scalar("accuracy", 100.0 * ncorrect / max(nsentences, 1), nsentences, round=1)

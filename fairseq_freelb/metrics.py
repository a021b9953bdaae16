"""The official GLUE metrics in plain numpy (no scikit-learn, no scipy at run time).

A bottom-floor module (it imports nothing of the plugin), shared by the
``freelb_sentence_prediction`` criterion, which logs them during validation
(``--report-mcc``, ...), and by ``python -m fairseq_freelb.glue.evaluate``.

Each metric exists in two forms: on arrays of predictions and labels, and on
the summable statistics a distributed fairseq validation can add up across
workers and batches (a confusion matrix, or the first and second moments).

Values are fractions (MCC and correlations in [-1, 1], accuracy and F1 in
[0, 1]); :func:`glue_metrics` reports them in percent, as GLUE and the paper do.
"""

from typing import Dict, Sequence

import numpy as np


def accuracy(preds, labels) -> float:
    preds, labels = _pair(preds, labels)
    return float(np.mean(preds == labels)) if len(labels) else 0.0


def binary_confusion(preds, labels, positive) -> Dict[str, int]:
    """tp, fp, fn, tn with ``positive`` as the positive class (every other value is negative)."""
    preds, labels = _pair(preds, labels)
    p, t = preds == positive, labels == positive
    return {
        "tp": int(np.sum(p & t)),
        "fp": int(np.sum(p & ~t)),
        "fn": int(np.sum(~p & t)),
        "tn": int(np.sum(~p & ~t)),
    }


def f1_from_confusion(tp, fp, fn, tn=0) -> float:
    """F1 of the positive class, 2tp / (2tp + fp + fn); 0 when there is no positive at all."""
    denom = 2 * tp + fp + fn
    return float(2 * tp / denom) if denom else 0.0


def f1(preds, labels, positive=1) -> float:
    return f1_from_confusion(**binary_confusion(preds, labels, positive))


def mcc_from_confusion(tp, fp, fn, tn) -> float:
    """Matthews correlation (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)); 0 if a margin is empty."""
    tp, fp, fn, tn = (float(x) for x in (tp, fp, fn, tn))
    denom = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return float((tp * tn - fp * fn) / np.sqrt(denom)) if denom > 0 else 0.0


def mcc(preds, labels) -> float:
    """Matthews correlation for any number of classes (Gorodkin's R_K; the binary formula for two).

    With C the confusion matrix, t_k / p_k the true / predicted counts of class k,
    c the number correct and s the total:
    (c*s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2)(s^2 - sum_k t_k^2)).
    """
    preds, labels = _pair(preds, labels)
    classes, inverse = np.unique(np.concatenate([labels, preds]), return_inverse=True)
    k = len(classes)
    t_idx, p_idx = inverse[: len(labels)], inverse[len(labels):]
    confusion = np.zeros((k, k), dtype=np.float64)
    np.add.at(confusion, (t_idx, p_idx), 1.0)
    t_sum, p_sum = confusion.sum(axis=1), confusion.sum(axis=0)
    correct, total = np.trace(confusion), confusion.sum()
    cov_tp = correct * total - np.dot(t_sum, p_sum)
    cov_pp = total**2 - np.dot(p_sum, p_sum)
    cov_tt = total**2 - np.dot(t_sum, t_sum)
    denom = cov_pp * cov_tt
    return float(cov_tp / np.sqrt(denom)) if denom > 0 else 0.0


def moments(preds, labels) -> Dict[str, float]:
    """Sums n, x, y, xx, yy, xy (x = prediction, y = label): enough for Pearson's r."""
    x, y = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (preds, labels))
    _check_same_length(x, y)
    return {"n": float(len(x)), "x": x.sum(), "y": y.sum(), "xx": (x * x).sum(), "yy": (y * y).sum(), "xy": (x * y).sum()}


def pearson_from_moments(n, x, y, xx, yy, xy) -> float:
    """r = (n*Sxy - Sx*Sy) / sqrt((n*Sxx - Sx^2)(n*Syy - Sy^2)); 0 when either side is constant."""
    cov = n * xy - x * y
    var_x, var_y = n * xx - x * x, n * yy - y * y
    denom = var_x * var_y
    return float(np.clip(cov / np.sqrt(denom), -1.0, 1.0)) if denom > 0 else 0.0


def pearson(preds, labels) -> float:
    """Pearson's r, computed on centred data (more accurate than the moment form for one pass)."""
    x, y = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (preds, labels))
    _check_same_length(x, y)
    if len(x) < 2:
        return 0.0
    dx, dy = x - x.mean(), y - y.mean()
    denom = np.sqrt(np.dot(dx, dx) * np.dot(dy, dy))
    return float(np.clip(np.dot(dx, dy) / denom, -1.0, 1.0)) if denom > 0 else 0.0


def average_ranks(values) -> np.ndarray:
    """1-based ranks, ties sharing the mean of the ranks they span."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start of each run of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]  # exclusive
    mean_rank = (starts + ends + 1) / 2.0  # mean of (start+1 .. end)
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(preds, labels) -> float:
    """Spearman's rho: Pearson's r of the average ranks."""
    return pearson(average_ranks(preds), average_ranks(labels))


def glue_metrics(metric_names: Sequence[str], preds, labels, positive="1") -> Dict[str, float]:
    """The named metrics in percent. Classification metrics take labels as the files spell them."""
    funcs = {
        "accuracy": lambda: accuracy(preds, labels),
        "f1": lambda: f1(preds, labels, positive),
        "mcc": lambda: mcc(preds, labels),
        "pearson": lambda: pearson(preds, labels),
        "spearman": lambda: spearman(preds, labels),
    }
    unknown = [m for m in metric_names if m not in funcs]
    if unknown:
        raise KeyError(f"unknown GLUE metric(s) {unknown}; known: {', '.join(funcs)}")
    return {name: 100.0 * funcs[name]() for name in metric_names}


def _check_same_length(a, b) -> None:
    if len(a) != len(b):
        raise ValueError(f"{len(a)} predictions but {len(b)} labels")


def _pair(preds, labels):
    preds, labels = np.asarray(preds).reshape(-1), np.asarray(labels).reshape(-1)
    _check_same_length(preds, labels)
    return preds, labels

"""Predicted labels and accuracy per benchmark group (the columns of Table 3); no fairseq import."""

import collections
from typing import Dict, List, Sequence

import numpy as np

from fairseq_freelb.mc.formats import MultipleChoiceFormatError, Question, benchmark_group


def predicted_labels(questions: Sequence[Question], probabilities: Sequence[np.ndarray]) -> List[str]:
    """The dataset's own label (``A``-``E`` or ``1``-``4``) of each question's most probable choice."""
    if len(questions) != len(probabilities):
        raise ValueError(f"{len(questions)} questions but {len(probabilities)} score rows")
    out = []
    for q, p in zip(questions, probabilities):
        if len(p) != len(q.choices):
            raise ValueError(f"{q.origin}: {len(q.choices)} choices but {len(p)} probabilities")
        out.append(q.labels[int(np.argmax(p))])
    return out


def accuracy_by_group(questions: Sequence[Question], predictions: Sequence[str]) -> Dict[str, Dict]:
    """``{group: {"correct", "total", "accuracy"}}`` per benchmark group, plus ``"all"`` (merged).

    Groups are ``ARC-Easy``, ``ARC-Challenge``, ``RACE-high``, ``RACE-middle``,
    or the source tag of any other file (:func:`benchmark_group`).
    """
    correct: Dict[str, int] = collections.Counter()
    total: Dict[str, int] = collections.Counter()
    for q, pred in zip(questions, predictions):
        if q.answer is None:
            raise MultipleChoiceFormatError(f"{q.origin}: no answerKey; accuracy needs a labelled split")
        for group in (benchmark_group(q.source), "all"):
            total[group] += 1
            correct[group] += int(pred == q.answer)
    return {
        g: {"correct": correct[g], "total": total[g], "accuracy": 100.0 * correct[g] / total[g]}
        for g in sorted(total, key=lambda g: (g == "all", g))
    }

"""Accuracy per benchmark (Table 3 columns) and the leaderboard predictions file; no fairseq import."""

import collections
import csv
from typing import Dict, List, Sequence

import numpy as np

from fairseq_freelb.mc.formats import Question, benchmark_group


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
            raise ValueError(f"{q.origin}: no answerKey; accuracy needs a labelled split")
        for group in (benchmark_group(q.source), "all"):
            total[group] += 1
            correct[group] += int(pred == q.answer)
    return {
        g: {"correct": correct[g], "total": total[g], "accuracy": 100.0 * correct[g] / total[g]}
        for g in sorted(total, key=lambda g: (g == "all", g))
    }


def write_predictions(path: str, questions: Sequence[Question], predictions: Sequence[str]) -> None:
    """Leaderboard file: one ``id,answer`` line per question in input order, no header."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for q, pred in zip(questions, predictions):
            writer.writerow([q.id, pred])


def validate_predictions(path: str, questions: Sequence[Question]) -> List[str]:
    """Problems of a predictions file (empty when it is valid), each as ``path:line: message``.

    Valid means: exactly one ``id,answer`` line per question, in the questions'
    order, each answer one of that question's own labels.
    """
    problems = []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    for lineno, row in enumerate(rows, start=1):
        where = f"{path}:{lineno}"
        if lineno > len(questions):
            problems.append(f"{where}: extra line; there are only {len(questions)} questions")
            break
        q = questions[lineno - 1]
        if len(row) != 2:
            problems.append(f"{where}: expected 2 fields 'id,answer', got {len(row)}")
            continue
        qid, answer = row
        if qid != q.id:
            problems.append(f"{where}: id {qid!r}, expected {q.id!r} (question {lineno} of the input, {q.origin})")
        elif answer not in q.labels:
            problems.append(f"{where}: answer {answer!r} is not among the labels {', '.join(q.labels)} of {qid!r}")
    if len(rows) < len(questions):
        problems.append(f"{path}: {len(rows)} lines for {len(questions)} questions (first missing: {questions[len(rows)].id!r})")
    return problems

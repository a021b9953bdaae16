"""QNLI as pairwise ranking: grouping rows by question, pairing them, and the prediction rules; no torch, no fairseq.

Following RoBERTa (Liu et al. 2019) and FreeLB (Zhu et al. 2020, appendix A.1),
the rows of one question are ranked against each other: "we predict
'entailment' if the candidate has the higher score, and 'not_entailment'
otherwise".

- **Training pairs**: each entailment sentence of a question is matched, in file
  order, with a not_entailment sentence of the same question. A question whose
  two counts differ leaves rows without a partner; those rows are dropped from
  the pairs (and counted).
- **Prediction, per original row**: a question with exactly two candidates is a
  pair: the higher-scoring candidate gets ``entailment``, the other
  ``not_entailment`` (a tie goes to the first row). Every candidate of a
  question with one candidate, or with three or more, is decided by its own
  score against a threshold chosen on the dev rows (the threshold that
  classifies the most dev rows correctly; :func:`choose_threshold`).
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

FORMULATION = "QNLI-ranking"  # the name of --tasks, of its <out>/QNLI-ranking-bin folder, and in checkpoints
ENTAILMENT, NOT_ENTAILMENT = "entailment", "not_entailment"
PAIRED = "paired"  # the question has two candidates: one entailment each
THRESHOLD = "threshold"  # one, or three or more, candidates: each against the dev threshold


def question_groups(questions: Sequence[str]) -> List[int]:
    """The question number of each row: questions numbered in order of first appearance (exact text)."""
    numbers: Dict[str, int] = {}
    return [numbers.setdefault(q, len(numbers)) for q in questions]


@dataclass
class Pairing:
    """Ranking pairs of one labelled split."""

    rows: int
    questions: int
    pairs: List[Tuple[int, int]] = field(default_factory=list)  # (entailment row, not_entailment row)
    unpaired_questions: int = 0  # questions whose entailment and not_entailment counts differ
    unpaired_rows: int = 0  # the rows of those questions left without a partner

    def summary(self, split: str, what_happens: str) -> str:
        return (f"QNLI-ranking {split}: {self.rows} rows, {self.questions} questions; {len(self.pairs)} pairs built "
                "(an entailment sentence with a not_entailment sentence of its question); "
                f"{self.unpaired_questions} questions whose counts do not pair up: their {self.unpaired_rows} "
                f"unpaired rows are {what_happens}")


def pair_up(groups: Sequence[int], labels: Sequence[str]) -> Pairing:
    """Match each entailment row of a question with a not_entailment row of it, in file order."""
    by_question: Dict[int, Tuple[List[int], List[int]]] = {}
    for row, (question, label) in enumerate(zip(groups, labels)):
        entailed, not_entailed = by_question.setdefault(question, ([], []))
        (entailed if label == ENTAILMENT else not_entailed).append(row)
    out = Pairing(rows=len(labels), questions=len(by_question))
    for entailed, not_entailed in by_question.values():
        out.pairs.extend(zip(entailed, not_entailed))
        left = abs(len(entailed) - len(not_entailed))
        if left:
            out.unpaired_questions += 1
            out.unpaired_rows += left
    return out


def candidate_counts(groups: Sequence[int]) -> Dict[str, int]:
    """Questions and rows by the number of candidates of their question (which rule decides them)."""
    sizes = Counter(groups)
    by_size = Counter(sizes.values())
    return {
        "rows": len(groups),
        "questions": len(sizes),
        "questions_with_two": by_size.get(2, 0),
        "questions_with_one": by_size.get(1, 0),
        "questions_with_three_or_more": sum(n for size, n in by_size.items() if size >= 3),
        "rows_paired": 2 * by_size.get(2, 0),
        "rows_by_threshold": sum(size * n for size, n in by_size.items() if size != 2),
    }


def describe_candidates(split: str, counts: Dict[str, int]) -> str:
    return (f"QNLI-ranking {split}: {counts['rows']} rows, {counts['questions']} questions: "
            f"{counts['questions_with_two']} with two candidates (one entailment each at prediction), "
            f"{counts['questions_with_one']} with one, {counts['questions_with_three_or_more']} with three or more; "
            f"the {counts['rows_by_threshold']} rows of the questions with one, or three or more, candidates are "
            "decided at prediction by their score against a threshold chosen on dev")


def needs_threshold(groups: Sequence[int]) -> bool:
    return any(n != 2 for n in Counter(groups).values())


def choose_threshold(scores: np.ndarray, gold: Sequence[str]) -> float:
    """The score threshold (``score > t`` means entailment) that classifies the most rows correctly.

    Candidates are the midpoints between consecutive distinct scores and the
    two ends; the first best (lowest) is taken.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray([g == ENTAILMENT for g in gold])
    values = np.unique(scores)
    cuts = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1.0]])
    correct = [int(((scores > t) == positive).sum()) for t in cuts]
    return float(cuts[int(np.argmax(correct))])


@dataclass
class Decisions:
    labels: List[str]
    by_rule: Dict[str, int]
    threshold: Optional[float]


def decide(scores: np.ndarray, groups: Sequence[int], threshold: Optional[float]) -> Decisions:
    """One label per row by the module's rules; ``threshold`` is needed only when some question is not a pair."""
    members: Dict[int, List[int]] = {}
    for row, question in enumerate(groups):
        members.setdefault(question, []).append(row)
    labels = [""] * len(groups)
    rules = Counter()
    for rows in members.values():
        if len(rows) == 2:
            first, second = rows
            winner = first if scores[first] >= scores[second] else second
            for row in rows:
                labels[row] = ENTAILMENT if row == winner else NOT_ENTAILMENT
            rules[PAIRED] += 2
            continue
        if threshold is None:
            raise ValueError("a question with one, or three or more, candidates needs the dev threshold")
        for row in rows:
            labels[row] = ENTAILMENT if scores[row] > threshold else NOT_ENTAILMENT
        rules[THRESHOLD] += len(rows)
    return Decisions(labels, {PAIRED: rules[PAIRED], THRESHOLD: rules[THRESHOLD]}, threshold)


def describe_decisions(what: str, decisions: Decisions) -> str:
    threshold = "" if decisions.threshold is None else f" {decisions.threshold:.4f}"
    return (f"{what}: {decisions.by_rule[PAIRED]} rows decided by their question's pair "
            f"(one entailment each), {decisions.by_rule[THRESHOLD]} by their score against the dev threshold{threshold}")

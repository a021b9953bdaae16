"""The leaderboard predictions file (``id,answer`` CSV): writing it and checking it; no fairseq import."""

import csv
import os
from typing import List, Sequence

from fairseq_freelb.mc.formats import MultipleChoiceFormatError, Question
from fairseq_freelb.output_files import make_temp_file


def write_predictions(path: str, questions: Sequence[Question], predictions: Sequence[str]) -> None:
    """Leaderboard file: one ``id,answer`` line per question in input order, no header.

    The file is written to a temporary name beside ``path`` and validated
    (:func:`validate_predictions`) before it replaces ``path``: a failed run
    leaves an earlier good file untouched.
    """
    if len(questions) != len(predictions):
        raise ValueError(f"{path}: {len(questions)} questions but {len(predictions)} predictions")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--output {path}: folder {folder} does not exist")
    tmp = str(make_temp_file(folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"))  # the umask's mode
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            for q, pred in zip(questions, predictions):
                writer.writerow([q.id, pred])
        problems = validate_predictions(tmp, questions)
        if problems:
            raise MultipleChoiceFormatError(f"{path}: not written, the predictions fail validation: " + "; ".join(problems))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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

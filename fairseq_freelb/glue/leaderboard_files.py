"""The GLUE leaderboard's file format: one ``index<TAB>prediction`` file per test set.

Written by ``python -m fairseq_freelb.glue.predict`` (one task) and by
:mod:`~fairseq_freelb.glue.submission` (the whole submission, which also
checks the files against the test sets). Labels are as the server expects
them: words for MNLI/AX/QNLI/RTE, 0/1 otherwise, a float in [0, 5] for STS-B.
"""

from pathlib import Path
from typing import List, Sequence

import numpy as np

from fairseq_freelb.core.errors import FreeLBError
from fairseq_freelb.glue.benchmark_tasks import STSB_MAX_SCORE, GlueTask

HEADER = "index\tprediction"


class SubmissionError(FreeLBError, ValueError):
    """A submission that the GLUE server would reject; the message lists every problem."""


def format_predictions(task: GlueTask, predictions) -> List[str]:
    """Server labels: class labels through the label dictionary, or STS-B scores back on 0..5."""
    if task.regression:
        values = np.clip(predictions.scores * task.regression_scale, 0.0, STSB_MAX_SCORE)
        return [f"{v:.3f}" for v in values]
    return [str(label) for label in predictions.labels]


def write_file(path: Path, ids: Sequence[str], labels: Sequence[str]) -> None:
    """The header, then one ``id<TAB>label`` row per example (LF line ends, as the server checks)."""
    if len(ids) != len(labels):
        raise SubmissionError(f"{path.name}: {len(labels)} predictions for {len(ids)} test examples")
    path.write_text(HEADER + "\n" + "".join(f"{i}\t{lab}\n" for i, lab in zip(ids, labels)), encoding="utf-8")

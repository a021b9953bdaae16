"""What a data folder holds: the task, its metrics, its class count and its labelled splits, from the folder's metadata.

Two kinds of folder:

- ``glue``: written by ``python -m fairseq_freelb.glue.preprocess`` (``<TASK>-bin``):
  ``meta.json`` names the task; ``input0/`` (``input1/``), ``label/`` hold the
  binarized splits ``train``, ``valid`` (MNLI also ``valid_mismatched``) and
  the unlabelled test splits. Metrics: the task's GLUE metrics
  (:mod:`fairseq_freelb.glue.benchmark_tasks`), the first being the headline:
  MCC for CoLA, Pearson for STS-B, accuracy elsewhere (MRPC and QQP also F1).
- ``mc``: written by ``python -m fairseq_freelb.mc.preprocess``:
  ``preprocess.json``, ``dict.txt`` and one ``{split}.jsonl`` per split, one
  question per line. Metric: accuracy per question.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Tuple

from fairseq_freelb.commands import CommandError
from fairseq_freelb.glue.benchmark_tasks import TRAIN, GlueTask, get_task
from fairseq_freelb.multiseed.store import folder_digest

# The criterion flags that make freelb_sentence_prediction log each task's metrics during validation.
GLUE_METRIC_FLAGS = {
    "CoLA": ("--report-mcc",),
    "MRPC": ("--report-acc-and-f1",),
    "QQP": ("--report-acc-and-f1",),
    "STS-B": ("--regression-target", "--report-pearson-and-spearman"),
}


@dataclass(frozen=True)
class TaskFolder:
    path: Path
    kind: str  # "glue" or "mc"
    task: str  # the GLUE task name, or "multiple choice"
    metrics: Tuple[str, ...]  # as the criterion logs them, the headline first
    num_classes: int  # GLUE: the head's outputs (1 for STS-B); MC: 0 (one score per choice)
    counts: Dict[str, int]  # labelled split -> examples
    dev_splits: Tuple[str, ...]  # the labelled splits other than train ("valid"; MNLI also "valid_mismatched")
    unused: Dict[str, int] = field(default_factory=dict)  # other splits (test), never read by the protocol
    max_positions: int = 512
    num_inputs: int = 1  # GLUE: 1 (single sentence) or 2 (pairs)
    input_names: Tuple[str, ...] = ()  # GLUE: the column name of each input (e.g. question, sentence)
    metric_flags: Tuple[str, ...] = ()
    digest: str = ""  # of every file in the folder

    @property
    def glue_task(self) -> GlueTask:
        return get_task(self.task)


def read_folder(path: Path) -> TaskFolder:
    """Describe ``path``; a folder that neither preprocessing command wrote is refused in one line."""
    path = Path(path)
    if not path.is_dir():
        raise CommandError(f"--data {path}: no such folder")
    if (path / "meta.json").is_file():
        return _glue_folder(path)
    if (path / "preprocess.json").is_file():
        return _mc_folder(path)
    raise CommandError(f"--data {path}: neither meta.json (python -m fairseq_freelb.glue.preprocess) nor "
                       "preprocess.json (python -m fairseq_freelb.mc.preprocess) is there; preprocess the data first")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"{path}: not readable JSON ({exc}); preprocess the data again") from None


def _glue_folder(path: Path) -> TaskFolder:
    meta = _read_json(path / "meta.json")
    try:
        task = get_task(str(meta.get("task")))
    except KeyError as exc:
        raise CommandError(f"{path / 'meta.json'}: {exc.args[0]}") from None
    splits = meta.get("splits", {})
    labelled = {s: int(info["rows_out"]) for s, info in splits.items() if info.get("labeled")}
    dev = tuple(s for s in task.valid_splits if s in labelled)
    counts = {s: n for s, n in labelled.items() if s in (TRAIN, *dev)}
    unused = {s: int(info["rows_out"]) for s, info in splits.items() if s not in counts}
    if TRAIN not in counts or not dev:
        raise CommandError(f"{path / 'meta.json'}: {task.name} needs labelled train and dev splits, found "
                           f"{sorted(counts) or 'none'}; preprocess the task's train.tsv and dev file(s)")
    for split in (TRAIN, *dev):
        if not (path / "input0" / f"{split}.bin").is_file():
            raise CommandError(f"{path / 'input0' / (split + '.bin')}: missing although meta.json lists {split}; "
                               "preprocess the task again")
    layout = task.layout(TRAIN)
    names = tuple(layout.header[c] if layout.header else "sentence" for c in layout.sentence_columns)
    return TaskFolder(
        path=path, kind="glue", task=task.name, metrics=task.metrics, num_classes=task.num_classes,
        counts=counts, dev_splits=dev, unused=unused, max_positions=int(meta.get("max_positions") or 512),
        num_inputs=len(layout.sentence_columns), input_names=names,
        metric_flags=GLUE_METRIC_FLAGS.get(task.name, ()), digest=folder_digest(path),
    )


def _mc_folder(path: Path) -> TaskFolder:
    summary = _read_json(path / "preprocess.json")
    splits = summary.get("splits", {})
    counts = {s: int(info["questions"]) for s, info in splits.items()
              if s in (TRAIN, "valid") and info.get("labelled") == info.get("questions") and int(info["questions"]) > 0}
    unused = {s: int(info["questions"]) for s, info in splits.items() if s not in counts}
    if TRAIN not in counts or "valid" not in counts:
        raise CommandError(f"{path / 'preprocess.json'}: the protocol needs labelled train and valid splits, found "
                           f"{sorted(counts) or 'none'}")
    for split in (TRAIN, "valid", "dict"):
        name = "dict.txt" if split == "dict" else f"{split}.jsonl"
        if not (path / name).is_file():
            raise CommandError(f"{path / name}: missing; preprocess the data again")
    return TaskFolder(
        path=path, kind="mc", task="multiple choice", metrics=("accuracy",), num_classes=0, counts=counts,
        dev_splits=("valid",), unused=unused, max_positions=int(summary.get("max_positions") or 512),
        digest=folder_digest(path),
    )

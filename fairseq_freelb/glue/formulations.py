"""The GLUE tasks the paper submitted in another formulation: QNLI as pairwise ranking, WNLI through WSC.

A checkpoint says its formulation by the fairseq task it was trained with
(``qnli_ranking`` or ``freelb_wsc``; anything else is a sentence-pair
classifier), so ``glue.submission --checkpoints QNLI=<ranking checkpoint>``
needs no extra flag. Each formulation has its own data folder beside the
task's (``QNLI-ranking-bin``, ``WNLI-wsc-bin``) and gives one label per
original test row, in test-file order; when both folders exist their test
ids must agree.
"""

import functools
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from fairseq_freelb.checkpoint import trained_task
from fairseq_freelb.commands import CommandError
from fairseq_freelb.glue import qnli_ranking, qnli_ranking_data, wnli_wsc
from fairseq_freelb.glue.benchmark_tasks import GlueTask

# formulation (its data folder is <formulation>-bin) -> (the GLUE task it predicts, the fairseq task that trains it)
FORMULATIONS: Dict[str, Tuple[str, str]] = {"QNLI-ranking": ("QNLI", "qnli_ranking"), "WNLI-wsc": ("WNLI", "freelb_wsc")}
BY_FAIRSEQ_TASK = {fairseq_task: name for name, (_, fairseq_task) in FORMULATIONS.items()}


@functools.lru_cache(maxsize=None)
def checkpoint_task(path: str) -> str:
    """The ``--task`` a checkpoint was trained with (read once per path)."""
    return trained_task(path)


def formulation_of(task: GlueTask, paths: Sequence[str]) -> Optional[str]:
    """The formulation of the checkpoints given for ``task`` (None: classification); refuses mixtures and misfits.

    Only QNLI's and WNLI's checkpoints are opened here: the other tasks have no
    second formulation, and their classifiers are checked when they are loaded.
    """
    if task.name not in {base for base, _ in FORMULATIONS.values()}:
        return None
    found = {str(p): BY_FAIRSEQ_TASK.get(checkpoint_task(str(p))) for p in paths}
    kinds = sorted({k or "classification" for k in found.values()})
    if len(kinds) > 1:
        listed = ", ".join(f"{p} ({k or 'classification'})" for p, k in found.items())
        raise CommandError(f"--checkpoints {task.name}: an ensemble needs one formulation, these are {listed}")
    formulation = next(iter(found.values()))
    if formulation is not None and FORMULATIONS[formulation][0] != task.name:
        raise CommandError(f"--checkpoints {task.name}: {next(iter(found))} is a {formulation} model (trained with "
                           f"--task {FORMULATIONS[formulation][1]}); it predicts {FORMULATIONS[formulation][0]}, "
                           f"not {task.name}")
    return formulation


def data_folder(glue_bin: Path, task: GlueTask, formulation: Optional[str]) -> Path:
    return Path(glue_bin) / f"{formulation or task.name}-bin"


def index_file(glue_bin: Path, task: GlueTask, split: str) -> Path:
    """``<TASK>-bin/index/<split>.index``, or the formulation folder's when only that one was preprocessed."""
    main = Path(glue_bin) / f"{task.name}-bin" / "index" / f"{split}.index"
    if main.is_file():
        return main
    for name, (base, _) in FORMULATIONS.items():
        other = Path(glue_bin) / f"{name}-bin" / "index" / f"{split}.index"
        if base == task.name and other.is_file():
            return other
    return main


def predict_labels(formulation: str, glue_bin: Path, task: GlueTask, paths: Sequence[str], split: str,
                   batch_size: int = 32, cpu: bool = False) -> Tuple[List[str], List[str], List[str]]:
    """``(ids, labels, lines to print)`` of ``split``, one label per original row, in test-file order."""
    folder = data_folder(glue_bin, task, formulation)
    if formulation == "QNLI-ranking":
        ensemble = qnli_ranking.load_ranking_ensemble(paths, folder, cpu)
        ids, decisions = qnli_ranking.predict_rows(ensemble, folder, split, batch_size)
        line = qnli_ranking_data.describe_decisions(f"{task.name} {split} ({formulation})", decisions)
    else:
        ids, decisions = wnli_wsc.predict(paths, folder, split, batch_size, cpu)
        fallback = wnli_wsc.folder_meta(folder)["fallback_label"]
        line = wnli_wsc.describe_decisions(f"{task.name} {split} ({formulation})", decisions, fallback)
    main = Path(glue_bin) / f"{task.name}-bin" / "index" / f"{split}.index"
    if main.is_file() and main.read_text(encoding="utf-8").splitlines() != ids:
        raise CommandError(f"{folder} and {main.parent.parent} list other {split} ids: they were preprocessed from "
                           f"different {task.name} test files; preprocess both again")
    return ids, decisions.labels, [line]

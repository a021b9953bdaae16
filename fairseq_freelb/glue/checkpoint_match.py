"""Whether a GLUE checkpoint was trained on this task and on data with this token dictionary.

Five of the nine tasks label ``0``/``1`` and two ``entailment``/``not_entailment``,
so the label names a checkpoint records (:mod:`~fairseq_freelb.glue.predict`)
cannot tell a QQP checkpoint from an MRPC one. Since this check, each
checkpoint also records, in fairseq's ``task_state``
(:mod:`fairseq_freelb.adapters.data_record`): ``data_task`` (the GLUE task of
its training data), ``sentence_pairs`` and the token dictionary's size and
SHA-1. :func:`check_checkpoint_matches` compares them with the task and data
folder a command was given, before any model is built, and refuses a mismatch
in one line (:class:`CheckpointMismatch`):

- another task, or single sentences for a pair task (or the reverse);
- another token dictionary: same size in another order (the ids would silently
  mean other tokens), or another size (fairseq would stop with a multi-line
  ``size mismatch`` traceback);
- a data folder preprocessed for another task than the one asked for.

Checkpoints written before these records (no ``data_task``): the task is
inferred from the training data path they record (that folder's ``meta.json``
if it is still there, else a folder name ``<TASK>-bin``); when it cannot be
inferred, or the inference names another task, they are refused unless
``--trust-label-dict`` vouches that they were trained on exactly this data.
Their dictionary is checked by size (the embedding matrix's rows), which needs
no record.

Used by predict, evaluate and submission (through
:func:`~fairseq_freelb.glue.predict.load_glue_ensemble`, and by the submission for
every checkpoint before anything is predicted).
"""

import os
import zipfile
from pathlib import Path
from typing import Mapping, Optional, Tuple

import torch
from fairseq.tasks.sentence_prediction import SentencePredictionTask

from fairseq_freelb import checkpoint
from fairseq_freelb.adapters.data_record import DATA_TASK, SENTENCE_PAIRS, data_folder_task, dictionary_mismatch
from fairseq_freelb.commands import CommandError
from fairseq_freelb.glue.benchmark_tasks import GlueTask, get_task

TRUST_FLAG = "--trust-label-dict"
ZIP_MAGIC = b"PK\x03\x04"


class CheckpointMismatch(CommandError, ValueError):
    """A checkpoint that was not trained on this task or on data with this token dictionary."""


def is_pair_task(task: GlueTask) -> bool:
    return len(task.splits[0].sentence_columns) == 2


def _sentences(pairs: bool) -> str:
    return "sentence pairs" if pairs else "single sentences"


def read_checkpoint_state(path) -> Mapping:
    """The checkpoint's saved dict, its tensors memory-mapped (nothing is read into memory that the check skips).

    A file torch cannot load is :class:`fairseq_freelb.checkpoint.CheckpointError`, one line naming the cause.
    """
    checkpoint.allow_fairseq_checkpoints()
    path = os.fspath(path)
    with open(path, "rb") as handle:
        is_zip = handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    try:
        if is_zip and zipfile.is_zipfile(path):
            return torch.load(path, map_location="cpu", mmap=True)
        return torch.load(path, map_location="cpu")
    except Exception as exc:
        raise checkpoint.CheckpointError(checkpoint.explain_refusal(exc, path=path)) from None


def recorded_data_path(state: Mapping) -> Optional[str]:
    """The ``--data`` folder the checkpoint was trained on, as its config recorded it."""
    cfg = state.get("cfg")
    if cfg is not None:
        task_cfg = cfg.get("task") if hasattr(cfg, "get") else None
        data = task_cfg.get("data") if hasattr(task_cfg, "get") else None
        if data:
            return str(data)
    args = state.get("args")
    data = getattr(args, "data", None)
    return str(data) if data else None


def _task_or_none(name: Optional[str]) -> Optional[GlueTask]:
    if not name:
        return None
    try:
        return get_task(name)
    except KeyError:
        return None


def trained_task(state: Mapping) -> Tuple[Optional[GlueTask], str]:
    """The GLUE task the checkpoint was trained on, and how that is known (for messages); (None, why not)."""

    task_state = state.get("task_state") or {}
    recorded = task_state.get(DATA_TASK)
    if recorded is not None:
        task = _task_or_none(recorded)
        return task, "recorded in the checkpoint"
    data = recorded_data_path(state)
    if data is None:
        return None, "it records neither its task nor its training data"
    from_meta = _task_or_none(data_folder_task(data))
    if from_meta is not None:
        return from_meta, f"inferred from {os.path.join(data, 'meta.json')}"
    folder = os.path.basename(os.path.normpath(data))
    from_name = _task_or_none(folder[: -len("-bin")]) if folder.endswith("-bin") else None
    if from_name is not None:
        return from_name, f"inferred from its training data folder {data}"
    return None, f"its training data folder {data} does not tell the task"


def _embedding_rows(state: Mapping) -> Optional[int]:
    model = state.get("model") or {}
    for key, value in model.items():
        if key.endswith("embed_tokens.weight") and hasattr(value, "shape"):
            return int(value.shape[0])
    return None


def data_dictionary(data_dir):
    """The token dictionary a sentence-prediction task reads from ``data_dir`` (``input0/dict.txt`` + ``<mask>``)."""

    path = Path(data_dir) / "input0" / "dict.txt"
    if not path.is_file():
        raise CommandError(f"{data_dir}: no input0/dict.txt, so not a preprocessed GLUE folder "
                           "(python -m fairseq_freelb.glue.preprocess writes one)")
    return SentencePredictionTask.load_dictionary(str(path))


def checkpoint_mismatch(state: Mapping, task: GlueTask, data_dir, checkpoint: str = "checkpoint",
                        trust_old: bool = False) -> Optional[str]:
    """Why the checkpoint ``state`` must not be used for ``task`` on ``data_dir`` (one line), or None."""

    data_dir = Path(data_dir)
    prefix = f"checkpoint {checkpoint}"
    data_task = _task_or_none(data_folder_task(str(data_dir)))
    if data_task is not None and data_task.name != task.name:
        return f"{data_dir}: preprocessed for {data_task.name} (its meta.json), not {task.name}"
    task_state = state.get("task_state") or {}

    trained, how = trained_task(state)
    recorded = DATA_TASK in task_state
    if recorded and trained is None:
        return (f"{prefix}: trained on data of task {task_state[DATA_TASK]!r} (recorded in the checkpoint), not a "
                f"GLUE task: it was not trained on {task.name}")
    if trained is not None and trained.name != task.name and (recorded or not trust_old):
        hint = "" if recorded else f"; if it was trained on {task.name} after all, pass {TRUST_FLAG}"
        return f"{prefix}: trained on {trained.name} ({how}), not {task.name}: it was not trained on {task.name}{hint}"
    if trained is None and not trust_old:
        return (f"{prefix}: records no task (written before fairseq_freelb recorded it) and {how}; if it was "
                f"trained on {task.name} with exactly this data, pass {TRUST_FLAG}, else retrain")
    pairs = task_state.get(SENTENCE_PAIRS)
    if pairs is not None and bool(pairs) != is_pair_task(task):
        return (f"{prefix}: trained on {_sentences(bool(pairs))}, {task.name} has {_sentences(is_pair_task(task))}: "
                f"it was not trained on {task.name}")

    dictionary = data_dictionary(data_dir)
    dict_path = str(data_dir / "input0" / "dict.txt")
    problem = dictionary_mismatch(task_state, dictionary, dict_path)
    if problem is not None:
        return f"{prefix}: {problem}; preprocess with the dict.txt it was trained with"
    rows = _embedding_rows(state)
    if rows is not None and rows != len(dictionary):
        return (f"{prefix}: its token embeddings have {rows} rows, {dict_path} gives {len(dictionary)} types "
                "(with the <mask> fairseq adds): this checkpoint does not match this data; preprocess with the "
                "dict.txt it was trained with")
    return None


def check_checkpoint_matches(state: Mapping, task: GlueTask, data_dir, checkpoint: str = "checkpoint",
                             trust_old: bool = False) -> None:
    """Refuse (:class:`CheckpointMismatch`, one line) a checkpoint ``state`` that does not fit ``task`` on ``data_dir``.

    ``state`` is the dict ``torch.load`` returns for a fairseq checkpoint
    (:func:`read_checkpoint_state`); ``checkpoint`` names it in the message;
    ``trust_old`` is ``--trust-label-dict`` (accept a checkpoint that predates
    the task record as trained on this data).
    """
    problem = checkpoint_mismatch(state, task, data_dir, checkpoint, trust_old)
    if problem is not None:
        raise CheckpointMismatch(problem)


def check_checkpoint_file(path, task: GlueTask, data_dir, trust_old: bool = False) -> None:
    """:func:`check_checkpoint_matches` of the checkpoint file ``path`` (read memory-mapped, so cheap)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    check_checkpoint_matches(read_checkpoint_state(path), task, data_dir, str(path), trust_old)

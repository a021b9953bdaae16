"""What a checkpoint records about the data it was trained on, so that it is never used with other data.

fairseq's trainer saves ``task.state_dict()`` in every checkpoint as
``task_state``. For a sentence-prediction task (``--task sentence_prediction``
with a ``freelb_*`` criterion, or ``--task freelb_sentence_prediction``) the
adversarial task mixin adds :func:`sentence_prediction_record`:

- ``data_task``: the ``task`` field of the data folder's ``meta.json``
  (``"RTE"``; written by ``python -m fairseq_freelb.glue.preprocess``), when the
  folder has one;
- ``sentence_pairs``: whether the data has a second input (``input1/``);
- ``dictionary_size`` and ``dictionary_sha1``: :func:`dictionary_fingerprint`
  of the token dictionary (``input0/dict.txt`` plus the ``<mask>`` fairseq adds).

The multiple-choice and WSC tasks record the same fingerprint under ``mc_`` and ``wsc_`` keys.
Loading the task state (``task.load_state_dict``, which fairseq calls before it
loads the weights) refuses a fingerprint that is not the data's
(:func:`check_dictionary`): same-size dictionaries in another order would map
token ids to other tokens with no error at all, and a dictionary of another
size would end in fairseq's multi-line ``size mismatch`` traceback.
"""

import hashlib
import json
import os
from typing import Dict, Optional

from fairseq_freelb.core.errors import AdversarialConfigError

DATA_TASK, SENTENCE_PAIRS = "data_task", "sentence_pairs"
SIZE, SHA1 = "dictionary_size", "dictionary_sha1"


class DictionaryMismatch(AdversarialConfigError):
    """A checkpoint's token dictionary is not the data's: its token ids would mean other tokens."""


def dictionary_fingerprint(dictionary, prefix: str = "") -> Dict[str, object]:
    """Size and SHA-1 of the symbol list (in index order) of a fairseq dictionary, under ``prefix``-ed keys.

    Equal sizes are not enough: two dictionaries with the same symbols in
    another order (or built from other data) map the same id to other tokens.
    """
    digest = hashlib.sha1("\n".join(dictionary.symbols).encode("utf-8")).hexdigest()
    return {f"{prefix}{SIZE}": len(dictionary), f"{prefix}{SHA1}": digest}


def dictionary_mismatch(saved: Dict[str, object], dictionary, dict_path: str, prefix: str = "") -> Optional[str]:
    """Why the fingerprint ``saved`` with a checkpoint is not that of ``dictionary`` (None: it is, or none was saved)."""
    if f"{prefix}{SHA1}" not in saved:
        return None  # a checkpoint from before fingerprints
    ours = dictionary_fingerprint(dictionary, prefix)
    if saved[f"{prefix}{SHA1}"] == ours[f"{prefix}{SHA1}"]:
        return None
    theirs_size, our_size = saved.get(f"{prefix}{SIZE}"), ours[f"{prefix}{SIZE}"]
    how = " (the same size: the symbols are in another order or differ)" if theirs_size == our_size else ""
    return (f"trained with another dictionary ({theirs_size} types) than {dict_path} ({our_size} types){how}: "
            "this checkpoint does not match this data")


def check_dictionary(saved: Dict[str, object], dictionary, dict_path: str, prefix: str = "") -> None:
    """Refuse (one line, :class:`DictionaryMismatch`) a checkpoint fingerprint that is not ``dictionary``'s."""
    problem = dictionary_mismatch(saved, dictionary, dict_path, prefix)
    if problem is not None:
        raise DictionaryMismatch(problem)


def data_folder_task(data: str) -> Optional[str]:
    """The ``task`` field of ``<data>/meta.json`` (GLUE preprocessing writes it), or None."""
    meta = os.path.join(data, "meta.json")
    try:
        with open(meta, encoding="utf-8") as handle:
            task = json.load(handle).get("task")
    except (OSError, ValueError, AttributeError):
        return None
    return task if isinstance(task, str) else None


def sentence_prediction_record(task) -> Dict[str, object]:
    """The record above for a fairseq ``SentencePredictionTask``; empty for any other task."""
    from fairseq.tasks.sentence_prediction import SentencePredictionTask

    if not isinstance(task, SentencePredictionTask):
        return {}
    data = str(task.cfg.data)
    record: Dict[str, object] = {SENTENCE_PAIRS: os.path.isdir(os.path.join(data, "input1"))}
    name = data_folder_task(data)
    if name is not None:
        record[DATA_TASK] = name
    record.update(dictionary_fingerprint(task.source_dictionary))
    return record


def check_sentence_prediction_record(saved: Dict[str, object], task) -> None:
    """On loading a task state: refuse a dictionary fingerprint that is not the data's (one line)."""
    from fairseq.tasks.sentence_prediction import SentencePredictionTask

    if isinstance(task, SentencePredictionTask):
        check_dictionary(saved, task.source_dictionary, os.path.join(str(task.cfg.data), "input0", "dict.txt"))

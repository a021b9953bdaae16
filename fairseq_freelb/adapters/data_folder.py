"""The data folder a plugin task is given: refused in one line when it is missing or not that task's layout.

fairseq's tasks read their dictionaries in ``setup_task``; a missing folder
ends in a traceback of about fifty lines whose last one is
``FileNotFoundError: ... input0/dict.txt``. The plugin's tasks call
:func:`require_data_folder` first, after :func:`fairseq_freelb.adapters.runtime.install`,
so fairseq-train prints ``fairseq_freelb: error: <line>`` instead.

With fairseq's stock ``--task sentence_prediction`` (and a ``freelb_*``
criterion) the folder is read before any plugin code runs, so fairseq's own
traceback remains; ``--task freelb_sentence_prediction`` is the same task with
the check.
"""

import os
from typing import Sequence

from fairseq_freelb.core.errors import AdversarialConfigError


class DataFolderError(AdversarialConfigError):
    """The data folder of a task is missing or lacks a file the task reads first."""


def require_data_folder(data: str, task_name: str, needed: Sequence[str], made_by: str) -> None:
    """Refuse a ``data`` folder that does not exist or lacks one of ``needed`` (paths inside it), in one line.

    ``made_by`` says what writes such a folder (the fix).
    """
    data = str(data)
    where = "" if os.path.isabs(data) else f" (in {os.getcwd()})"
    if not os.path.exists(data):
        raise DataFolderError(f"--task {task_name}: data folder {data}{where} does not exist; {made_by}")
    if not os.path.isdir(data):
        raise DataFolderError(f"--task {task_name}: data folder {data}{where} is a file, not a folder; {made_by}")
    for name in needed:
        if not os.path.exists(os.path.join(data, name)):
            raise DataFolderError(f"--task {task_name}: data folder {data}{where} has no {name}, so it is not "
                                  f"this task's data; {made_by}")

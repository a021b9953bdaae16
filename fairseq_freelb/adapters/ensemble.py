"""Checkpoints of one plugin task loaded one at a time against a data folder, for scoring as an ensemble.

Each checkpoint is checked before fairseq builds its task on the folder (it
must have been trained with the expected ``--task``), loaded on its own so
that a refusal names it, and must build the expected task class. The models
are put in evaluation mode, on the GPU when one is available and not refused.
"""

import os
from typing import Callable, Optional, Sequence, Tuple, Type

import torch
from fairseq import checkpoint_utils

from fairseq_freelb.adapters import runtime
from fairseq_freelb.checkpoint import trained_task
from fairseq_freelb.commands import CommandError


def load_task_ensemble(
    paths: Sequence[str],
    data: str,
    task_name: str,
    task_class: type,
    hint: str,
    refused: Tuple[Type[BaseException], ...] = (),
    arg_overrides: Optional[dict] = None,
    check_model: Optional[Callable[[str, object], None]] = None,
    cpu: bool = False,
):
    """The models of ``paths`` and the ``task_name`` task of the first, reading ``data``.

    ``hint`` follows the wrong-task message (which script trains this task);
    an exception of ``refused`` while loading becomes a one-line
    :class:`CommandError` naming the checkpoint; ``check_model(path, model)``
    may refuse each loaded model.
    """
    runtime.install()  # fairseq checkpoint types for torch's weights_only loading
    models, task = [], None
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint {path}: no such file")
        name = trained_task(str(path))  # before fairseq builds that task on this folder
        if name != task_name:
            raise CommandError(f"checkpoint {path}: trained with --task {name or '?'}, not {task_name} {hint}")
        try:
            loaded, _, task_k = checkpoint_utils.load_model_ensemble_and_task(
                [str(path)], arg_overrides={"data": str(data), **(arg_overrides or {})})
        except refused as exc:
            raise CommandError(f"checkpoint {path}: {exc}") from None
        if not isinstance(task_k, task_class):
            raise CommandError(f"checkpoint {path}: built a {type(task_k).__name__}, not {task_name}'s task")
        for model in loaded:
            if check_model is not None:
                check_model(str(path), model)
            models.append(model)
        task = task or task_k
    to_inference_device(models, cpu)
    return models, task


def to_inference_device(models, cpu: bool = False) -> None:
    """Evaluation mode, on the GPU when one is available and ``cpu`` is not asked for."""
    use_cuda = torch.cuda.is_available() and not cpu
    for model in models:
        model.eval()
        if use_cuda:
            model.cuda()

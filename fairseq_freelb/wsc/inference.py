"""Candidate scores of one ``freelb_wsc`` checkpoint, or an ensemble, for every group of a split.

Each checkpoint is loaded on its own against the data folder (its
dictionary fingerprint is checked by the task) and must have been trained
with ``--task freelb_wsc``. An ensemble averages the candidates' scores
(mean log-probabilities) over its models.
"""

from typing import List, Sequence

import numpy as np
import torch
from fairseq import utils

from fairseq_freelb.adapters.ensemble import load_task_ensemble
from fairseq_freelb.wsc.encoding import DictionaryMismatch
from fairseq_freelb.wsc.scoring import span_scores
from fairseq_freelb.wsc.task import WSCTask


def load_wsc_ensemble(paths: Sequence[str], data: str, cpu: bool = False):
    """fairseq models and the ``freelb_wsc`` task of the first checkpoint, reading ``data``."""
    return load_task_ensemble(paths, data, "freelb_wsc", WSCTask, "(examples/roberta_glue/wnli_wsc.sh)",
                              refused=(DictionaryMismatch,), cpu=cpu)


@torch.no_grad()
def group_scores(models, task, split: str, batch_size: int = 16) -> List[np.ndarray]:
    """Per candidate group of ``split`` (dataset order = file order of first rows), its candidates' mean scores."""

    dataset = task.datasets[split] if split in task.datasets else task.load_dataset(split)
    device = next(models[0].parameters()).device
    out: List[np.ndarray] = []
    for start in range(0, len(dataset), batch_size):
        batch = dataset.collater([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        if device.type == "cuda":
            batch = utils.move_to_cuda(batch)
        total = None
        for model in models:
            scores = span_scores(model, batch)
            total = scores if total is None else total + scores
        mean = (total / len(models)).cpu().numpy()
        counts = batch["choice_mask"].sum(dim=1).tolist()
        out.extend(row[:n] for row, n in zip(mean, counts))
    return out

"""Predictions of one checkpoint, or an ensemble, on a binarized GLUE split.

Shared by :mod:`~fairseq_freelb.glue.evaluate`, :mod:`~fairseq_freelb.glue.report`
and :mod:`~fairseq_freelb.glue.submission`. Predictions come back in file order
(fairseq's ``id``), whatever order the batches ran in, and class indices are
mapped back through the label dictionary (whose order is not the label order).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from fairseq_freelb.glue.tasks_spec import GlueTask, get_task


@dataclass
class Predictions:
    scores: np.ndarray  # (N, C) mean class probabilities, or (N,) mean regression outputs (training scale)
    label_names: Optional[List[str]]  # class index -> label as the GLUE files spell it; None for regression
    targets: Optional[np.ndarray]  # gold labels (label strings, or floats on the training scale); None if unlabeled

    @property
    def regression(self) -> bool:
        return self.label_names is None

    @property
    def labels(self) -> np.ndarray:
        """Predicted labels: label strings, or regression outputs on the training scale."""
        if self.regression:
            return self.scores
        return np.asarray(self.label_names, dtype=object)[self.scores.argmax(axis=1)]


def task_of(data_bin: Path, name: Optional[str] = None) -> GlueTask:
    """The GLUE task of a ``<TASK>-bin`` folder: ``name`` if given, else its meta.json, else the folder name."""
    if name:
        return get_task(name)
    meta = Path(data_bin) / "meta.json"
    if meta.is_file():
        return get_task(json.loads(meta.read_text())["task"])
    folder = Path(data_bin).resolve().name
    if folder.endswith("-bin"):
        return get_task(folder[: -len("-bin")])
    raise ValueError(f"{data_bin}: cannot tell the GLUE task (no meta.json); pass --task")


def load_ensemble(checkpoints: Sequence[str], data_bin: Path, cpu: bool = False, fp16: bool = False):
    """The models of ``checkpoints`` and the task of the first, reading data from ``data_bin``."""
    import torch
    from fairseq import checkpoint_utils

    from fairseq_freelb.adapters import runtime

    runtime.install()  # fairseq checkpoint types for torch's weights_only loading

    for path in checkpoints:
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint {path}: no such file")
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        list(checkpoints), arg_overrides={"data": str(data_bin)}
    )
    use_cuda = torch.cuda.is_available() and not cpu
    for model in models:
        model.eval()
        if fp16:
            model.half()
        if use_cuda:
            model.cuda()
    return models, cfg, task


def _head_name(model, requested: Optional[str]) -> str:
    heads = list(getattr(model, "classification_heads", {}))
    if requested:
        if requested not in heads:
            raise ValueError(f"--classification-head-name {requested!r}: model has {heads}")
        return requested
    if len(heads) != 1:
        raise ValueError(f"model has classification heads {heads}; pick one with --classification-head-name")
    return heads[0]


def predict(
    checkpoints: Sequence[str],
    data_bin: Path,
    split: str,
    batch_size: int = 32,
    cpu: bool = False,
    fp16: bool = False,
    head: Optional[str] = None,
    loaded=None,
) -> Predictions:
    """Mean class probabilities (or regression outputs) of the ensemble on ``split``, in file order.

    ``loaded`` reuses the result of :func:`load_ensemble` across splits.
    """
    import torch
    import torch.nn.functional as F
    from fairseq import utils

    models, cfg, task = loaded or load_ensemble(checkpoints, data_bin, cpu=cpu, fp16=fp16)
    regression = bool(task.cfg.regression_target)
    task.load_dataset(split)
    dataset = task.dataset(split)
    itr = task.get_batch_iterator(
        dataset=dataset,
        max_sentences=batch_size,
        max_positions=utils.resolve_max_positions(task.max_positions(), *[m.max_positions() for m in models]),
        ignore_invalid_inputs=False,
        required_batch_size_multiple=1,
        num_workers=0,
    ).next_epoch_itr(shuffle=False)
    device = next(models[0].parameters()).device
    n = len(dataset)
    scores: Optional[np.ndarray] = None
    targets: List = [None] * n
    seen = np.zeros(n, dtype=bool)
    label_dict = task.label_dictionary
    with torch.no_grad():
        for sample in itr:
            sample = utils.move_to_cuda(sample, device=device) if device.type == "cuda" else sample
            ids = sample["id"].cpu().numpy()
            outputs = []
            for model in models:
                logits, _ = model(**sample["net_input"], features_only=True, classification_head_name=_head_name(model, head))
                outputs.append(logits.float().view(-1) if regression else F.softmax(logits.float(), dim=-1))
            mean = torch.stack(outputs).mean(dim=0).cpu().numpy()
            if scores is None:
                scores = np.zeros((n,) + mean.shape[1:], dtype=np.float64)
            scores[ids] = mean
            seen[ids] = True
            if "target" in sample:
                tgt = sample["target"].view(-1).cpu()
                for i, t in zip(ids, tgt.tolist()):
                    targets[i] = float(t) if regression else label_dict[int(t) + label_dict.nspecial]
    if not seen.all():
        raise RuntimeError(f"{data_bin} {split}: {int((~seen).sum())} of {n} examples were not predicted")
    label_names = None if regression else [label_dict[i + label_dict.nspecial] for i in range(scores.shape[1])]
    has_targets = all(t is not None for t in targets) and n > 0
    target_array = None
    if has_targets:
        target_array = np.asarray(targets, dtype=np.float64 if regression else object)
    return Predictions(scores, label_names, target_array)

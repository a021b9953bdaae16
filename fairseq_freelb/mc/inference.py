"""Choice probabilities of one checkpoint or an ensemble, in the input order of a split."""

import ast
import logging
import os
from typing import List, Optional, Sequence

import numpy as np
import torch

from fairseq_freelb.adapters import runtime
from fairseq_freelb.adapters.ensemble import to_inference_device
from fairseq_freelb.commands import CommandError
from fairseq_freelb.mc.encoding import DictionaryMismatch
from fairseq_freelb.mc.formats import Question, benchmark_group
from fairseq_freelb.mc.scoring import choice_scores
from fairseq_freelb.mc.task import MultipleChoiceTask

logger = logging.getLogger(__name__)


def add_ensemble_args(parser, default_split: str, split_help: str) -> None:
    """The flags shared by ``mc.evaluate`` and ``mc.predict``: data, split, checkpoints, batching."""
    parser.add_argument("--data", required=True, help="--task multiple_choice data directory")
    parser.add_argument("--split", default=default_split, help=split_help)
    parser.add_argument("--path", required=True, help="checkpoint(s), separated by ':' for an ensemble")
    parser.add_argument("--batch-size", type=int, default=8, help="questions per forward pass")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even if CUDA is available")
    parser.add_argument("--model-overrides", default=None, help="python dict of task/model overrides, as fairseq's")
    parser.add_argument("--group", default=None,
                        help="only the questions of one benchmark of the split: ARC-Easy, ARC-Challenge (separate "
                             "leaderboards), RACE-high, RACE-middle, or a source name such as OpenBookQA-test")


def select_group(questions: Sequence[Question], group: Optional[str], split: str) -> List[int]:
    """Indices of the questions of ``group`` (all when None); an unknown group is refused, listing the known ones."""
    if group is None:
        return list(range(len(questions)))
    indices = [i for i, q in enumerate(questions) if group in (benchmark_group(q.source), q.source)]
    if not indices:
        known = sorted({benchmark_group(q.source) for q in questions} | {q.source for q in questions})
        raise CommandError(f"--group {group}: no question of split {split!r} belongs to it; its groups: {', '.join(known)}")
    return indices


def split_probabilities(args):
    """Load the ensemble of ``--path`` and score ``--split`` (``--group``): (checkpoint paths, questions, probabilities)."""
    paths = args.path.split(os.pathsep)
    models, _, task = load_mc_ensemble(paths, args.data, cpu=args.cpu, overrides=args.model_overrides)
    if args.split not in task.datasets:
        task.load_dataset(args.split)  # also fills task.questions[split]
    indices = select_group(task.questions[args.split], args.group, args.split)
    probabilities = choice_probabilities(models, task, args.split, args.batch_size, indices=indices)
    return paths, [task.questions[args.split][i] for i in indices], probabilities


def load_mc_ensemble(paths: Sequence[str], data: str, cpu: bool = False, overrides: Optional[str] = None):
    """fairseq models and the ``multiple_choice`` task of the first checkpoint, reading ``data``."""
    from fairseq import checkpoint_utils

    runtime.install()  # fairseq checkpoint types for torch's weights_only loading
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: checkpoint not found")
    arg_overrides = {"data": data}
    if overrides:
        arg_overrides.update(ast.literal_eval(overrides))
    models, cfg, task = [], None, None
    for path in paths:  # one at a time, so that a mismatch names its checkpoint
        try:
            loaded, cfg_k, task = checkpoint_utils.load_model_ensemble_and_task(
                [path], arg_overrides=arg_overrides, task=task
            )
        except DictionaryMismatch as exc:
            raise DictionaryMismatch(f"{path}: {exc}") from None
        except RuntimeError as exc:
            if "size mismatch" not in str(exc):
                raise
            first = next(line.strip() for line in str(exc).splitlines() if "size mismatch" in line)
            raise DictionaryMismatch(
                f"{path}: its weights do not fit the model built for the data in {data} ({first.rstrip('.')}): "
                "this checkpoint does not match this data"
            ) from None
        if not isinstance(task, MultipleChoiceTask):
            raise CommandError(f"{path}: trained with --task {cfg_k.task._name}; these commands need --task multiple_choice")
        models.extend(loaded)
        cfg = cfg if cfg is not None else cfg_k
    to_inference_device(models, cpu)
    return models, cfg, task


@torch.no_grad()
def choice_probabilities(
    models, task, split: str, batch_size: int = 8, head_name: Optional[str] = None, indices: Optional[List[int]] = None
) -> List[np.ndarray]:
    """Per question (``indices`` of the split, default all, in input order), the softmax over its own
    choices, averaged over ``models``."""
    from tqdm import tqdm

    from fairseq import utils

    dataset = task.datasets[split] if split in task.datasets else task.load_dataset(split)
    head = head_name or task.cfg.ranking_head_name
    device = next(models[0].parameters()).device
    indices = list(range(len(dataset))) if indices is None else indices
    out: List[np.ndarray] = []
    for start in tqdm(range(0, len(indices), batch_size), desc=f"scoring {split}", mininterval=5):
        batch = dataset.collater([dataset[i] for i in indices[start : start + batch_size]])
        if device.type == "cuda":
            batch = utils.move_to_cuda(batch)
        probs = None
        for model in models:
            p = torch.softmax(choice_scores(model, batch, head), dim=-1)
            probs = p if probs is None else probs + p
        probs = (probs / len(models)).cpu().numpy()
        counts = batch["choice_mask"].sum(dim=1).tolist()
        out.extend(row[:n] for row, n in zip(probs, counts))
    return out

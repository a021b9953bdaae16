"""Choice probabilities of one checkpoint or an ensemble, in the input order of a split."""

import ast
import logging
import os
from typing import List, Optional, Sequence

import numpy as np
import torch

logger = logging.getLogger(__name__)


def add_ensemble_args(parser, default_split: str, split_help: str) -> None:
    """The flags shared by ``mc.evaluate`` and ``mc.predict``: data, split, checkpoints, batching."""
    parser.add_argument("--data", required=True, help="--task multiple_choice data directory")
    parser.add_argument("--split", default=default_split, help=split_help)
    parser.add_argument("--path", required=True, help="checkpoint(s), separated by ':' for an ensemble")
    parser.add_argument("--batch-size", type=int, default=8, help="questions per forward pass")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even if CUDA is available")
    parser.add_argument("--model-overrides", default=None, help="python dict of task/model overrides, as fairseq's")


def split_probabilities(args):
    """Load the ensemble of ``--path`` and score ``--split``: (checkpoint paths, questions, probabilities)."""
    paths = args.path.split(os.pathsep)
    models, _, task = load_ensemble(paths, args.data, cpu=args.cpu, overrides=args.model_overrides)
    probabilities = choice_probabilities(models, task, args.split, args.batch_size)
    return paths, task.questions[args.split], probabilities


def load_ensemble(paths: Sequence[str], data: str, cpu: bool = False, overrides: Optional[str] = None):
    """fairseq models and the ``multiple_choice`` task of the first checkpoint, reading ``data``."""
    import fairseq_freelb  # noqa: F401  (registers the task)
    from fairseq_freelb.adapters import runtime

    runtime.install()  # fairseq checkpoint types for torch's weights_only loading
    from fairseq import checkpoint_utils

    from fairseq_freelb.adapters.tasks.multiple_choice import MultipleChoiceTask

    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: checkpoint not found")
    arg_overrides = {"data": data}
    if overrides:
        arg_overrides.update(ast.literal_eval(overrides))
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(list(paths), arg_overrides=arg_overrides)
    if not isinstance(task, MultipleChoiceTask):
        raise ValueError(f"{paths[0]}: trained with --task {cfg.task._name}; these commands need --task multiple_choice")
    use_cuda = torch.cuda.is_available() and not cpu
    for model in models:
        model.eval()
        if use_cuda:
            model.cuda()
    return models, cfg, task


@torch.no_grad()
def choice_probabilities(models, task, split: str, batch_size: int = 8, head_name: Optional[str] = None) -> List[np.ndarray]:
    """Per question (dataset = input order), the softmax over its own choices, averaged over ``models``."""
    from tqdm import tqdm

    from fairseq import utils

    from fairseq_freelb.adapters.criterions.freelb_sentence_ranking import choice_scores

    dataset = task.datasets[split] if split in task.datasets else task.load_dataset(split)
    head = head_name or task.cfg.ranking_head_name
    device = next(models[0].parameters()).device
    out: List[np.ndarray] = []
    for start in tqdm(range(0, len(dataset), batch_size), desc=f"scoring {split}", mininterval=5):
        batch = dataset.collater([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
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

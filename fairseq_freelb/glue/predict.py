"""Predictions of one checkpoint, or an ensemble, on a binarized GLUE split; also a command.

Shared by :mod:`~fairseq_freelb.glue.evaluate`, :mod:`~fairseq_freelb.glue.report`
and :mod:`~fairseq_freelb.glue.submission`. Predictions come back in file order
(fairseq's ``id``), whatever order the batches ran in. Each checkpoint's class
indices are mapped to labels through the label names the checkpoint recorded
when it was trained (``task_state["label_names"]``), never through the data's
``label/dict.txt``; a checkpoint whose class count or label names are not the
task's is refused. A checkpoint from before label names were recorded is
refused unless ``--trust-label-dict`` says it was trained on this very
``label/dict.txt``. Before any model is built, each checkpoint's task, sentence
pairs and token dictionary are checked against the task and data
(:mod:`~fairseq_freelb.glue.checkpoint_match`).

Test predictions for one task, as a command::

    python -m fairseq_freelb.glue.predict --data-bin glue-bin/RTE-bin \\
        --checkpoint checkpoints/RTE/freelb-seed1/checkpoint_best.pt [--checkpoint more.pt] \\
        [--split test] --out RTE.tsv

writes ``index<TAB>prediction`` rows in test-file order, the leaderboard's format
(the file format: :mod:`~fairseq_freelb.glue.leaderboard_files`; the whole
submission: :mod:`~fairseq_freelb.glue.submission`). ``--out`` is checked
before any model runs (its folder exists and takes a file), and the file gets
the mode of the user's umask.
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from fairseq_freelb.adapters import runtime
from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.glue.benchmark_tasks import GlueTask, get_task
from fairseq_freelb.glue.leaderboard_files import format_predictions, write_file
from fairseq_freelb.glue.checkpoint_match import CheckpointMismatch, check_checkpoint_file
from fairseq_freelb.output_files import check_output_file, written_aside


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
    recorded = json.loads(meta.read_text()).get("task") if meta.is_file() else None
    if recorded:  # data of another pipeline (the demo's) has a meta.json without a GLUE task
        return get_task(recorded)
    folder = Path(data_bin).resolve().name
    if folder.endswith("-bin"):
        return get_task(folder[: -len("-bin")])
    raise CommandError(f"{data_bin}: cannot tell the GLUE task (no meta.json naming one); pass --task")


def _recorded_label_names(task) -> Optional[List[str]]:
    names = task.state_dict().get("label_names") if hasattr(task, "state_dict") else None
    return None if names is None else [str(n) for n in names]


def _head_classes(model, head: Optional[str]) -> int:
    return int(model.classification_heads[_head_name(model, head)].out_proj.out_features)


def class_order(path: str, model, task, glue_task: GlueTask, head: Optional[str], trust_label_dict: bool):
    """Column ``j`` of the model's output is label ``glue_task.labels[order[j]]``; None for regression.

    Refuses, in one line naming the checkpoint, a head with another class count
    than the task's, recorded label names that are not the task's labels, and
    (without ``trust_label_dict``) a checkpoint that recorded no label names.
    """
    classes = _head_classes(model, head)
    if classes != glue_task.num_classes:
        what = "a regression score" if classes == 1 else f"{classes} classes"
        want = "a regression score" if glue_task.regression else f"{glue_task.num_classes} classes ({', '.join(glue_task.labels)})"
        raise CheckpointMismatch(f"checkpoint {path}: its head predicts {what}, {glue_task.name} has {want}: "
                                 f"it was not trained on {glue_task.name}")
    if glue_task.regression:
        return None
    names = _recorded_label_names(task)
    if names is None:
        if not trust_label_dict:
            raise CheckpointMismatch(
                f"checkpoint {path}: records no label names (written before fairseq_freelb recorded them), so which "
                f"class means which {glue_task.name} label is unknown; if it was trained on exactly this data's "
                "label/dict.txt, pass --trust-label-dict, else retrain"
            )
        labels = task.label_dictionary
        names = [labels[labels.nspecial + i] for i in range(min(classes, len(labels) - labels.nspecial))]
    if sorted(names) != sorted(glue_task.labels) or len(names) != classes:
        raise CheckpointMismatch(f"checkpoint {path}: trained on labels {names}, {glue_task.name}'s are "
                                 f"{list(glue_task.labels)}: it was not trained on {glue_task.name}")
    return [glue_task.labels.index(n) for n in names]


@dataclass
class Ensemble:
    models: list
    cfg: object
    task: object  # the fairseq task of the first checkpoint, reading ``data_bin``
    orders: list  # per model: see :func:`class_order`


def load_glue_ensemble(checkpoints: Sequence[str], data_bin: Path, glue_task: Optional[GlueTask] = None, cpu: bool = False,
                  fp16: bool = False, head: Optional[str] = None, trust_label_dict: bool = False) -> Ensemble:
    """The models of ``checkpoints``, each checked against ``glue_task`` (default: the data's task)."""
    import torch
    from fairseq import checkpoint_utils

    runtime.install()  # fairseq checkpoint types for torch's weights_only loading

    glue_task = glue_task or task_of(data_bin)
    for path in checkpoints:
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint {path}: no such file")
    models, orders, first = [], [], None
    for path in checkpoints:  # task, sentence pairs and token dictionary, before any model is built
        check_checkpoint_file(path, glue_task, data_bin, trust_old=trust_label_dict)
    for path in checkpoints:
        # One at a time: each checkpoint's own task_state (its label names) is read into a fresh task.
        (model,), cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(path)], arg_overrides={"data": str(data_bin)})
        orders.append(class_order(str(path), model, task, glue_task, head, trust_label_dict))
        models.append(model)
        first = first or (cfg, task)
    use_cuda = torch.cuda.is_available() and not cpu
    for model in models:
        model.eval()
        if fp16:
            model.half()
        if use_cuda:
            model.cuda()
    return Ensemble(models, first[0], first[1], orders)


def _head_name(model, requested: Optional[str]) -> str:
    heads = list(getattr(model, "classification_heads", {}))
    if requested:
        if requested not in heads:
            raise CommandError(f"--classification-head-name {requested!r}: model has {heads}")
        return requested
    if len(heads) != 1:
        raise CommandError(f"model has classification heads {heads}; pick one with --classification-head-name")
    return heads[0]


def predict(
    checkpoints: Sequence[str],
    data_bin: Path,
    split: str,
    batch_size: int = 32,
    cpu: bool = False,
    fp16: bool = False,
    head: Optional[str] = None,
    loaded: Optional[Ensemble] = None,
    glue_task: Optional[GlueTask] = None,
    trust_label_dict: bool = False,
) -> Predictions:
    """Mean class probabilities (or regression outputs) of the ensemble on ``split``, in file order.

    Probability columns follow ``glue_task.labels``. ``loaded`` reuses the
    result of :func:`load_glue_ensemble` across splits.
    """
    import torch
    import torch.nn.functional as F
    from fairseq import utils

    glue_task = glue_task or task_of(data_bin)
    loaded = loaded or load_glue_ensemble(checkpoints, data_bin, glue_task, cpu, fp16, head, trust_label_dict)
    models, task = loaded.models, loaded.task
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
            for model, order in zip(models, loaded.orders):
                logits, _ = model(**sample["net_input"], features_only=True, classification_head_name=_head_name(model, head))
                if regression:
                    outputs.append(logits.float().view(-1))
                else:  # columns into the task's label order
                    probs = F.softmax(logits.float(), dim=-1)
                    outputs.append(probs[:, torch.argsort(torch.as_tensor(order, device=probs.device))])
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
    label_names = None if regression else list(glue_task.labels)
    has_targets = all(t is not None for t in targets) and n > 0
    target_array = None
    if has_targets:
        target_array = np.asarray(targets, dtype=np.float64 if regression else object)
    return Predictions(scores, label_names, target_array)


def add_checkpoint_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by predict, evaluate and submission for loading checkpoints."""
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cpu", action="store_true", help="run on CPU even if a GPU is available")
    parser.add_argument("--fp16", action="store_true", help="half-precision inference")
    parser.add_argument("--trust-label-dict", action="store_true",
                        help="for checkpoints older than these checks, that record no label names or no task: use "
                        "them as trained on exactly this data (classes mapped through its label/dict.txt); right "
                        "only if they were")


PROG = "python -m fairseq_freelb.glue.predict"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Predictions of a checkpoint (or an ensemble) on one split "
                                     "of a GLUE task, as an index<TAB>prediction file in the leaderboard's format.")
    parser.add_argument("--data-bin", required=True, help="the task's binarized folder (<out>/<TASK>-bin)")
    parser.add_argument("--checkpoint", action="append", required=True,
                        help="checkpoint; repeat for an ensemble (mean of class probabilities)")
    parser.add_argument("--task", default=None, help="GLUE task name (default: from <data-bin>/meta.json)")
    parser.add_argument("--split", default="test", help="split to predict (default: test; MNLI also test_mismatched, test_ax)")
    parser.add_argument("--out", required=True, help="the TSV to write (written aside, moved into place when complete)")
    add_checkpoint_flags(parser)
    args = parser.parse_args(argv)
    data_bin = Path(args.data_bin)
    glue_task = task_of(data_bin, args.task)
    if not (data_bin / "input0" / f"{args.split}.bin").is_file():
        raise FileNotFoundError(f"--split {args.split}: {data_bin / 'input0' / args.split}.bin not found")
    out = Path(args.out)
    check_output_file(out, "--out")  # before the model runs
    index_file = data_bin / "index" / f"{args.split}.index"
    ids = index_file.read_text(encoding="utf-8").splitlines() if index_file.is_file() else None
    predictions = predict(args.checkpoint, data_bin, args.split, args.batch_size, args.cpu, args.fp16,
                          glue_task=glue_task, trust_label_dict=args.trust_label_dict)
    labels = format_predictions(glue_task, predictions)
    with written_aside(out) as tmp:
        write_file(tmp, ids if ids is not None else [str(i) for i in range(len(labels))], labels)
    print(f"{out}: {len(labels)} rows from {glue_task.name} {args.split} ({len(args.checkpoint)} checkpoint(s))")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(PROG, main))

"""Loading the checkpoints to compare, and refusing those that do not match --data or each other.

Every model is attacked through one criterion on one task, so the checkpoints
must share the task (type and label settings) and the dictionary of --data;
a checkpoint that does not fit is refused in one line naming it.
"""

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

from torch import nn

from fairseq_freelb.adapters.task_mixin import AdversarialTrainingMixin
from fairseq_freelb.checkpoint import explain_refusal, is_weights_only_refusal
from fairseq_freelb.core.model_access import token_embedding_module
from fairseq_freelb.robustness.arguments import RobustnessError

logger = logging.getLogger("fairseq_freelb.robustness")


@dataclass
class LoadedModel:
    name: str
    path: str
    model: nn.Module
    cfg: object  # the checkpoint's (upgraded) OmegaConf config


# Task settings that change what the labels or inputs mean.
TASK_FIELDS = ("num_classes", "regression_target", "init_token", "separator_token", "classification_head_name")


def _task_family(task_name: str):
    """The stock fairseq task class behind a task name: the plugin's ``freelb_*`` tasks
    are the stock tasks plus the adversarial training step, so they count as the same task."""
    from fairseq.tasks import TASK_REGISTRY, FairseqTask

    cls = TASK_REGISTRY.get(task_name)
    if cls is None:
        raise RobustnessError(f"unknown task {task_name!r} (is the plugin that registers it imported?)")
    for base in cls.__mro__:  # the first fairseq task class that is not (or does not extend) the mixin
        if issubclass(base, FairseqTask) and not issubclass(base, AdversarialTrainingMixin):
            return base
    return cls


def default_names(paths: Sequence[str]) -> List[str]:
    names = []
    for p in paths:
        path = Path(p)
        names.append(path.parent.name if path.stem.startswith("checkpoint") and path.parent.name else path.stem)
    if len(set(names)) != len(names):
        names = [str(p) for p in paths]
    return names


def _dictionary_symbols(task) -> Dict[str, List[str]]:
    out = {}
    for attr in ("source_dictionary", "target_dictionary", "label_dictionary"):
        try:
            d = getattr(task, attr)
        except Exception:  # a task without that dictionary (e.g. regression has no label dictionary)
            d = None
        if d is not None and hasattr(d, "symbols"):
            out[attr] = list(d.symbols)
    return out


def check_compatible(states: Sequence[dict], paths: Sequence[str]) -> None:
    """Refuse checkpoints that were not trained on the same task: task type and label settings."""
    first_cfg, first_path = states[0]["cfg"], paths[0]
    family = _task_family(first_cfg.task._name)
    for state, path in zip(states[1:], paths[1:]):
        cfg = state["cfg"]
        other = _task_family(cfg.task._name)
        if other is not family:
            raise RobustnessError(
                f"{path}: trained with --task {cfg.task._name}, but {first_path} with --task "
                f"{first_cfg.task._name}: the models must share a task"
            )
        for key in TASK_FIELDS:
            a, b = first_cfg.task.get(key, None), cfg.task.get(key, None)
            if a != b:
                raise RobustnessError(
                    f"{path}: task setting {key}={b!r} differs from {first_path} ({key}={a!r}): the models must share a task"
                )


def _embedding_rows(model: nn.Module) -> int:
    return int(token_embedding_module(model).weight.size(0))


def check_dictionaries(task, loaded: Sequence[LoadedModel], states: Sequence[dict], data: str) -> None:
    """Refuse models whose dictionaries differ from --data's (or from each other).

    The vocabulary size is checked always; when a checkpoint's training data
    folder still exists, its dictionaries are compared symbol by symbol with
    --data's (a reordered dictionary of the same size would silently scramble
    the inputs or the labels).
    """
    from fairseq import tasks

    vocab = len(task.source_dictionary)
    data_symbols = _dictionary_symbols(task)
    for item, state in zip(loaded, states):
        rows = _embedding_rows(item.model)
        if rows != vocab:
            raise RobustnessError(
                f"{item.path}: the model's token embedding has {rows} rows but the dictionary of --data {data} "
                f"has {vocab} symbols: the models must share a dictionary"
            )
        trained_on = state["cfg"].task.get("data", None)
        if trained_on and os.path.isdir(str(trained_on)) and os.path.abspath(str(trained_on)) != os.path.abspath(data):
            from omegaconf import open_dict

            own_cfg = state["cfg"].task.copy()
            with open_dict(own_cfg):
                own_cfg.data = str(trained_on)
            own = _dictionary_symbols(tasks.setup_task(own_cfg))
            for key, symbols in data_symbols.items():
                if key in own and own[key] != symbols:
                    raise RobustnessError(
                        f"{item.path}: its training data {trained_on} has a different {key.replace('_', ' ')} "
                        f"than --data {data}: the models must share a dictionary"
                    )
        elif trained_on and not os.path.isdir(str(trained_on)):
            logger.info(
                "%s: training data %s not found; dictionary checked by size only (%d symbols)", item.path, trained_on, vocab
            )


def build_criterion(task, states: Sequence[dict], paths: Sequence[str], name: str):
    """The criterion whose loss is attacked, shared by all models (one loss for a fair comparison)."""
    from fairseq import criterions
    from fairseq.criterions import CRITERION_DATACLASS_REGISTRY, CRITERION_REGISTRY
    from omegaconf import OmegaConf

    def with_adversarial_inputs(crit_name):
        cls = CRITERION_REGISTRY.get(crit_name)
        return cls is not None and callable(getattr(cls, "adversarial_inputs", None))

    if name:
        if name not in CRITERION_REGISTRY:
            raise RobustnessError(f"--criterion {name}: no such criterion is registered")
        if not with_adversarial_inputs(name):
            raise RobustnessError(f"--criterion {name} defines no adversarial_inputs(sample); use a fairseq_freelb criterion")
        source = states[0]["cfg"].criterion
        dc = CRITERION_DATACLASS_REGISTRY.get(name)
        keys = {f.name for f in dataclasses.fields(dc)} if dc is not None else set()
        values = {k: source[k] for k in source.keys() if k in keys and k != "_name"}
        if "adv_method" in keys:
            values["adv_method"] = "none"  # the attack never runs a training step
        crit_cfg = OmegaConf.create({"_name": name, **values})
        origin = f"--criterion {name}"
    else:
        for state, path in zip(states, paths):
            if with_adversarial_inputs(state["cfg"].criterion._name):
                crit_cfg, origin = state["cfg"].criterion, f"{path}'s criterion {state['cfg'].criterion._name}"
                break
        else:
            used = sorted({s["cfg"].criterion._name for s in states})
            raise RobustnessError(
                f"none of the checkpoints' criteria ({', '.join(used)}) defines adversarial_inputs(sample); "
                "pass --criterion with a fairseq_freelb criterion, e.g. --criterion freelb_sentence_prediction"
            )
    criterion = criterions.build_criterion(crit_cfg, task)
    logger.info("attacking the loss of %s", origin)
    return criterion


def read_checkpoint(path: str) -> dict:
    """fairseq's ``load_checkpoint_to_cpu``, with one line naming the file when it cannot be read.

    Only a type refused by torch's ``weights_only`` loader gets the advice to
    opt out of it; a truncated file or another kind of file gets its real cause.
    """
    from fairseq import checkpoint_utils

    try:
        return checkpoint_utils.load_checkpoint_to_cpu(path)
    except Exception as exc:
        if is_weights_only_refusal(exc) and "Unsupported global" in str(exc):
            raise RobustnessError(f"{path}: {explain_refusal(exc)}") from None
        text = str(exc).strip()
        cause = f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
        raise RobustnessError(
            f"{path}: not a readable PyTorch checkpoint (truncated, or another kind of file; {cause})"
        ) from None


def load_models(paths: Sequence[str], names: Sequence[str], data: str, criterion_name: str = ""):
    """Load checkpoints with fairseq's loaders, check they share a task and a dictionary.

    Returns ``(task, criterion, [LoadedModel])``; the task is set up from the
    first checkpoint's task settings with ``data`` = ``--data``.
    """
    from fairseq import tasks
    from omegaconf import open_dict

    for p in paths:
        if not os.path.isfile(p):
            raise RobustnessError(f"--checkpoints: {p} is not a file")
    if not os.path.isdir(data):
        raise RobustnessError(f"--data: {data} is not a folder")
    states = [read_checkpoint(p) for p in paths]
    for state, p in zip(states, paths):
        if state.get("cfg") is None or "task" not in state["cfg"] or "model" not in state:
            raise RobustnessError(f"{p}: not a fairseq training checkpoint (no cfg.task or model)")
    check_compatible(states, paths)
    task_cfg = states[0]["cfg"].task.copy()
    with open_dict(task_cfg):
        task_cfg.data = data
    task = tasks.setup_task(task_cfg)
    loaded = []
    for state, path, name in zip(states, paths, names):
        cfg = state["cfg"]
        model = task.build_model(cfg.model)
        try:
            model.load_state_dict(state["model"], strict=True, model_cfg=cfg.model)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise RobustnessError(
                f"{path}: its weights do not fit a model built for --data {data} "
                f"({first[1].strip() if len(first) > 1 else first[0]}): the models must share a dictionary and a task"
            ) from None
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        loaded.append(LoadedModel(name=name, path=path, model=model, cfg=cfg))
    check_dictionaries(task, loaded, states, data)
    criterion = build_criterion(task, states, paths, criterion_name)
    return task, criterion, loaded


def training_norm_bound(loaded: Sequence[LoadedModel]) -> float:
    """The largest --adv-max-norm among the checkpoints' training settings (0 if none)."""
    bounds = [float(item.cfg.criterion.get("adv_max_norm", 0) or 0) for item in loaded]
    return max(bounds) if bounds else 0.0

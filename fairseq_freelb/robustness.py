"""Robustness analysis: the maximum loss increase in the embedding ball (FreeLB, section 4.3).

For a dev sample X with label y and a fine-tuned model f, eq. 5 of the paper is

    DeltaL_max(X, eps) = max_{||delta|| <= eps} L(f(X + delta), y) - L(f(X), y)

where delta perturbs the word/subword token embeddings (not positions). The
paper compares vanilla, PGD and FreeLB models by the median and standard
deviation of DeltaL_max over the dev samples that every model classifies
correctly (Tables 5 and 8), with two choices of eps:

* **Max Inc**: ``eps = r * ||X||_F`` per sample (r = 0.01 in the paper);
* **Max Inc (R)**: footnote 12's per-sample search. eps starts slightly above
  the training norm bound and decreases linearly until the *reference* model
  classifies the sample correctly after the full attack; every model is then
  attacked with that eps.

The attack is PGD in token-embedding space: ``delta <- Pi_eps(delta + alpha *
g / ||g||)`` (eq. 2, the normalised step of :func:`~fairseq_freelb.core.perturbation.ascent_step`,
projection of :func:`~fairseq_freelb.core.perturbation.project_to_ball`), dropout off.

Usage::

    python -m fairseq_freelb.robustness --checkpoints vanilla.pt freelb.pt \\
        --data SST-2-bin --split valid --output-dir robustness/

The loss is the criterion's own (any plugin criterion that defines
``adversarial_inputs(sample)``), so classification, regression and
multiple-choice ranking tasks are served the same way.
"""

import argparse
import csv
import dataclasses
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

import fairseq_freelb  # noqa: F401  (registers the plugin)
from fairseq_freelb.adapters import runtime
from fairseq_freelb.adapters.task_mixin import AdversarialTrainingMixin
from fairseq_freelb.core.contract import example_inputs
from fairseq_freelb.core.model_access import token_embedding_module
from fairseq_freelb.core.passes import EmbeddingPerturbation
from fairseq_freelb.core.perturbation import NORM_TYPES, ascent_step, init_delta, per_example_norm, project_to_ball

logger = logging.getLogger("fairseq_freelb.robustness")

EPS_MODES = ("ratio", "search", "both")


class RobustnessError(ValueError):
    """Bad input to the robustness command; printed as one line."""


# --------------------------------------------------------------------------- configuration


@dataclass
class AttackConfig:
    """The PGD attack of section 4.3 (eq. 2 step, projection onto the eps ball)."""

    steps: int = field(default=2000, metadata={"help": "PGD ascent steps per restart (the paper: 2000)"})
    step_size: float = field(
        default=5e-3, metadata={"help": "alpha of the normalised step delta += alpha * g / ||g|| (the paper: 5e-3)"}
    )
    restarts: int = field(
        default=1,
        metadata={
            "help": "PGD runs per sample: the first starts at delta = 0, the others at a random point of the "
            "ball (--seed); the maximum over runs is DeltaL_max and max - min over runs is reported as the spread"
        },
    )
    norm: str = field(default="l2", metadata={"help": "norm of the ball and of the step normalisation", "choices": NORM_TYPES})
    seed: int = field(default=1, metadata={"help": "seed of the random restarts (each sample draws from (seed, sample id, restart))"})
    regression_tolerance: float = field(
        default=0.5,
        metadata={
            "help": "regression only: a sample counts as correctly predicted when |prediction - target| < this; "
            "read off the criterion's squared-error loss as sqrt(loss) < tolerance"
        },
    )


@dataclass
class RobustnessConfig(AttackConfig):
    checkpoints: List[str] = field(
        default_factory=list, metadata={"help": "fine-tuned fairseq checkpoints to compare (same task and dictionary)", "nargs": "+"}
    )
    names: List[str] = field(
        default_factory=list,
        metadata={"help": "display names, one per checkpoint (default: the checkpoint's folder name)", "nargs": "+"},
    )
    data: str = field(default="", metadata={"help": "binarized data folder (as for fairseq-train)"})
    split: str = field(default="valid", metadata={"help": "split of --data to analyse"})
    criterion: str = field(
        default="",
        metadata={
            "help": "criterion whose loss is attacked (default: the first checkpoint's criterion that defines "
            "adversarial_inputs(), e.g. freelb_sentence_prediction); its non-adversarial settings "
            "(head name, regression target) are taken from the checkpoint"
        },
    )
    eps_mode: str = field(
        default="ratio",
        metadata={
            "help": "ratio: eps = --eps-ratio * ||X||_F (Max Inc); search: footnote 12's per-sample search "
            "against --reference (Max Inc (R)); both: the two columns of Table 5",
            "choices": EPS_MODES,
        },
    )
    eps_ratio: float = field(default=0.01, metadata={"help": "r of eps = r * ||X||_F (the paper: 0.01)"})
    reference: str = field(
        default="", metadata={"help": "search mode: the reference model, by --names entry or checkpoint path"}
    )
    search_start: float = field(
        default=0.0,
        metadata={
            "help": "search mode: first eps (0 = --search-start-factor times the largest --adv-max-norm "
            "found in the checkpoints' training settings)"
        },
    )
    search_start_factor: float = field(
        default=1.1, metadata={"help": "search mode: 'slightly above the training norm bound' (footnote 12)"}
    )
    search_levels: int = field(
        default=10,
        metadata={"help": "search mode: eps takes the values start * (1 - k / levels), k = 0 .. levels (the last is 0)"},
    )
    batch_size: int = field(default=16, metadata={"help": "samples attacked together (results do not depend on it)"})
    max_samples: int = field(
        default=0, metadata={"help": "analyse at most this many of the correctly classified samples, in dataset order (0 = all)"}
    )
    output_dir: str = field(
        default="robustness", metadata={"help": "where samples.csv, summary.md and delta_loss.png are written"}
    )
    cpu: bool = field(default=False, metadata={"help": "run on the CPU even when a GPU is available"})
    no_progress_bar: bool = field(default=False, metadata={"help": "disable the tqdm progress bar"})


def build_parser() -> argparse.ArgumentParser:
    """argparse flags generated from :class:`RobustnessConfig` (help strings from the field metadata)."""
    parser = argparse.ArgumentParser(
        prog="python -m fairseq_freelb.robustness",
        description="Maximum loss increase in the token-embedding ball (FreeLB section 4.3, Tables 5 and 8).",
    )
    for f in dataclasses.fields(RobustnessConfig):
        flag = "--" + f.name.replace("_", "-")
        meta = dict(f.metadata)
        kwargs = {"help": meta.get("help", "")}
        if f.type is bool or f.type == "bool":
            kwargs["action"] = "store_true"
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            kwargs["default"] = default
            if "nargs" in meta:
                kwargs["nargs"] = meta["nargs"]
                kwargs["type"] = str
            else:
                kwargs["type"] = type(default)
            if "choices" in meta:
                kwargs["choices"] = meta["choices"]
            if f.name in ("checkpoints", "data"):
                kwargs["required"] = True
            else:
                kwargs["help"] += f" (default: {default})" if default not in ("", []) else ""
        parser.add_argument(flag, **kwargs)
    return parser


def parse_config(argv: Optional[Sequence[str]] = None) -> RobustnessConfig:
    args = build_parser().parse_args(argv)
    cfg = RobustnessConfig(**vars(args))
    validate_config(cfg)
    return cfg


def validate_config(cfg: RobustnessConfig) -> None:
    def need(ok, flag, rule, value):
        if not ok:
            raise RobustnessError(f"{flag} {rule}, got {value!r}")

    need(cfg.steps >= 1, "--steps", "must be >= 1", cfg.steps)
    need(cfg.step_size > 0, "--step-size", "must be > 0", cfg.step_size)
    need(cfg.restarts >= 1, "--restarts", "must be >= 1", cfg.restarts)
    need(cfg.norm in NORM_TYPES, "--norm", f"must be one of {NORM_TYPES}", cfg.norm)
    need(cfg.regression_tolerance > 0, "--regression-tolerance", "must be > 0", cfg.regression_tolerance)
    need(cfg.eps_mode in EPS_MODES, "--eps-mode", f"must be one of {EPS_MODES}", cfg.eps_mode)
    need(cfg.eps_ratio > 0, "--eps-ratio", "must be > 0", cfg.eps_ratio)
    need(cfg.search_start >= 0, "--search-start", "must be >= 0", cfg.search_start)
    need(cfg.search_start_factor > 0, "--search-start-factor", "must be > 0", cfg.search_start_factor)
    need(cfg.search_levels >= 1, "--search-levels", "must be >= 1", cfg.search_levels)
    need(cfg.batch_size >= 1, "--batch-size", "must be >= 1", cfg.batch_size)
    need(cfg.max_samples >= 0, "--max-samples", "must be >= 0", cfg.max_samples)
    need(len(cfg.checkpoints) >= 1, "--checkpoints", "needs at least one checkpoint", cfg.checkpoints)
    need(
        not cfg.names or len(cfg.names) == len(cfg.checkpoints),
        "--names",
        f"needs one name per checkpoint ({len(cfg.checkpoints)})",
        cfg.names,
    )
    need(not cfg.names or len(set(cfg.names)) == len(cfg.names), "--names", "must be distinct", cfg.names)
    if cfg.eps_mode != "ratio":
        need(bool(cfg.reference), "--reference", f"is required with --eps-mode {cfg.eps_mode}", cfg.reference)


# --------------------------------------------------------------------------- pure helpers


def project_to_radii(deltas: Sequence[Tensor], radii: Tensor, norm_type: str) -> List[Tensor]:
    """Project example b of the group onto its own ball ``||delta_b|| <= radii[b]``.

    :func:`project_to_ball` takes one radius; both norms are absolutely
    homogeneous, so ``Pi_r(delta) = r * Pi_1(delta / r)``. A zero radius gives
    exact zeros (``project_to_ball`` reads 0 as "unbounded").
    """
    radii = radii.float()
    positive = radii > 0
    safe = torch.where(positive, radii, torch.ones_like(radii))
    scaled = [d.float() / safe.view(-1, *([1] * (d.dim() - 1))) for d in deltas]
    unit = project_to_ball(scaled, 1.0, norm_type)
    factor = torch.where(positive, radii, torch.zeros_like(radii))
    return [u * factor.view(-1, *([1] * (u.dim() - 1))) for u in unit]


def restart_seed(seed: int, sample_id: int, restart: int) -> int:
    """A seed for one sample's restart, independent of batching and of the other samples."""
    return int(np.random.SeedSequence([seed, sample_id, restart]).generate_state(1, dtype=np.uint64)[0] >> 1)


def random_start(masks: Sequence[Tensor], hidden_dim: int, radii: Tensor, norm_type: str, seeds: Sequence[int]) -> List[Tensor]:
    """A random delta_0 in each example's ball, drawn per example over its real tokens only.

    Each example's draw is :func:`init_delta` with ``init_mag = radii[b]`` on a
    pad-free mask of its own length, from its own generator, so it does not
    depend on the batch it is in or on the batch's padding.
    """
    out = [torch.zeros(*m.shape, hidden_dim, dtype=torch.float32) for m in masks]
    cpu_masks = [m.bool().cpu() for m in masks]
    for b, seed in enumerate(seeds):
        generator = torch.Generator().manual_seed(seed)
        lengths = [int(m[b].sum()) for m in cpu_masks]
        draws = init_delta(
            [torch.ones(1, n, dtype=torch.bool) for n in lengths], hidden_dim, float(radii[b]), norm_type, generator
        )
        for o, m, d in zip(out, cpu_masks, draws):
            o[b][m[b]] = d[0]
    return [o.to(m.device) for o, m in zip(out, masks)]


def slice_sample(sample, index: Sequence[int], batch_size: Optional[int] = None):
    """The sub-batch of a collated fairseq sample holding the examples ``index``.

    Every tensor whose first dimension is the batch is indexed; ``nsentences``
    is updated; everything else is kept. Works for nested net_inputs
    (``net_input1`` .. ``net_inputC`` of ranking tasks).
    """
    if batch_size is None:
        batch_size = sample["id"].numel()

    def cut(x):
        if torch.is_tensor(x) and x.dim() >= 1 and x.size(0) == batch_size:
            return x[torch.as_tensor(list(index), dtype=torch.long, device=x.device)]
        if isinstance(x, dict):
            return {k: cut(v) for k, v in x.items()}
        return x

    out = cut(sample)
    if isinstance(out, dict) and "nsentences" in out:
        out["nsentences"] = len(index)
    return out


def _column(x: Tensor, b: int) -> Tensor:
    return x[b : b + 1]


# --------------------------------------------------------------------------- the attack


@dataclass
class AttackResult:
    """Per-example outcome of :meth:`EmbeddingAttack.attack`; tensors on the CPU, float64."""

    eps: Tensor  # (B,)
    natural_loss: Tensor  # (B,)
    restart_loss: Tensor  # (B, R): loss at each restart's final delta
    restart_correct: Tensor  # (B, R) bool: still correct at that delta

    @property
    def max_loss(self) -> Tensor:
        return self.restart_loss.max(dim=1).values

    @property
    def max_increase(self) -> Tensor:
        """DeltaL_max of eq. 5 (not clipped at 0: a negative value would mean the attack failed)."""
        return self.max_loss - self.natural_loss

    @property
    def restart_spread(self) -> Tensor:
        """max - min over restarts of the final loss: 0 when the restarts agree."""
        return self.restart_loss.max(dim=1).values - self.restart_loss.min(dim=1).values

    @property
    def correct_after(self) -> Tensor:
        """Correct at every restart's final delta (i.e. no restart flipped it)."""
        return self.restart_correct.all(dim=1)


class EmbeddingAttack:
    """PGD on one model's token embeddings, through a criterion's own loss.

    The criterion must define ``adversarial_inputs(sample)`` (the plugin's
    criteria do): the net_inputs its model calls use, in call order; their
    token embeddings together form one example's perturbation group (all C
    candidates of a multiple-choice question share one norm ball, as in
    training). The batch loss may be any sum or mean over examples: examples do
    not interact with dropout off, and the per-example normalised step removes
    any common scale, so each example's path is the one it would take alone.
    Per-example losses are read from the criterion run on one-example
    sub-batches.
    """

    def __init__(self, model: nn.Module, criterion, cfg: AttackConfig):
        if not callable(getattr(criterion, "adversarial_inputs", None)):
            raise RobustnessError(
                f"criterion {type(criterion).__name__} has no adversarial_inputs(sample); "
                "pass --criterion with a fairseq_freelb criterion (e.g. freelb_sentence_prediction)"
            )
        self.model = model
        self.criterion = criterion
        self.cfg = cfg
        self.embed = token_embedding_module(model)
        self.regression = bool(getattr(criterion, "regression_target", False))

    # ----------------------------------------------------------- pieces

    def _masks(self, sample) -> List[Tensor]:
        """The perturbed positions, exactly as in training (:func:`~fairseq_freelb.core.contract.example_inputs`).

        A criterion may narrow the group beyond "non-pad" (the ranking
        criterion leaves out the placeholder rows of missing choices); the
        ball here is then the ball of training.
        """
        _, _, masks = example_inputs(sample, self.model, self.criterion)
        return masks

    @torch.no_grad()
    def embedding_norms(self, sample) -> Tensor:
        """||X||_F per example: the token embeddings (what delta is added to) over all non-pad tokens."""
        embs = []
        for net_input, mask in zip(self.criterion.adversarial_inputs(sample), self._masks(sample)):
            embs.append(self.embed(net_input["src_tokens"]).float() * mask.unsqueeze(-1))
        return per_example_norm(embs, "l2").double().cpu()

    def _correct(self, loss: Tensor, log: Dict) -> bool:
        if self.regression:
            # The squared-error loss of sentence_prediction --regression-target: |error| = sqrt(loss).
            return bool(math.sqrt(max(float(loss), 0.0)) < self.cfg.regression_tolerance)
        if "ncorrect" not in log:
            raise RobustnessError(
                f"criterion {type(self.criterion).__name__} logs no 'ncorrect' and is not a regression "
                "criterion: cannot tell which samples are classified correctly"
            )
        return bool(int(log["ncorrect"]) == 1)

    @torch.no_grad()
    def evaluate(self, sample, deltas: Optional[List[Tensor]] = None):
        """Per-example loss and correctness at ``X + delta`` (``delta = 0`` when None)."""
        n = sample["id"].numel()
        losses, correct = [], []
        with EmbeddingPerturbation(self.embed) as perturbation:
            for b in range(n):
                one = slice_sample(sample, [b], n)
                perturbation.set(None if deltas is None else [_column(d, b) for d in deltas])
                loss, _, log = self.criterion(self.model, one)
                perturbation.check_all_used()
                losses.append(float(loss))
                correct.append(self._correct(loss, log))
        return torch.tensor(losses, dtype=torch.float64), torch.tensor(correct, dtype=torch.bool)

    def _pgd(self, sample, masks: List[Tensor], deltas: List[Tensor], radii: Tensor) -> List[Tensor]:
        radii_dev = radii.to(masks[0].device)
        with EmbeddingPerturbation(self.embed) as perturbation, torch.enable_grad():
            for _ in range(self.cfg.steps):
                leaves = [d.detach().requires_grad_(True) for d in deltas]
                perturbation.set(leaves)
                loss, _, _ = self.criterion(self.model, sample)
                perturbation.check_all_used()
                grads = torch.autograd.grad(loss, leaves, allow_unused=True)
                stepped = ascent_step([d.detach() for d in leaves], list(grads), self.cfg.step_size, self.cfg.norm, masks)
                deltas = project_to_radii(stepped, radii_dev, self.cfg.norm)
        return [d.detach() for d in deltas]

    # ----------------------------------------------------------- entry point

    def attack(self, sample, eps: Tensor, natural_loss: Optional[Tensor] = None) -> AttackResult:
        """Maximise each example's loss over ``||delta_b|| <= eps[b]``, ``--restarts`` times."""
        self.model.eval()  # dropout off: the loss is a deterministic function of delta
        eps = eps.double().cpu()
        masks = self._masks(sample)
        hidden = self.embed.embedding_dim
        ids = [int(i) for i in sample["id"].tolist()]
        if natural_loss is None:
            natural_loss, _ = self.evaluate(sample)
        losses, correct = [], []
        for restart in range(self.cfg.restarts):
            if restart == 0:
                deltas = [torch.zeros(*m.shape, hidden, dtype=torch.float32, device=m.device) for m in masks]
            else:
                seeds = [restart_seed(self.cfg.seed, i, restart) for i in ids]
                deltas = random_start(masks, hidden, eps, self.cfg.norm, seeds)
            if bool((eps > 0).any()):
                deltas = self._pgd(sample, masks, deltas, eps)
            loss, ok = self.evaluate(sample, deltas)
            # eps = 0 leaves X unperturbed: report the natural loss exactly.
            loss = torch.where(eps > 0, loss, natural_loss)
            losses.append(loss)
            correct.append(ok)
        return AttackResult(
            eps=eps,
            natural_loss=natural_loss.double(),
            restart_loss=torch.stack(losses, dim=1),
            restart_correct=torch.stack(correct, dim=1),
        )


def search_eps(
    reference: EmbeddingAttack, sample, start: float, levels: int, natural_loss: Optional[Tensor] = None
):
    """Footnote 12: per example, the largest ``eps = start * (1 - k / levels)`` at which the
    reference model still classifies it correctly after the full attack.

    Returns ``(eps (B,), reference AttackResult at that eps)``; ``k = levels``
    (eps = 0) always succeeds for a correctly classified example.
    """
    n = sample["id"].numel()
    if natural_loss is None:
        natural_loss, _ = reference.evaluate(sample)
    found_eps = torch.zeros(n, dtype=torch.float64)
    found_loss = natural_loss.view(n, 1).repeat(1, reference.cfg.restarts).clone()
    found_correct = torch.ones(n, reference.cfg.restarts, dtype=torch.bool)
    remaining = list(range(n))
    for k in range(levels):
        if not remaining:
            break
        eps_k = start * (1.0 - k / levels)
        sub = slice_sample(sample, remaining, n)
        result = reference.attack(sub, torch.full((len(remaining),), eps_k, dtype=torch.float64), natural_loss[remaining])
        still = []
        for j, b in enumerate(remaining):
            if bool(result.correct_after[j]):
                found_eps[b] = eps_k
                found_loss[b] = result.restart_loss[j]
                found_correct[b] = result.restart_correct[j]
            else:
                still.append(b)
        remaining = still
    return found_eps, AttackResult(found_eps, natural_loss.double(), found_loss, found_correct)


# --------------------------------------------------------------------------- loading


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
    from fairseq.tasks import TASK_REGISTRY

    cls = TASK_REGISTRY.get(task_name)
    if cls is None:
        raise RobustnessError(f"unknown task {task_name!r} (is the plugin that registers it imported?)")
    for base in cls.__mro__:
        if not issubclass(base, AdversarialTrainingMixin):
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


def load_models(paths: Sequence[str], names: Sequence[str], data: str, criterion_name: str = ""):
    """Load checkpoints with fairseq's loaders, check they share a task and a dictionary.

    Returns ``(task, criterion, [LoadedModel])``; the task is set up from the
    first checkpoint's task settings with ``data`` = ``--data``.
    """
    from fairseq import checkpoint_utils, tasks
    from omegaconf import open_dict

    runtime.install()  # fairseq checkpoint types for torch's weights_only loading
    for p in paths:
        if not os.path.isfile(p):
            raise RobustnessError(f"--checkpoints: {p} is not a file")
    if not os.path.isdir(data):
        raise RobustnessError(f"--data: {data} is not a folder")
    states = [checkpoint_utils.load_checkpoint_to_cpu(p) for p in paths]
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


# --------------------------------------------------------------------------- the analysis


@dataclass
class SampleRecord:
    model: str
    sample_id: int
    n_loss: float
    x_norm: float
    eps: Optional[float] = None
    max_inc: Optional[float] = None
    restart_spread: Optional[float] = None
    correct_after_attack: Optional[bool] = None
    eps_r: Optional[float] = None
    max_inc_r: Optional[float] = None
    restart_spread_r: Optional[float] = None
    correct_after_attack_r: Optional[bool] = None


CSV_COLUMNS = [f.name for f in dataclasses.fields(SampleRecord)]


def _move(sample, device: torch.device):
    from fairseq import utils

    return utils.move_to_cuda(sample, device=device) if device.type == "cuda" else sample


def select_samples(dataset, attacks: Sequence[EmbeddingAttack], batch_size: int, max_samples: int, device, progress: bool):
    """Dataset indices that every model classifies correctly, in dataset order.

    Returns ``(selected indices, natural losses {index: [loss per model]}, number evaluated)``.
    With ``max_samples`` the scan stops once that many are found.
    """
    from tqdm import tqdm

    selected, natural = [], {}
    total = len(dataset)
    bar = tqdm(total=total, desc="natural pass", unit="sample", disable=not progress, file=sys.stderr)
    evaluated = 0
    for start in range(0, total, batch_size):
        indices = list(range(start, min(start + batch_size, total)))
        sample = _move(dataset.collater([dataset[i] for i in indices]), device)
        per_model = [a.evaluate(sample) for a in attacks]
        for j, i in enumerate(indices):
            evaluated = i + 1
            if all(bool(ok[j]) for _, ok in per_model):
                selected.append(i)
                natural[i] = [float(loss[j]) for loss, _ in per_model]
                if max_samples and len(selected) >= max_samples:
                    break
        bar.update(len(indices))
        if max_samples and len(selected) >= max_samples:
            break
    bar.close()
    return selected, natural, evaluated


def analyse(cfg: RobustnessConfig, task, loaded: Sequence[LoadedModel], criterion) -> Dict:
    """Run the attacks; returns ``{"records": [...], "n_evaluated", "n_selected", "search_start"}``."""
    from tqdm import tqdm

    device = torch.device("cuda" if torch.cuda.is_available() and not cfg.cpu else "cpu")
    attack_cfg = AttackConfig(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(AttackConfig)})
    attacks = []
    for item in loaded:
        item.model.to(device)
        attacks.append(EmbeddingAttack(item.model, criterion, attack_cfg))
    names = [item.name for item in loaded]
    ref_index = None
    search_start = None
    if cfg.eps_mode in ("search", "both"):
        matches = [k for k, item in enumerate(loaded) if cfg.reference in (item.name, item.path)]
        if len(matches) != 1:
            raise RobustnessError(f"--reference {cfg.reference!r} matches none of --names {names} or the checkpoint paths")
        ref_index = matches[0]
        search_start = cfg.search_start
        if search_start == 0:
            bound = training_norm_bound(loaded)
            if bound <= 0:
                raise RobustnessError(
                    "--search-start 0 takes the training norm bound from the checkpoints' --adv-max-norm, "
                    "but none has one: pass --search-start"
                )
            search_start = cfg.search_start_factor * bound
        logger.info("eps search from %.6g in %d linear levels, reference model %s", search_start, cfg.search_levels, names[ref_index])

    task.load_dataset(cfg.split)
    dataset = task.dataset(cfg.split)
    progress = not cfg.no_progress_bar
    selected, natural, evaluated = select_samples(dataset, attacks, cfg.batch_size, cfg.max_samples, device, progress)
    logger.info(
        "%d of the %d samples evaluated in split %s are classified correctly by all %d models",
        len(selected), evaluated, cfg.split, len(attacks),
    )
    records: List[SampleRecord] = []
    bar = tqdm(total=len(selected), desc="attack", unit="sample", disable=not progress, file=sys.stderr)
    # Batches of similar length waste less compute on padding; results do not depend on the grouping.
    order = sorted(selected, key=lambda i: (int(dataset.num_tokens(i)), i))
    for start in range(0, len(order), cfg.batch_size):
        indices = order[start : start + cfg.batch_size]
        sample = _move(dataset.collater([dataset[i] for i in indices]), device)
        ids = [int(i) for i in sample["id"].tolist()]
        batch_records = []
        for k, attack in enumerate(attacks):
            nat = torch.tensor([natural[i][k] for i in ids], dtype=torch.float64)
            # ||X||_F of this model's own (fine-tuned) embeddings: the ball is the model's own.
            norms = attack.embedding_norms(sample)
            rows = [SampleRecord(names[k], i, float(nat[j]), float(norms[j])) for j, i in enumerate(ids)]
            if cfg.eps_mode in ("ratio", "both"):
                result = attack.attack(sample, cfg.eps_ratio * norms, nat)
                for j, row in enumerate(rows):
                    row.eps = float(result.eps[j])
                    row.max_inc = float(result.max_increase[j])
                    row.restart_spread = float(result.restart_spread[j])
                    row.correct_after_attack = bool(result.correct_after[j])
            batch_records.append(rows)
        if ref_index is not None:
            ref_nat = torch.tensor([batch_records[ref_index][j].n_loss for j in range(len(ids))], dtype=torch.float64)
            eps_r, ref_result = search_eps(attacks[ref_index], sample, search_start, cfg.search_levels, ref_nat)
            for k, attack in enumerate(attacks):
                if k == ref_index:
                    result = ref_result
                else:
                    nat = torch.tensor([row.n_loss for row in batch_records[k]], dtype=torch.float64)
                    result = attack.attack(sample, eps_r, nat)
                for j, row in enumerate(batch_records[k]):
                    row.eps_r = float(result.eps[j])
                    row.max_inc_r = float(result.max_increase[j])
                    row.restart_spread_r = float(result.restart_spread[j])
                    row.correct_after_attack_r = bool(result.correct_after[j])
        for rows in batch_records:
            records.extend(rows)
        bar.update(len(indices))
    bar.close()
    records.sort(key=lambda r: (names.index(r.model), r.sample_id))
    return {
        "records": records,
        "names": names,
        "n_evaluated": evaluated,
        "n_selected": len(selected),
        "search_start": search_start,
        "reference": names[ref_index] if ref_index is not None else None,
    }


# --------------------------------------------------------------------------- outputs


def write_csv(records: Sequence[SampleRecord], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for r in records:
            row = dataclasses.asdict(r)
            writer.writerow({k: ("" if v is None else (repr(v) if isinstance(v, float) else v)) for k, v in row.items()})


def _values(records, name, column) -> np.ndarray:
    return np.array([getattr(r, column) for r in records if r.model == name and getattr(r, column) is not None], dtype=float)


def _fmt(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.4g}"


def summary_markdown(result: Dict, cfg: RobustnessConfig) -> str:
    """Tables 5 and 8 of the paper: median and standard deviation of DeltaL_max per model, with N-Loss."""
    records, names = result["records"], result["names"]
    columns = []
    if cfg.eps_mode in ("ratio", "both"):
        columns.append(("Max Inc", "max_inc"))
    if cfg.eps_mode in ("search", "both"):
        columns.append(("Max Inc (R)", "max_inc_r"))
    columns.append(("N-Loss", "n_loss"))
    lines = [
        f"Samples classified correctly by all {len(names)} models: {result['n_selected']} "
        f"of the {result['n_evaluated']} evaluated in split `{cfg.split}`.",
        "",
        f"Attack: {cfg.steps} PGD steps of size {cfg.step_size:g} ({cfg.norm} ball), {cfg.restarts} restart(s), seed {cfg.seed}.",
    ]
    if cfg.eps_mode in ("ratio", "both"):
        lines.append(f"Max Inc: eps = {cfg.eps_ratio:g} * ||X||_F per sample.")
    if result.get("reference"):
        lines.append(
            f"Max Inc (R): eps searched per sample from {result['search_start']:.4g} down in {cfg.search_levels} "
            f"linear levels until {result['reference']} classifies the sample correctly after the attack."
        )
    lines.append("Losses in nats (the criterion's per-sample loss).")
    for title, stat in (("Median (Table 5)", np.median), ("Standard deviation (Table 8)", np.std)):
        lines += ["", f"### {title}", "", "| Model | " + " | ".join(c for c, _ in columns) + " |"]
        lines.append("|---|" + "---:|" * len(columns))
        for name in names:
            cells = []
            for _, col in columns:
                v = _values(records, name, col)
                cells.append(_fmt(float(stat(v))) if v.size else "n/a")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    spread_cols = [(c, s) for c, s in (("Max Inc", "restart_spread"), ("Max Inc (R)", "restart_spread_r")) if any(c == x for x, _ in columns)]
    lines += ["", f"### Convergence of the restarts (max - min over {cfg.restarts} restart(s) of the attacked loss)", ""]
    lines.append("| Model | " + " | ".join(f"{c}: median spread | {c}: max spread | {c}: flipped" for c, _ in spread_cols) + " |")
    lines.append("|---|" + "---:|---:|---:|" * len(spread_cols))
    for name in names:
        cells = []
        for c, col in spread_cols:
            v = _values(records, name, col)
            flip_col = "correct_after_attack" if col == "restart_spread" else "correct_after_attack_r"
            flips = sum(1 for r in records if r.model == name and getattr(r, flip_col) is False)
            if cfg.restarts < 2:
                cells += ["n/a (1 restart)", "n/a (1 restart)"]
            else:
                cells += [_fmt(float(np.median(v))) if v.size else "n/a", _fmt(float(v.max())) if v.size else "n/a"]
            cells.append(str(flips))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_distribution(result: Dict, cfg: RobustnessConfig, path: Path) -> None:
    """Box plot (with the samples as points) of DeltaL_max per model, one panel per eps choice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records, names = result["records"], result["names"]
    panels = []
    if cfg.eps_mode in ("ratio", "both"):
        panels.append((f"Max Inc (eps = {cfg.eps_ratio:g}·||X||_F)", "max_inc"))
    if cfg.eps_mode in ("search", "both"):
        panels.append((f"Max Inc (R) (reference {result.get('reference')})", "max_inc_r"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 + 2 * len(names) * len(panels), 4), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, (title, col) in zip(axes[0], panels):
        data = [_values(records, name, col) for name in names]
        ax.boxplot([d if d.size else np.array([np.nan]) for d in data], showfliers=False)
        ax.set_xticks(range(1, len(names) + 1), names)
        for k, d in enumerate(data):
            ax.scatter(1 + k + rng.uniform(-0.15, 0.15, d.size), d, s=6, alpha=0.5)
        ax.set_title(title)
        ax.set_ylabel("DeltaL_max (nats)")
    fig.suptitle(f"{result['n_selected']} samples of split {cfg.split}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(result: Dict, cfg: RobustnessConfig) -> Dict[str, Path]:
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "samples.csv", "summary": out / "summary.md", "plot": out / "delta_loss.png"}
    write_csv(result["records"], paths["csv"])
    paths["summary"].write_text(summary_markdown(result, cfg))
    plot_distribution(result, cfg, paths["plot"])
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(
        format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
        level=os.environ.get("LOGLEVEL", "INFO").upper(),
        stream=sys.stderr,
        force=True,  # an import may already have configured the root logger
    )
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    try:
        cfg = parse_config(argv)
        names = cfg.names or default_names(cfg.checkpoints)
        cfg.names = list(names)
        task, criterion, loaded = load_models(cfg.checkpoints, names, cfg.data, cfg.criterion)
        torch.manual_seed(cfg.seed)
        result = analyse(cfg, task, loaded, criterion)
        if not result["records"]:
            raise RobustnessError(f"no sample of split {cfg.split} is classified correctly by all models: nothing to attack")
        paths = write_outputs(result, cfg)
    except RobustnessError as exc:
        print(f"fairseq_freelb.robustness: error: {exc}", file=sys.stderr)
        return 2
    print(paths["summary"].read_text())
    print(f"per-sample results: {paths['csv']}\nsummary: {paths['summary']}\nplot: {paths['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

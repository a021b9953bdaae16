"""The robustness command's flags: dataclass configs, the argparse parser built from them, and their checks.

Every flag is a field of :class:`AttackConfig` (the attack itself) or
:class:`RobustnessConfig` (what to attack and where to write), with its help
string in the field's metadata, as in fairseq's dataclass configs.
"""

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from fairseq_freelb.commands import CommandError
from fairseq_freelb.core.perturbation import NORM_TYPES

PROG = "python -m fairseq_freelb.robustness"
# The prefix of the one-line errors ("fairseq_freelb.robustness: error: ..."), as in the other commands.
COMMAND = "fairseq_freelb.robustness"

EPS_MODES = ("ratio", "search", "both")


class RobustnessError(CommandError, ValueError):
    """Bad input to the robustness command; printed as one line by :func:`fairseq_freelb.commands.run_command`."""


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
        prog=PROG,
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


def attack_config(cfg: RobustnessConfig) -> AttackConfig:
    """The attack's own settings out of the command's."""
    return AttackConfig(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(AttackConfig)})


def validate_config(cfg: RobustnessConfig) -> None:
    def need(ok, flag, rule, value):
        if not ok:
            raise RobustnessError(f"{flag} {rule}, got {value!r}")

    for name in ("step_size", "regression_tolerance", "eps_ratio", "search_start", "search_start_factor"):
        value = getattr(cfg, name)
        need(math.isfinite(value), "--" + name.replace("_", "-"), "must be a finite number", value)
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

"""The ``--adv-*`` flags shared by every adversarial criterion of the plugin.

Criterion configs inherit from :class:`AdversarialConfig`, so the flags appear
on the command line as soon as ``--criterion freelb_*`` is chosen, and work as
hydra overrides too (``criterion.adv_steps=3``).
"""

import dataclasses
import logging
import math
import os
from dataclasses import dataclass, field
from typing import List

from omegaconf import II

from fairseq_freelb.adapters.run_context import RunContextConfig
from fairseq_freelb.core import flag_rules
from fairseq_freelb.core.perturbation import NORM_TYPES
from fairseq_freelb.core.settings import ADV_METHODS, AdversarialConfigError, config_value  # noqa: F401  (AdversarialConfigError: public here too)

logger = logging.getLogger(__name__)

# fairseq's default --restore-file: resolved inside --save-dir, and a missing one means "start fresh".
FAIRSEQ_DEFAULT_RESTORE_FILE = "checkpoint_last.pt"
# Per-example norms square delta's entries in float32: a magnitude whose square
# overflows float32 makes the norm inf, and the projection then zeroes delta.
LARGEST_USABLE_MAGNITUDE = math.sqrt(3.4028234663852886e38)  # ~1.84e19


@dataclass
class AdversarialConfig(RunContextConfig):
    # --adv-method and --adv-norm-type are plain strings checked by
    # validate_adversarial_config, not ChoiceEnums: argparse answers a bad choice
    # with fairseq-train's whole usage (about 150 lines) before its error.
    adv_method: str = field(
        default="freelb",
        metadata={
            "help": "adversarial training method, one of {freelb,pgd,freeat,yopo,none}: freelb (Zhu et al. "
            "2020), pgd (Madry et al.), freeat (Shafahi et al.), yopo (Zhang et al.), or none (plain "
            "fine-tuning through the same code path)"
        },
    )
    adv_steps: int = field(
        default=1,
        metadata={
            "help": "K: forward/backward passes per minibatch (Algorithm 1). The official FreeLB "
            "launch scripts' --adv-steps m means m+1 passes here"
        },
    )
    adv_lr: float = field(
        default=0.0,
        metadata={"help": "alpha: ascent step delta += alpha * g / ||g|| (per-example norm)"},
    )
    adv_init_mag: float = field(
        default=0.0,
        metadata={
            "help": "M: delta_0 = U(-1,1) * M / sqrt(L*d) for l2, U(-M, M) for linf; 0 gives delta_0 = 0"
        },
    )
    adv_max_norm: float = field(
        default=0.0,
        metadata={"help": "epsilon: radius of the per-example ball delta is projected onto; 0 = unbounded"},
    )
    adv_norm_type: str = field(
        default="l2",
        metadata={"help": "norm of the perturbation ball and of the ascent normalisation, one of {l2,linf}"},
    )
    adv_begin_update: int = field(
        default=0,
        metadata={"help": "plain fine-tuning before this update number (official repo: adv-begin-iter)"},
    )
    adv_resample_dropout: bool = field(
        default=False,
        metadata={
            "help": "draw fresh dropout masks at every ascent pass (the paper's FreeLB-3* ablation); "
            "by default all passes of a minibatch reuse one set of masks"
        },
    )
    yopo_inner_steps: int = field(
        default=1,
        metadata={"help": "YOPO-m-n: n cheap ascent steps on the first block after each of the m full passes"},
    )
    adv_train_subset: str = field(
        default="train",
        metadata={"help": "with --adv-method freeat: the split whose batches are replayed (must equal --train-subset)"},
    )
    # fairseq's own --restore-file and --checkpoint-suffix, read through the same
    # interpolation fairseq's dataclasses use (e.g. II("common.seed")); no help
    # string, so fairseq adds no second command-line flag for them. Used by
    # RestoreFileGuard only.
    restore_file: str = II("checkpoint.restore_file")
    checkpoint_suffix: str = II("checkpoint.checkpoint_suffix")


_FLAG_FIELDS = tuple(flag_rules.INERT_RULES)
_FLOAT_FIELDS = ("adv_lr", "adv_init_mag", "adv_max_norm")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _values(cfg) -> dict:
    """The ``--adv-*`` values of ``cfg`` as plain Python values (enums and strings unwrapped)."""
    return {
        "adv_method": str(cfg.adv_method),
        "adv_steps": int(cfg.adv_steps),
        "adv_lr": float(cfg.adv_lr),
        "adv_init_mag": float(cfg.adv_init_mag),
        "adv_max_norm": float(cfg.adv_max_norm),
        "adv_norm_type": str(cfg.adv_norm_type),
        "adv_resample_dropout": bool(cfg.adv_resample_dropout),
        "yopo_inner_steps": int(cfg.yopo_inner_steps),
        "adv_begin_update": int(cfg.adv_begin_update),
        "adv_train_subset": str(getattr(cfg, "adv_train_subset", "train")),
    }


def _defaults() -> dict:
    fields = {f.name: f for f in dataclasses.fields(AdversarialConfig)}
    return {name: fields[name].default for name in _FLAG_FIELDS}


def inert_flags(cfg) -> List[flag_rules.InertFlag]:
    """The ``--adv-*`` flags of ``cfg`` set away from their defaults that cannot act (:mod:`flag_rules`).

    For callers that sweep methods and K over one flag set (the benchmark):
    resetting these to their defaults changes nothing about training.
    """
    return flag_rules.inert_flags(_values(cfg), _defaults())


def validate_adversarial_config(cfg) -> None:
    """Refuse bad ``--adv-*`` values in one line that names the flag; log what deserves a warning.

    In order:

    1. every value is in range; the float flags are finite and below
       :data:`LARGEST_USABLE_MAGNITUDE` (issue 12, item 16);
    2. no flag was set that cannot act at this method and K
       (:mod:`fairseq_freelb.core.flag_rules`, item 15); with ``--adv-method none``
       such flags are only logged, since it ignores every ``--adv-*`` flag by
       definition;
    3. a warning when the ball is the only bound: ``--adv-lr`` >= ``--adv-max-norm``
       (one ascent step from 0 reaches the sphere, so the projection sets
       ||delta||), or a delta_0 whose typical norm already lies outside the ball.
    """

    def need(ok: bool, flag: str, rule: str, value) -> None:
        if not ok:
            raise AdversarialConfigError(f"{flag} {rule}, got {value!r}")

    method = str(cfg.adv_method)
    need(method in ADV_METHODS, "--adv-method", f"must be one of {', '.join(ADV_METHODS)}", method)
    need(int(cfg.adv_steps) >= 1, "--adv-steps", "must be >= 1", cfg.adv_steps)
    for name in _FLOAT_FIELDS:
        value = float(getattr(cfg, name))
        need(math.isfinite(value), _flag(name), "must be a finite number", value)
        need(
            abs(value) < LARGEST_USABLE_MAGNITUDE,
            _flag(name),
            f"must be below {LARGEST_USABLE_MAGNITUDE:.3g} (its square must fit in float32, where "
            "per-example norms are computed)",
            value,
        )
        need(value >= 0, _flag(name), "must be >= 0", value)
    need(str(cfg.adv_norm_type) in NORM_TYPES, "--adv-norm-type", f"must be {' or '.join(NORM_TYPES)}", str(cfg.adv_norm_type))
    need(int(cfg.adv_begin_update) >= 0, "--adv-begin-update", "must be >= 0", cfg.adv_begin_update)
    need(int(cfg.yopo_inner_steps) >= 1, "--yopo-inner-steps", "must be >= 1", cfg.yopo_inner_steps)

    values = _values(cfg)
    inert = inert_flags(cfg)
    if inert and method == "none":
        logger.info("--adv-method none: ignoring %s (plain fine-tuning)", ", ".join(item.flag for item in inert))
    elif inert:
        raise AdversarialConfigError(flag_rules.describe(inert))
    else:
        _warn_if_only_the_ball_bounds(values)


def _warn_if_only_the_ball_bounds(v: dict) -> None:
    eps, alpha, init, norm = v["adv_max_norm"], v["adv_lr"], v["adv_init_mag"], v["adv_norm_type"]
    if eps == 0 or v["adv_method"] == "none":
        return
    if alpha >= eps:
        logger.warning(
            "--adv-lr %g >= --adv-max-norm %g: a single ascent step from delta = 0 already reaches the ball's "
            "surface, so the projection, not the step size, sets ||delta||",
            alpha,
            eps,
        )
    # E||delta_0||_2^2 = M^2/3 for l2 (perturbation.init_delta); every entry reaches ~M for linf.
    typical = init / math.sqrt(3) if norm == "l2" else init
    if typical > eps:
        logger.warning(
            "--adv-init-mag %g draws a delta_0 of typical %s norm %.3g, outside --adv-max-norm %g: the first "
            "pass runs outside the ball (delta_0 is not projected) and only the projection bounds later passes",
            init,
            norm,
            typical,
            eps,
        )


class RestoreFileGuard:
    """Refuses an explicit ``--restore-file`` that fairseq would not find (issue 12, item 21).

    fairseq's ``checkpoint_utils.load_checkpoint`` loads
    ``<save-dir>/checkpoint_last<suffix>.pt`` when ``--restore-file`` is its
    default ``checkpoint_last.pt``, where a missing file means a first launch;
    any other value is loaded as ``restore_file.replace(".pt", suffix + ".pt")``,
    and when that file does not exist fairseq logs "No existing checkpoint
    found" and trains from random initialisation. The guard applies the same
    rule and raises instead.

    It is built with the criterion but checks only when training is about to
    start: when the task builds the batch iterator of ``--train-subset``
    (fairseq-train does that right after trying to load the checkpoint, before
    any worker thread, update or save), or at the latest in the criterion's
    ``train()``, which fairseq's Trainer calls before every training step. A
    criterion rebuilt from a checkpoint's saved config to evaluate it
    (fairseq-validate, robustness) still carries the training run's
    ``--restore-file``, which need not exist where the evaluation runs, and
    never iterates the training split. A config built outside fairseq-train,
    whose interpolation has nothing to resolve against, disables the guard.
    """

    def __init__(self, cfg):
        self.path = self._path(cfg)
        self.train_subset = config_value(cfg, "train_subset", "train")

    @staticmethod
    def _path(cfg):
        try:
            restore_file = getattr(cfg, "restore_file", None)
            suffix = getattr(cfg, "checkpoint_suffix", "") or ""
        except Exception:  # an interpolation with no fairseq config to resolve against
            return None
        if not isinstance(restore_file, str) or restore_file.startswith("${"):
            return None
        if not isinstance(suffix, str) or suffix.startswith("${"):
            suffix = ""
        if restore_file in ("", FAIRSEQ_DEFAULT_RESTORE_FILE):
            return None
        return restore_file.replace(".pt", suffix + ".pt")

    def check(self) -> None:
        """Raise :class:`AdversarialConfigError` once if the file is missing; later calls do nothing."""
        path, self.path = self.path, None
        if path is None:
            return
        from fairseq.file_io import PathManager

        if not PathManager.isfile(path):
            what = "is a folder, not a checkpoint file" if os.path.isdir(path) else "does not exist"
            where = "" if os.path.isabs(path) else f" (in {os.getcwd()})"
            raise AdversarialConfigError(
                f"--restore-file {path}{where} {what}: fairseq would train from random initialisation; "
                "give an existing checkpoint, or leave --restore-file out to start from scratch"
            )

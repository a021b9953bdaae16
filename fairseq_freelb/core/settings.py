"""The adversary's settings: the one definition of the ``--adv-*`` flags, validated when built.

Like a ``torch.optim`` optimizer checking its hyper-parameters in its
constructor, :class:`AdversarySettings` refuses a bad value, or a flag that
cannot act at this method and K (:mod:`~fairseq_freelb.core.flag_rules`), when
it is built, in one line that names the flag. Each ``--adv-*`` flag is one
field here, declared with :func:`adv_flag` (its config name, default and help);
:data:`ADV_FLAGS` lists them. The adapters derive their configs from it: the
fairseq dataclass (:mod:`fairseq_freelb.adapters.config`) and the Hugging Face
arguments (:mod:`fairseq_freelb.hf`). Adding a flag means adding one field
here plus the code that uses it.
"""

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Optional, Tuple

import torch

from fairseq_freelb.core import flag_rules
from fairseq_freelb.core.errors import AdversarialConfigError
from fairseq_freelb.core.perturbation import NORM_TYPES

logger = logging.getLogger(__name__)

# The methods an Adversary runs (``--adv-method``); adversary.METHODS maps each to its step.
ADV_METHODS = ("freelb", "pgd", "freeat", "yopo", "none")

# ``--amp-dtype``: the autocast dtype of the plugin's passes under ``--amp``.
AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}

# Per-example norms square delta's entries in float32: a magnitude whose square
# overflows float32 makes the norm inf, and the projection then zeroes delta.
LARGEST_USABLE_MAGNITUDE = math.sqrt(torch.finfo(torch.float32).max)  # ~1.84e19

_FLOAT_FLAGS = ("adv_lr", "adv_init_mag", "adv_max_norm")


def adv_flag(name: str, default, help: str):
    """A settings field that is the ``--adv-*`` flag ``name`` (config field name, e.g. ``adv_steps``)."""
    return field(default=default, metadata={"flag": name, "help": help})


class FlagSpec(NamedTuple):
    """One ``--adv-*`` flag: its config field name, the settings attribute, type, default and help."""

    name: str
    attribute: str
    type: type
    default: Any
    help: str

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class AdversarySettings:
    """The ``--adv-*`` flags (and the run's mixed precision) as the adversary uses them; validated when built."""

    method: str = adv_flag(
        "adv_method", "freelb",
        "adversarial training method, one of {freelb,pgd,freeat,yopo,none}: freelb (Zhu et al. 2020), pgd (Madry "
        "et al.), freeat (Shafahi et al.), yopo (Zhang et al.), or none (plain fine-tuning through the same code path)",
    )
    steps: int = adv_flag(
        "adv_steps", 1,
        "K: forward/backward passes per minibatch (Algorithm 1). The official FreeLB launch scripts' "
        "--adv-steps m means m+1 passes here",
    )
    lr: float = adv_flag("adv_lr", 0.0, "alpha: ascent step delta += alpha * g / ||g|| (per-example norm)")
    init_mag: float = adv_flag(
        "adv_init_mag", 0.0,
        "M: delta_0 = U(-1,1) * M / sqrt(L*d) for l2, U(-M, M) for linf; 0 gives delta_0 = 0",
    )
    max_norm: float = adv_flag(
        "adv_max_norm", 0.0, "epsilon: radius of the per-example ball delta is projected onto; 0 = unbounded"
    )
    norm_type: str = adv_flag(
        "adv_norm_type", "l2", "norm of the perturbation ball and of the ascent normalisation, one of {l2,linf}"
    )
    begin_update: int = adv_flag(
        "adv_begin_update", 0, "plain fine-tuning before this update number (official repo: adv-begin-iter)"
    )
    resample_dropout: bool = adv_flag(
        "adv_resample_dropout", False,
        "draw fresh dropout masks at every ascent pass (the paper's FreeLB-3* ablation); by default all passes "
        "of a minibatch reuse one set of masks",
    )
    yopo_inner_steps: int = adv_flag(
        "yopo_inner_steps", 1, "YOPO-m-n: n cheap ascent steps on the first block after each of the m full passes"
    )
    train_subset: str = adv_flag(
        "adv_train_subset", "train",
        "with --adv-method freeat: the split whose batches are replayed (must equal --train-subset)",
    )
    # Not --adv-* flags: the run's mixed precision, which the adapter knows (validated there).
    amp_dtype: str = "fp16"
    amp: bool = False  # fairseq's --amp (validation autocasts only with bf16)

    def __post_init__(self):
        validate(self)

    @classmethod
    def from_flags(cls, values: Mapping[str, Any], **run_settings) -> "AdversarySettings":
        """Build from config field names (``{"adv_steps": 3, ...}``); absent flags keep their defaults.

        ``run_settings`` are the non-flag fields (``amp``, ``amp_dtype``).
        """
        kwargs = {spec.attribute: spec.type(values[spec.name]) for spec in ADV_FLAGS if spec.name in values}
        return cls(**kwargs, **run_settings)

    def flag_values(self) -> dict:
        """``{config field name: value}`` of every ``--adv-*`` flag."""
        return {spec.name: getattr(self, spec.attribute) for spec in ADV_FLAGS}

    def train_autocast_dtype(self, amp_optimizer: bool, device: torch.device) -> Optional[torch.dtype]:
        """The dtype the training passes autocast to, or None.

        fp16 autocast runs exactly where fairseq's own train_step runs it
        (``--amp``, i.e. an AMPOptimizer, on CUDA); bf16 (``--amp --amp-dtype
        bf16``) on any device, CPU autocast included.
        """
        if not amp_optimizer:
            return None
        if self.amp_dtype == "bf16":
            return AMP_DTYPES["bf16"]
        return AMP_DTYPES["fp16"] if device.type == "cuda" else None

    def valid_autocast_dtype(self) -> Optional[torch.dtype]:
        """bf16 validates under the autocast it trained with; fairseq's fp16 ``--amp`` validates in fp32 as before."""
        return AMP_DTYPES["bf16"] if self.amp and self.amp_dtype == "bf16" else None


ADV_FLAGS: Tuple[FlagSpec, ...] = tuple(
    FlagSpec(f.metadata["flag"], f.name, f.type, f.default, f.metadata["help"])
    for f in dataclasses.fields(AdversarySettings)
    if "flag" in f.metadata
)
FLAG_DEFAULTS = {spec.name: spec.default for spec in ADV_FLAGS}
if set(flag_rules.INERT_RULES) != set(FLAG_DEFAULTS):
    raise ImportError(f"flag_rules.INERT_RULES {sorted(flag_rules.INERT_RULES)} must have a rule for each of {sorted(FLAG_DEFAULTS)}")


def inert_flags(values: Mapping[str, Any]):
    """The flags of ``values`` (config field names) set away from their defaults that cannot act.

    For callers that sweep methods and K over one flag set (the benchmark):
    resetting these to their defaults changes nothing about training.
    """
    return flag_rules.inert_flags(dict(FLAG_DEFAULTS, **values), FLAG_DEFAULTS)


def validate(settings: AdversarySettings) -> None:
    """Refuse bad ``--adv-*`` values in one line that names the flag; log what deserves a warning.

    In order:

    1. every value is in range; the float flags are finite and below
       :data:`LARGEST_USABLE_MAGNITUDE`;
    2. no flag was set that cannot act at this method and K
       (:mod:`~fairseq_freelb.core.flag_rules`); with ``--adv-method none``
       such flags are only logged, since it ignores every ``--adv-*`` flag by
       definition;
    3. warnings: K passes with delta fixed at 0 (a control run at K times the
       cost); ``--adv-lr`` >= ``--adv-max-norm`` (one ascent step from 0
       reaches the sphere, so the projection sets ||delta||); a delta_0 whose
       typical norm already lies outside the ball.
    """
    values = settings.flag_values()

    def need(ok: bool, name: str, rule: str) -> None:
        if not ok:
            raise AdversarialConfigError(f"--{name.replace('_', '-')} {rule}, got {values[name]!r}")

    need(settings.method in ADV_METHODS, "adv_method", f"must be one of {', '.join(ADV_METHODS)}")
    need(settings.steps >= 1, "adv_steps", "must be >= 1")
    for name in _FLOAT_FLAGS:
        value = values[name]
        need(math.isfinite(value), name, "must be a finite number")
        need(
            abs(value) < LARGEST_USABLE_MAGNITUDE,
            name,
            f"must be below {LARGEST_USABLE_MAGNITUDE:.3g} (its square must fit in float32, where per-example norms "
            "are computed)",
        )
        need(value >= 0, name, "must be >= 0")
    need(settings.norm_type in NORM_TYPES, "adv_norm_type", f"must be {' or '.join(NORM_TYPES)}")
    need(settings.begin_update >= 0, "adv_begin_update", "must be >= 0")
    need(settings.yopo_inner_steps >= 1, "yopo_inner_steps", "must be >= 1")

    inert = flag_rules.inert_flags(values, FLAG_DEFAULTS)
    if inert and settings.method == "none":
        logger.info("--adv-method none: ignoring %s (plain fine-tuning)", ", ".join(item.flag for item in inert))
    elif inert:
        raise AdversarialConfigError(flag_rules.describe(inert))
    elif settings.method != "none":
        _warn_about_weak_settings(settings)


def _warn_about_weak_settings(s: AdversarySettings) -> None:
    if s.method in ("freelb", "pgd", "yopo") and s.lr == 0 and s.init_mag == 0 and s.steps >= 2:
        passes = flag_rules.passes_per_minibatch(s.method, s.steps)
        logger.warning(
            "--adv-steps %d with --adv-lr 0 and --adv-init-mag 0: %d passes per update with delta fixed at 0, "
            "%d times the cost of plain fine-tuning and no adversary (a control run); set --adv-lr (and "
            "--adv-init-mag) to train adversarially",
            s.steps, passes, passes,
        )
    if s.max_norm == 0:
        return
    if s.lr >= s.max_norm:
        logger.warning(
            "--adv-lr %g >= --adv-max-norm %g: a single ascent step from delta = 0 already reaches the ball's "
            "surface, so the projection, not the step size, sets ||delta||",
            s.lr, s.max_norm,
        )
    # E||delta_0||_2^2 = M^2/3 for l2 (perturbation.init_delta); every entry reaches ~M for linf.
    typical = s.init_mag / math.sqrt(3) if s.norm_type == "l2" else s.init_mag
    if typical > s.max_norm:
        logger.warning(
            "--adv-init-mag %g draws a delta_0 of typical %s norm %.3g, outside --adv-max-norm %g: the first "
            "pass runs outside the ball (delta_0 is not projected) and only the projection bounds later passes",
            s.init_mag, s.norm_type, typical, s.max_norm,
        )

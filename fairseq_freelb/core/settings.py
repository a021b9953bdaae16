"""What an :class:`~fairseq_freelb.core.adversary.Adversary` is configured with, converted once from the flags.

The ``--adv-*`` flags arrive as a fairseq/OmegaConf config
(:class:`fairseq_freelb.adapters.config.AdversarialConfig`); the adversary reads
them once, into the frozen :class:`AdversarySettings`, so that no method looks
a flag up by name while it trains.
"""

from dataclasses import dataclass
from typing import Optional

import torch

from fairseq_freelb.core.errors import AdversarialConfigError  # noqa: F401  (re-exported: its old home)

# The methods an Adversary runs (``--adv-method``); adversary.METHODS maps each to its step.
ADV_METHODS = ("freelb", "pgd", "freeat", "yopo", "none")

# ``--amp-dtype``: the autocast dtype of the plugin's passes under ``--amp``.
AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def config_value(cfg, name: str, default):
    """``cfg.name``, or ``default`` where the field is absent or an unresolvable interpolation.

    Fields such as ``II("common.amp")`` resolve inside fairseq's full config; a
    criterion config built on its own (a test, ``robustness --criterion``) has
    no ``common`` to resolve them against.
    """
    from omegaconf import OmegaConf

    if OmegaConf.is_config(cfg):
        value = OmegaConf.select(cfg, name, default=default, throw_on_resolution_failure=False)
    else:
        value = getattr(cfg, name, default)
    if isinstance(value, str) and value.startswith("${"):
        return default
    return default if value is None else value


@dataclass(frozen=True)
class AdversarySettings:
    """The ``--adv-*`` flags (and ``--amp-dtype``) as the adversary uses them."""

    method: str = "freelb"
    steps: int = 1  # K
    lr: float = 0.0  # alpha
    init_mag: float = 0.0  # M
    max_norm: float = 0.0  # epsilon; 0 = unbounded
    norm_type: str = "l2"
    begin_update: int = 0
    resample_dropout: bool = False
    yopo_inner_steps: int = 1
    train_subset: str = "train"  # FreeAT: the split whose batches are replayed
    amp_dtype: str = "fp16"
    amp: bool = False  # fairseq's --amp (validation autocasts only with bf16)

    @classmethod
    def from_config(cls, cfg) -> "AdversarySettings":
        return cls(
            method=str(cfg.adv_method),
            steps=int(cfg.adv_steps),
            lr=float(cfg.adv_lr),
            init_mag=float(cfg.adv_init_mag),
            max_norm=float(cfg.adv_max_norm),
            norm_type=str(cfg.adv_norm_type),
            begin_update=int(cfg.adv_begin_update),
            resample_dropout=bool(cfg.adv_resample_dropout),
            yopo_inner_steps=int(cfg.yopo_inner_steps),
            train_subset=str(cfg.adv_train_subset),
            amp_dtype=str(config_value(cfg, "amp_dtype", "fp16")),
            amp=bool(config_value(cfg, "amp", False)),
        )

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

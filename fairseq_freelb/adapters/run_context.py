"""What the adversary must know of fairseq's own settings, and the combinations it refuses.

The criterion config sees fairseq's ``common``/``dataset``/``optimization``
settings through OmegaConf interpolations (``II("common.amp")``), which are
not command-line flags. :func:`validate_run_context` refuses, in one line and
before anything is trained:

* ``--amp-dtype bf16`` without ``--amp``, with ``--fp16`` / ``--bf16``, or on a
  CUDA device without bf16 support;
* ``--adv-method freeat`` with ``--update-freq`` other than 1, or with a
  ``--train-subset`` other than ``--adv-train-subset`` (its batches would not
  be replayed).
"""

from dataclasses import dataclass, field
from typing import Any

import torch
from fairseq.dataclass import FairseqDataclass
from omegaconf import II, OmegaConf

from fairseq_freelb.core.errors import AdversarialConfigError
from fairseq_freelb.core.settings import AMP_DTYPES


def config_value(cfg, name: str, default):
    """``cfg.name``, or ``default`` where the field is absent or an unresolvable interpolation.

    Fields such as ``II("common.amp")`` resolve inside fairseq's full config; a
    criterion config built on its own (a test, ``robustness --criterion``) has
    no ``common`` to resolve them against.
    """
    if OmegaConf.is_config(cfg):
        value = OmegaConf.select(cfg, name, default=default, throw_on_resolution_failure=False)
    else:
        value = getattr(cfg, name, default)
    if isinstance(value, str) and value.startswith("${"):
        return default
    return default if value is None else value


@dataclass
class RunContextConfig(FairseqDataclass):
    # A plain string checked by validate_run_context (like --adv-method): argparse
    # would answer a bad choice with fairseq-train's whole usage before its error.
    amp_dtype: str = field(
        default="fp16",
        metadata={
            "help": "fp16 or bf16; with --amp: the autocast dtype of the plugin's training passes (and, for bf16, of validation). "
            "bf16 is mixed precision on CUDA (Ampere or newer) or CPU; fairseq's own --bf16 means TPU"
        },
    )
    # fairseq's settings, read (never set) through interpolation; no help string, so no command-line flag.
    amp: bool = II("common.amp")
    fp16: bool = II("common.fp16")
    bf16: bool = II("common.bf16")
    cpu: bool = II("common.cpu")
    train_subset: str = II("dataset.train_subset")
    update_freq: Any = II("optimization.update_freq")


def validate_run_context(cfg) -> None:
    """Refuse the combinations of the module docstring, naming the flags."""
    amp_dtype = str(config_value(cfg, "amp_dtype", "fp16"))
    if amp_dtype not in AMP_DTYPES:
        raise AdversarialConfigError(f"--amp-dtype must be one of {', '.join(AMP_DTYPES)}, got {amp_dtype!r}")
    if amp_dtype == "bf16":
        if not config_value(cfg, "amp", False):
            raise AdversarialConfigError("--amp-dtype bf16 needs --amp (mixed precision with bf16 autocast)")
        for flag in ("fp16", "bf16"):
            if config_value(cfg, flag, False):
                raise AdversarialConfigError(f"--amp-dtype bf16 cannot be combined with --{flag}; use --amp --amp-dtype bf16 alone")
        on_cuda = torch.cuda.is_available() and not config_value(cfg, "cpu", False)
        if on_cuda and not torch.cuda.is_bf16_supported():
            raise AdversarialConfigError(
                f"--amp-dtype bf16: {torch.cuda.get_device_name()} does not support bf16; use --amp-dtype fp16 or --cpu"
            )
    if str(cfg.adv_method) != "freeat":
        return
    update_freq = config_value(cfg, "update_freq", [1])
    update_freq = [update_freq] if isinstance(update_freq, (int, str)) else list(update_freq)
    if any(int(u) != 1 for u in update_freq):
        raise AdversarialConfigError(
            f"--adv-method freeat needs --update-freq 1 (each replay is one update), got --update-freq "
            f"{','.join(str(u) for u in update_freq)}"
        )
    train_subset = config_value(cfg, "train_subset", None)
    if train_subset is not None and str(train_subset) != str(cfg.adv_train_subset):
        raise AdversarialConfigError(
            f"--adv-method freeat replays the batches of --adv-train-subset {cfg.adv_train_subset}, but "
            f"--train-subset is {train_subset}; set --adv-train-subset {train_subset}"
        )

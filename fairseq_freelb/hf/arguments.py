"""``AdversarialArguments``: the ``--adv-*`` settings of :class:`~fairseq_freelb.hf.trainer.AdversarialTrainer`.

The fields carry the names of the fairseq flags (``adv_method``, ``adv_steps``,
...), their defaults and their help, so ``HfArgumentParser`` offers
``--adv-steps 3`` (and ``--adv_steps 3``) and a flag means the same thing in
both adapters. :func:`to_settings` turns them into the core's
:class:`~fairseq_freelb.core.settings.AdversarySettings`, refusing a bad or
inert value with the same one line that ``fairseq-train`` prints.
"""

import dataclasses
from dataclasses import dataclass, field

from fairseq_freelb.core.errors import AdversarialConfigError
from fairseq_freelb.core.settings import ADV_FLAGS, AdversarySettings

# The methods the Trainer adapter runs, and why the others are refused.
SUPPORTED_METHODS = ("freelb", "pgd", "none")
REFUSED_METHODS = {
    "freeat": (
        "--adv-method freeat replays every minibatch K times as K optimizer updates, but transformers' Trainer "
        "owns the batch loop and takes one optimizer step per batch; use --adv-method freelb or pgd with "
        "AdversarialTrainer (or fairseq-train for freeat)"
    ),
    "yopo": (
        "--adv-method yopo ascends on the output of the model's first transformer block, which transformers "
        "models do not expose under one name (encoder.layer[0], transformer.layer[0], albert_layer_groups[0]...); "
        "use --adv-method freelb or pgd with AdversarialTrainer (or fairseq-train for yopo)"
    ),
}


_FLAGS = {spec.name: spec for spec in ADV_FLAGS}
# The flags of the fairseq adapter alone: FreeAT's replayed split, YOPO's inner steps (both methods are refused here).
FAIRSEQ_ONLY_FLAGS = ("adv_train_subset", "yopo_inner_steps")


# Where the fairseq help speaks of the fairseq launch scripts, the Trainer's users need the Hugging Face ones.
_HELP = {
    "adv_steps": "K: forward/backward passes per minibatch (Algorithm 1); the official FreeLB Hugging Face scripts' "
    "--adv-steps is the same K (their fairseq scripts' --adv-steps m is m+1)",
}


def _field(name: str):
    spec = _FLAGS[name]
    return field(default=spec.default, metadata={"help": _HELP.get(name, spec.help)})


@dataclass
class AdversarialArguments:
    """The adversarial settings, under the names of the fairseq flags (``--adv-steps 3`` on a command line).

    FreeLB (Zhu et al., ICLR 2020, Algorithm 1): ``adv_steps`` = K passes per
    minibatch, ``adv_lr`` = alpha, ``adv_init_mag`` = the random start's
    magnitude, ``adv_max_norm`` = epsilon (0: unbounded). The official FreeLB
    Hugging Face scripts' ``--adv-steps K`` is the same K.
    """

    adv_method: str = _field("adv_method")
    adv_steps: int = _field("adv_steps")
    adv_lr: float = _field("adv_lr")
    adv_init_mag: float = _field("adv_init_mag")
    adv_max_norm: float = _field("adv_max_norm")
    adv_norm_type: str = _field("adv_norm_type")
    adv_begin_update: int = _field("adv_begin_update")
    adv_resample_dropout: bool = _field("adv_resample_dropout")


def to_settings(args: AdversarialArguments, amp: bool = False, amp_dtype: str = "fp16") -> AdversarySettings:
    """The core's settings for ``args``; raises :class:`AdversarialConfigError` (one line) for a bad or inert value.

    The checks are the core's, with fairseq-train's messages; then a method the
    Trainer cannot run (FreeAT, YOPO) is refused, saying why.
    """
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(AdversarialArguments)}
    settings = AdversarySettings.from_flags(values, amp=amp, amp_dtype=amp_dtype)
    if settings.method in REFUSED_METHODS:
        raise AdversarialConfigError(REFUSED_METHODS[settings.method])
    return settings

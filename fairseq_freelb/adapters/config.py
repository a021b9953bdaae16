"""The ``--adv-*`` flags shared by every adversarial criterion of the plugin.

Criterion configs inherit from :class:`AdversarialConfig`, so the flags appear
on the command line as soon as ``--criterion freelb_*`` is chosen, and work as
hydra overrides too (``criterion.adv_steps=3``).
"""

from dataclasses import dataclass, field

from fairseq.dataclass import ChoiceEnum

from fairseq_freelb.adapters.run_context import RunContextConfig
from fairseq_freelb.core.perturbation import NORM_TYPES
from fairseq_freelb.core.settings import ADV_METHODS, AdversarialConfigError  # noqa: F401  (AdversarialConfigError: public here too)

AdvMethod = ChoiceEnum(list(ADV_METHODS))
NormType = ChoiceEnum(list(NORM_TYPES))


@dataclass
class AdversarialConfig(RunContextConfig):
    adv_method: AdvMethod = field(
        default="freelb",
        metadata={
            "help": "adversarial training method: freelb (Zhu et al. 2020), pgd (Madry et al.), "
            "freeat (Shafahi et al.), yopo (Zhang et al.), or none (plain fine-tuning through "
            "the same code path)"
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
    adv_norm_type: NormType = field(
        default="l2",
        metadata={"help": "norm of the perturbation ball and of the ascent normalisation"},
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


def validate_adversarial_config(cfg) -> None:
    """Reject bad ``--adv-*`` values with a message that names the flag."""

    def need(ok: bool, flag: str, rule: str, value) -> None:
        if not ok:
            raise AdversarialConfigError(f"{flag} {rule}, got {value!r}")

    method = str(cfg.adv_method)
    need(method in ADV_METHODS, "--adv-method", f"must be one of {', '.join(ADV_METHODS)}", method)
    need(int(cfg.adv_steps) >= 1, "--adv-steps", "must be >= 1", cfg.adv_steps)
    need(float(cfg.adv_lr) >= 0, "--adv-lr", "must be >= 0", cfg.adv_lr)
    need(float(cfg.adv_init_mag) >= 0, "--adv-init-mag", "must be >= 0", cfg.adv_init_mag)
    need(float(cfg.adv_max_norm) >= 0, "--adv-max-norm", "must be >= 0", cfg.adv_max_norm)
    need(str(cfg.adv_norm_type) in NORM_TYPES, "--adv-norm-type", f"must be {' or '.join(NORM_TYPES)}", str(cfg.adv_norm_type))
    need(int(cfg.adv_begin_update) >= 0, "--adv-begin-update", "must be >= 0", cfg.adv_begin_update)
    need(int(cfg.yopo_inner_steps) >= 1, "--yopo-inner-steps", "must be >= 1", cfg.yopo_inner_steps)

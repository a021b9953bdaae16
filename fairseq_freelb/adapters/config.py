"""The ``--adv-*`` flags shared by every adversarial criterion of the plugin, as a fairseq dataclass config.

Criterion configs inherit from :class:`AdversarialConfig`, so the flags appear
on the command line as soon as ``--criterion freelb_*`` is chosen, and work as
hydra overrides too (``criterion.adv_steps=3``). Its ``--adv-*`` fields are
derived from the one definition of the flags,
:class:`fairseq_freelb.core.settings.AdversarySettings` (name, type, default,
help): a flag is added there, never here. The settings validate themselves;
this module only reads fairseq's config into them.
"""

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import List

from fairseq.file_io import PathManager
from omegaconf import II

from fairseq_freelb.adapters.run_context import RunContextConfig, config_value
from fairseq_freelb.core import flag_rules, settings
from fairseq_freelb.core.errors import AdversarialConfigError  # noqa: F401  (public here too)
from fairseq_freelb.core.settings import AdversarySettings

logger = logging.getLogger(__name__)

# fairseq's default --restore-file: resolved inside --save-dir, and a missing one means "start fresh".
FAIRSEQ_DEFAULT_RESTORE_FILE = "checkpoint_last.pt"


@dataclass
class _FairseqSettingsConfig(RunContextConfig):
    # fairseq's own --restore-file and --checkpoint-suffix, read through the same
    # interpolation fairseq's dataclasses use (e.g. II("common.seed")); no help
    # string, so fairseq adds no second command-line flag for them. Used by
    # RestoreFileGuard only.
    restore_file: str = II("checkpoint.restore_file")
    checkpoint_suffix: str = II("checkpoint.checkpoint_suffix")


# --adv-method and --adv-norm-type are plain strings checked by AdversarySettings,
# not ChoiceEnums: argparse answers a bad choice with fairseq-train's whole usage
# (about 150 lines) before its error.
AdversarialConfig = dataclasses.make_dataclass(
    "AdversarialConfig",
    [(spec.name, spec.type, field(default=spec.default, metadata={"help": spec.help})) for spec in settings.ADV_FLAGS],
    bases=(_FairseqSettingsConfig,),
)
AdversarialConfig.__module__ = __name__
AdversarialConfig.__doc__ = "The ``--adv-*`` flags of every ``freelb_*`` criterion (from ``core.settings.ADV_FLAGS``)."


def flag_values(cfg) -> dict:
    """The ``--adv-*`` values of ``cfg`` as plain Python values (enums and strings unwrapped)."""
    return {
        spec.name: spec.type(config_value(cfg, spec.name, spec.default)) for spec in settings.ADV_FLAGS
    }


def adversary_settings(cfg) -> AdversarySettings:
    """The validated settings of a criterion config (raises :class:`AdversarialConfigError` in one line)."""
    return AdversarySettings.from_flags(
        flag_values(cfg),
        amp_dtype=str(config_value(cfg, "amp_dtype", "fp16")),
        amp=bool(config_value(cfg, "amp", False)),
    )


def inert_flags(cfg) -> List[flag_rules.InertFlag]:
    """The ``--adv-*`` flags of ``cfg`` set away from their defaults that cannot act (:mod:`flag_rules`)."""
    return settings.inert_flags(flag_values(cfg))


def validate_adversarial_config(cfg) -> None:
    """Refuse bad ``--adv-*`` values of ``cfg`` in one line (:func:`fairseq_freelb.core.settings.validate`)."""
    adversary_settings(cfg)


class RestoreFileGuard:
    """Refuses an explicit ``--restore-file`` that fairseq would not find.

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
        if not PathManager.isfile(path):
            what = "is a folder, not a checkpoint file" if os.path.isdir(path) else "does not exist"
            where = "" if os.path.isabs(path) else f" (in {os.getcwd()})"
            raise AdversarialConfigError(
                f"--restore-file {path}{where} {what}: fairseq would train from random initialisation; "
                "give an existing checkpoint, or leave --restore-file out to start from scratch"
            )

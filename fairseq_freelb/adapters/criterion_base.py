"""The fairseq base class of the plugin's criteria: the criterion contract, built and attached once.

A subclass implements ``forward`` and ``adversarial_inputs(sample)`` (and, if
it needs to, ``adversarial_masks(sample, masks)``), the contract of
:mod:`fairseq_freelb.core.contract`. Constructing it validates the
``--adv-*`` flags against fairseq's settings, builds ``self.adversary``
(and the guard against a missing ``--restore-file``) and attaches itself to
the task (:func:`~fairseq_freelb.adapters.task_mixin.attach_criterion`).
"""

from typing import List

from fairseq.criterions import FairseqCriterion
from torch import Tensor

from fairseq_freelb.adapters import runtime
from fairseq_freelb.adapters.config import RestoreFileGuard, adversary_settings
from fairseq_freelb.adapters.run_context import validate_run_context
from fairseq_freelb.adapters.task_mixin import attach_criterion
from fairseq_freelb.core.adversary import Adversary
from fairseq_freelb.core.errors import AdversarialConfigError


class AdversarialCriterionBase(FairseqCriterion):
    """A fairseq criterion whose training steps go through an :class:`Adversary`."""

    def __init__(self, cfg, task):
        runtime.install()
        super().__init__(task)
        settings = adversary_settings(cfg)  # validates the --adv-* flags
        validate_run_context(cfg)
        self.adversary = Adversary(settings)
        self.restore_file_guard = RestoreFileGuard(cfg)

    def train(self, mode: bool = True):
        """fairseq's Trainer calls this before each training step: the first refuses a missing --restore-file."""
        if mode:
            self.restore_file_guard.check()
        return super().train(mode)

    def attach_to_task(self) -> None:
        """Give the task this criterion's adversarial step (call at the end of the subclass's ``__init__``)."""
        attach_criterion(self.task, self)

    def adversarial_inputs(self, sample) -> List[dict]:
        raise NotImplementedError

    def adversarial_masks(self, sample, masks: List[Tensor]) -> List[Tensor]:
        """By default every non-pad token of every call may move."""
        return masks


def require_task(criterion_name: str, task, task_classes, hint: str) -> None:
    """Refuse a task this criterion cannot serve (``task_classes``: a class or a tuple of them), naming the flag."""
    if not isinstance(task, task_classes):
        raise AdversarialConfigError(
            f"--criterion {criterion_name} cannot serve --task {getattr(task.cfg, '_name', type(task).__name__)}; {hint}"
        )

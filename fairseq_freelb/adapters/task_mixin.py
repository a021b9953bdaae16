"""The fairseq task side of the plugin: the adversarial ``train_step``, and the one place a task's class changes.

:class:`AdversarialTrainingMixin` is mixed into the plugin's tasks; a stock
task (``--task sentence_prediction``) gets it from :func:`attach_criterion`.
It is assembled from one class per job:

* here: ``train_step`` routed through the adversary, and validation under the
  autocast that training uses;
* :class:`~fairseq_freelb.adapters.task_label_names.LabelNamesInCheckpoints`:
  label names saved with each checkpoint and checked when one is loaded;
* :mod:`~fairseq_freelb.adapters.task_batch_checks`: the ``--restore-file``
  guard, and the check that the batches cover every example of a split;
* :class:`~fairseq_freelb.adapters.replay_iterator.FreeATReplay`: FreeAT's
  batch replay.

The adversary is reached one way: as ``criterion.adversary``, the
adversarial criterion's own. ``train_step`` and ``valid_step`` read it from
the criterion fairseq passes them (so several criteria built on one task each
step with their own, as the benchmark does); the batching hooks, which get no
criterion, read it from ``task.adversarial_criterion``, the criterion that
attached itself when it was built (:func:`attach_criterion`), which is the
one fairseq-train trains with.
"""

import logging

from fairseq.optim.amp_optimizer import AMPOptimizer

from fairseq_freelb.adapters import runtime
from fairseq_freelb.adapters.replay_iterator import FreeATReplay
from fairseq_freelb.adapters.task_batch_checks import BatchCoverageCheck, RestoreFileGuardHook
from fairseq_freelb.adapters.task_label_names import LabelNamesInCheckpoints
from fairseq_freelb.core.model_access import model_device

logger = logging.getLogger(__name__)


# Batching hooks run in this order: the restore-file guard first (before anything is built), then the
# replay wraps the iterator that the coverage check has passed.
class AdversarialTrainingMixin(RestoreFileGuardHook, FreeATReplay, BatchCoverageCheck, LabelNamesInCheckpoints):
    """Mixed into a fairseq task: routes ``train_step`` through the criterion's adversary.

    ``valid_step`` and inference get no perturbation and no extra passes;
    with ``--amp --amp-dtype bf16`` validation runs under the bf16 autocast
    that training uses.
    """

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        runtime.install()
        return super().setup_task(cfg, **kwargs)

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        adversary = getattr(criterion, "adversary", None)
        if adversary is None:  # a stock criterion: fairseq's own step
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        # What fairseq's FairseqTask.train_step does before its forward pass.
        model.train()
        model.set_num_updates(update_num)
        return adversary.train_step(sample, model, criterion, optimizer, update_num, ignore_grad,
                                    amp_optimizer=isinstance(optimizer, AMPOptimizer))

    def valid_step(self, sample, model, criterion):
        adversary = getattr(criterion, "adversary", None)
        if adversary is None:
            return super().valid_step(sample, model, criterion)
        with adversary.valid_autocast(model_device(model)):
            return super().valid_step(sample, model, criterion)


def attach_criterion(task, criterion) -> None:
    """Give ``task`` the adversarial ``train_step`` of ``criterion``: the one place a task's class changes.

    A stock task instance (``--task sentence_prediction``, the documented
    entry point) is switched, once, to a subclass that mixes in
    :class:`AdversarialTrainingMixin`, created for it here; everything else
    about the task is unchanged. The plugin's own tasks already are such
    subclasses. Called by every adversarial criterion's constructor
    (:class:`fairseq_freelb.adapters.criterion_base.AdversarialCriterionBase`);
    the task keeps the criterion as ``adversarial_criterion`` for the hooks
    that run before any step (FreeAT's replay, the ``--restore-file`` guard).
    """
    if not isinstance(task, AdversarialTrainingMixin):
        base = type(task)
        task.__class__ = type(f"Adversarial{base.__name__}", (AdversarialTrainingMixin, base), {"__module__": __name__})
        logger.info(f"--task {getattr(task.cfg, '_name', base.__name__)}: adversarial train_step of fairseq_freelb mixed in")
    task.adversarial_criterion = criterion

"""The fairseq task side: the adversarial ``train_step``, FreeAT's replay, and checked batching.

:class:`AdversarialTrainingMixin` is mixed into the plugin's tasks; a stock
task (``--task sentence_prediction``) gets it from :func:`attach_adversary`,
the one place that changes a task's class.
"""

import logging

from fairseq_freelb.adapters import runtime
from fairseq_freelb.adapters.data_record import check_sentence_prediction_record, sentence_prediction_record
from fairseq_freelb.core.freeat import ReplayEpochBatchIterator
from fairseq_freelb.core.model_access import model_device
from fairseq_freelb.core.settings import AdversarialConfigError

logger = logging.getLogger(__name__)


class AdversarialTrainingMixin:
    """Mixed into a fairseq task: routes ``train_step`` through the criterion's adversary.

    ``valid_step`` and inference get no perturbation and no extra passes;
    with ``--amp --amp-dtype bf16`` validation runs under the bf16 autocast
    that training uses. ``self.adversary`` (set by :func:`attach_adversary`)
    is the criterion's adversary, which FreeAT's batch replay needs.
    """

    adversary = None

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        runtime.install()
        return super().setup_task(cfg, **kwargs)

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        adversary = getattr(criterion, "adversary", None)
        if adversary is None:
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        return adversary.train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def valid_step(self, sample, model, criterion):
        adversary = getattr(criterion, "adversary", None)
        if adversary is None:
            return super().valid_step(sample, model, criterion)
        with adversary.valid_autocast(model_device(model)):
            return super().valid_step(sample, model, criterion)

    # Label names travel with each checkpoint (fairseq's trainer saves ``task.state_dict()`` as
    # ``task_state``), so class index i keeps its meaning whatever a later label/dict.txt says.
    def label_names(self):
        """The class labels in head order, or None (regression, or a task without a label dictionary)."""
        cfg = getattr(self, "cfg", None)
        if getattr(cfg, "regression_target", False):
            return None  # regression: the "label dictionary" is the source dictionary
        labels, classes = getattr(self, "_label_dictionary", None), getattr(cfg, "num_classes", None)
        if labels is None or not classes:
            return None
        # The first num_classes symbols: fairseq's sentence_prediction appends <mask> to every dictionary.
        return [labels[labels.nspecial + i] for i in range(int(classes))]

    def state_dict(self):
        state = dict(super().state_dict())
        names = self.label_names()
        if names is not None:
            state["label_names"] = names
        state.update(sentence_prediction_record(self))  # its data: task name, pairs, dictionary fingerprint
        return state

    def load_state_dict(self, state_dict):
        """Refuse a checkpoint whose head has this many classes but means other labels by them,
        or whose token dictionary is not this data's (:mod:`~fairseq_freelb.adapters.data_record`).

        (A head of another size is re-initialized by fairseq, so its labels do not matter.)
        """
        theirs, mine = state_dict.get("label_names"), self.label_names()
        if theirs is not None and mine is not None and len(theirs) == len(mine) and list(theirs) != mine:
            raise AdversarialConfigError(
                f"checkpoint's classes are labels {list(theirs)}, this data's label/dict.txt has {mine}: "
                "its predictions would mean other labels; re-preprocess or use a checkpoint trained on this label order"
            )
        check_sentence_prediction_record(state_dict, self)  # before fairseq loads weights of another vocabulary
        super().load_state_dict(state_dict)

    def filter_indices_by_size(self, indices, dataset, max_positions=None, ignore_invalid_inputs=False):
        kept = super().filter_indices_by_size(indices, dataset, max_positions, ignore_invalid_inputs)
        self._examples_after_size_filter = len(kept)
        return kept

    def get_batch_iterator(self, dataset, *args, **kwargs):
        guard = getattr(self, "restore_file_guard", None)
        if guard is not None and self._split_name(dataset) == guard.train_subset:
            guard.check()  # before fairseq starts any iterator thread or training step
        self._examples_after_size_filter = None
        reused = dataset in getattr(self, "dataset_to_epoch_iter", {})
        itr = super().get_batch_iterator(dataset, *args, **kwargs)
        if not reused:
            try:
                check_batches_cover_dataset(itr, dataset, self._examples_after_size_filter, self._split_name(dataset))
            except AdversarialConfigError:
                getattr(self, "dataset_to_epoch_iter", {}).pop(dataset, None)  # never hand out the refused batches
                raise
        adversary = self.adversary
        if adversary is not None and adversary.freeat is not None and self._split_name(dataset) == adversary.settings.train_subset:
            return ReplayEpochBatchIterator(itr, adversary.settings.steps, adversary.freeat)
        return itr

    def _split_name(self, dataset) -> str:
        for name, candidate in getattr(self, "datasets", {}).items():
            if candidate is dataset:
                return name
        return "<dataset>"


def check_batches_cover_dataset(itr, dataset, after_size_filter, split: str) -> None:
    """Stop when fairseq's batching would leave examples out.

    ``data_utils.batch_by_size`` drops the last batch when its size is not a
    multiple of ``--required-batch-size-multiple`` (default 8), e.g. 48 of 50
    validation questions at ``--batch-size 16``. Examples fairseq filters for
    length are not counted: fairseq reports those itself.
    """
    batches = getattr(itr, "frozen_batches", None)
    if batches is None:
        return
    expected = len(dataset) if after_size_filter is None else after_size_filter
    covered = sum(len(batch) for batch in batches)
    if covered < expected:
        raise AdversarialConfigError(
            f"{split}: the batches cover {covered} of {expected} examples; fairseq drops a last batch that is not a "
            "multiple of --required-batch-size-multiple (default 8): pass --required-batch-size-multiple 1"
        )


def attach_adversary(task, adversary, restore_file_guard=None) -> None:
    """Give ``task`` the adversarial ``train_step`` of ``adversary``: the one place a task's class changes.

    A stock task instance (``--task sentence_prediction``, the documented
    entry point) is switched, once, to a subclass that mixes in
    :class:`AdversarialTrainingMixin`, created for it here; everything else
    about the task is unchanged. The plugin's own tasks already are such
    subclasses. Called by every adversarial criterion's constructor
    (:class:`fairseq_freelb.adapters.criterion_base.AdversarialCriterionBase`).
    """
    if not isinstance(task, AdversarialTrainingMixin):
        base = type(task)
        task.__class__ = type(f"Adversarial{base.__name__}", (AdversarialTrainingMixin, base), {"__module__": __name__})
        logger.info(f"--task {getattr(task.cfg, '_name', base.__name__)}: adversarial train_step of fairseq_freelb mixed in")
    task.adversary = adversary
    task.restore_file_guard = restore_file_guard

"""Checks that run when a task batches a split: the ``--restore-file`` guard, and that no example is left out.

Both are task mixins around fairseq's ``FairseqTask.get_batch_iterator``.
fairseq-train builds the batch iterator of ``--train-subset`` right after it
tried to load the checkpoint and before any iterator thread, update or save,
so a refusal here leaves nothing behind.
"""

import weakref

from fairseq_freelb.core.errors import AdversarialConfigError


class RestoreFileGuardHook:
    """Task mixin: the adversarial criterion's restore-file guard
    (:class:`fairseq_freelb.adapters.config.RestoreFileGuard`) checks when the training split is first batched."""

    adversarial_criterion = None  # set by adapters.task_mixin.attach_criterion

    def get_batch_iterator(self, dataset, *args, **kwargs):
        guard = getattr(self.adversarial_criterion, "restore_file_guard", None)
        if guard is not None and dataset is getattr(self, "datasets", {}).get(guard.train_subset):
            guard.check()  # before fairseq starts any iterator thread or training step
        return super().get_batch_iterator(dataset, *args, **kwargs)


class BatchCoverageCheck:
    """Task mixin: refuse batches that leave examples of a split out (:func:`batches_cover_dataset`).

    Each iterator is checked once: fairseq caches the iterator of a dataset
    and hands it out again. A refused one is dropped from that cache, so it is
    never used and the next request (e.g. with ``--required-batch-size-multiple
    1``) batches the split anew.
    """

    _examples_after_size_filter = None

    def filter_indices_by_size(self, indices, dataset, max_positions=None, ignore_invalid_inputs=False):
        kept = super().filter_indices_by_size(indices, dataset, max_positions, ignore_invalid_inputs)
        self._examples_after_size_filter = len(kept)
        return kept

    def get_batch_iterator(self, dataset, *args, **kwargs):
        self._examples_after_size_filter = None
        itr = super().get_batch_iterator(dataset, *args, **kwargs)
        # The iterators that passed; weak, so an iterator fairseq drops is forgotten here too.
        covering = self.__dict__.setdefault("_covering_iterators", weakref.WeakSet())
        if itr in covering:
            return itr
        refusal = batches_cover_dataset(itr, dataset, self._examples_after_size_filter, split_name(self, dataset))
        if refusal is not None:
            # fairseq has no public way to drop a cached iterator: its cache is the task's dataset_to_epoch_iter.
            getattr(self, "dataset_to_epoch_iter", {}).pop(dataset, None)
            raise AdversarialConfigError(refusal)
        covering.add(itr)
        return itr


def split_name(task, dataset) -> str:
    """The name under which ``task`` holds ``dataset`` (``train``, ``valid``, ...)."""
    for name, candidate in getattr(task, "datasets", {}).items():
        if candidate is dataset:
            return name
    return "<dataset>"


def batches_cover_dataset(itr, dataset, after_size_filter, split: str):
    """None when fairseq's batches hold every example; else the one-line refusal.

    ``data_utils.batch_by_size`` drops the last batch when its size is not a
    multiple of ``--required-batch-size-multiple`` (default 8), e.g. 48 of 50
    validation questions at ``--batch-size 16``. Examples fairseq filters for
    length are not counted: fairseq reports those itself. The batches are read
    from the iterator's public ``frozen_batches`` (an iterator without them is
    not checked).
    """
    batches = getattr(itr, "frozen_batches", None)
    if batches is None:
        return None
    expected = len(dataset) if after_size_filter is None else after_size_filter
    covered = sum(len(batch) for batch in batches)
    if covered < expected:
        return (
            f"{split}: the batches cover {covered} of {expected} examples; fairseq drops a last batch that is not a "
            "multiple of --required-batch-size-multiple (default 8): pass --required-batch-size-multiple 1"
        )
    return None

"""FreeAT's batch replay in fairseq: an epoch iterator that yields every training batch K times in a row.

FreeAT (Shafahi et al. 2019) makes K full updates on each minibatch, carrying
delta from one replay to the next (:mod:`fairseq_freelb.core.freeat`). fairseq
draws one batch per update from the task's epoch iterator, so the replay is an
iterator: :class:`FreeATReplay`, mixed into the plugin's tasks, wraps the
batch iterator of ``--adv-train-subset`` in a :class:`ReplayEpochBatchIterator`
when the adversary of the task's criterion runs ``--adv-method freeat``.
"""

from typing import List

from fairseq.data.iterators import CountingIterator

from fairseq_freelb.core.freeat import FreeATState


class FreeATReplay:
    """Task mixin: the batches of the split FreeAT replays come K times each (other splits unchanged)."""

    def get_batch_iterator(self, dataset, *args, **kwargs):
        itr = super().get_batch_iterator(dataset, *args, **kwargs)
        adversary = getattr(getattr(self, "adversarial_criterion", None), "adversary", None)
        if adversary is None or adversary.freeat is None:
            return itr
        if dataset is not getattr(self, "datasets", {}).get(adversary.settings.train_subset):
            return itr
        return ReplayEpochBatchIterator(itr, adversary.settings.steps, adversary.freeat)


class ReplayEpochBatchIterator:
    """An ``EpochBatchIterating`` that yields every batch of ``inner`` K times in a row (FreeAT).

    The replay plan of an epoch is fixed when the epoch starts (fairseq reads
    its length then): a batch whose first step falls before
    ``--adv-begin-update`` is yielded once (a plain update), every later one K
    times. Checkpoints (fairseq saves this iterator's ``state_dict`` in
    ``extra_state["train_iterator"]``) store the underlying batch position,
    the replay offset and the adversary's carried delta, so a resumed run
    continues exactly where it stopped.
    """

    def __init__(self, inner, replays: int, state: FreeATState):
        self.inner = inner
        self.replays = replays
        self.state = state
        self._itr = None
        self._resume_replay = 0
        self._position = None  # (inner batch index, replays done, replays planned) of the last batch yielded
        self._total = None
        self._skip = 0

    def __getattr__(self, name):  # epoch, dataset, ... of the wrapped iterator
        return getattr(self.__dict__["inner"], name)

    def __len__(self) -> int:
        return self._total if self._total is not None else len(self.inner) * self.replays

    @property
    def next_epoch_idx(self):
        return self.inner.next_epoch_idx

    @property
    def first_batch(self):
        return self.inner.first_batch

    def _plan(self, remaining: int, skip: int) -> List[bool]:
        """Per remaining batch: replayed adversarially (K yields) or a warm-up batch (1 yield)."""
        clock, plan = self.state.next_update, []
        for j in range(remaining):
            adversarial = (j == 0 and skip > 0) or clock >= self.state.settings.begin_update
            plan.append(adversarial)
            clock += (self.replays if adversarial else 1) - (skip if j == 0 else 0)
        return plan

    def next_epoch_itr(self, shuffle=True, fix_batches_to_gpus=False, set_dataset_epoch=True):
        inner_itr = self.inner.next_epoch_itr(
            shuffle=shuffle, fix_batches_to_gpus=fix_batches_to_gpus, set_dataset_epoch=set_dataset_epoch
        )
        skip, self._resume_replay = self._resume_replay, 0
        base = inner_itr.n
        self._skip = skip
        plan = self._plan(len(inner_itr) - base, skip)
        items = sum(self.replays if adversarial else 1 for adversarial in plan) - skip
        self._position = None

        def replayed():
            for j, batch in enumerate(inner_itr):
                count = self.replays if plan[j] else 1
                for i in range(skip if j == 0 else 0, count):
                    self._position = (base + j, i + 1, count)
                    self.state.planned_adversarial = plan[j]
                    yield batch

        start = base + skip
        self._total = start + items
        self._itr = CountingIterator(replayed(), start=start, total=self._total)
        return self._itr

    def end_of_epoch(self) -> bool:
        if self._itr is None:
            return self.inner.end_of_epoch()
        return not self._itr.has_next()

    @property
    def iterations_in_epoch(self) -> int:
        if self._itr is not None:
            return self._itr.n
        return self.inner.iterations_in_epoch * self.replays

    def state_dict(self):
        state = self.inner.state_dict()
        if self._itr is not None and not self.end_of_epoch() and self._position is not None:
            batch, done, count = self._position
            # The wrapped iterator may already have handed out its last batch while it is still replayed.
            state["epoch"] = self.inner.epoch
            state["iterations_in_epoch"] = batch + 1 if done == count else batch
            state["freeat_replay"] = 0 if done == count else done
        elif self._itr is not None and not self.end_of_epoch() and self._skip:
            state["freeat_replay"] = self._skip  # resumed mid-replay, nothing yielded since
        state.update(self.state.state_dict())
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        self._resume_replay = state.pop("freeat_replay", 0)
        self.state.load_state_dict({k: state.pop(k) for k in ("freeat_deltas", "freeat_next_update") if k in state})
        self.inner.load_state_dict(state)

"""The fairseq bookkeeping of a dataset whose examples are groups of choices, one model call per choice slot.

A batch holds ``net_input1`` .. ``net_inputC`` (C the widest group of the
batch), so an example costs its longest sequence once per choice. The
subclasses (multiple-choice questions, WSC candidate groups) build their items
and batches; this base sizes, orders and shuffles them.
"""

from typing import Sequence

import numpy as np
from fairseq.data import FairseqDataset, data_utils


class ChoiceGroupDataset(FairseqDataset):
    def __init__(self, lengths: Sequence[Sequence[int]], shuffle: bool = False, seed: int = 1):
        """``lengths``: per example, the token count of each of its choices."""
        self.shuffle, self.seed, self.epoch = shuffle, seed, 1
        self.num_choices = np.array([len(group) for group in lengths], dtype=np.int64)
        self.sizes = np.array([max(group) for group in lengths], dtype=np.int64)

    def num_tokens(self, index: int) -> int:
        # Every choice is a model call over the example's longest sequence.
        return int(self.sizes[index] * self.num_choices[index])

    def size(self, index: int) -> int:
        return int(self.sizes[index])

    @property
    def supports_prefetch(self) -> bool:
        return False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def ordered_indices(self):
        if self.shuffle:
            with data_utils.numpy_seed(self.seed, self.epoch):
                return np.random.permutation(len(self))
        return np.arange(len(self))

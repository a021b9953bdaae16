"""A fairseq dataset of multiple-choice questions with any number of choices each.

A batch is laid out like fairseq's ``sentence_ranking`` task (``net_input1`` ..
``net_inputC``, one model call per choice), with C the largest number of
choices in the batch, plus a ``choice_mask`` (B, C): a question with fewer
choices fills the missing slots with a two-token ``<s> </s>`` row that the
criterion masks out of the softmax and the adversary leaves unperturbed.
(An all-padding row would make attention over no keys produce NaN, whose
gradient survives masking.)
"""

from typing import List, Optional

import torch
from fairseq.data import data_utils

from fairseq_freelb.adapters.choice_dataset import ChoiceGroupDataset


class MultipleChoiceDataset(ChoiceGroupDataset):
    def __init__(
        self,
        candidates: List[List[torch.Tensor]],
        targets: Optional[List[int]],
        pad_idx: int,
        bos_idx: int,
        eos_idx: int,
        shuffle: bool = False,
        seed: int = 1,
    ):
        self.candidates = candidates
        self.targets = targets
        self.pad_idx, self.bos_idx, self.eos_idx = pad_idx, bos_idx, eos_idx
        super().__init__([[len(t) for t in c] for c in candidates], shuffle, seed)

    def __len__(self) -> int:
        return len(self.candidates)

    def __getitem__(self, index: int):
        item = {"id": index, "candidates": self.candidates[index]}
        if self.targets is not None:
            item["target"] = self.targets[index]
        return item

    def _missing_row(self) -> torch.Tensor:
        return torch.tensor([self.bos_idx, self.eos_idx], dtype=torch.long)

    def collater(self, samples):
        if not samples:
            return {}
        width = max(len(s["candidates"]) for s in samples)
        batch = {
            "id": torch.tensor([s["id"] for s in samples], dtype=torch.long),
            "nsentences": len(samples),
            "ntokens": sum(int(t.numel()) for s in samples for t in s["candidates"]),
            "choice_mask": torch.tensor(
                [[c < len(s["candidates"]) for c in range(width)] for s in samples], dtype=torch.bool
            ),
        }
        for c in range(width):
            rows = [s["candidates"][c] if c < len(s["candidates"]) else self._missing_row() for s in samples]
            batch[f"net_input{c + 1}"] = {
                "src_tokens": data_utils.collate_tokens(rows, self.pad_idx),
                "src_lengths": torch.tensor([r.numel() for r in rows], dtype=torch.long),
            }
        if self.targets is not None:
            batch["target"] = torch.tensor([s["target"] for s in samples], dtype=torch.long)
        return batch

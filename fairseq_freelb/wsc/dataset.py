"""A fairseq dataset of WSC candidate groups: one example = the candidates of one text and pronoun.

A batch is laid out as multiple-choice batches are (``net_input1`` ..
``net_inputC``, one model call per candidate slot, C the largest group of the
batch) with, per slot, ``span<c>`` (the candidate's ids at its masked
positions), ``choice_mask`` (B, C) for the real candidates, and
``candidate_labels`` (B, C): 1 correct, 0 wrong, -1 unknown or missing. A
missing slot is a two-token ``<s> </s>`` row with no masked position. With
targets, ``target`` (B,) is the correct candidate's slot, or -1 when the group
has no single correct candidate to rank (it is then left out of the loss).
"""

from dataclasses import dataclass
from typing import List, Optional

import torch
from fairseq.data import data_utils

from fairseq_freelb.adapters.choice_dataset import ChoiceGroupDataset
from fairseq_freelb.wsc.encoding import EncodedCandidate


@dataclass
class GroupItem:
    candidates: List[EncodedCandidate]
    labels: List[int]  # 1, 0, or -1 (unknown)
    target: int  # slot of the single correct candidate, -1 if none


class CandidateGroupDataset(ChoiceGroupDataset):
    def __init__(self, items: List[GroupItem], pad_idx: int, bos_idx: int, eos_idx: int, with_target: bool,
                 shuffle: bool = False, seed: int = 1):
        self.items = items
        self.pad_idx, self.bos_idx, self.eos_idx = pad_idx, bos_idx, eos_idx
        self.with_target = with_target
        super().__init__([[len(c.tokens) for c in i.candidates] for i in items], shuffle, seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return {"id": index, "item": self.items[index]}

    def _missing(self) -> EncodedCandidate:
        tokens = torch.tensor([self.bos_idx, self.eos_idx], dtype=torch.long)
        return EncodedCandidate(tokens, torch.full_like(tokens, self.pad_idx))

    def collater(self, samples):
        if not samples:
            return {}
        items: List[GroupItem] = [s["item"] for s in samples]
        width = max(len(i.candidates) for i in items)
        batch = {
            "id": torch.tensor([s["id"] for s in samples], dtype=torch.long),
            "nsentences": len(samples),
            "ntokens": sum(int(c.tokens.numel()) for i in items for c in i.candidates),
            "choice_mask": torch.tensor([[c < len(i.candidates) for c in range(width)] for i in items], dtype=torch.bool),
            "candidate_labels": torch.tensor([i.labels + [-1] * (width - len(i.labels)) for i in items], dtype=torch.long),
        }
        for c in range(width):
            rows = [i.candidates[c] if c < len(i.candidates) else self._missing() for i in items]
            tokens = data_utils.collate_tokens([r.tokens for r in rows], self.pad_idx)
            span = data_utils.collate_tokens([r.span for r in rows], self.pad_idx)
            batch[f"net_input{c + 1}"] = {
                "src_tokens": tokens,
                "src_lengths": torch.tensor([r.tokens.numel() for r in rows], dtype=torch.long),
                "masked_tokens": span.ne(self.pad_idx),
            }
            batch[f"span{c + 1}"] = span
        if self.with_target:
            batch["target"] = torch.tensor([i.target for i in items], dtype=torch.long)
        return batch


def single_correct(labels: List[int]) -> Optional[int]:
    """The slot of the one correct candidate of a group of two or more, else None."""
    correct = [k for k, lab in enumerate(labels) if lab == 1]
    return correct[0] if len(correct) == 1 and len(labels) >= 2 else None

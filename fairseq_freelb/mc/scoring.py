"""Multiple-choice scoring shared by the ranking criterion and ``mc.inference`` (torch only).

A ranking batch holds one model input per choice (``net_input1`` ..
``net_inputC``, fairseq's ``sentence_ranking`` layout) and, for
``--task multiple_choice``, a ``choice_mask`` (B, C) of the real choices. This
module imports neither the criterion nor the task, so both can import it
without a cycle.
"""

from typing import List, Optional

import torch
from torch import Tensor


def candidate_inputs(sample) -> List[dict]:
    """``net_input1`` .. ``net_inputC`` of a ranking batch, in order."""
    inputs, c = [], 1
    while f"net_input{c}" in sample:
        inputs.append(sample[f"net_input{c}"])
        c += 1
    return inputs


def present_choices(sample) -> Optional[Tensor]:
    """(B, C) bool of the real choices, or None when every question has all C."""
    return sample.get("choice_mask")


def choice_scores(model, sample, head_name: str) -> Tensor:
    """(B, C) float32 choice scores, one model call per candidate; missing choices are -inf."""
    if head_name not in getattr(model, "classification_heads", {}):
        raise ValueError(
            f"model has no ranking head {head_name!r} (--ranking-head-name); "
            "--task multiple_choice and sentence_ranking register it"
        )
    columns = [
        model(**net_input, features_only=True, classification_head_name=head_name)[0]
        for net_input in candidate_inputs(sample)
    ]
    logits = torch.cat(columns, dim=1).float()
    present = present_choices(sample)
    if present is not None:
        logits = logits.masked_fill(~present.to(logits.device), float("-inf"))
    return logits

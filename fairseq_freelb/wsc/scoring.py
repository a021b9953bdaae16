"""Candidate scores with the masked-LM head (torch only; shared by the criterion and inference).

A candidate's score is the mean log-probability that the masked-LM head gives
its tokens at their masked positions (RoBERTa's WSC scoring, Liu et al. 2019).
One model call per candidate slot; missing slots score -inf.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

# A WSC batch is laid out as a multiple-choice one: one model call per candidate slot, in order.
from fairseq_freelb.mc.scoring import candidate_inputs  # noqa: F401  (re-exported for the WSC criterion)


def span_scores(model, sample) -> Tensor:
    """(B, C) float32 mean log-probabilities of each candidate's tokens; -inf for missing candidates."""
    columns = []
    for c, net_input in enumerate(candidate_inputs(sample), start=1):
        masked = net_input["masked_tokens"]
        logits = model(**net_input, features_only=False)[0]  # (masked positions, vocabulary)
        lprobs = F.log_softmax(logits.float(), dim=-1)
        targets = sample[f"span{c}"][masked]
        picked = lprobs.gather(1, targets.unsqueeze(1)).squeeze(1)
        rows = masked.nonzero(as_tuple=True)[0]
        sums = picked.new_zeros(masked.size(0)).index_add(0, rows, picked)
        columns.append(sums / masked.sum(dim=1).clamp(min=1).to(sums.dtype))
    scores = torch.stack(columns, dim=1)
    return scores.masked_fill(~sample["choice_mask"].to(scores.device), float("-inf"))


def predicted_labels(scores: Tensor, present: Tensor) -> Tensor:
    """(B, C) 1 for the best candidate of each group of two or more, 0 otherwise (a lone candidate gets 0)."""
    best = scores.argmax(dim=1)
    labels = torch.zeros_like(present, dtype=torch.long)
    labels[torch.arange(scores.size(0), device=scores.device), best] = 1
    return labels * (present.sum(dim=1, keepdim=True) >= 2).long()

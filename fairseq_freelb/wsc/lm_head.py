"""Whether a checkpoint's masked-LM head was trained: the WSC formulation scores candidates with it.

fairseq's ``roberta.*`` checkpoints (and every model fine-tuned from them)
carry the pretrained head. A model converted from a source without one
(``python -m fairseq_freelb.convert_hf`` on a bare ``BertModel`` such as
MiniLM) has a head at fairseq's random initialisation; the converter records
that in ``extra_state["masked_lm_head"]``. Such a model is refused in one line
rather than trained with a random head.
"""

from typing import Optional

import torch

from fairseq_freelb.checkpoint import allow_fairseq_checkpoints, load_checkpoint


def _load(path: str):
    allow_fairseq_checkpoints()
    try:  # a zip checkpoint (torch >= 1.6): tensors stay on disk, only the keys are read
        return torch.load(path, map_location="cpu", mmap=True)
    except Exception:  # an old-format pickle (roberta.large/model.pt) or a damaged file: the checked loader says which
        return load_checkpoint(path)


def lm_head_problem(path: str) -> Optional[str]:
    """None when ``path`` has a trained masked-LM head, else why not (one clause)."""
    state = _load(path)
    model = state.get("model") or {}
    if not any(k.endswith("lm_head.dense.weight") for k in model):
        return "has no masked-LM head (no lm_head weights)"
    extra = state.get("extra_state") or {}
    if extra.get("masked_lm_head") is False:
        return (f"was converted from {extra.get('converted_from', 'a model')} without a masked-LM head: "
                "its encoder.lm_head is fairseq's random initialisation")
    if "converted_from" in extra and "masked_lm_head" not in extra:
        return ("was converted by a version that did not record whether its source had a masked-LM head; "
                "convert it again with python -m fairseq_freelb.convert_hf")
    return None

"""Loading fairseq checkpoints under torch's ``weights_only=True`` default (torch >= 2.6)."""

import argparse
import pickle
import re

import torch

TRUST_HINT = (
    "if you trust the file, set TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 to load it with full pickle "
    "(this can run arbitrary code)"
)

# Exactly the non-tensor types that fairseq checkpoints pickle: the legacy
# ``args`` Namespace (every fairseq <= 0.9 checkpoint, roberta.large's model.pt
# among them). Everything else in a checkpoint is dicts, lists, numbers,
# strings and tensors, which torch already allows.
FAIRSEQ_SAFE_GLOBALS = [argparse.Namespace]


def allow_fairseq_checkpoints() -> None:
    """Allow-list the types of :data:`FAIRSEQ_SAFE_GLOBALS` for ``torch.load(weights_only=True)``."""
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is not None:  # torch < 2.4 loads with full pickle by default anyway
        add(FAIRSEQ_SAFE_GLOBALS)


def is_weights_only_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` is torch refusing a pickled type under ``weights_only=True``."""
    return isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc)


def explain_refusal(exc: BaseException) -> str:
    """One line: which type was refused, and the opt-in for trusted files."""
    match = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    what = f"the type {match.group(1)}" if match else "a type"
    return f"checkpoint contains {what}, which is not among the types fairseq checkpoints need; {TRUST_HINT}"


def load_checkpoint(path: str, map_location="cpu"):
    """``torch.load`` of a fairseq checkpoint with the allow-list, and a one-line error otherwise."""
    allow_fairseq_checkpoints()
    try:
        return torch.load(path, map_location=map_location)
    except pickle.UnpicklingError as exc:
        if is_weights_only_refusal(exc):
            raise pickle.UnpicklingError(f"{path}: {explain_refusal(exc)}") from None
        raise

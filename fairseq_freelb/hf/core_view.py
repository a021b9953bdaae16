"""A transformers model as the core's adversary sees a model: the one place that bridges the two.

The core (:mod:`fairseq_freelb.core`) adds delta to the module the criterion's
``token_embedding(model)`` names (:mod:`fairseq_freelb.core.contract`), reads
its ``embedding_dim``, and calls ``model.parameters()`` and
``model.no_sync()``. :class:`ModelView` answers those for one training step
of a transformers model:

* the token embedding is ``model.get_input_embeddings()`` (for ALBERT the
  128-dimensional factorised embedding, where the official FreeLB ALBERT code
  adds delta), reached through an :class:`EmbeddingPort`;
* ``no_sync()`` is accelerate's, so DDP all-reduces only in the update's last pass;

A ``*ForMultipleChoice`` model embeds its ``(B, C, T)`` inputs as one
``(B*C, T, d)`` call. The core's groups are per example, so the port shows the
core that call as ``(B, C*T, d)``: one question, all of its choices, one
perturbation ball (appendix A.1 of Zhu et al. 2020).
"""

import contextlib

import torch
from torch import nn

from fairseq_freelb.core.errors import AdversarialConfigError

def base_model(model: nn.Module) -> nn.Module:
    """The transformers model inside DDP or other ``.module`` wrappers."""
    while isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model


def input_embedding(model: nn.Module) -> nn.Module:
    """``model.get_input_embeddings()``, refused in one line where a model has none."""
    plain = base_model(model)
    get = getattr(plain, "get_input_embeddings", None)
    embed = get() if callable(get) else None
    if not isinstance(embed, nn.Module):
        raise AdversarialConfigError(
            f"{type(plain).__name__} has no get_input_embeddings() module: AdversarialTrainer adds the perturbation "
            "to the output of the model's input (token) embedding"
        )
    return embed


def embedding_dim(embed: nn.Module) -> int:
    dim = getattr(embed, "embedding_dim", None)
    if dim is None and isinstance(getattr(embed, "weight", None), torch.Tensor):
        dim = embed.weight.shape[-1]
    if dim is None:
        raise AdversarialConfigError(f"{type(embed).__name__}: the input embedding has no embedding_dim or weight")
    return int(dim)


class EmbeddingPort(nn.Module):
    """Stands for the model's input embedding in the core's eyes.

    Hooks registered on the port go onto the real embedding; for multiple
    choice (``choices`` > 1) the hook sees the ``(B*C, T, d)`` output as
    ``(B, C*T, d)`` and its result is folded back. ``calls`` counts the
    embedding's forward calls, so a model whose forward never reaches it is
    told apart from one that does.
    """

    def __init__(self, embed: nn.Module, choices: int = 1):
        super().__init__()
        # Not a registered submodule: the port owns no parameters of the model.
        object.__setattr__(self, "embed", embed)
        self.choices = choices
        self.embedding_dim = embedding_dim(embed)
        self.calls = 0

    def register_forward_hook(self, hook, *args, **kwargs):
        choices = self.choices

        def grouped(module, inputs, output):
            self.calls += 1
            if choices == 1:
                return hook(module, inputs, output)
            rows, length, dim = output.shape
            if rows % choices:
                raise RuntimeError(f"embedding output of {rows} rows is not a whole number of {choices}-choice questions")
            result = hook(module, inputs, output.reshape(rows // choices, choices * length, dim))
            return None if result is None else result.reshape(rows, length, dim)

        return self.embed.register_forward_hook(grouped, *args, **kwargs)


class ModelView:
    """One training step's model, as :class:`~fairseq_freelb.core.adversary.Adversary` addresses it."""

    def __init__(self, model: nn.Module, accelerator, choices: int = 1):
        self.model = model  # as the Trainer passes it: DDP-wrapped under distributed training
        self.accelerator = accelerator
        self.port = EmbeddingPort(input_embedding(model), choices)

    def train(self, mode: bool = True):
        self.model.train(mode)
        return self

    def parameters(self):
        return self.model.parameters()

    def no_sync(self):
        """accelerate's ``no_sync``: DDP skips the all-reduce (a no-op in one process)."""
        if self.accelerator is None:
            return contextlib.nullcontext()
        return self.accelerator.no_sync(self.model)

"""Where the perturbation enters a fairseq encoder: the token embedding, and the first block (YOPO)."""

import torch
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip DDP / fairseq proxy wrappers (each keeps the wrapped model in ``.module``)."""
    while isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model


def model_device(model: nn.Module) -> torch.device:
    return next(unwrap_model(model).parameters()).device


def sentence_encoder(model: nn.Module) -> nn.Module:
    """The transformer encoder that owns ``embed_tokens`` and ``layers``."""
    encoder = getattr(unwrap_model(model), "encoder", None)
    # RoBERTa keeps its TransformerEncoder in encoder.sentence_encoder; a plain
    # fairseq encoder is the TransformerEncoder itself.
    inner = getattr(encoder, "sentence_encoder", encoder)
    if inner is None or not isinstance(getattr(inner, "embed_tokens", None), nn.Module):
        raise TypeError(
            f"{type(unwrap_model(model)).__name__} has no encoder.sentence_encoder.embed_tokens or "
            "encoder.embed_tokens: fairseq_freelb needs a fairseq encoder with token embeddings"
        )
    return inner


def token_embedding_module(model: nn.Module) -> nn.Module:
    """The module whose output is the word/subword token embedding."""
    return sentence_encoder(model).embed_tokens


def first_block_module(model: nn.Module) -> nn.Module:
    """The first transformer block (YOPO's f0 ends at its output)."""
    return sentence_encoder(model).layers[0]

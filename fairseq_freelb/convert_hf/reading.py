"""Reading a Hugging Face BERT/RoBERTa folder: config checks, weights, tokenizer vocabulary.

Every refusal is a :class:`ConversionError` whose one line names the file at fault.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from fairseq_freelb import checkpoint
from fairseq_freelb.core.errors import FreeLBError

SUPPORTED_MODEL_TYPES = ("bert", "roberta")

# Families that look close but would not come out as the same function.
REFUSED_MODEL_TYPES = {
    "albert": "ALBERT shares one set of layer weights across all layers and factorises the "
    "embeddings (embedding_size != hidden_size); fairseq's RoBERTa has neither",
    "distilbert": "DistilBERT has no token-type embeddings and different layer names; not mapped",
    "electra": "ELECTRA's discriminator projects embeddings (embedding_size != hidden_size); not mapped",
    "deberta": "DeBERTa uses disentangled relative attention, which fairseq's RoBERTa lacks",
    "deberta-v2": "DeBERTa uses disentangled relative attention, which fairseq's RoBERTa lacks",
    "xlm-roberta": "XLM-R uses a SentencePiece tokenizer whose ids fairseq's --bpe sentencepiece "
    "maps differently; not mapped",
    "camembert": "CamemBERT uses a SentencePiece tokenizer; not mapped",
    "longformer": "Longformer uses sliding-window attention, which fairseq's RoBERTa lacks",
}

# Hugging Face activation -> fairseq --activation-fn (fairseq's "gelu" is the exact erf GELU,
# its "gelu_accurate" the tanh approximation).
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_accurate", "gelu_pytorch_tanh": "gelu_accurate", "relu": "relu"}


class ConversionError(FreeLBError, ValueError):
    """A source checkpoint that cannot be converted faithfully, or an output that cannot be written; names the file."""


@dataclass
class HFCheckpoint:
    """What the converter reads from a Hugging Face folder."""

    folder: Path
    config: dict
    state: Dict[str, torch.Tensor]
    tokens: List[str]  # tokenizer vocabulary, indexed by the source's token id
    specials: Dict[str, str]  # fairseq special symbol -> source token ("<s>" -> "[CLS]", ...)
    tokenizer: str  # "wordpiece" or "byte_bpe"
    lowercase: bool = True
    weights_file: str = ""


def read_json(path: Path) -> dict:
    """A JSON file's content, or a one-line ConversionError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConversionError(f"{path}: missing") from None
    except json.JSONDecodeError as exc:
        raise ConversionError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


def check_supported(config: dict, config_path: Path) -> str:
    """The model type, or a one-line refusal naming what fairseq's RoBERTa cannot represent."""
    model_type = config.get("model_type")
    if model_type in REFUSED_MODEL_TYPES:
        raise ConversionError(
            f"{config_path}: model_type {model_type!r} is not supported: {REFUSED_MODEL_TYPES[model_type]} "
            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConversionError(
            f"{config_path}: model_type {model_type!r} is not supported (supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    position_type = config.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ConversionError(
            f"{config_path}: position_embedding_type {position_type!r} is not supported; "
            "fairseq's RoBERTa has absolute learned positions only"
        )
    if config.get("is_decoder") or config.get("add_cross_attention"):
        raise ConversionError(f"{config_path}: decoder checkpoints (is_decoder/add_cross_attention) are not supported")
    act = config.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        raise ConversionError(
            f"{config_path}: hidden_act {act!r} has no fairseq equivalent (supported: {', '.join(ACTIVATIONS)})"
        )
    if "embedding_size" in config and config["embedding_size"] != config["hidden_size"]:
        raise ConversionError(f"{config_path}: embedding_size != hidden_size (factorised embeddings) is not supported")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise ConversionError(f"{config_path}: hidden_size is not a multiple of num_attention_heads")
    return model_type


def _load_weights(folder: Path) -> Tuple[Dict[str, torch.Tensor], str]:
    """The state dict from ``model.safetensors`` or ``pytorch_model.bin``; a damaged file is named, with its cause."""
    safetensors_path = folder / "model.safetensors"
    bin_path = folder / "pytorch_model.bin"
    if safetensors_path.exists():
        from safetensors.torch import load_file

        try:
            return load_file(str(safetensors_path)), safetensors_path.name
        except Exception as exc:  # noqa: BLE001  (safetensors raises its own SafetensorError)
            cause = " ".join(str(exc).split()) or type(exc).__name__
            raise ConversionError(
                f"{safetensors_path}: not a readable safetensors file ({cause}); the download or copy may be incomplete"
            ) from None
    if bin_path.exists():
        # weights_only: a .bin is a pickle; plain tensors are all a model file needs.
        try:
            state = torch.load(str(bin_path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001  (explained from the file itself)
            raise ConversionError(checkpoint.explain_refusal(exc, path=str(bin_path))) from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ConversionError(f"{bin_path}: not a state dict of tensors (got {type(state).__name__})")
        return state, bin_path.name
    sharded = sorted(p.name for p in folder.glob("*.index.json"))
    hint = f" (sharded checkpoints such as {sharded[0]} are not supported)" if sharded else ""
    raise ConversionError(f"{folder}: no model.safetensors or pytorch_model.bin{hint}")


def _strip_prefix(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Keys as a bare BertModel/RobertaModel names them; head weights keep their own names."""
    out = {}
    for key, value in state.items():
        for prefix in ("bert.", "roberta."):
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        # Old TensorFlow-converted BERT checkpoints name LayerNorm parameters gamma/beta.
        if key.endswith(".gamma"):
            key = key[: -len(".gamma")] + ".weight"
        elif key.endswith(".beta"):
            key = key[: -len(".beta")] + ".bias"
        out[key] = value
    return out


def _special_tokens(folder: Path, defaults: Dict[str, str]) -> Dict[str, str]:
    """fairseq special -> source token, from special_tokens_map.json when present."""
    names = {"<s>": "cls_token", "</s>": "sep_token", "<pad>": "pad_token", "<unk>": "unk_token", "<mask>": "mask_token"}
    found = {}
    for filename in ("special_tokens_map.json", "tokenizer_config.json"):
        path = folder / filename
        if path.exists():
            data = read_json(path)
            for symbol, name in names.items():
                value = data.get(name)
                if isinstance(value, dict):  # AddedToken serialisation
                    value = value.get("content")
                if isinstance(value, str) and symbol not in found:
                    found[symbol] = value
    return {symbol: found.get(symbol, default) for symbol, default in defaults.items()}


def read_wordpiece_vocab(vocab_path: Path) -> List[str]:
    """The tokens of a WordPiece ``vocab.txt``, indexed by token id."""
    # split("\n"), not splitlines(): WordPiece vocabularies may hold characters such as
    # U+0085 or U+2028 that splitlines() would treat as line breaks.
    tokens = vocab_path.read_text(encoding="utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    return [t[:-1] if t.endswith("\r") else t for t in tokens]


def read_hf_folder(folder) -> HFCheckpoint:
    """Config, weights and tokenizer vocabulary of a Hugging Face folder (refusing what cannot be mapped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConversionError(f"{folder}: not a directory")
    config_path = folder / "config.json"
    config = read_json(config_path)
    model_type = check_supported(config, config_path)
    state, weights_file = _load_weights(folder)
    state = _strip_prefix(state)

    tokenizer_config = read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").exists() else {}
    if model_type == "bert":
        vocab_path = folder / "vocab.txt"
        if not vocab_path.exists():
            raise ConversionError(f"{vocab_path}: missing (BERT checkpoints need their WordPiece vocab.txt)")
        tokens = read_wordpiece_vocab(vocab_path)
        specials = _special_tokens(
            folder, {"<s>": "[CLS]", "</s>": "[SEP]", "<pad>": "[PAD]", "<unk>": "[UNK]", "<mask>": "[MASK]"}
        )
        return HFCheckpoint(
            folder, config, state, tokens, specials, "wordpiece",
            lowercase=bool(tokenizer_config.get("do_lower_case", True)), weights_file=weights_file,
        )

    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    for path in (vocab_path, merges_path):
        if not path.exists():
            raise ConversionError(f"{path}: missing (RoBERTa checkpoints need vocab.json and merges.txt)")
    encoder = read_json(vocab_path)
    tokens: List[Optional[str]] = [None] * (max(encoder.values()) + 1)
    for token, index in encoder.items():
        if tokens[index] is not None:
            raise ConversionError(f"{vocab_path}: id {index} is used by both {tokens[index]!r} and {token!r}")
        tokens[index] = token
    holes = [i for i, t in enumerate(tokens) if t is None]
    if holes:
        raise ConversionError(f"{vocab_path}: ids {holes[:5]} have no token")
    specials = _special_tokens(folder, {"<s>": "<s>", "</s>": "</s>", "<pad>": "<pad>", "<unk>": "<unk>", "<mask>": "<mask>"})
    return HFCheckpoint(folder, config, state, tokens, specials, "byte_bpe", weights_file=weights_file)



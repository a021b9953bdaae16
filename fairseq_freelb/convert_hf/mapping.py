"""Mapping Hugging Face BERT/RoBERTa weights onto fairseq RoBERTa parameter names.

See the package docstring for how the two architectures line up.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import torch

from fairseq_freelb.convert_hf.reading import ACTIVATIONS, ConversionError, HFCheckpoint
from fairseq_freelb.convert_hf.vocabulary import FAIRSEQ_PADDING_IDX, fairseq_vocabulary
from fairseq_freelb.adapters.roberta_hf import FAIRSEQ_LAYER_NORM_EPS


# One encoder layer: Hugging Face BERT/RoBERTa module (under ``encoder.layer.<i>.``) -> fairseq
# module (under ``encoder.sentence_encoder.layers.<i>.``); each has a weight and a bias.
LAYER_MAP = {
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "self_attn_layer_norm",
    "intermediate.dense": "fc1",
    "output.dense": "fc2",
    "output.LayerNorm": "final_layer_norm",
}


@dataclass
class Conversion:
    """The converted model, before it is written."""

    symbols: List[str]  # dict.txt lines (without fairseq's four specials and <mask>)
    source_ids: List[int]  # source token id of each fairseq index 0..len-1 (including <mask>)
    state: Dict[str, torch.Tensor]
    model_args: List[str]  # fairseq-train architecture flags
    bpe_args: Dict[str, object] = field(default_factory=dict)  # relative file names
    notes: List[str] = field(default_factory=list)


def fairseq_model_args(config: dict, max_positions: int) -> List[str]:
    """``fairseq-train`` flags that build a RoBERTa of the source's shape.

    Stock ``roberta_base`` when the source's LayerNorm epsilon is fairseq's 1e-5 (RoBERTa);
    the plugin's ``roberta_hf`` with ``--layer-norm-eps`` otherwise (BERT: 1e-12).
    """
    eps = float(config.get("layer_norm_eps", 1e-12 if config["model_type"] == "bert" else FAIRSEQ_LAYER_NORM_EPS))
    arch = ["--arch", "roberta_base"] if eps == FAIRSEQ_LAYER_NORM_EPS else ["--arch", "roberta_hf", "--layer-norm-eps", repr(eps)]
    return [
        *arch,
        "--encoder-layers", str(config["num_hidden_layers"]),
        "--encoder-embed-dim", str(config["hidden_size"]),
        "--encoder-ffn-embed-dim", str(config["intermediate_size"]),
        "--encoder-attention-heads", str(config["num_attention_heads"]),
        "--max-positions", str(max_positions),
        "--activation-fn", ACTIVATIONS[config.get("hidden_act", "gelu")],
        "--dropout", str(config.get("hidden_dropout_prob", 0.1)),
        "--attention-dropout", str(config.get("attention_probs_dropout_prob", 0.1)),
    ]


def _require(state: Dict[str, torch.Tensor], key: str, folder: Path) -> torch.Tensor:
    if key not in state:
        raise ConversionError(f"{folder}: weight {key!r} missing from the checkpoint")
    return state[key]


def convert(ckpt: HFCheckpoint) -> Conversion:
    """Map the source weights onto fairseq RoBERTa parameter names (see the module docstring)."""
    cfg, hf, folder = ckpt.config, ckpt.state, ckpt.folder
    symbols, source_ids = fairseq_vocabulary(ckpt)
    order = torch.tensor(source_ids)
    notes = []

    word = _require(hf, "embeddings.word_embeddings.weight", folder)
    if word.shape[0] < len(ckpt.tokens):
        raise ConversionError(f"{folder}: {len(ckpt.tokens)} vocabulary tokens but only {word.shape[0]} embedding rows")
    if word.shape[0] > len(ckpt.tokens):
        notes.append(f"dropped {word.shape[0] - len(ckpt.tokens)} embedding rows that no vocabulary token uses")
    positions = _require(hf, "embeddings.position_embeddings.weight", folder)
    token_types = hf.get("embeddings.token_type_embeddings.weight")

    # Where the source keeps the position of the first token: BERT counts from 0, HF RoBERTa
    # (like fairseq) from pad_token_id + 1.
    first = 0 if ckpt.tokenizer == "wordpiece" else int(cfg.get("pad_token_id", 1)) + 1
    max_positions = positions.shape[0] - first
    dim = positions.shape[1]
    fairseq_positions = torch.zeros(max_positions + FAIRSEQ_PADDING_IDX + 1, dim, dtype=positions.dtype)
    fairseq_positions[FAIRSEQ_PADDING_IDX + 1:] = positions[first:]
    if token_types is not None:
        fairseq_positions[FAIRSEQ_PADDING_IDX + 1:] += token_types[0]
        if token_types.shape[0] > 1:
            notes.append("token-type 0 folded into the positions; fairseq's RoBERTa has no segments, so types >= 1 are dropped")

    enc = "encoder.sentence_encoder."
    tokens = word[order].clone()
    out = {
        enc + "embed_tokens.weight": tokens,
        enc + "embed_positions.weight": fairseq_positions,
        enc + "layernorm_embedding.weight": _require(hf, "embeddings.LayerNorm.weight", folder),
        enc + "layernorm_embedding.bias": _require(hf, "embeddings.LayerNorm.bias", folder),
        # fairseq ties the masked-LM output projection to the token embeddings.
        "encoder.lm_head.weight": tokens,
    }
    for i in range(cfg["num_hidden_layers"]):
        for src, dst in LAYER_MAP.items():
            for param in ("weight", "bias"):
                out[f"{enc}layers.{i}.{dst}.{param}"] = _require(hf, f"encoder.layer.{i}.{src}.{param}", folder)
    extra_layers = sorted({k.split(".")[2] for k in hf if k.startswith("encoder.layer.")}, key=int)
    if len(extra_layers) != cfg["num_hidden_layers"]:
        raise ConversionError(
            f"{folder}: config.json says {cfg['num_hidden_layers']} layers but the weights hold {len(extra_layers)}"
        )

    # Masked-LM head: BertForMaskedLM's cls.predictions.*, RobertaForMaskedLM's lm_head.*
    head = {
        "cls.predictions.transform.dense": "encoder.lm_head.dense",
        "cls.predictions.transform.LayerNorm": "encoder.lm_head.layer_norm",
        "lm_head.dense": "encoder.lm_head.dense",
        "lm_head.layer_norm": "encoder.lm_head.layer_norm",
    }
    for src, dst in head.items():
        if f"{src}.weight" in hf:
            out[f"{dst}.weight"], out[f"{dst}.bias"] = hf[f"{src}.weight"], hf[f"{src}.bias"]
    for bias_key in ("cls.predictions.bias", "cls.predictions.decoder.bias", "lm_head.bias", "lm_head.decoder.bias"):
        if bias_key in hf:
            out["encoder.lm_head.bias"] = hf[bias_key][order].clone()
            break
    if "encoder.lm_head.dense.weight" not in out:
        notes.append("no masked-LM head in the source: encoder.lm_head keeps fairseq's initialisation")
    if any(k.startswith("pooler.") for k in hf):
        notes.append("BERT pooler dropped (fairseq's classification heads bring their own dense+tanh)")

    if ckpt.tokenizer == "wordpiece":
        bpe_args = {"bpe": "bert", "bpe_vocab_file": "vocab.txt", "bpe_cased": not ckpt.lowercase}
    else:
        bpe_args = {"bpe": "gpt2", "gpt2_encoder_json": "encoder.json", "gpt2_vocab_bpe": "vocab.bpe"}
    out = {k: v.detach().to(torch.float32).contiguous() for k, v in out.items()}
    return Conversion(symbols, source_ids, out, fairseq_model_args(cfg, max_positions), bpe_args, notes)



"""Convert a Hugging Face BERT or RoBERTa checkpoint into fairseq's RoBERTa format.

    python -m fairseq_freelb.convert_hf HF_DIR OUT_DIR

``HF_DIR`` holds ``config.json``, the weights (``model.safetensors`` or
``pytorch_model.bin``) and the tokenizer files (``vocab.txt`` for BERT's
WordPiece; ``vocab.json`` + ``merges.txt`` for RoBERTa's byte-level BPE).
``OUT_DIR`` receives what ``fairseq-train --restore-file`` and
``RobertaModel.from_pretrained`` need:

* ``model.pt``: a fairseq checkpoint (``cfg`` + ``model``) of ``--arch roberta_base``
  with the source's sizes, for ``--task masked_lm`` like fairseq's own ``roberta.base``;
* ``dict.txt``: the vocabulary as a fairseq ``Dictionary``;
* the BPE files: ``vocab.txt`` (``--bpe bert``) or ``encoder.json`` + ``vocab.bpe`` (``--bpe gpt2``);
* ``convert_hf.json``: the ``fairseq-train`` architecture flags, the BPE settings and
  the verification result.

How the two architectures line up (both are post-LayerNorm Transformer encoders):

* token embeddings: rows reordered into fairseq's dictionary order, with
  ``[CLS]``/``<s>`` -> ``<s>`` (0), ``[PAD]`` -> ``<pad>`` (1), ``[SEP]``/``</s>`` -> ``</s>`` (2),
  ``[UNK]`` -> ``<unk>`` (3), the ordinary tokens in the source's id order (``dict.txt``),
  and ``[MASK]`` -> ``<mask>``, which fairseq's tasks append after ``dict.txt``;
* positions: fairseq's learned positions start at ``padding_idx + 1`` = 2, so BERT's
  row k becomes fairseq's row k + 2 (RoBERTa already uses that offset);
* segments: fairseq's RoBERTa has no token-type embedding, so the type-0 row (the one
  every single-sentence input uses) is added into every position row;
* layers map one to one (q/k/v/out projections, two LayerNorms, fc1/fc2), GELU stays GELU;
* the masked-LM head is copied when the source has one, else left at fairseq's initialisation
  (it is not used by sentence-prediction fine-tuning); BERT's pooler is dropped.

The command verifies its output: it loads ``model.pt`` with fairseq's own loader, runs
one batch (sentences through the converted BPE and dictionary, plus random token ids)
through it and through the Hugging Face model (``transformers``), and fails when the
final hidden states differ by more than ``--tolerance`` (1e-4).
"""

import argparse
import json
import logging
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from fairseq_freelb.adapters.models.roberta_hf import FAIRSEQ_LAYER_NORM_EPS

logger = logging.getLogger("fairseq_freelb.convert_hf")

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

# fairseq's Dictionary puts these four first (fairseq.data.Dictionary.__init__).
FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
FAIRSEQ_PADDING_IDX = 1

METADATA_FILE = "convert_hf.json"

VERIFY_SENTENCES = [
    "The film is a charming, funny and deeply moving portrait of a family.",
    "A tedious, overlong mess that squanders its talented cast.",
    "It's not great -- but it isn't awful, either (3/5).",
    "Überraschend gut! Naïve café owners meet 42 robots in São Paulo.",
]


class ConversionError(Exception):
    """A source checkpoint that cannot be converted faithfully; the message names the file."""


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


@dataclass
class Conversion:
    """The converted model, before it is written."""

    symbols: List[str]  # dict.txt lines (without fairseq's four specials and <mask>)
    source_ids: List[int]  # source token id of each fairseq index 0..len-1 (including <mask>)
    state: Dict[str, torch.Tensor]
    model_args: List[str]  # fairseq-train architecture flags
    bpe_args: Dict[str, object] = field(default_factory=dict)  # relative file names
    notes: List[str] = field(default_factory=list)


# --------------------------------------------------------------------------- reading


def _read_json(path: Path) -> dict:
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
    safetensors_path = folder / "model.safetensors"
    bin_path = folder / "pytorch_model.bin"
    if safetensors_path.exists():
        from safetensors.torch import load_file

        return load_file(str(safetensors_path)), safetensors_path.name
    if bin_path.exists():
        # weights_only: a .bin is a pickle; plain tensors are all a model file needs.
        return torch.load(str(bin_path), map_location="cpu", weights_only=True), bin_path.name
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
            data = _read_json(path)
            for symbol, name in names.items():
                value = data.get(name)
                if isinstance(value, dict):  # AddedToken serialisation
                    value = value.get("content")
                if isinstance(value, str) and symbol not in found:
                    found[symbol] = value
    return {symbol: found.get(symbol, default) for symbol, default in defaults.items()}


def read_hf_folder(folder) -> HFCheckpoint:
    folder = Path(folder)
    if not folder.is_dir():
        raise ConversionError(f"{folder}: not a directory")
    config_path = folder / "config.json"
    config = _read_json(config_path)
    model_type = check_supported(config, config_path)
    state, weights_file = _load_weights(folder)
    state = _strip_prefix(state)

    tokenizer_config = _read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").exists() else {}
    if model_type == "bert":
        vocab_path = folder / "vocab.txt"
        if not vocab_path.exists():
            raise ConversionError(f"{vocab_path}: missing (BERT checkpoints need their WordPiece vocab.txt)")
        # split("\n"), not splitlines(): WordPiece vocabularies may hold characters such as
        # U+0085 or U+2028 that splitlines() would treat as line breaks.
        tokens = vocab_path.read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        tokens = [t[:-1] if t.endswith("\r") else t for t in tokens]
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
    encoder = _read_json(vocab_path)
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


# --------------------------------------------------------------------------- mapping


def fairseq_vocabulary(ckpt: HFCheckpoint) -> Tuple[List[str], List[int]]:
    """``dict.txt`` symbols, and the source id behind each fairseq index.

    fairseq index: 0..3 = <s>, <pad>, </s>, <unk>; 4.. = dict.txt in source-id order;
    last = <mask> (added by the task after loading dict.txt).
    """
    index_of = {}
    for i, token in enumerate(ckpt.tokens):
        if token in index_of:
            raise ConversionError(f"{ckpt.folder}: token {token!r} appears twice in the vocabulary (ids {index_of[token]}, {i})")
        index_of[token] = i
    special_ids = {}
    for symbol, token in ckpt.specials.items():
        if token not in index_of:
            raise ConversionError(f"{ckpt.folder}: special token {token!r} (for fairseq's {symbol}) is not in the vocabulary")
        special_ids[symbol] = index_of[token]
    special_set = set(special_ids.values())

    symbols, ids = [], []
    for i, token in enumerate(ckpt.tokens):
        if i in special_set:
            continue
        if ckpt.tokenizer == "byte_bpe":
            # fairseq's --bpe gpt2 writes each BPE token as its id in encoder.json; the converted
            # folder's encoder.json is the source's vocab.json, so those ids are the source ids.
            symbol = str(i)
        else:
            symbol = token
            if not symbol or any(c.isspace() for c in symbol):
                raise ConversionError(
                    f"{ckpt.folder / 'vocab.txt'}: line {i + 1}: token {symbol!r} is empty or contains "
                    "whitespace, which fairseq's dict.txt cannot hold"
                )
            if symbol in FAIRSEQ_SPECIALS or symbol == "<mask>":
                raise ConversionError(
                    f"{ckpt.folder / 'vocab.txt'}: line {i + 1}: ordinary token {symbol!r} collides with a fairseq special symbol"
                )
        symbols.append(symbol)
        ids.append(i)
    source_ids = [special_ids[s] for s in FAIRSEQ_SPECIALS] + ids + [special_ids["<mask>"]]
    return symbols, source_ids


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
    layer_map = {
        "attention.self.query": "self_attn.q_proj",
        "attention.self.key": "self_attn.k_proj",
        "attention.self.value": "self_attn.v_proj",
        "attention.output.dense": "self_attn.out_proj",
        "attention.output.LayerNorm": "self_attn_layer_norm",
        "intermediate.dense": "fc1",
        "output.dense": "fc2",
        "output.LayerNorm": "final_layer_norm",
    }
    for i in range(cfg["num_hidden_layers"]):
        for src, dst in layer_map.items():
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


# --------------------------------------------------------------------------- writing


def _bpe_paths(out_dir: Path, bpe_args: Dict[str, object]) -> Dict[str, object]:
    """The BPE settings with file names made absolute for ``out_dir``."""
    resolved = {}
    for key, value in bpe_args.items():
        resolved[key] = str(out_dir / value) if key.endswith(("_file", "_json", "_bpe")) else value
    return resolved


def _fairseq_cfg(out_dir: Path, conversion: Conversion) -> dict:
    """The checkpoint's ``cfg``, built by fairseq's own parser as for a masked-LM pretraining run."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    bpe = _bpe_paths(out_dir, conversion.bpe_args)
    argv = [str(out_dir), "--task", "masked_lm", "--criterion", "masked_lm", *conversion.model_args, "--cpu"]
    argv += ["--bpe", str(bpe.pop("bpe"))]
    for key, value in bpe.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv += [flag] if value else []
        else:
            argv += [flag, str(value)]
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, input_args=argv)
    cfg = convert_namespace_to_omegaconf(args)
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def _build_fairseq_model(cfg_container: dict, data_dir: Path):
    from fairseq import tasks
    from omegaconf import OmegaConf

    # cfg.model of a legacy (argparse) architecture such as roberta_base is an
    # argparse.Namespace; fairseq's checkpoint loader opens it the same way.
    cfg = OmegaConf.create(cfg_container, flags={"allow_objects": True})
    cfg.task.data = str(data_dir)
    task = tasks.setup_task(cfg.task)
    return task, task.build_model(cfg.model)


def write_output(ckpt: HFCheckpoint, conversion: Conversion, out_dir) -> Path:
    """Write dict.txt, the BPE files and model.pt (loaded back into a fairseq model as a check)."""
    import fairseq_freelb  # noqa: F401  (registers roberta_hf)
    from fairseq_freelb.adapters import runtime

    runtime.install()  # fairseq checkpoint types for torch's weights_only loading

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "dict.txt").write_text("".join(f"{s} 1\n" for s in conversion.symbols), encoding="utf-8")
    if ckpt.tokenizer == "wordpiece":
        (out_dir / "vocab.txt").write_text("".join(t + "\n" for t in ckpt.tokens), encoding="utf-8")
    else:
        shutil.copyfile(ckpt.folder / "vocab.json", out_dir / "encoder.json")
        # fairseq's GPT-2 reader skips the first line (a "#version" header) and the last
        # (expects a trailing newline); normalise so no merge is lost.
        merges = (ckpt.folder / "merges.txt").read_text(encoding="utf-8").split("\n")
        merges = [m for m in merges if m.strip()]
        if merges and merges[0].startswith("#version"):
            merges = merges[1:]
        (out_dir / "vocab.bpe").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")

    cfg = _fairseq_cfg(out_dir, conversion)
    task, model = _build_fairseq_model(cfg, out_dir)
    expected = len(conversion.source_ids)
    if len(task.source_dictionary) != expected:
        raise ConversionError(
            f"{out_dir / 'dict.txt'}: fairseq built a dictionary of {len(task.source_dictionary)} symbols, expected {expected}"
        )
    missing, unexpected = model.load_state_dict(conversion.state, strict=False)
    # Only the (optional) masked-LM head may keep fairseq's initialisation.
    missing = [k for k in missing if not k.startswith("encoder.lm_head.")]
    if missing or unexpected:
        raise ConversionError(f"{out_dir}: converted weights do not fit fairseq's model: missing {missing}, unexpected {unexpected}")

    state = {
        "args": None,
        "cfg": cfg,
        "model": model.state_dict(),
        "criterion": {},
        "optimizer_history": [
            {"criterion_name": "MaskedLmLoss", "optimizer_name": "None", "lr_scheduler_state": {}, "num_updates": 0}
        ],
        "task_state": {},
        "extra_state": {"converted_from": str(ckpt.folder)},
        "last_optimizer_state": None,
    }
    torch.save(state, out_dir / "model.pt")
    return out_dir


# --------------------------------------------------------------------------- verification


def _verification_batch(out_dir: Path, bpe_args: Dict[str, object], max_len: int, seed: int = 0) -> torch.Tensor:
    """fairseq token ids: real sentences through the converted BPE + dict.txt, then random tokens.

    Right-padded with <pad>, so both models number positions from the first token alike;
    rows are cut to ``max_len`` tokens (the model's positions).
    """
    from fairseq.data import Dictionary, encoders

    dictionary = Dictionary.load(str(out_dir / "dict.txt"))
    dictionary.add_symbol("<mask>")
    bpe = encoders.build_bpe(argparse.Namespace(**_bpe_paths(out_dir, bpe_args)))
    rows = []
    for sentence in VERIFY_SENTENCES:
        ids = dictionary.encode_line(bpe.encode(sentence), append_eos=False, add_if_not_exist=False).long()
        rows.append(torch.cat([torch.tensor([dictionary.bos()]), ids[: max_len - 2], torch.tensor([dictionary.eos()])]))
    generator = torch.Generator().manual_seed(seed)
    for length in (7, 19, min(32, max_len - 2)):
        middle = torch.randint(dictionary.nspecial, len(dictionary) - 1, (length,), generator=generator)
        rows.append(torch.cat([torch.tensor([dictionary.bos()]), middle, torch.tensor([dictionary.eos()])]))
    width = max(len(r) for r in rows)
    batch = torch.full((len(rows), width), dictionary.pad(), dtype=torch.long)
    for i, r in enumerate(rows):
        batch[i, : len(r)] = r
    return batch


def verify(hf_dir, out_dir, tolerance: float = 1e-4) -> float:
    """Max |fairseq - Hugging Face| over the final hidden states of one batch; raises above ``tolerance``."""
    import fairseq_freelb  # noqa: F401  (registers roberta_hf)
    from fairseq_freelb.adapters import runtime

    runtime.install()
    from fairseq import checkpoint_utils
    import transformers
    from transformers import AutoModel

    transformers.logging.set_verbosity_error()  # its load report lists the unused pooler
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    meta = _read_json(out_dir / METADATA_FILE)
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(out_dir / "model.pt")], arg_overrides={"data": str(out_dir)}
    )
    fairseq_model = models[0].eval()
    hf_model = AutoModel.from_pretrained(str(hf_dir), add_pooling_layer=False).eval()

    max_positions = int(meta["fairseq_args"][meta["fairseq_args"].index("--max-positions") + 1])
    tokens = _verification_batch(out_dir, meta["bpe"], max_positions)
    source_ids = torch.tensor(meta["source_ids"])
    pad = task.source_dictionary.pad()
    mask = tokens.ne(pad)
    with torch.no_grad():
        fairseq_states, _ = fairseq_model(tokens, features_only=True)
        hf_states = hf_model(
            input_ids=source_ids[tokens], attention_mask=mask.long(), token_type_ids=torch.zeros_like(tokens)
        ).last_hidden_state
    diff = (fairseq_states - hf_states).abs()[mask].max().item()
    if not diff <= tolerance:
        raise ConversionError(
            f"{out_dir / 'model.pt'}: verification failed: max |fairseq - transformers| of the final hidden states "
            f"is {diff:.3g} > {tolerance:g}"
        )
    return diff


# --------------------------------------------------------------------------- command


def convert_folder(hf_dir, out_dir, tolerance: float = 1e-4, check: bool = True) -> dict:
    """Convert, write, verify; returns the metadata written to ``OUT_DIR/convert_hf.json``."""
    ckpt = read_hf_folder(hf_dir)
    logger.info(f"{ckpt.folder}: {ckpt.config['model_type']} from {ckpt.weights_file}, {len(ckpt.tokens)} tokens")
    conversion = convert(ckpt)
    for note in conversion.notes:
        logger.info(note)
    out_dir = write_output(ckpt, conversion, out_dir)
    meta = {
        "source": str(ckpt.folder),
        "model_type": ckpt.config["model_type"],
        "fairseq_args": conversion.model_args,
        "bpe": conversion.bpe_args,
        "source_ids": conversion.source_ids,
        "notes": conversion.notes,
    }
    (out_dir / METADATA_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    if check:
        diff = verify(ckpt.folder, out_dir, tolerance)
        meta["max_abs_diff"] = diff
        meta["tolerance"] = tolerance
        (out_dir / METADATA_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        logger.info(f"verified: max |fairseq - transformers| of the final hidden states = {diff:.3g} (<= {tolerance:g})")
    return meta


def load_converted(out_dir, **kwargs):
    """``RobertaModel.from_pretrained`` on a converted folder, with its BPE files wired in.

    ``RobertaModel.from_pretrained`` defaults to ``bpe="gpt2"`` with files from the internet;
    this passes the converted folder's own BPE settings instead.
    """
    import fairseq_freelb  # noqa: F401  (registers roberta_hf)
    from fairseq_freelb.adapters import runtime

    runtime.install()
    from fairseq.models.roberta import RobertaModel

    out_dir = Path(out_dir).resolve()
    meta = _read_json(out_dir / METADATA_FILE)
    overrides = _bpe_paths(out_dir, meta["bpe"])
    overrides.update(kwargs)
    return RobertaModel.from_pretrained(str(out_dir), checkpoint_file="model.pt", **overrides)


def train_args(out_dir) -> List[str]:
    """The ``fairseq-train`` flags that rebuild the converted architecture (plus ``--restore-file``)."""
    out_dir = Path(out_dir).resolve()
    meta = _read_json(out_dir / METADATA_FILE)
    return [*meta["fairseq_args"], "--restore-file", str(out_dir / "model.pt"),
            "--reset-optimizer", "--reset-dataloader", "--reset-meters"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fairseq_freelb.convert_hf",
        description="Convert a Hugging Face BERT/RoBERTa folder into a fairseq RoBERTa checkpoint folder, and verify it.",
    )
    parser.add_argument("hf_dir", help="Hugging Face folder: config.json, model.safetensors or pytorch_model.bin, "
                        "vocab.txt (BERT) or vocab.json + merges.txt (RoBERTa)")
    parser.add_argument("out_dir", help="output folder: model.pt, dict.txt, BPE files, convert_hf.json")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="fail when the final hidden states differ by more than this (default 1e-4)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the round-trip check through transformers (not recommended)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module="hydra")  # fairseq's cfg conversion: hydra 1.1 deprecations
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO,
                        stream=sys.stdout, force=True)  # fairseq configures the root logger at import
    logging.getLogger("fairseq").setLevel(logging.WARNING)
    try:
        meta = convert_folder(args.hf_dir, args.out_dir, args.tolerance, check=not args.no_verify)
    except ConversionError as exc:
        print(f"convert_hf: error: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out_dir).resolve()
    print(f"wrote {out}/model.pt and {out}/dict.txt ({len(meta['source_ids'])} symbols with <mask>)")
    print("fine-tune with: fairseq-train DATA-bin --user-dir fairseq_freelb " + " ".join(train_args(out)) + " ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())

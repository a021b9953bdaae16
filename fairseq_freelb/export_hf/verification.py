"""Verification: the exported folder, loaded through transformers, is the fairseq model.

Samples: the converter's four verification sentences, alone and as four pairs (for a
multiple-choice head: two questions with ``Q: ``/``A: `` texts, four choices each, as
``--task multiple_choice`` lays them out), plus three rows of random token ids. For each
text the token ids of ``AutoTokenizer`` must be those of the fairseq pipeline (fairseq's
BPE and dictionary, the task's ``[init] A </s> [separator] B </s>``), and the logits of
``AutoModelFor...`` those of fairseq's model within the tolerance, with the same
predicted labels (the argmax over classes or choices).
"""

import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from fairseq_freelb.convert_hf.verification import VERIFY_SENTENCES
from fairseq_freelb.export_hf.source import MULTIPLE_CHOICE, REGRESSION, ExportError, FineTuned
from fairseq_freelb.export_hf.vocabulary import Vocabulary, fairseq_bpe_args
from fairseq_freelb.export_hf.weights import max_positions

# The converter's sentences, and short ones that fit small models' positions (a longer text is left out).
SENTENCES = ["a charming, funny film", "Not good; the plot is dull."] + VERIFY_SENTENCES
PAIRS = [(SENTENCES[i], SENTENCES[(i + 1) % len(SENTENCES)]) for i in range(len(SENTENCES))]
QUESTIONS = [
    ("Q: Where would you keep a book you are reading?", ["A: the library", "A: the ocean", "A: a bed", "A: a cloud"]),
    ("Q: What does a magnet attract?", ["A: wood", "A: iron", "A: glass", "A: water"]),
]
RANDOM_LENGTHS = (7, 19, 32)


class FairseqInputs:
    """Token ids as the fairseq task builds them: ``[init] A </s> [separator] B </s>``."""

    def __init__(self, fine_tuned: FineTuned, dictionary, vocabulary: Vocabulary):
        from fairseq.data import encoders

        self.layout, self.dictionary = fine_tuned.layout, dictionary
        self.bpe = encoders.build_bpe(argparse.Namespace(**fairseq_bpe_args(vocabulary)))

    def text(self, text: str) -> List[int]:
        line = self.bpe.encode(text)
        return self.dictionary.encode_line(line, append_eos=False, add_if_not_exist=False).long().tolist()

    def wrap(self, first: List[int], second: Optional[List[int]] = None) -> List[int]:
        eos = self.dictionary.eos()
        out = ([self.layout.init] if self.layout.init is not None else []) + first + [eos]
        if second is not None:
            out += ([self.layout.separator] if self.layout.separator is not None else []) + second + [eos]
        return out

    def encode(self, first: str, second: Optional[str] = None) -> List[int]:
        return self.wrap(self.text(first), None if second is None else self.text(second))


def _pad(rows: Sequence[List[int]], pad: int) -> Tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r)
    return tokens, tokens.ne(pad)


def _hf_rows(tokenizer, texts: Sequence[Tuple[str, Optional[str]]]) -> List[List[int]]:
    return [tokenizer(a, b)["input_ids"] if b is not None else tokenizer(a)["input_ids"] for a, b in texts]


def _check_ids(name: Path, texts, hf_rows, fairseq_rows, to_fairseq: Dict[int, int]) -> None:
    for (a, b), hf, fs in zip(texts, hf_rows, fairseq_rows):
        mapped = [to_fairseq.get(i, -1) for i in hf]
        if mapped != fs:
            what = repr(a) if b is None else f"the pair ({a!r}, {b!r})"
            raise ExportError(f"{name}: verification failed: the exported tokenizer's ids for {what} are not those "
                              f"fairseq trained on (fairseq indices {fs}, the tokenizer's mapped back {mapped})")


def _fairseq_logits(model, head: str, rows: List[List[int]], pad: int) -> torch.Tensor:
    tokens, _ = _pad(rows, pad)
    with torch.no_grad():
        logits, _ = model(tokens, features_only=True, classification_head_name=head)
    return logits.float()


def _hf_logits(model, rows: List[List[int]], pad: int) -> torch.Tensor:
    tokens, mask = _pad(rows, pad)
    with torch.no_grad():
        return model(input_ids=tokens, attention_mask=mask.long()).logits.float()


def verify(fine_tuned: FineTuned, fairseq_model, dictionary, vocabulary: Vocabulary, folder: Path,
           tolerance: float, name: Path) -> Dict[str, object]:
    """Load ``folder`` through transformers and compare with ``fairseq_model``; the record for export_hf.json."""
    import transformers
    from transformers import AutoModelForMultipleChoice, AutoModelForSequenceClassification, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    auto = AutoModelForMultipleChoice if fine_tuned.kind == MULTIPLE_CHOICE else AutoModelForSequenceClassification
    hf_model = auto.from_pretrained(str(folder)).eval()
    inputs = FairseqInputs(fine_tuned, dictionary, vocabulary)
    to_fairseq = vocabulary.fairseq_indices(dictionary.unk())
    hf_pad, fs_pad = vocabulary.hf_ids[dictionary.pad()], dictionary.pad()

    if fine_tuned.kind == MULTIPLE_CHOICE:
        texts = [(q, c) for q, choices in QUESTIONS for c in choices]
    else:
        texts = [(s, None) for s in SENTENCES] + list(PAIRS)
        # Texts longer than the model's positions are left out (the fairseq pipeline cuts them when binarizing).
        texts = [(a, b) for a, b in texts if len(inputs.encode(a, b)) <= max_positions(fine_tuned)]
    fairseq_rows = [inputs.encode(a, b) for a, b in texts]
    singles = sum(b is None for _, b in texts)
    if fine_tuned.kind != MULTIPLE_CHOICE and not 0 < singles < len(texts):
        raise ExportError(f"{name}: verification needs at least one sample text and one pair that fit the model's "
                          f"{max_positions(fine_tuned)} positions")
    hf_rows = _hf_rows(tokenizer, texts)
    _check_ids(name, texts, hf_rows, fairseq_rows, to_fairseq)
    generator = torch.Generator().manual_seed(0)
    random_rows = []
    for length in RANDOM_LENGTHS:
        length = min(length, max_positions(fine_tuned) - 4)
        middle = torch.randint(dictionary.nspecial, len(dictionary) - 1, (length,), generator=generator).tolist()
        random_rows.append(inputs.wrap(middle))
    if fine_tuned.kind != MULTIPLE_CHOICE:
        fairseq_rows += random_rows
        hf_rows += [[vocabulary.hf_ids[i] for i in r] for r in random_rows]

    ours = _fairseq_logits(fairseq_model, fine_tuned.head_name, fairseq_rows, fs_pad)
    if fine_tuned.kind == MULTIPLE_CHOICE:
        choices = len(QUESTIONS[0][1])
        ours = ours.view(-1, choices)
        tokens, mask = _pad(hf_rows, hf_pad)
        with torch.no_grad():
            theirs = hf_model(input_ids=tokens.view(-1, choices, tokens.shape[1]),
                              attention_mask=mask.long().view(-1, choices, tokens.shape[1])).logits.float()
    else:
        theirs = _hf_logits(hf_model, hf_rows, hf_pad)
    diff = (ours - theirs).abs().max().item()
    if fine_tuned.kind == REGRESSION:
        agree, compared = len(ours), len(ours)
    else:
        agree, compared = int((ours.argmax(-1) == theirs.argmax(-1)).sum()), len(ours)
    record = {
        "compared": {
            "texts": sum(b is None for _, b in texts) if fine_tuned.kind != MULTIPLE_CHOICE else 0,
            "pairs": sum(b is not None for _, b in texts) if fine_tuned.kind != MULTIPLE_CHOICE else 0,
            "questions": len(QUESTIONS) if fine_tuned.kind == MULTIPLE_CHOICE else 0,
            "candidates": len(texts) if fine_tuned.kind == MULTIPLE_CHOICE else 0,
            "random_token_rows": len(random_rows) if fine_tuned.kind != MULTIPLE_CHOICE else 0,
        },
        "token_ids_equal": True,
        "max_abs_diff": diff,
        "tolerance": tolerance,
        "predicted_labels_equal": f"{agree}/{compared}" if fine_tuned.kind != REGRESSION else "n/a (regression)",
    }
    if not diff <= tolerance or agree != compared:
        raise ExportError(f"{name}: verification failed: max |fairseq - transformers| of the logits is {diff:.3g} "
                          f"(tolerance {tolerance:g}), predicted labels equal on {agree} of {compared}")
    return record

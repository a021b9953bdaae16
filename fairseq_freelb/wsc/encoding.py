"""WSC candidates as token sequences: the candidate in place of the pronoun, masked, its own ids the targets.

``<s> left <mask> ... <mask> right </s>``: GPT-2 BPE of the three pieces of
:func:`fairseq_freelb.wsc.formats.substitute`, mapped through RoBERTa's
``dict.txt``. The span tensor has the candidate's ids at the masked
positions and padding elsewhere. A sentence longer than ``max_positions`` is
an error naming the row: nothing is truncated.
"""

import os
from dataclasses import dataclass
from typing import Dict, List

import torch

from fairseq_freelb.adapters import data_record
from fairseq_freelb.adapters.data_record import DictionaryMismatch  # noqa: F401  (re-exported: its earlier home)
from fairseq_freelb.wsc.formats import WSCFormatError, WSCRow, substitute

MASK = "<mask>"


def load_dictionary(path: str):
    """RoBERTa's dict.txt with ``<mask>`` appended, as pretraining built it."""
    from fairseq.data import Dictionary

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: dictionary not found (RoBERTa's dict.txt belongs in the data folder)")
    dictionary = Dictionary.load(path)
    dictionary.add_symbol(MASK)
    return dictionary


# One implementation for GLUE, multiple choice and WSC; this task keeps its ``wsc_`` keys in task_state.
WSC_PREFIX = "wsc_"


def dictionary_fingerprint(dictionary) -> Dict[str, object]:
    """Size and SHA-1 of the symbol list: saved with each checkpoint, compared with the data's when it is loaded."""
    return data_record.dictionary_fingerprint(dictionary, WSC_PREFIX)


def check_dictionary(saved: Dict[str, object], dictionary, dict_path: str) -> None:
    """Refuse (one line, :class:`DictionaryMismatch`) a checkpoint fingerprint that is not ``dictionary``'s."""
    data_record.check_dictionary(saved, dictionary, dict_path, WSC_PREFIX)


class GPT2:
    def __init__(self, encoder_json: str, vocab_bpe: str):
        from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

        for path in (encoder_json, vocab_bpe):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: GPT-2 BPE file not found")
        self.encoder = get_encoder(encoder_json, vocab_bpe)

    def ids(self, text: str) -> List[int]:
        return self.encoder.encode(text) if text else []


@dataclass
class EncodedCandidate:
    tokens: torch.Tensor  # <s> left <mask>*n right </s>
    span: torch.Tensor  # the candidate's ids where tokens has <mask>, pad elsewhere


class CandidateEncoder:
    def __init__(self, dictionary, bpe: GPT2, max_positions: int):
        self.dictionary = dictionary
        self.bpe = bpe
        self.max_positions = max_positions
        self.mask = dictionary.index(MASK)
        self.unknown_tokens = 0

    def _ids(self, text: str) -> torch.Tensor:
        line = " ".join(str(i) for i in self.bpe.ids(text))
        ids = self.dictionary.encode_line(line, append_eos=False, add_if_not_exist=False).long()
        self.unknown_tokens += int(ids.eq(self.dictionary.unk()).sum())
        return ids

    def encode(self, row: WSCRow) -> EncodedCandidate:
        left, candidate, right = substitute(row.text, row.pronoun_index, row.pronoun_words, row.candidate)
        left_ids, cand_ids, right_ids = self._ids(left), self._ids(candidate), self._ids(right)
        if len(cand_ids) == 0:
            raise WSCFormatError(f"{row.origin}: candidate {row.candidate!r} has no tokens")
        length = len(left_ids) + len(cand_ids) + len(right_ids) + 2
        if length > self.max_positions:
            raise WSCFormatError(f"{row.origin}: the text with candidate {row.candidate!r} takes {length} tokens, "
                                 f"more than --max-positions {self.max_positions}; WSC texts are never truncated")
        d = self.dictionary
        bos, eos, pad = torch.tensor([d.bos()]), torch.tensor([d.eos()]), d.pad()
        masked = torch.full_like(cand_ids, self.mask)
        tokens = torch.cat([bos, left_ids, masked, right_ids, eos])
        span = torch.full_like(tokens, pad)
        start = 1 + len(left_ids)
        span[start : start + len(cand_ids)] = cand_ids
        return EncodedCandidate(tokens, span)

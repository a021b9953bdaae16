"""``--task multiple_choice``: CommonsenseQA, ARC, OpenBookQA and RACE straight from their official files.

The data directory holds ``dict.txt`` (RoBERTa's dictionary), GPT-2's
``encoder.json`` and ``vocab.bpe`` (or ``--encoder-json`` / ``--vocab-bpe``),
and for each split either ``{split}.jsonl`` (CommonsenseQA/ARC/OpenBookQA
format) or a ``{split}/`` directory of such files and/or RACE ``*.txt`` files
(concatenated in sorted order: the multi-task set). An optional
``{split}.context.jsonl`` adds retrieved context (see
:mod:`fairseq_freelb.mc.formats`). ``python -m fairseq_freelb.mc.preprocess``
builds such a directory and checks every file beforehand.

Questions may have different numbers of choices (ARC: 3 to 5); missing choices
are masked out of the softmax (:mod:`fairseq_freelb.mc.dataset`). Training
steps go through the adversarial hook (:class:`AdversarialTrainingMixin`).
"""

import logging
import os
from dataclasses import dataclass, field

from fairseq.data import Dictionary
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II, MISSING

from fairseq_freelb.adapters import runtime
from fairseq_freelb.adapters.data_folder import require_data_folder
from fairseq_freelb.adapters.dictionary_task import DictionaryTaskMixin
from fairseq_freelb.adapters.task_mixin import AdversarialTrainingMixin
from fairseq_freelb.mc.dataset import MultipleChoiceDataset
from fairseq_freelb.mc.encoding import MC_PREFIX, CandidateEncoder, GPT2Tokens
from fairseq_freelb.mc.formats import MultipleChoiceFormatError, attach_contexts, read_contexts, read_split
from fairseq_freelb.mc.preprocess_summary import warn_if_preprocessed_for_other_length

logger = logging.getLogger(__name__)


@dataclass
class MultipleChoiceConfig(FairseqDataclass):
    data: str = field(
        default=MISSING,
        metadata={"help": "data directory: dict.txt, encoder.json, vocab.bpe and {split}.jsonl or {split}/"},
    )
    encoder_json: str = field(default="", metadata={"help": "GPT-2 encoder.json (default: DATA/encoder.json)"})
    vocab_bpe: str = field(default="", metadata={"help": "GPT-2 vocab.bpe (default: DATA/vocab.bpe)"})
    max_positions: int = field(
        default=512,
        metadata={"help": "max tokens per choice sequence; longer contexts are truncated, never question/answer"},
    )
    no_shuffle: bool = field(default=False, metadata={"help": "do not shuffle the training questions"})
    ranking_head_name: str = II("criterion.ranking_head_name")
    seed: int = II("common.seed")


@register_task("multiple_choice", dataclass=MultipleChoiceConfig)
class MultipleChoiceTask(DictionaryTaskMixin, AdversarialTrainingMixin, FairseqTask):
    FINGERPRINT_PREFIX = MC_PREFIX
    def __init__(self, cfg: MultipleChoiceConfig, dictionary: Dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary
        self._bpe = None
        # Per split: the Question records in dataset order (ids, labels, sources for evaluation).
        self.questions = {}

    @classmethod
    def load_dictionary(cls, filename: str) -> Dictionary:
        if not os.path.isfile(filename):
            raise FileNotFoundError(f"{filename}: dictionary not found (RoBERTa's dict.txt belongs in the data directory)")
        dictionary = Dictionary.load(filename)
        dictionary.add_symbol("<mask>")  # as in RoBERTa pretraining, so the embedding sizes match
        return dictionary

    @classmethod
    def setup_task(cls, cfg: MultipleChoiceConfig, **kwargs):
        runtime.install()  # the refusal below is one line under fairseq-train
        require_data_folder(cfg.data, "multiple_choice", ["dict.txt"],
                            "give the folder that python -m fairseq_freelb.mc.preprocess --destdir writes")
        dictionary = cls.load_dictionary(os.path.join(cfg.data, "dict.txt"))
        logger.info(f"dictionary: {len(dictionary)} types")
        warn_if_preprocessed_for_other_length(cfg.data, cfg.max_positions)
        return cls(cfg, dictionary)

    @property
    def bpe(self) -> GPT2Tokens:
        if self._bpe is None:
            self._bpe = GPT2Tokens(
                self.cfg.encoder_json or os.path.join(self.cfg.data, "encoder.json"),
                self.cfg.vocab_bpe or os.path.join(self.cfg.data, "vocab.bpe"),
            )
        return self._bpe

    def split_path(self, split: str) -> str:
        for path in (os.path.join(self.cfg.data, f"{split}.jsonl"), os.path.join(self.cfg.data, split)):
            if os.path.exists(path):
                return path
        raise FileNotFoundError(f"{self.cfg.data}: split {split!r} not found (expected {split}.jsonl or {split}/)")

    def read_questions(self, split: str):
        questions = read_split(self.split_path(split))
        context_path = os.path.join(self.cfg.data, f"{split}.context.jsonl")
        if os.path.isfile(context_path):
            counts = attach_contexts(questions, read_contexts(context_path), context_path)
            logger.info(
                f"{split}: retrieved context for {counts['questions_with_context']} questions "
                f"from {context_path}; {counts['questions_without_context']} questions have none"
            )
        with_fact = sum("fact1" in q.extra for q in questions)
        if with_fact:
            logger.warning(f"{split}: 'fact1' of {with_fact} questions is ignored "
                           "(python -m fairseq_freelb.mc.preprocess --fact1-context uses it as context)")
        return questions

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        from tqdm import tqdm

        questions = self.read_questions(split)
        labelled = [q.answer is not None for q in questions]
        if (any(labelled) or split == "train") and not all(labelled):  # unlabelled training data would teach nothing
            first = questions[labelled.index(False)]
            raise MultipleChoiceFormatError(
                f"{first.origin}: no answerKey, but split {split!r} needs one on "
                f"{'every question' if split == 'train' else 'all of its questions or none'}"
            )
        encoder = CandidateEncoder(self.dictionary, self.bpe, self.cfg.max_positions)
        candidates = [
            encoder.encode(q)
            for q in tqdm(questions, desc=f"encoding {split}", disable=len(questions) < 2000, mininterval=5)
        ]
        targets = [q.target for q in questions] if questions and all(labelled) else None
        logger.info(f"{split}: {encoder.stats.summary()}")
        if encoder.stats.truncated_candidates:
            logger.warning(
                f"{split}: context truncated to --max-positions {self.cfg.max_positions} in "
                f"{encoder.stats.truncated_candidates} candidates of {encoder.stats.truncated_questions} questions"
            )
        self.questions[split] = questions
        self.encoding_stats = getattr(self, "encoding_stats", {})
        self.encoding_stats[split] = encoder.stats
        self.datasets[split] = MultipleChoiceDataset(
            candidates,
            targets,
            pad_idx=self.dictionary.pad(),
            bos_idx=self.dictionary.bos(),
            eos_idx=self.dictionary.eos(),
            shuffle=split == "train" and not self.cfg.no_shuffle,
            seed=self.cfg.seed,
        )
        return self.datasets[split]

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        # One score per (question, choice) sequence; the softmax runs over the choices.
        model.register_classification_head(self.cfg.ranking_head_name, num_classes=1)
        return model

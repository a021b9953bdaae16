"""``--task freelb_wsc``: WSC candidate groups scored by the masked-LM head, with the adversarial training step.

The data folder (written by ``python -m fairseq_freelb.glue.preprocess --tasks
WNLI-wsc``) holds RoBERTa's ``dict.txt``, GPT-2's ``encoder.json`` and
``vocab.bpe``, and one WSC-format JSONL file per split: ``train.jsonl`` and
``valid.jsonl`` (SuperGLUE's ``train.jsonl`` and ``val.jsonl``), and the WNLI
rows mapped onto WSC groups (``wnli_valid.jsonl``, ``test.jsonl``).

``train`` yields one example per correct candidate, ranked against the wrong
candidates of its group (RoBERTa's WSC training, Liu et al. 2019); every other
split yields each candidate group whole, in file order, for per-row
accuracy and prediction. The counts are logged when a split is loaded. Each
checkpoint records the dictionary's fingerprint; loading it on a folder with
another dictionary is refused.
"""

import logging
import os
from dataclasses import dataclass, field

from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II, MISSING

from fairseq_freelb.adapters.dictionary_task import DictionaryTaskMixin
from fairseq_freelb.adapters.task_mixin import AdversarialTrainingMixin
from fairseq_freelb.wsc.dataset import CandidateGroupDataset, GroupItem, single_correct
from fairseq_freelb.wsc.encoding import GPT2, WSC_PREFIX, CandidateEncoder, load_dictionary
from fairseq_freelb.wsc.formats import WSCFormatError, group_rows, read_rows, training_examples

logger = logging.getLogger(__name__)

TRAIN = "train"


def _label(value) -> int:
    return -1 if value is None else int(bool(value))


@dataclass
class WSCConfig(FairseqDataclass):
    data: str = field(default=MISSING, metadata={"help": "data folder: dict.txt, encoder.json, vocab.bpe, {split}.jsonl"})
    encoder_json: str = field(default="", metadata={"help": "GPT-2 encoder.json (default: DATA/encoder.json)"})
    vocab_bpe: str = field(default="", metadata={"help": "GPT-2 vocab.bpe (default: DATA/vocab.bpe)"})
    max_positions: int = field(default=512, metadata={"help": "longest sequence; longer WSC texts are an error"})
    no_shuffle: bool = field(default=False, metadata={"help": "do not shuffle the training examples"})
    seed: int = II("common.seed")


@register_task("freelb_wsc", dataclass=WSCConfig)
class WSCTask(DictionaryTaskMixin, AdversarialTrainingMixin, FairseqTask):
    FINGERPRINT_PREFIX = WSC_PREFIX
    def __init__(self, cfg: WSCConfig, dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary
        self.groups = {}  # split -> candidate groups in dataset order (not for train)
        self._encoder = None

    @classmethod
    def setup_task(cls, cfg: WSCConfig, **kwargs):
        dictionary = load_dictionary(os.path.join(cfg.data, "dict.txt"))
        logger.info(f"dictionary: {len(dictionary)} types")
        return cls(cfg, dictionary)

    @property
    def encoder(self) -> CandidateEncoder:
        if self._encoder is None:
            bpe = GPT2(self.cfg.encoder_json or os.path.join(self.cfg.data, "encoder.json"),
                       self.cfg.vocab_bpe or os.path.join(self.cfg.data, "vocab.bpe"))
            self._encoder = CandidateEncoder(self.dictionary, bpe, self.cfg.max_positions)
        return self._encoder

    def split_path(self, split: str) -> str:
        path = os.path.join(self.cfg.data, f"{split}.jsonl")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: split {split!r} not found")
        return path

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        rows = read_rows(self.split_path(split), labelled=True if split == TRAIN else None)
        groups = group_rows(rows)
        realigned = sum(r.realigned for r in rows)
        encode = self.encoder.encode
        if split == TRAIN:
            examples = training_examples(groups)
            logger.info(examples.summary(split) + f"; {realigned} pronoun indices moved by one word")
            if not examples.examples:
                raise WSCFormatError(f"{self.split_path(split)}: no training example (no group has both a correct "
                                     "and a wrong candidate)")
            items = [GroupItem([encode(r) for r in chosen], [1] + [0] * (len(chosen) - 1), 0)
                     for _, chosen in examples.examples]
            with_target = True
        else:
            items = []
            for group in groups:
                labels = [_label(r.label) for r in group.rows]
                target = single_correct(labels)
                items.append(GroupItem([encode(r) for r in group.rows], labels, -1 if target is None else target))
            with_target = any(r.label is not None for r in rows)
            self.groups[split] = groups
            sizes = [len(g.rows) for g in groups]
            logger.info(f"{split}: {len(rows)} rows in {len(groups)} candidate groups "
                        f"({sum(n for n in sizes if n >= 2)} rows in groups of two or more, "
                        f"{sizes.count(1)} alone); {realigned} pronoun indices moved by one word")
        d = self.dictionary
        self.datasets[split] = CandidateGroupDataset(items, d.pad(), d.bos(), d.eos(), with_target,
                                                     shuffle=split == TRAIN and not self.cfg.no_shuffle, seed=self.cfg.seed)
        return self.datasets[split]

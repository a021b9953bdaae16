"""The GLUE tasks: file layouts, label sets, metrics and submission files.

One table for every other module of the subpackage, so that preprocessing,
training scripts, evaluation and submission agree on split names and labels.
Column indices are 0-based, as the standard GLUE download lays the files out.
"""

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from fairseq_freelb.core.errors import FreeLBError

# Split names of the binarized data (fairseq ``--valid-subset`` / ``--gen-subset`` names).
TRAIN, VALID, TEST = "train", "valid", "test"


@dataclass(frozen=True)
class SplitLayout:
    """Where one GLUE file keeps its sentences, label and example id."""

    split: str  # name of the binarized split
    filename: str  # path inside the task folder
    header: Optional[Tuple[str, ...]]  # the expected header line, or None when the file has none
    sentence_columns: Tuple[int, ...]
    label_column: Optional[int] = None  # None: unlabeled (test); -1: last column
    index_column: Optional[int] = None  # the id the leaderboard expects in the ``index`` column
    num_columns: Optional[int] = None  # only for files without a header

    @property
    def labeled(self) -> bool:
        return self.label_column is not None

    @property
    def expected_columns(self) -> int:
        return len(self.header) if self.header is not None else int(self.num_columns)


@dataclass(frozen=True)
class GlueTask:
    name: str  # folder name in the GLUE download, and the ``<name>-bin`` output folder
    splits: Tuple[SplitLayout, ...]
    labels: Tuple[str, ...] = ()  # classification labels as the files spell them; () = regression
    metrics: Tuple[str, ...] = ("accuracy",)  # reported in this order; the first is the headline
    # submission file name -> binarized test split it is predicted from
    submission_files: Dict[str, str] = field(default_factory=dict)
    regression_scale: float = 1.0  # STS-B: file scores 0..5 are divided by this for training

    @property
    def regression(self) -> bool:
        return not self.labels

    @property
    def num_classes(self) -> int:
        return 1 if self.regression else len(self.labels)

    @property
    def valid_splits(self) -> Tuple[str, ...]:
        return tuple(s.split for s in self.splits if s.labeled and s.split != TRAIN)

    @property
    def test_splits(self) -> Tuple[str, ...]:
        """The unlabeled splits, whose predictions go to the leaderboard."""
        return tuple(s.split for s in self.splits if not s.labeled)

    def layout(self, split: str) -> SplitLayout:
        for layout in self.splits:
            if layout.split == split:
                return layout
        raise KeyError(f"{self.name} has no split {split!r} (has {', '.join(s.split for s in self.splits)})")


def _pair(split, filename, header, s1, s2, label=None, index=None):
    return SplitLayout(split, filename, tuple(header), (s1, s2), label, index)


_MNLI_TRAIN_HEADER = (
    "index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
    "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label",
)
_MNLI_DEV_HEADER = _MNLI_TRAIN_HEADER[:-1] + ("label2", "label3", "label4", "label5", "gold_label")
_MNLI_TEST_HEADER = _MNLI_TRAIN_HEADER[:10]
_STSB_HEADER = (
    "index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score",
)
_MRPC_COLUMNS = ("#1 ID", "#2 ID", "#1 String", "#2 String")
_NLI_LABELS = ("entailment", "not_entailment")
_MNLI_LABELS = ("entailment", "neutral", "contradiction")
_BINARY = ("0", "1")


def _index_pair_task(name: str, labels, submission: str) -> GlueTask:
    """QNLI, RTE and WNLI: ``index s1 s2 label`` with the test set lacking the label."""
    first, second = ("question", "sentence") if name == "QNLI" else ("sentence1", "sentence2")
    head = ("index", first, second)
    return GlueTask(
        name,
        (
            _pair(TRAIN, "train.tsv", head + ("label",), 1, 2, label=3, index=0),
            _pair(VALID, "dev.tsv", head + ("label",), 1, 2, label=3, index=0),
            _pair(TEST, "test.tsv", head, 1, 2, index=0),
        ),
        labels=labels,
        submission_files={submission: TEST},
    )


TASKS: Dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask(
            "CoLA",
            (
                # train/dev have no header: source, label, original label (or blank), sentence
                SplitLayout(TRAIN, "train.tsv", None, (3,), 1, None, num_columns=4),
                SplitLayout(VALID, "dev.tsv", None, (3,), 1, None, num_columns=4),
                SplitLayout(TEST, "test.tsv", ("index", "sentence"), (1,), None, 0),
            ),
            labels=_BINARY,
            metrics=("mcc", "accuracy"),
            submission_files={"CoLA.tsv": TEST},
        ),
        GlueTask(
            "SST-2",
            (
                SplitLayout(TRAIN, "train.tsv", ("sentence", "label"), (0,), 1),
                SplitLayout(VALID, "dev.tsv", ("sentence", "label"), (0,), 1),
                SplitLayout(TEST, "test.tsv", ("index", "sentence"), (1,), None, 0),
            ),
            labels=_BINARY,
            submission_files={"SST-2.tsv": TEST},
        ),
        GlueTask(
            "MRPC",
            (
                _pair(TRAIN, "train.tsv", ("Quality",) + _MRPC_COLUMNS, 3, 4, label=0),
                _pair(VALID, "dev.tsv", ("Quality",) + _MRPC_COLUMNS, 3, 4, label=0),
                _pair(TEST, "test.tsv", ("index",) + _MRPC_COLUMNS, 3, 4, index=0),
            ),
            labels=_BINARY,
            metrics=("accuracy", "f1"),
            submission_files={"MRPC.tsv": TEST},
        ),
        GlueTask(
            "STS-B",
            (
                _pair(TRAIN, "train.tsv", _STSB_HEADER, 7, 8, label=9, index=0),
                _pair(VALID, "dev.tsv", _STSB_HEADER, 7, 8, label=9, index=0),
                _pair(TEST, "test.tsv", _STSB_HEADER[:9], 7, 8, index=0),
            ),
            metrics=("pearson", "spearman"),
            submission_files={"STS-B.tsv": TEST},
            regression_scale=5.0,
        ),
        GlueTask(
            "QQP",
            (
                _pair(TRAIN, "train.tsv", ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"), 3, 4, 5, 0),
                _pair(VALID, "dev.tsv", ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"), 3, 4, 5, 0),
                _pair(TEST, "test.tsv", ("id", "question1", "question2"), 1, 2, index=0),
            ),
            labels=_BINARY,
            metrics=("accuracy", "f1"),
            submission_files={"QQP.tsv": TEST},
        ),
        GlueTask(
            "MNLI",
            (
                _pair(TRAIN, "train.tsv", _MNLI_TRAIN_HEADER, 8, 9, label=-1, index=0),
                _pair(VALID, "dev_matched.tsv", _MNLI_DEV_HEADER, 8, 9, label=-1, index=0),
                _pair("valid_mismatched", "dev_mismatched.tsv", _MNLI_DEV_HEADER, 8, 9, label=-1, index=0),
                _pair(TEST, "test_matched.tsv", _MNLI_TEST_HEADER, 8, 9, index=0),
                _pair("test_mismatched", "test_mismatched.tsv", _MNLI_TEST_HEADER, 8, 9, index=0),
                # The diagnostic set, binarized with MNLI's dictionaries and predicted by MNLI models.
                # Its file lives in the GLUE download's diagnostic/ folder (see preprocess --ax-file).
                _pair("test_ax", "../diagnostic/diagnostic.tsv", ("index", "sentence1", "sentence2"), 1, 2, index=0),
            ),
            labels=_MNLI_LABELS,
            submission_files={"MNLI-m.tsv": TEST, "MNLI-mm.tsv": "test_mismatched", "AX.tsv": "test_ax"},
        ),
        _index_pair_task("QNLI", _NLI_LABELS, "QNLI.tsv"),
        _index_pair_task("RTE", _NLI_LABELS, "RTE.tsv"),
        _index_pair_task("WNLI", _BINARY, "WNLI.tsv"),
    )
}

# Every file the GLUE server expects in a submission, with the task that predicts it.
SUBMISSION_FILES: Dict[str, str] = {f: t.name for t in TASKS.values() for f in t.submission_files}

STSB_MAX_SCORE = 5.0


class UnknownGlueTask(FreeLBError, KeyError):
    """A GLUE task name that is none of the nine (a ``KeyError``, as a failed lookup)."""


def get_task(name: str) -> GlueTask:
    """Look a task up by its GLUE folder name, case-insensitively (``sst2`` and ``SST-2`` both work)."""
    wanted = name.replace("-", "").lower()
    for task in TASKS.values():
        if task.name.replace("-", "").lower() == wanted:
            return task
    raise UnknownGlueTask(f"unknown GLUE task {name!r}; known: {', '.join(TASKS)}")

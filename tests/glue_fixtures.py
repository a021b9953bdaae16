"""Tiny GLUE folders in the exact layouts of the standard download, with each task's quirks.

- CoLA train/dev: no header; columns source, label, original judgement, sentence.
- MRPC train.tsv starts with a UTF-8 byte-order mark, as the MSR files do.
- QQP and MNLI sentences contain stray, unbalanced double quotes.
- Empty sentences (QQP, RTE test) must survive.
- MNLI: train, dev_matched/dev_mismatched (16 columns), test_matched/test_mismatched (10).
- diagnostic/diagnostic.tsv: the AX set.
- ``bad_row=True`` adds one QQP training row with a missing column (as in old QQP downloads).

Every file is written by hand from the column lists below, never through a
TSV writer, so nothing quotes or escapes the text.
"""

import json
import random
from collections import Counter
from pathlib import Path
from typing import Dict, List

WORDS = (
    "the cat dog sat on a mat quickly slowly happy sad movie film great terrible plot actor "
    "question answer why how what is are was were café naïve it's don't (really) 3.5 $100 ; - "
).split()

STRAY_QUOTES = ('He said "hello to me', 'What is the "best way to learn?', '"Quoted" start and "end"', 'a 12" ruler')


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9))).capitalize() + rng.choice([".", "?", "!", ""])


def _write(path: Path, rows: List[List[str]], header: List[str] = None, bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(r) for r in rows]
    text = "".join(line + "\n" for line in lines)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))


def _labels(rng, labels, n):
    """Every label at least once, the rest random."""
    out = list(labels) + [rng.choice(labels) for _ in range(n - len(labels))]
    rng.shuffle(out)
    return out


MNLI_TRAIN = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]
MNLI_DEV = MNLI_TRAIN[:-1] + ["label2", "label3", "label4", "label5", "gold_label"]
STSB = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"]
NLI = ("entailment", "not_entailment")
MNLI_LABELS = ("entailment", "neutral", "contradiction")


def make_glue_dir(root: Path, n_train: int = 24, n_dev: int = 12, n_test: int = 8, seed: int = 0,
                  bad_row: bool = False) -> Dict[str, Dict[str, int]]:
    """Write a GLUE folder under ``root``; returns the expected example count of each task's split."""
    rng = random.Random(seed)
    s = lambda: _sentence(rng)  # noqa: E731
    counts: Dict[str, Dict[str, int]] = {}

    # CoLA: no header in train/dev.
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = [["gj04", lab, "" if lab == "1" else "*", s()] for lab in _labels(rng, ("0", "1"), n)]
        _write(root / "CoLA" / f"{split}.tsv", rows)
    _write(root / "CoLA" / "test.tsv", [[str(i), s()] for i in range(n_test)], ["index", "sentence"])
    counts["CoLA"] = {"train": n_train, "valid": n_dev, "test": n_test}

    # SST-2
    for split, n in (("train", n_train), ("dev", n_dev)):
        _write(root / "SST-2" / f"{split}.tsv", [[s(), lab] for lab in _labels(rng, ("0", "1"), n)], ["sentence", "label"])
    _write(root / "SST-2" / "test.tsv", [[str(i), s()] for i in range(n_test)], ["index", "sentence"])
    counts["SST-2"] = {"train": n_train, "valid": n_dev, "test": n_test}

    # MRPC: train starts with a BOM; test ids start at 0.
    mrpc = ["#1 ID", "#2 ID", "#1 String", "#2 String"]
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = [[lab, str(1000 + i), str(2000 + i), s(), s()] for i, lab in enumerate(_labels(rng, ("0", "1"), n))]
        _write(root / "MRPC" / f"{split}.tsv", rows, ["Quality"] + mrpc, bom=split == "train")
    _write(root / "MRPC" / "test.tsv", [[str(i), "1", "2", s(), s()] for i in range(n_test)], ["index"] + mrpc)
    counts["MRPC"] = {"train": n_train, "valid": n_dev, "test": n_test}

    # STS-B: 10 columns, score 0..5 (both ends included).
    for split, n in (("train", n_train), ("dev", n_dev)):
        scores = ["0.000", "5.000"] + [f"{rng.uniform(0, 5):.3f}" for _ in range(n - 2)]
        rows = [[str(i), "main-news", "2012", "2012test", f"{i:04d}", "none", "none", s(), s(), sc] for i, sc in enumerate(scores)]
        _write(root / "STS-B" / f"{split}.tsv", rows, STSB)
    rows = [[str(i), "main-news", "2016", "2016test", f"{i:04d}", "none", "none", s(), s()] for i in range(n_test)]
    _write(root / "STS-B" / "test.tsv", rows, STSB[:9])
    counts["STS-B"] = {"train": n_train, "valid": n_dev, "test": n_test}

    # QQP: stray quotes, an empty question, optionally a row with a missing column.
    qqp = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = []
        for i, lab in enumerate(_labels(rng, ("0", "1"), n)):
            q1 = STRAY_QUOTES[i % len(STRAY_QUOTES)] if i % 3 == 0 else s()
            q2 = "" if (split == "train" and i == 1) else s()
            rows.append([str(i), str(2 * i), str(2 * i + 1), q1, q2, lab])
        if bad_row and split == "train":
            rows.insert(5, ["999", "1998", "1999", "How do I truncate a row?", "0"])  # 5 columns
        _write(root / "QQP" / f"{split}.tsv", rows, qqp)
    _write(root / "QQP" / "test.tsv", [[str(i), STRAY_QUOTES[i % 4], s()] for i in range(n_test)], ["id", "question1", "question2"])
    counts["QQP"] = {"train": n_train, "valid": n_dev, "test": n_test}

    # MNLI: 12 columns in train, 16 in dev, 10 in test; quotes in sentences.
    def mnli_row(i, label=None, dev=False):
        s1 = STRAY_QUOTES[i % 4] if i % 2 else s()
        s2 = s()
        row = [str(i), str(100 + i), f"{100 + i}e", "fiction", "( ( x ) )", "( y )", "(ROOT x)", "(ROOT y)", s1, s2]
        if label is not None:
            row += [label] * (5 if dev else 1) + [label]
        return row

    _write(root / "MNLI" / "train.tsv", [mnli_row(i, lab) for i, lab in enumerate(_labels(rng, MNLI_LABELS, n_train))], MNLI_TRAIN)
    for name in ("dev_matched", "dev_mismatched"):
        rows = [mnli_row(i, lab, dev=True) for i, lab in enumerate(_labels(rng, MNLI_LABELS, n_dev))]
        _write(root / "MNLI" / f"{name}.tsv", rows, MNLI_DEV)
    for name in ("test_matched", "test_mismatched"):
        _write(root / "MNLI" / f"{name}.tsv", [mnli_row(i) for i in range(n_test)], MNLI_TRAIN[:10])
    _write(root / "diagnostic" / "diagnostic.tsv", [[str(i), s(), s()] for i in range(n_test + 1)], ["index", "sentence1", "sentence2"])
    counts["MNLI"] = {"train": n_train, "valid": n_dev, "valid_mismatched": n_dev, "test": n_test,
                      "test_mismatched": n_test, "test_ax": n_test + 1}

    # QNLI, RTE, WNLI: index s1 s2 label.
    for task, labels, first in (("QNLI", NLI, "question"), ("RTE", NLI, "sentence1"), ("WNLI", ("0", "1"), "sentence1")):
        head = ["index", first, "sentence" if task == "QNLI" else "sentence2"]
        for split, n in (("train", n_train), ("dev", n_dev)):
            _write(root / task / f"{split}.tsv", [[str(i), s(), s(), lab] for i, lab in enumerate(_labels(rng, labels, n))], head + ["label"])
        rows = [[str(i), s(), "" if (task == "RTE" and i == 0) else s()] for i in range(n_test)]
        _write(root / task / "test.tsv", rows, head)
        counts[task] = {"train": n_train, "valid": n_dev, "test": n_test}
    (root / "counts.json").write_text(json.dumps(counts))
    return counts


def all_sentences(root: Path) -> List[str]:
    """Every tab-separated field of every fixture file (and WSC's texts and candidates): enough text to build a
    dictionary covering the data."""
    out = []
    for path in sorted(root.rglob("*.tsv")):
        for line in path.read_text(encoding="utf-8-sig").splitlines():
            out.extend(line.split("\t"))
    for path in sorted(root.rglob("*.jsonl")):  # SuperGLUE WSC: the text and the candidates
        for line in path.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line)
            out.extend([obj["text"], " " + obj["target"]["span1_text"], obj["target"]["span1_text"]])
    return out


def build_srcdict(root: Path, encoder_json: Path, vocab_bpe: Path, out: Path) -> Path:
    """A RoBERTa-style dict.txt (``<gpt2 id> <count>``) counted from the BPE of the fixture text.

    The real roberta ``dict.txt`` is not available offline; it has the same format.
    """
    from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

    encoder = get_encoder(str(encoder_json), str(vocab_bpe))
    counts = Counter(i for text in all_sentences(root) for i in encoder.encode(text.strip()))
    out.write_text("".join(f"{i} {c}\n" for i, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))))
    return out

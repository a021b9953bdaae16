"""Read GLUE rows -> GPT-2 BPE -> truncation to the model's length -> fairseq binarized ``<TASK>-bin``.

What one task's folder holds is described in :mod:`~fairseq_freelb.glue.preprocess`.
The folder is built under a temporary name beside its final place and moved
there only when complete and checked, so a failure leaves the previous good
``<TASK>-bin`` (if any) untouched. It gets the mode of the user's umask (not
``mkdtemp``'s 0700), and a full disk or read-only file system while writing it
is one line naming the output (:mod:`~fairseq_freelb.output_files`). Output
paths may contain commas: fairseq-preprocess, which splits ``--testpref`` on
commas, is given links without them.
"""

import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from fairseq_freelb.commands import CommandError
from fairseq_freelb.glue.benchmark_tasks import TRAIN, GlueTask
from fairseq_freelb.glue.tsv import SplitRows
from fairseq_freelb.output_files import build_folder_aside, naming_write_errors

logger = logging.getLogger("fairseq_freelb.glue.binarize")

MAX_REPORTED_BAD_ROWS = 20
PROGRESS_MIN_SENTENCES = 20000  # show a progress bar from this size on (MNLI, QQP, QNLI, SST-2)
# Tokens fairseq's sentence_prediction adds around the BPE ids (--init-token 0 --separator-token 2):
# <s> A </s>  for one sentence, <s> A </s> </s> B </s> for a pair.
SPECIAL_TOKENS = {1: 2, 2: 4}


# --------------------------------------------------------------------------- GPT-2 BPE

_ENCODER = None


def _init_encoder(encoder_json: str, vocab_bpe: str) -> None:
    global _ENCODER
    from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

    _ENCODER = get_encoder(encoder_json, vocab_bpe)


def _encode_chunk(texts: Sequence[str]) -> List[List[int]]:
    return [_ENCODER.encode(text) for text in texts]


def bpe_encode(texts: Sequence[str], encoder_json: Path, vocab_bpe: Path, workers: int, desc: str) -> List[List[int]]:
    """GPT-2 BPE ids of every text (an empty text gives no ids)."""
    from tqdm import tqdm

    chunk = 2000
    chunks = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    bar = tqdm(total=len(texts), desc=f"BPE {desc}", unit="sent", disable=len(texts) < PROGRESS_MIN_SENTENCES,
               file=sys.stderr, mininterval=2.0)
    encoded: List[List[int]] = []
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


def fit_to_length(sentences: List[List[int]], budget: int) -> Tuple[List[List[int]], bool]:
    """Longest-first truncation: cut one token at a time from the end of the longer sentence.

    Both sentences of a pair survive (neither is cut below the other's length
    while the other is longer), unlike fairseq's ``--shorten-method truncate``,
    which cuts the joined pair from its end and so drops the second sentence
    after a long first one. Ties cut the first sentence. Returns the sentences
    and whether anything was cut.
    """
    lengths = [len(s) for s in sentences]
    if sum(lengths) <= budget:
        return sentences, False
    while sum(lengths) > budget:
        longest = max(range(len(lengths)), key=lambda i: (lengths[i], -i))
        lengths[longest] -= 1
    return [s[:n] for s, n in zip(sentences, lengths)], True


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
    with tempfile.TemporaryDirectory(dir=destdir) as scratch, contextlib.ExitStack() as links:
        sources = _without_commas([text_files[s] for s in splits], links)
        args = options.get_preprocessing_parser().parse_args(
            [
                "--only-source",
                "--srcdict", str(dictionary),
                "--testpref", ",".join(str(path) for path in sources),
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


def _without_commas(paths: Sequence[Path], stack: contextlib.ExitStack) -> List[Path]:
    """``paths``, or links to them without commas: fairseq-preprocess splits ``--testpref`` on commas.

    The links live in a temporary folder of the system's temp location (only
    links: nothing is copied), removed when ``stack`` closes.
    """
    if not any("," in str(path) for path in paths):
        return list(paths)
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fairseq_freelb-links-")))
    if "," in str(folder):
        raise CommandError(f"--out: the path has a comma and so does the temp folder {folder} "
                           "(fairseq-preprocess splits paths on commas); set TMPDIR to a folder without one")
    links = []
    for k, path in enumerate(paths):
        link = folder / f"split{k}"
        link.symlink_to(Path(path).resolve())
        links.append(link)
    return links


def binarized_size(prefix: Path) -> int:
    from fairseq.data import data_utils

    dataset = data_utils.load_indexed_dataset(str(prefix), None)
    if dataset is None:
        raise FileNotFoundError(f"{prefix}.bin/.idx: not written")
    return len(dataset)


def write_label_dict(task: GlueTask, train_labels: Sequence[str], path: Path) -> None:
    """fairseq's dictionary format, in GLUE's label order (``task.labels``), with training counts.

    The order is fixed per task, so class index i means the same label however
    often each label occurs: re-preprocessing can never change what a
    checkpoint's outputs mean.
    """
    counts = Counter(train_labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{lab} {counts[lab]}\n" for lab in task.labels))


# --------------------------------------------------------------------------- one task


def write_task(
    task: GlueTask,
    splits: Dict[str, SplitRows],
    out_dir: Path,
    srcdict: Path,
    bpe_files: Tuple[Path, Path],
    workers: int,
    max_positions: int,
    missing_splits: Sequence[str] = (),
) -> Dict:
    """Build ``<out>/<TASK>-bin`` aside, check it, move it into place; returns its ``meta.json`` content."""
    dest = out_dir / f"{task.name}-bin"
    with naming_write_errors(dest):
        meta = build_folder_aside(
            dest, lambda building: _build(task, splits, building, srcdict, bpe_files, workers, max_positions, missing_splits))
    _print_summary(task, splits, meta, dest)
    return meta


def _build(task, splits, dest, srcdict, bpe_files, workers, max_positions, missing_splits) -> Dict:
    num_inputs = len(task.splits[0].sentence_columns)
    budget = max_positions - SPECIAL_TOKENS[num_inputs]
    texts = [s for rows in splits.values() for ex in rows.examples for s in ex.sentences]
    encoded = iter(bpe_encode(texts, bpe_files[0], bpe_files[1], workers, task.name))

    truncated: Dict[str, int] = {}
    with tempfile.TemporaryDirectory(dir=dest) as scratch:
        scratch = Path(scratch)
        text_files: List[Dict[str, Path]] = [{} for _ in range(num_inputs)]
        for split, rows in splits.items():
            handles = [open(scratch / f"{split}.input{i}", "w", encoding="utf-8") for i in range(num_inputs)]
            truncated[split] = 0
            try:
                for _ in rows.examples:
                    ids, cut = fit_to_length([next(encoded) for _ in range(num_inputs)], budget)
                    truncated[split] += cut
                    for handle, sentence in zip(handles, ids):
                        handle.write(" ".join(map(str, sentence)) + "\n")
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

    meta = {
        "task": task.name, "num_classes": task.num_classes, "labels": list(task.labels),
        "label_order": "glue",  # label/dict.txt lists task.labels in this order (not by frequency)
        "max_positions": max_positions, "truncation": "longest_first",
        "missing_splits": list(missing_splits), "splits": {},
    }
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
            "truncated": truncated[split],
            "labeled": task.layout(split).labeled,
        }
        bad_rows += rows.bad_rows
    if bad_rows:
        (dest / "bad_rows.txt").write_text("".join(b + "\n" for b in bad_rows))
    (dest / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _print_summary(task: GlueTask, splits: Dict[str, SplitRows], meta: Dict, dest: Path) -> None:
    what = "pairs" if len(task.splits[0].sentence_columns) == 2 else "sentences"
    for split, rows in splits.items():
        info = meta["splits"][split]
        print(
            f"{task.name} {split}: {info['rows_in']} rows in, {info['rows_out']} out, {info['skipped']} skipped, "
            f"{info['truncated']} {what} truncated to {meta['max_positions']} positions ({rows.path})",
            flush=True,
        )
        for where in rows.bad_rows[:MAX_REPORTED_BAD_ROWS]:
            print(f"  skipped {where}", flush=True)
        if len(rows.bad_rows) > MAX_REPORTED_BAD_ROWS:
            print(f"  ... and {len(rows.bad_rows) - MAX_REPORTED_BAD_ROWS} more, see {dest / 'bad_rows.txt'}", flush=True)

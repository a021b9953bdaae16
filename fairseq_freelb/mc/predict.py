"""Leaderboard predictions: ``id,answer`` CSV, one line per question in input order.

    python -m fairseq_freelb.mc.predict --data data/csqa --split test \\
        --path ckpt1/checkpoint_best.pt:ckpt2/checkpoint_best.pt --output predictions.csv

Answers are the dataset's own labels (``A``-``E``, or ``1``-``4`` for some ARC
questions). Several checkpoints (``:``-separated) form an ensemble: their
choice probabilities are averaged before the argmax. The file is written aside and checked with
:func:`fairseq_freelb.mc.prediction_files.validate_predictions` before it
takes the place of ``--output``.
"""

import argparse
import logging
import sys

from fairseq_freelb.commands import run_command
from fairseq_freelb.mc.accuracy import predicted_labels
from fairseq_freelb.mc.inference import add_ensemble_args, split_probabilities
from fairseq_freelb.mc.prediction_files import write_predictions


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_ensemble_args(parser, "test", "split to predict (default: test)")
    parser.add_argument("--output", required=True, help="predictions CSV to write")
    return parser


def main(argv=None) -> int:
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO, stream=sys.stderr)
    args = get_parser().parse_args(argv)
    paths, questions, probabilities = split_probabilities(args)
    write_predictions(args.output, questions, predicted_labels(questions, probabilities))
    print(f"wrote {len(questions)} predictions of {len(paths)} checkpoint(s) to {args.output}")
    return 0


def cli_main(argv=None) -> int:
    return run_command("python -m fairseq_freelb.mc.predict", main, argv)


if __name__ == "__main__":
    sys.exit(cli_main())

"""Accuracy of checkpoint(s) on a labelled split; ARC reports Easy, Challenge and merged (Table 3).

    python -m fairseq_freelb.mc.evaluate --data data/arc --split valid --path checkpoints/checkpoint_best.pt

``--path a.pt:b.pt`` evaluates the ensemble (probabilities averaged).
"""

import argparse
import json
import logging
import sys

from fairseq_freelb.commands import run_command
from fairseq_freelb.mc.accuracy import accuracy_by_group, predicted_labels
from fairseq_freelb.mc.inference import add_ensemble_args, split_probabilities


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_ensemble_args(parser, "valid", "labelled split to score (default: valid)")
    parser.add_argument("--results-json", default=None, help="also write the accuracies to this JSON file")
    return parser


def main(argv=None) -> int:
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO, stream=sys.stderr)
    args = get_parser().parse_args(argv)
    paths, questions, probabilities = split_probabilities(args)
    results = accuracy_by_group(questions, predicted_labels(questions, probabilities))
    for group, r in results.items():
        name = "merged" if group == "all" else group
        print(f"{args.split}\t{name}\taccuracy {r['accuracy']:.2f}\t({r['correct']}/{r['total']})")
    if args.results_json:
        with open(args.results_json, "w") as handle:
            json.dump({"split": args.split, "checkpoints": paths, "results": results}, handle, indent=2)
    return 0


def cli_main(argv=None) -> int:
    return run_command("python -m fairseq_freelb.mc.evaluate", main, argv)


if __name__ == "__main__":
    sys.exit(cli_main())

"""Official GLUE metrics of a checkpoint (or an ensemble) on the labeled splits of a task.

Usage::

    python -m fairseq_freelb.glue.evaluate --data-bin glue-bin/CoLA-bin \\
        --checkpoint checkpoints/CoLA/freelb-seed1/checkpoint_best.pt [--checkpoint more.pt] \\
        [--split valid] [--json result.json]

Prints one line per split (metrics in percent, the task's headline metric
first: MCC for CoLA, Pearson/Spearman for STS-B, accuracy/F1 for MRPC and QQP,
accuracy otherwise) and optionally writes them as JSON (``--json``: checked
before any model runs, written aside and moved into place).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.metrics import glue_metrics
from fairseq_freelb.glue.predict import Predictions, add_checkpoint_flags, load_glue_ensemble, predict, task_of
from fairseq_freelb.glue.benchmark_tasks import GlueTask
from fairseq_freelb.output_files import check_output_file, write_text_atomic


def score(task: GlueTask, predictions: Predictions) -> Dict[str, float]:
    """The task's metrics (percent) of ``predictions`` against their gold labels."""
    if predictions.targets is None:
        raise CommandError("split has no labels")
    result = glue_metrics(task.metrics, predictions.labels, predictions.targets, positive="1")
    result["n"] = len(predictions.targets)
    return result


def evaluate(
    checkpoints: Sequence[str],
    data_bin: Path,
    task: GlueTask,
    splits: Optional[Sequence[str]] = None,
    batch_size: int = 32,
    cpu: bool = False,
    fp16: bool = False,
    trust_label_dict: bool = False,
) -> Dict[str, Dict[str, float]]:
    """``{split: {metric: value, "n": examples}}`` for each labeled split (default: every dev split present)."""
    if splits is None:
        splits = [s for s in task.valid_splits if (Path(data_bin) / "input0" / f"{s}.bin").is_file()]
    for split in splits:
        if split not in task.valid_splits and split != "train":
            raise CommandError(f"--split {split}: {task.name} has labels only for train, {', '.join(task.valid_splits)}")
    loaded = load_glue_ensemble(checkpoints, data_bin, task, cpu=cpu, fp16=fp16, trust_label_dict=trust_label_dict)
    return {
        split: score(task, predict(checkpoints, data_bin, split, batch_size, loaded=loaded, glue_task=task))
        for split in splits
    }


def format_result(task: GlueTask, results: Dict[str, Dict[str, float]]) -> str:
    lines = []
    for split, values in results.items():
        metrics = ", ".join(f"{m} {values[m]:.2f}" for m in task.metrics)
        lines.append(f"{task.name} {split}: {metrics} (n={int(values['n'])})")
    return "\n".join(lines)


PROG = "python -m fairseq_freelb.glue.evaluate"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--data-bin", required=True, help="the task's binarized folder (<out>/<TASK>-bin)")
    parser.add_argument("--checkpoint", action="append", required=True,
                        help="checkpoint to evaluate; repeat for an ensemble (mean of class probabilities)")
    parser.add_argument("--task", default=None, help="GLUE task name (default: from <data-bin>/meta.json)")
    parser.add_argument("--split", action="append", default=None,
                        help="labeled split(s) to score (default: valid, and valid_mismatched for MNLI)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    add_checkpoint_flags(parser)
    args = parser.parse_args(argv)
    task = task_of(Path(args.data_bin), args.task)
    if args.json:
        check_output_file(Path(args.json), "--json")  # before the model runs
    results = evaluate(args.checkpoint, Path(args.data_bin), task, args.split, args.batch_size, args.cpu, args.fp16,
                       args.trust_label_dict)
    print(format_result(task, results))
    if args.json:
        record = {"task": task.name, "checkpoints": args.checkpoint, "results": results}
        write_text_atomic(Path(args.json), json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(PROG, main))

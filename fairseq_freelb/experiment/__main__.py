"""``python -m fairseq_freelb.experiment``: the held-out protocol, vanilla against a FreeLB grid over seeds.

    python -m fairseq_freelb.experiment --data glue-bin/RTE-bin --restore-file roberta.large/model.pt \\
        [--selection-from train|dev] [--selection-fraction 0.1] [--group-by auto] [--grid table7] \\
        [--seeds 1,2,3,4,5] [--methods vanilla,freelb,pgd,freeat,yopo] [--device auto|cpu|cuda] [--parallel N] \\
        [--workdir out/experiment] [-- <fairseq-train flags>]
    python -m fairseq_freelb.experiment [--preset rt-minilm|quick]          # the demo's task

The FreeLB setting is chosen on the selection side only; its held-out score is
reported next to vanilla's with the per-seed paired difference, its 95 %
interval and the number of seeds where FreeLB wins. ``--data`` takes any folder
that ``glue.preprocess`` or ``mc.preprocess`` wrote; without it the preset's
task is the demo's (all-MiniLM-L6-v2 on rotten-tomatoes reviews, split by movie).

Writes ``WORKDIR/splits.json`` (every side's example indices), ``results.json``
(every run, saved as it finishes; a rerun reuses a run only when its data,
model, settings and fairseq flags all match), ``table.md`` and ``accuracy.png``.
"""

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.experiment import folder_plan, rt_plan
from fairseq_freelb.experiment.grids import GRID_HELP
from fairseq_freelb.experiment.protocol import run_plan
from fairseq_freelb.experiment.runs import METHOD_FAMILIES, resolve_device
from fairseq_freelb.multiseed.store import exclusive

PROG = "python -m fairseq_freelb.experiment"
REPO = Path(__file__).resolve().parents[2]
logger = logging.getLogger("fairseq_freelb.experiment")


def parse_ints(text: str, flag: str) -> List[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CommandError(f"{flag} {text!r}: expected comma-separated integers")
    if not values or len(set(values)) != len(values):
        raise CommandError(f"{flag} {text!r}: give at least one value, each once")
    return values


def default_cpu_parallel() -> int:
    """One single-threaded process per core (at most 4): on shared cores the threads of one process wait on each
    other (MiniLM, batch 32, 2 cores under other load: 1.6-1.8 s per update with 1 thread, 2.9-5.5 s with 2)."""
    return max(1, min(os.cpu_count() or 1, 4))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s [options] [-- fairseq-train flags]")
    data = parser.add_argument_group("the task")
    data.add_argument("--data", type=Path, help="a folder written by glue.preprocess (<TASK>-bin) or mc.preprocess; "
                                                "without it, --preset's task (the demo's)")
    data.add_argument("--restore-file", type=Path,
                      help="the pretrained model: roberta.large/model.pt (or its folder) or a convert_hf folder, "
                           "whose architecture flags are read from it; without it: random initialisation (a warning)")
    data.add_argument("--preset", choices=sorted(rt_plan.PRESETS),
                      help="without --data: rt-minilm (the demo's task, whole splits, 4 epochs, seeds 1-5; 'full' is "
                           "its old name) or quick (the same task on small samples: a few minutes on 2 CPU cores; "
                           "checks the plumbing, not the method)")
    split = parser.add_argument_group("the splits (--data)")
    split.add_argument("--selection-from", choices=("train", "dev"),
                       help="train (default): carve the selection side out of train and hold out the whole dev set; "
                            "dev: split the dev set into a selection half and a held-out half")
    split.add_argument("--selection-fraction", type=float, default=0.1,
                       help="with --selection-from train: the share of training examples selected on (default 0.1)")
    split.add_argument("--group-by",
                       help="examples sharing this key stay on one side: auto (default: the first sentence, i.e. QNLI's "
                            "question, MNLI/RTE/WNLI's premise; multiple choice: the question stem), first, second, "
                            "pair, a column name, context (multiple choice) or none")
    split.add_argument("--split-seed", type=int, default=1, help="seed of the splits and subsamples (default 1)")
    runs = parser.add_argument_group("the runs")
    runs.add_argument("--seeds", help="training seeds, comma-separated (default: 1,2,3,4,5; quick: 1,2)")
    runs.add_argument("--methods", default="vanilla,freelb",
                      help=f"comma-separated method families from {','.join(METHOD_FAMILIES)}; pgd, freeat and yopo "
                           "add one untuned row each at FreeLB's cost")
    runs.add_argument("--grid", help=f"{GRID_HELP}; the demo's task: its three settings")
    runs.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                      help="auto: CUDA when torch sees it (then --fp16), else CPU")
    runs.add_argument("--bf16", action="store_true", help="on CUDA: --amp --amp-dtype bf16 instead of --fp16")
    runs.add_argument("--parallel", type=int,
                      help="fairseq-train processes at once (default: 10 on CUDA, sharing the one GPU; on CPU one per "
                           "core, at most 4); torch threads per process: cores / N")
    runs.add_argument("--workdir", type=Path, default=REPO / "out" / "experiment",
                      help="data, logs and results (default out/experiment)")
    runs.add_argument("--epochs", type=int, help="epochs (default: the task's recipe: GLUE 10, multiple choice 5; "
                                                 "rt-minilm 4)")
    runs.add_argument("--batch-size", type=int, help="examples per update (default: the task's recipe)")
    runs.add_argument("--lr", type=float, help="peak learning rate, 6%% linear warmup then linear decay "
                                               "(default: the task's recipe; rt-minilm 5e-5)")
    demo = parser.add_argument_group("sample sizes of the demo's task (without --data)")
    demo.add_argument("--train-size", type=int, help="training reviews sampled (0 = the whole split)")
    demo.add_argument("--selection-size", type=int, help="selection-side reviews sampled (0 = all)")
    demo.add_argument("--heldout-size", type=int, help="held-out-side reviews sampled (0 = all)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: List[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s | %(message)s", level=logging.INFO, stream=sys.stdout, force=True)
    if args.data is not None and args.preset is not None:
        raise CommandError(f"--preset {args.preset} names the demo's task; with --data the task is the folder's")
    args.preset = args.preset or "rt-minilm"
    default_seeds = "1,2" if args.data is None and args.preset == "quick" else "1,2,3,4,5"
    seeds = parse_ints(args.seeds or default_seeds, "--seeds")
    families = [m for m in args.methods.split(",") if m]
    unknown = [m for m in families if m not in METHOD_FAMILIES]
    if unknown or "vanilla" not in families or "freelb" not in families:
        raise CommandError(f"--methods {args.methods!r}: must include vanilla and freelb, from {','.join(METHOD_FAMILIES)}")
    if args.data is None:
        given = [f for f, v in (("--selection-from", args.selection_from), ("--group-by", args.group_by),
                                ("--restore-file", args.restore_file)) if v is not None]
        if given:
            raise CommandError(f"{given[0]} applies to --data folders; the demo's task (no --data) is always MiniLM, "
                               "split by movie")
    elif any(v is not None for v in (args.train_size, args.selection_size, args.heldout_size)):
        raise CommandError("--train-size, --selection-size and --heldout-size apply to the demo's task; with --data "
                           "use --selection-fraction")
    device = resolve_device(args.device)
    parallel = args.parallel if args.parallel is not None else (10 if device == "cuda" else default_cpu_parallel())
    if parallel < 1:
        raise CommandError(f"--parallel {parallel}: must be >= 1")
    if (args.epochs is not None and args.epochs < 1) or (args.batch_size is not None and args.batch_size < 1):
        raise CommandError("--epochs and --batch-size must be >= 1")
    command = f"{PROG} " + " ".join(shlex.quote(a) for a in argv + (["--", *extra] if extra else []))
    with exclusive(args.workdir, "--workdir"):
        builder = rt_plan if args.data is None else folder_plan
        plan = builder.build(args, extra, seeds, families, device, parallel)
        run_plan(plan, command)
    return 0


if __name__ == "__main__":
    sys.exit(run_command(PROG, main))

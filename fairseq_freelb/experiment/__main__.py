"""``python -m fairseq_freelb.experiment``: vanilla against a FreeLB grid, several seeds, a held-out protocol.

    python -m fairseq_freelb.experiment [--preset full|quick] [--seeds 1,2,3,4,5] [--methods vanilla,freelb,pgd,freeat,yopo]
                                        [--device auto|cpu|cuda] [--parallel N] [--workdir out/experiment]

Task: all-MiniLM-L6-v2 (converted by :mod:`fairseq_freelb.convert_hf`) fine-tuned on
rotten-tomatoes fresh/rotten, with train, selection and held-out splits all by movie
(:mod:`.corpus`). Every run validates after every epoch on both halves. The FreeLB
setting is chosen on the selection half only (:mod:`.selection`); its held-out
accuracy is reported next to vanilla's with the per-seed paired difference.

Writes ``WORKDIR/results.json`` (every run, saved as it finishes; a rerun resumes),
``WORKDIR/table.md`` and ``WORKDIR/accuracy.png``.
"""

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.experiment import execute, report, selection
from fairseq_freelb.experiment.prepare import prepare
from fairseq_freelb.experiment.runs import (
    BASELINES, FREELB_GRID, METHOD_FAMILIES, VANILLA, Schedule, resolve_device, train_command,
)

PROG = "python -m fairseq_freelb.experiment"
REPO = Path(__file__).resolve().parents[2]
logger = logging.getLogger("fairseq_freelb.experiment")


@dataclass(frozen=True)
class Preset:
    train_size: int  # 0 = the whole split
    selection_size: int
    heldout_size: int
    epochs: int
    batch_size: int
    seeds: str
    grid: tuple  # names from FREELB_GRID


PRESETS = {
    # The protocol of issue 11: whole splits, 4 epochs, batch 32, five seeds, the three-setting grid.
    "full": Preset(0, 0, 0, 4, 32, "1,2,3,4,5", tuple(s.name for s in FREELB_GRID)),
    # A few minutes on 2 CPU cores: it exercises every step (both halves per epoch, selection, resume,
    # report) on samples far too small for its accuracies to mean anything.
    "quick": Preset(384, 128, 128, 2, 16, "1,2", tuple(s.name for s in FREELB_GRID[:2])),
}


def parse_ints(text: str, flag: str) -> List[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CommandError(f"{flag} {text!r}: expected comma-separated integers")
    if not values or len(set(values)) != len(values):
        raise CommandError(f"{flag} {text!r}: give at least one value, each once")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full",
                        help="full: issue 11's protocol (whole splits, 4 epochs, batch 32, seeds 1-5); "
                             "quick: a few minutes on CPU (small samples; checks the plumbing, not the method)")
    parser.add_argument("--seeds", help="training seeds, comma-separated (default: the preset's; full: 1,2,3,4,5)")
    parser.add_argument("--methods", default="vanilla,freelb",
                        help=f"comma-separated method families from {','.join(METHOD_FAMILIES)}; "
                             "pgd, freeat and yopo add one untuned row each")
    parser.add_argument("--grid", help="FreeLB settings, comma-separated (default: the preset's; "
                                       f"choose from {','.join(s.name for s in FREELB_GRID)})")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when torch sees it (then --fp16), else CPU")
    parser.add_argument("--parallel", type=int,
                        help="fairseq-train processes at once (default: 10 on CUDA, sharing the one GPU; 1 on CPU)")
    parser.add_argument("--workdir", type=Path, default=REPO / "out" / "experiment",
                        help="converted model, data, logs and results (default out/experiment)")
    parser.add_argument("--train-size", type=int, help="training reviews sampled (0 = the whole split)")
    parser.add_argument("--selection-size", type=int, help="selection-half reviews sampled (0 = all)")
    parser.add_argument("--heldout-size", type=int, help="held-out-half reviews sampled (0 = all)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the preset's; full: 4)")
    parser.add_argument("--batch-size", type=int, help="sentences per update (default: the preset's; full: 32)")
    parser.add_argument("--lr", type=float, default=5e-5, help="peak learning rate (6%% linear warmup, linear decay)")
    parser.add_argument("--split-seed", type=int, default=1, help="seed of the movie splits and subsamples")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s | %(message)s", level=logging.INFO, stream=sys.stdout, force=True)
    preset = PRESETS[args.preset]
    pick = lambda value, default: default if value is None else value  # noqa: E731
    seeds = parse_ints(pick(args.seeds, preset.seeds), "--seeds")
    families = [m for m in args.methods.split(",") if m]
    unknown = [m for m in families if m not in METHOD_FAMILIES]
    if unknown or "vanilla" not in families or "freelb" not in families:
        raise CommandError(f"--methods {args.methods!r}: must include vanilla and freelb, from {','.join(METHOD_FAMILIES)}")
    by_name = {s.name: s for s in FREELB_GRID}
    grid_names = [g for g in (args.grid.split(",") if args.grid else preset.grid) if g]
    bad = [g for g in grid_names if g not in by_name]
    if bad or not grid_names:
        raise CommandError(f"--grid: unknown {bad or 'empty'} (choose from {','.join(by_name)})")
    settings = [VANILLA] + [by_name[g] for g in grid_names] + [BASELINES[m] for m in families if m in BASELINES]
    device = resolve_device(args.device)
    parallel = pick(args.parallel, 10 if device == "cuda" else 1)
    if parallel < 1:
        raise CommandError(f"--parallel {parallel}: must be >= 1")
    schedule = Schedule(pick(args.epochs, preset.epochs), pick(args.batch_size, preset.batch_size), args.lr)
    if schedule.epochs < 1 or schedule.batch_size < 1:
        raise CommandError("--epochs and --batch-size must be >= 1")
    sizes = {"train": pick(args.train_size, preset.train_size), "selection": pick(args.selection_size, preset.selection_size),
             "heldout": pick(args.heldout_size, preset.heldout_size)}
    out = args.workdir
    hardware_at_start = report.hardware(device)
    info = prepare(out, sizes, args.split_seed)
    protocol = {"sizes": info["sizes"], "digest": info["digest"], "split_seed": args.split_seed,
                "epochs": schedule.epochs, "batch_size": schedule.batch_size, "lr": schedule.lr,
                "warmup_fraction": schedule.warmup_fraction, "precision": "fp16" if device == "cuda" else "fp32"}
    flags = {s.name: " ".join(s.flags) for s in settings}
    store = execute.ResultStore(out / "results.json", protocol, flags)
    pending = execute.pending_runs(settings, seeds, store)
    threads = execute.threads_per_process(device, parallel)
    logger.info(f"{len(settings) * len(seeds) - len(pending)} runs already in {store.path}; {len(pending)} to go "
                f"on {device} ({parallel} at a time, {threads} torch threads each)")
    if pending and device == "cpu":
        per_update, startup = execute.time_updates(info, schedule, out, threads)
        valid = info["sizes"]["selection"] + info["sizes"]["heldout"]
        seconds = execute.estimate_seconds(pending, info, schedule, per_update, startup, parallel, valid)
        print(f"estimated total: {seconds / 60:.1f} min for {len(pending)} runs (timed: {per_update:.2f} s per "
              f"vanilla update, {startup:.0f} s start-up per process, on this machine now)", flush=True)
    execute.run_all(pending, store,
                    lambda s, seed: train_command(info, s, seed, schedule, out / "checkpoints" / s.name, device),
                    out / "logs", parallel, threads)

    runs = [r for r in store.runs.values() if r.seed in seeds and r.setting in flags]
    summary = selection.summarise(runs, [s.name for s in settings])
    chosen = selection.select_freelb(summary, grid_names)
    paired = selection.paired_difference(summary[chosen], summary["vanilla"])
    timing = {name: sum(r.seconds_per_update for r in runs if r.setting == name) / len(summary[name].seeds)
              for name in summary}
    header = (
        f"all-MiniLM-L6-v2 on rotten-tomatoes fresh/rotten, split by movie (split seed {args.split_seed}): "
        + ", ".join(f"{info['sizes'][s]} {s}" for s in ("train", "selection", "heldout"))
        + f" reviews; {schedule.epochs} epochs, batch {schedule.batch_size}, lr {schedule.lr}, "
        f"{'fp16' if device == 'cuda' else 'fp32'}, seeds {','.join(map(str, seeds))}; accuracy after the last epoch.\n\n"
        f"Command: `{report.command_line(argv)}`.\n\n"
        f"Hardware: {hardware_at_start} at the start; {report.hardware(device).rsplit(', ', 1)[-1]} at the end. "
        f"{parallel} fairseq-train processes at a time, {threads} torch threads each.\n\nVersions: {report.versions()}."
    )
    table = report.markdown(header, summary, flags, chosen, paired, timing)
    report.write_text(out / "table.md", table)
    report.plot(runs, chosen, out / "accuracy.png",
                f"MiniLM on RT by movie: {info['sizes']['train']} train, {schedule.epochs} epochs, {len(seeds)} seeds")
    print("\n" + table)
    print(f"wrote {out / 'table.md'}, {out / 'accuracy.png'}, {store.path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(PROG, main))

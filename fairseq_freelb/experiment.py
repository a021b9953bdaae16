"""``make experiment``: N seeds per method on the demo's task; median/std table and a per-seed plot.

    python -m fairseq_freelb.experiment --seeds 1,2,3,4,5 [--train-size 1600 --dev-size 800 --epochs 1 ...]

The task is the demo's (all-MiniLM-L6-v2 on rotten-tomatoes fresh/rotten, split by movie,
see :mod:`fairseq_freelb.demo`). The split and the subsample are fixed by ``--data-seed``;
each training seed changes the classification head's initialisation, dropout, batch order
and FreeLB's random start. Like the paper's Table 1 it reports, per method, the median and
the standard deviation of dev accuracy over seeds, plus every seed's accuracy. The
accuracy is the one after the last update (no checkpoint selection on dev).

Writes ``OUT/results.json`` (every run), ``OUT/table.md`` and ``OUT/accuracy.png``.
"""

import argparse
import json
import logging
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from fairseq_freelb import demo

logger = logging.getLogger("fairseq_freelb.experiment")


def hardware() -> str:
    """CPU model, core count and load average: the timings depend on all three."""
    model = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load average {os.getloadavg()[0]:.1f}"
    return f"{model}, {os.cpu_count()} cores, torch threads from OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}{load}"


def summarise(results: Sequence[demo.RunResult]) -> Dict[str, dict]:
    by_method: Dict[str, List[demo.RunResult]] = {}
    for r in results:
        by_method.setdefault(r.method, []).append(r)
    summary = {}
    for method, runs in by_method.items():
        accs = [r.dev_accuracy for r in runs]
        summary[method] = {
            "seeds": [r.seed for r in runs],
            "accuracies": accs,
            "median": statistics.median(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "seconds_per_update": statistics.median(r.seconds_per_update for r in runs),
            "updates": runs[0].updates,
        }
    return summary


def markdown_table(summary: Dict[str, dict]) -> str:
    lines = [
        "| method | dev acc. median (%) | std | per seed (%) | s / update (median) | updates |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for method, s in summary.items():
        per_seed = ", ".join(f"{a:.1f}" for a in s["accuracies"])
        lines.append(f"| {method} | {s['median']:.1f} | {s['std']:.2f} | {per_seed} | "
                     f"{s['seconds_per_update']:.2f} | {s['updates']} |")
    return "\n".join(lines)


def plot(summary: Dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for x, (method, s) in enumerate(summary.items()):
        accs = s["accuracies"]
        # Small horizontal spread so equal accuracies stay visible.
        xs = [x + 0.08 * (i - (len(accs) - 1) / 2) for i in range(len(accs))]
        ax.scatter(xs, accs, zorder=3, label=f"{method} (per seed)")
        ax.hlines(s["median"], x - 0.25, x + 0.25, colors="black", zorder=2)
    ax.set_xticks(range(len(summary)))
    ax.set_xticklabels(list(summary))
    ax.set_ylabel("dev accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fairseq_freelb.experiment", description=__doc__.split("\n\n")[0])
    demo.add_common_args(parser)
    parser.set_defaults(workdir=demo.REPO / "out" / "experiment")
    parser.add_argument("--seeds", default="1,2,3,4,5", help="training seeds, comma-separated")
    parser.add_argument("--data-seed", type=int, default=1, help="seed of the movie split and the subsample (fixed across runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s | %(message)s", level=logging.INFO, stream=sys.stdout, force=True)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in demo.METHODS]
    if unknown:
        print(f"experiment: error: --methods: unknown {unknown} (choose from {sorted(demo.METHODS)})", file=sys.stderr)
        return 2
    out = args.workdir
    hardware_at_start = hardware()
    try:
        info = demo.prepare(out, args.train_size, args.dev_size, args.data_seed)
        results_path = out / "results.json"
        results: List[demo.RunResult] = []
        total = len(seeds) * len(methods)
        for seed in seeds:
            for method in methods:
                logger.info(f"run {len(results) + 1}/{total}: {method}, seed {seed}")
                cmd = demo.train_command(info, demo.METHODS[method], seed, args.epochs, args.batch_size, args.lr,
                                         out / "checkpoints" / method)
                results.append(demo.run_training(method, cmd, seed, out / "logs" / f"{method}-s{seed}.log"))
                # Saved after every run so an interrupted experiment keeps what it measured.
                results_path.write_text(json.dumps({"info": info, "args": vars(args) | {"workdir": str(out)},
                                                    "runs": [r.__dict__ for r in results]}, indent=1))
    except demo.DemoError as exc:
        print(f"experiment: error: {exc}", file=sys.stderr)
        return 1
    summary = summarise(results)
    command = "python -m fairseq_freelb.experiment " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (
        f"all-MiniLM-L6-v2 on rotten-tomatoes fresh/rotten: {info['train']} train / {info['dev']} dev reviews "
        f"(split by movie, data seed {args.data_seed}), {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, "
        f"seeds {args.seeds}.\nCommand: `{command}`.\nHardware: {hardware_at_start} at the start, {hardware().rsplit(', ', 1)[-1]} at the end."
    )
    table = markdown_table(summary)
    (out / "table.md").write_text(header + "\n\n" + table + "\n")
    plot(summary, out / "accuracy.png", f"MiniLM, RT {info['train']}/{info['dev']}, {len(seeds)} seeds")
    print()
    print(header)
    print(table)
    print(f"\nwrote {out / 'table.md'}, {out / 'accuracy.png'}, {results_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

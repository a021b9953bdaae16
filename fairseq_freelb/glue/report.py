"""Multi-seed runs of one GLUE task: median and standard deviation per method, as in the paper's Table 1.

For every method and seed this runs the task's launch script
(``examples/roberta_glue/<task>.sh``) with ``ADV_METHOD``, ``SEED`` and
``SAVE_DIR=<out>/runs/<method>/seed<seed>``, evaluates that run's
``checkpoint_best.pt`` on the dev split(s), and stores ``result.json`` next to
it. A run whose ``result.json`` exists is not rerun, so an interrupted report
resumes where it stopped. Then it writes ``<out>/report.md``, ``<out>/report.csv``
and ``<out>/report.png`` (every seed's score per method, the median marked).

Usage::

    ROBERTA_PATH=roberta.large/model.pt python -m fairseq_freelb.glue.report --task RTE \\
        --methods none,freelb --seeds 1,2,3,4,5 --out reports/RTE [-- <flags for the script>]

The environment (``ROBERTA_PATH``, ``ARCH``, ``NUM_GPUS``, ``FP16``, ``SMOKE``, ...)
is passed to the script; arguments after ``--`` are appended to its command.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.glue.benchmark_tasks import GlueTask, get_task
from fairseq_freelb.glue.evaluate import evaluate

RESULT = "result.json"


def default_scripts_dir() -> Path:
    repo = Path(__file__).resolve().parents[2] / "examples" / "roberta_glue"
    return repo if repo.is_dir() else Path.cwd() / "examples" / "roberta_glue"


def script_for(task: GlueTask, scripts_dir: Path) -> Path:
    path = scripts_dir / f"{task.name.replace('-', '').lower()}.sh"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no launch script for {task.name} (--scripts-dir)")
    return path


def run_one(task, script, data_bin, method, seed, run_dir: Path, extra: Sequence[str], eval_kwargs) -> Dict:
    """Train (unless finished) and evaluate one (method, seed); returns its result record."""
    result_path = run_dir / RESULT
    if result_path.is_file():
        print(f"[{method} seed {seed}] finished earlier: {result_path}", flush=True)
        return json.loads(result_path.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, ADV_METHOD=method, SEED=str(seed), SAVE_DIR=str(run_dir), DATA_BIN=str(data_bin))
    log_path = run_dir / "train.log"
    print(f"[{method} seed {seed}] training: {script} (log: {log_path})", flush=True)
    start = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.run(["bash", str(script), *extra], env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
        print(tail, file=sys.stderr, end="")
        raise CommandError(f"[{method} seed {seed}] {script} failed ({proc.returncode}); see {log_path} (its end is above)")
    checkpoint = run_dir / "checkpoint_best.pt"
    results = evaluate([str(checkpoint)], data_bin, task, **eval_kwargs)
    record = {
        "task": task.name, "method": method, "seed": seed, "checkpoint": str(checkpoint),
        "train_seconds": round(time.time() - start, 1), "results": results,
    }
    result_path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"[{method} seed {seed}] " + "; ".join(
        f"{split}: " + ", ".join(f"{m} {v[m]:.2f}" for m in task.metrics) for split, v in results.items()
    ), flush=True)
    return record


def summarize(task: GlueTask, records: List[Dict], methods: Sequence[str]) -> List[Dict]:
    """One row per (method, split, metric): per-seed values, median and sample standard deviation (ddof=1)."""
    rows = []
    for method in methods:
        mine = sorted((r for r in records if r["method"] == method), key=lambda r: r["seed"])
        if not mine:
            continue
        for split in mine[0]["results"]:
            for metric in task.metrics:
                values = np.array([r["results"][split][metric] for r in mine], dtype=np.float64)
                rows.append({
                    "task": task.name, "method": method, "split": split, "metric": metric,
                    "n_seeds": len(values),
                    "median": float(np.median(values)),
                    "std": float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"),
                    "seeds": [r["seed"] for r in mine],
                    "values": [float(v) for v in values],
                })
    return rows


def write_csv(rows: List[Dict], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "method", "split", "metric", "n_seeds", "median", "std", "seeds", "values"])
        for r in rows:
            writer.writerow([
                r["task"], r["method"], r["split"], r["metric"], r["n_seeds"], f"{r['median']:.4f}",
                "" if np.isnan(r["std"]) else f"{r['std']:.4f}",
                " ".join(map(str, r["seeds"])), " ".join(f"{v:.4f}" for v in r["values"]),
            ])


def markdown(task: GlueTask, rows: List[Dict]) -> str:
    """Methods as rows, (split, metric) as columns, cells ``median ± std``."""
    columns = []
    for r in rows:
        if (r["split"], r["metric"]) not in columns:
            columns.append((r["split"], r["metric"]))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["split"], r["metric"]): r for r in rows}
    head = ["method", "seeds"] + [f"{split} {metric}" for split, metric in columns]
    lines = [
        f"{task.name} dev, median ± std over seeds (std: sample, ddof=1)",
        "",
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
    ]
    for method in methods:
        first = next(r for r in rows if r["method"] == method)
        cells = [method, str(first["n_seeds"])]
        for split, metric in columns:
            r = cell.get((method, split, metric))
            if r is None:
                cells.append("")
            else:
                std = "n/a" if np.isnan(r["std"]) else f"{r['std']:.2f}"
                cells.append(f"{r['median']:.2f} ± {std}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(task: GlueTask, rows: List[Dict], path: Path) -> None:
    """One panel per (split, metric): each seed's score per method, the median as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((r["split"], r["metric"]) for r in rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1, 3.2), squeeze=False)
    for ax, (split, metric) in zip(axes[0], panels):
        mine = [r for r in rows if (r["split"], r["metric"]) == (split, metric)]
        for x, r in enumerate(mine):
            jitter = np.linspace(-0.12, 0.12, len(r["values"])) if len(r["values"]) > 1 else np.zeros(1)
            ax.scatter(x + jitter, r["values"], s=18, alpha=0.8)
            ax.hlines(r["median"], x - 0.25, x + 0.25, colors="black", linewidth=2)
        ax.set_xticks(range(len(mine)))
        ax.set_xticklabels([r["method"] for r in mine])
        ax.set_title(f"{task.name} {split}")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_xlim(-0.6, len(mine) - 0.4)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


PROG = "python -m fairseq_freelb.glue.report"


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: List[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--task", required=True, help="GLUE task (CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI)")
    parser.add_argument("--methods", default="none,freelb", help="comma-separated --adv-method values (default: none,freelb)")
    parser.add_argument("--seeds", default="1,2,3,4,5", help="comma-separated seeds (default: 1,2,3,4,5)")
    parser.add_argument("--out", required=True, help="report folder: runs/<method>/seed<seed>/ and report.{md,csv,png}")
    parser.add_argument("--data-bin", default=None, help="binarized task data (default: ${GLUE_BIN:-glue-bin}/<TASK>-bin)")
    parser.add_argument("--scripts-dir", default=None, help="folder of the launch scripts (default: examples/roberta_glue)")
    parser.add_argument("--batch-size", type=int, default=32, help="evaluation batch size")
    parser.add_argument("--cpu", action="store_true", help="evaluate on CPU")
    args = parser.parse_args(argv)
    task = get_task(args.task)
    methods = [m for m in args.methods.split(",") if m]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    data_bin = Path(args.data_bin or Path(os.environ.get("GLUE_BIN", "glue-bin")) / f"{task.name}-bin")
    if not data_bin.is_dir():
        raise FileNotFoundError(f"--data-bin {data_bin}: no such folder")
    script = script_for(task, Path(args.scripts_dir) if args.scripts_dir else default_scripts_dir())
    out = Path(args.out)
    eval_kwargs = {"batch_size": args.batch_size, "cpu": args.cpu}
    records = []
    for method in methods:
        for seed in seeds:
            run_dir = out / "runs" / method / f"seed{seed}"
            records.append(run_one(task, script, data_bin, method, seed, run_dir, extra, eval_kwargs))
    rows = summarize(task, records, methods)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "report.csv")
    table = markdown(task, rows)
    (out / "report.md").write_text(table)
    plot(task, rows, out / "report.png")
    print(table)
    print(f"wrote {out / 'report.md'}, {out / 'report.csv'}, {out / 'report.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(PROG, main))

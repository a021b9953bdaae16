"""Multi-seed runs of one GLUE task: median and standard deviation per method, as in the paper's Table 1.

For every method and seed this runs the task's launch script
(``examples/roberta_glue/<task>.sh``) with ``ADV_METHOD``, ``SEED`` and
``SAVE_DIR=<out>/runs/<method>/seed<seed>``, evaluates that run's
``checkpoint_best.pt`` on the dev split(s), and stores the result in
``<out>/results.json``, the experiment's result store
(:mod:`fairseq_freelb.multiseed.store`). Each stored run carries a fingerprint:
the task, a digest of the data folder, the method, the launch script's text,
the environment it reads (``ROBERTA_PATH`` by the checkpoint's digest, ``ARCH``,
``LR``, the ``ADV_*`` settings, ``SMOKE``, ...) and the flags after ``--``. A
run is reused only when all of them match, so an interrupted report resumes,
and a report of another task, data or setting into the same ``--out`` trains
its own runs (a run folder trained under another fingerprint is emptied
first, so fairseq cannot resume from its checkpoint). Then it writes
``<out>/report.md``, ``report.csv`` and ``report.png`` (every seed's score per
method, the median marked), each written aside and moved into place.

Usage::

    ROBERTA_PATH=roberta.large/model.pt python -m fairseq_freelb.glue.report --task RTE \\
        --methods none,freelb --seeds 1,2,3,4,5 --out reports/RTE [-- <flags for the script>]

The dev figures here choose the checkpoint on the dev set they report, as the
paper's do; ``python -m fairseq_freelb.experiment`` gives the held-out figure.
"""

import argparse
import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.glue import evaluate as glue_evaluate
from fairseq_freelb.glue.benchmark_tasks import GlueTask, get_task
from fairseq_freelb.multiseed.pool import run_pool
from fairseq_freelb.multiseed.stats import median_std
from fairseq_freelb.multiseed.store import (
    RunStore, exclusive, file_digest, fingerprint_digest, folder_digest, write_json_atomic, write_text_atomic,
)

RESULTS = "results.json"
STAMP = "fingerprint.json"  # in each run folder: the fingerprint it was trained under
# What the launch scripts read from the environment (examples/roberta_glue/common.sh); the report sets the rest.
SCRIPT_ENVIRONMENT = (
    "ROBERTA_PATH", "ARCH", "ADV_STEPS", "ADV_LR", "ADV_MAX_NORM", "ADV_INIT_MAG", "ADV_NORM_TYPE", "ADAM_BETAS",
    "NUM_GPUS", "FP16", "UPDATE_FREQ", "LR", "BSZ", "TOTAL_UPDATES", "WARMUP_UPDATES", "MAX_EPOCH",
    "FAIRSEQ_TRAIN", "USER_DIR", "SMOKE", "SMOKE_UPDATES", "INIT_FROM", "PYTHON",
)
SET_BY_REPORT = ("ADV_METHOD", "SEED", "SAVE_DIR", "DATA_BIN")


def default_scripts_dir() -> Path:
    repo = Path(__file__).resolve().parents[2] / "examples" / "roberta_glue"
    return repo if repo.is_dir() else Path.cwd() / "examples" / "roberta_glue"


def script_for(task: GlueTask, scripts_dir: Path) -> Path:
    path = scripts_dir / f"{task.name.replace('-', '').lower()}.sh"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no launch script for {task.name} (--scripts-dir)")
    return path


def check_data(task: GlueTask, data_bin: Path) -> None:
    """The folder must be this task's: its ``meta.json`` names the task (a folder of another task is refused)."""
    meta_path = data_bin / "meta.json"
    if not meta_path.is_file():
        return  # data preprocessed before meta.json existed; the digest still identifies it
    try:
        named = json.loads(meta_path.read_text(encoding="utf-8")).get("task")
    except ValueError as exc:
        raise CommandError(f"{meta_path}: not readable JSON ({exc}); preprocess the task again") from None
    if named and get_task(named).name != task.name:
        raise CommandError(f"--data-bin {data_bin}: preprocessed for {named} (meta.json), not {task.name}")


def fingerprint(task: GlueTask, data_digest: str, script: Path, method: str, extra: Sequence[str]) -> dict:
    """Everything that can change one run's dev figures (the seed is stored beside it)."""
    environment = {}
    for name in SCRIPT_ENVIRONMENT:
        value = os.environ.get(name)
        if value is None:
            continue
        if name in ("ROBERTA_PATH", "INIT_FROM") and Path(value).is_file():
            value = {"sha256": file_digest(Path(value))}  # the weights, wherever they are
        environment[name] = value
    scripts = {p.name: file_digest(p) for p in (script, script.parent / "common.sh") if p.is_file()}
    return {"task": task.name, "data": data_digest, "method": method, "scripts": scripts, "environment": environment,
            "script_flags": list(extra)}


def prepare_run_dir(run_dir: Path, print_prefix: str, wanted: dict) -> None:
    """Empty a run folder trained under another fingerprint (fairseq would resume from its checkpoint_last.pt)."""
    stamp = run_dir / STAMP
    if run_dir.is_dir() and any(run_dir.iterdir()):
        try:
            stored = json.loads(stamp.read_text(encoding="utf-8")) if stamp.is_file() else None
        except ValueError:
            stored = None
        if stored != wanted:
            differs = "no fingerprint" if not isinstance(stored, dict) else "other " + ", ".join(
                sorted(k for k in set(wanted) | set(stored) if wanted.get(k) != stored.get(k)))
            print(f"{print_prefix} {run_dir} holds a run of {differs}: emptied, trained afresh", flush=True)
            shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stamp, wanted)


def kept_note(out: Path, method: str, seed: int, wanted: dict) -> str:
    """'' while the run folder still holds this run's checkpoint, else a note that a later run replaced it."""
    stamp = out / "runs" / method / f"seed{seed}" / STAMP
    try:
        if json.loads(stamp.read_text(encoding="utf-8")) == wanted:
            return ""
    except (OSError, ValueError):
        pass
    return f" (its checkpoint is gone: runs/{method}/seed{seed} now holds another run)"


def run_one(task, script, data_bin, method, seed, run_dir: Path, extra: Sequence[str], eval_kwargs,
            fp: dict) -> Dict:
    """Train (resuming a run of the same fingerprint) and evaluate one (method, seed); returns its record."""
    prefix = f"[{method} seed {seed}]"
    prepare_run_dir(run_dir, prefix, fp)
    env = dict(os.environ, ADV_METHOD=method, SEED=str(seed), SAVE_DIR=str(run_dir), DATA_BIN=str(data_bin))
    log_path = run_dir / "train.log"
    print(f"{prefix} training: {script} (log: {log_path})", flush=True)
    start = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.run(["bash", str(script), *extra], env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
        print(tail, file=sys.stderr, end="")
        raise CommandError(f"{prefix} {script} failed ({proc.returncode}); see {log_path} (its end is above)")
    checkpoint = run_dir / "checkpoint_best.pt"
    results = glue_evaluate.evaluate([str(checkpoint)], data_bin, task, **eval_kwargs)
    print(f"{prefix} " + "; ".join(
        f"{split}: " + ", ".join(f"{m} {v[m]:.2f}" for m in task.metrics) for split, v in results.items()
    ), flush=True)
    return {"task": task.name, "method": method, "seed": seed, "checkpoint": str(checkpoint),
            "train_seconds": round(time.time() - start, 1), "results": results}


def summarize(task: GlueTask, records: List[Dict], methods: Sequence[str]) -> List[Dict]:
    """One row per (method, split, metric): per-seed values, median and sample standard deviation (ddof=1)."""
    rows = []
    for method in methods:
        mine = sorted((r for r in records if r["method"] == method), key=lambda r: r["seed"])
        if not mine:
            continue
        for split in mine[0]["results"]:
            for metric in task.metrics:
                values = [float(r["results"][split][metric]) for r in mine]
                median, std = median_std(values)
                rows.append({"task": task.name, "method": method, "split": split, "metric": metric,
                             "n_seeds": len(values), "median": median, "std": std,
                             "seeds": [r["seed"] for r in mine], "values": values})
    return rows


def csv_text(rows: List[Dict]) -> str:
    handle = io.StringIO()
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(["task", "method", "split", "metric", "n_seeds", "median", "std", "seeds", "values"])
    for r in rows:
        writer.writerow([
            r["task"], r["method"], r["split"], r["metric"], r["n_seeds"], f"{r['median']:.4f}",
            "" if math.isnan(r["std"]) else f"{r['std']:.4f}",
            " ".join(map(str, r["seeds"])), " ".join(f"{v:.4f}" for v in r["values"]),
        ])
    return handle.getvalue()


def markdown(task: GlueTask, rows: List[Dict]) -> str:
    """Methods as rows, (split, metric) as columns, cells ``median ± std``."""
    columns = list(dict.fromkeys((r["split"], r["metric"]) for r in rows))
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
            std = "" if r is None else ("n/a" if math.isnan(r["std"]) else f"{r['std']:.2f}")
            cells.append("" if r is None else f"{r['median']:.2f} ± {std}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(task: GlueTask, rows: List[Dict], path: Path) -> None:
    """One panel per (split, metric): each seed's score per method, the median as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


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
    parser.add_argument("--out", required=True,
                        help="report folder: results.json, runs/<method>/seed<seed>/ and report.{md,csv,png}")
    parser.add_argument("--data-bin", default=None, help="binarized task data (default: ${GLUE_BIN:-glue-bin}/<TASK>-bin)")
    parser.add_argument("--scripts-dir", default=None, help="folder of the launch scripts (default: examples/roberta_glue)")
    parser.add_argument("--batch-size", type=int, default=32, help="evaluation batch size")
    parser.add_argument("--cpu", action="store_true", help="evaluate on CPU")
    args = parser.parse_args(argv)
    task = get_task(args.task)
    methods = [m for m in args.methods.split(",") if m]
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        raise CommandError(f"--seeds {args.seeds!r}: expected comma-separated integers") from None
    data_bin = Path(args.data_bin or Path(os.environ.get("GLUE_BIN", "glue-bin")) / f"{task.name}-bin")
    if not data_bin.is_dir():
        raise FileNotFoundError(f"--data-bin {data_bin}: no such folder")
    check_data(task, data_bin)
    script = script_for(task, Path(args.scripts_dir) if args.scripts_dir else default_scripts_dir())
    out = Path(args.out)
    eval_kwargs = {"batch_size": args.batch_size, "cpu": args.cpu}
    with exclusive(out, "--out"):
        store = RunStore(out / RESULTS)
        data_digest = folder_digest(data_bin)
        prints = {m: fingerprint(task, data_digest, script, m, extra) for m in methods}
        jobs = []
        for method in methods:
            for seed in seeds:
                if store.find(method, seed, prints[method]) is not None:
                    print(f"[{method} seed {seed}] finished earlier with this task, data and settings: "
                          f"{store.path}{kept_note(out, method, seed, prints[method])}", flush=True)
                else:
                    jobs.append((method, seed))
        stale = store.explain_stale([(m, s, prints[m]) for m in methods for s in seeds])
        if stale:
            print(stale, flush=True)

        def one(job) -> None:
            method, seed = job
            run_dir = out / "runs" / method / f"seed{seed}"
            record = run_one(task, script, data_bin, method, seed, run_dir, extra, eval_kwargs, prints[method])
            store.add(method, seed, prints[method], record)

        run_pool(jobs, one, parallel=1)  # the launch scripts use every GPU they are given
        records = [store.find(m, s, prints[m]) for m in methods for s in seeds]
        rows = summarize(task, records, methods)
        write_text_atomic(out / "report.csv", csv_text(rows))
        table = markdown(task, rows)
        write_text_atomic(out / "report.md", table)
        plot(task, rows, out / "report.png")
    print(table)
    print(f"wrote {out / 'report.md'}, {out / 'report.csv'}, {out / 'report.png'} (runs: {store.path}, "
          f"fingerprints {', '.join(f'{m} {fingerprint_digest(p)}' for m, p in prints.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(PROG, main))

"""Running many settings × seeds: a pool of fairseq-train processes and the time estimate from a few timed updates.

Results are stored by the caller (:class:`fairseq_freelb.multiseed.store.RunStore`
for the experiment; the demo keeps its two in memory).
"""

import math
import os
import subprocess
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from fairseq_freelb.commands import CommandError
from fairseq_freelb.experiment.runs import Schedule, Setting, batches_per_epoch, json_payload, run_training
from fairseq_freelb.multiseed.pool import run_pool


def threads_per_process(device: str, parallel: int) -> int:
    """Torch threads per fairseq-train: the cores shared out (``OMP_NUM_THREADS`` wins when set)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, (os.cpu_count() or 1) // parallel)


def time_command(cmd: Sequence[str], log_path: Path, threads: int, updates: int = 4) -> Tuple[float, float]:
    """(seconds per update, process start-up seconds) from ``cmd`` run for a few updates without validation."""
    cmd = [*cmd, "--max-update", str(updates), "--log-interval", "1", "--disable-validation"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start, stamps = time.time(), []
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                      text=True, env=env) as proc:
        for line in proc.stdout:
            log.write(line)
            if "| train_inner |" in line and json_payload(line) is not None:
                stamps.append(time.time())
        proc.wait()
    if proc.returncode != 0 or len(stamps) < 2:
        lines = [ln for ln in log_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        raise CommandError(f"the timing run failed (exit code {proc.returncode}, {len(stamps)} updates logged): "
                           f"{lines[-1] if lines else '(no output)'} (log {log_path})")
    per_update = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    return per_update, max(0.0, stamps[0] - start - per_update)


def estimate_seconds(pending: Sequence[Tuple[Setting, int]], info: dict, schedule: Schedule, per_update: float,
                     startup: float, parallel: int, valid_examples: int) -> float:
    """Wall seconds for the pending runs: passes × updates, validation forward passes (~1/3 of an update), start-up."""
    batches = batches_per_epoch(info["sizes"]["train"], schedule.batch_size)
    valid_batches = math.ceil(valid_examples / schedule.batch_size)
    total = 0.0
    for setting, _ in pending:
        train = schedule.epochs * batches * setting.passes * per_update
        total += startup + train + schedule.epochs * valid_batches * per_update / 3
    return total / max(1, min(parallel, len(pending)))


def run_all(pending: Sequence[Tuple[Setting, int]], store, make_cmd: Callable[[Setting, int], List[str]],
            logs: Path, parallel: int, threads: int, echo=print,
            validated_epochs: Optional[Sequence[int]] = None,
            watch: Optional[Callable[[Setting, int], Callable[[dict], None]]] = None,
            metrics: Sequence[str] = ("accuracy",)) -> None:
    """Run the pending (setting, seed) pairs, ``parallel`` at a time; ``store.add(result)`` as each finishes.

    ``watch(setting, seed)``, when given, makes the callback that sees each run's ``train_inner`` records.

    On a failure no new run starts; the ones under way finish and are saved, then the first error is raised.
    """
    done = [0]

    def one(job: Tuple[Setting, int]) -> None:
        setting, seed = job
        result = run_training(setting, make_cmd(setting, seed), seed, logs / f"{setting.name}-s{seed}.log",
                              threads, echo, validated_epochs, watch(setting, seed) if watch else None,
                              metrics=metrics)
        store.add(result)
        done[0] += 1
        scores = ", ".join(f"{name} {values[-1]:.2f}" for name, values in
                           (("selection", result.selection), ("held-out", result.heldout)) if values)
        echo(f"run {done[0]}/{len(pending)} finished: {setting.name} seed {seed}: {metrics[0]} {scores} "
             f"({result.wall_seconds:.0f}s)")

    run_pool(list(pending), one, parallel)

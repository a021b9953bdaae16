"""Running many settings × seeds: the resumable ``results.json``, a pool of fairseq-train processes, the CPU estimate."""

import json
import math
import os
import subprocess
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from fairseq_freelb.commands import CommandError
from fairseq_freelb.experiment.runs import (
    VANILLA, RunResult, Schedule, Setting, batches_per_epoch, json_payload, run_key, run_training, train_command,
)


class ResultStore:
    """``results.json``: the protocol it belongs to and every finished run, rewritten (aside, then moved) per run.

    A rerun with the same protocol resumes: finished runs are kept and not
    retrained. A different protocol (data, schedule, precision) or a setting
    whose flags changed under the same name is refused in one line, so
    results of two protocols are never mixed in one table.
    """

    def __init__(self, path: Path, protocol: dict, flags: Dict[str, str]):
        self.path, self.protocol, self.flags = path, protocol, flags
        self.runs: Dict[str, RunResult] = {}
        self.lock = threading.Lock()
        if path.exists():
            try:
                stored = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise CommandError(f"{path}: not valid JSON ({exc}); move it away to start afresh")
            if stored.get("protocol") != protocol:
                changed = sorted(k for k in set(protocol) | set(stored.get("protocol", {}))
                                 if protocol.get(k) != stored.get("protocol", {}).get(k))
                raise CommandError(f"{path}: written by another protocol (differs in {', '.join(changed)}); "
                                   "use another --workdir or move it away")
            for run in stored.get("runs", []):
                result = RunResult(**run)
                if result.setting in flags and stored.get("flags", {}).get(result.setting) != flags[result.setting]:
                    raise CommandError(f"{path}: setting {result.setting} was run with other flags "
                                       f"({stored['flags'].get(result.setting)!r}); use another --workdir")
                self.runs[result.key] = result
            self.flags = {**stored.get("flags", {}), **flags}

    def add(self, result: RunResult) -> None:
        with self.lock:
            self.runs[result.key] = result
            payload = {"protocol": self.protocol, "flags": self.flags,
                       "runs": [r.to_json() for r in sorted(self.runs.values(), key=lambda r: (r.setting, r.seed))]}
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(payload, indent=1))
            os.replace(tmp, self.path)


def threads_per_process(device: str, parallel: int) -> int:
    """Torch threads per fairseq-train: the cores shared out (``OMP_NUM_THREADS`` wins when set)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, (os.cpu_count() or 1) // parallel)


def time_updates(info: dict, schedule: Schedule, workdir: Path, threads: int, updates: int = 4) -> Tuple[float, float]:
    """(seconds per vanilla update, process start-up seconds) from a short timed CPU run without validation."""
    cmd = train_command(info, VANILLA, 1, schedule, workdir / "timing", "cpu",
                        extra=["--max-update", str(updates), "--log-interval", "1", "--disable-validation"])
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start, stamps = time.time(), []
    log_path = workdir / "logs" / "timing.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                      text=True, env=env) as proc:
        for line in proc.stdout:
            log.write(line)
            if "| train_inner |" in line and json_payload(line) is not None:
                stamps.append(time.time())
        proc.wait()
    if proc.returncode != 0 or len(stamps) < 2:
        raise CommandError(f"the timing run failed (exit code {proc.returncode}, {len(stamps)} updates logged); "
                           f"log {log_path}")
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


def run_all(pending: Sequence[Tuple[Setting, int]], store: ResultStore, make_cmd: Callable[[Setting, int], List[str]],
            logs: Path, parallel: int, threads: int, echo=print,
            validated_epochs: Optional[Sequence[int]] = None,
            watch: Optional[Callable[[Setting, int], Callable[[dict], None]]] = None) -> None:
    """Run the pending (setting, seed) pairs, ``parallel`` at a time; each result is saved as it finishes.

    ``watch(setting, seed)``, when given, makes the callback that sees each run's ``train_inner`` records.

    On a failure no new run starts; the ones under way finish and are saved, then the first error is raised.
    """
    done = [0]

    def one(setting: Setting, seed: int) -> None:
        result = run_training(setting, make_cmd(setting, seed), seed, logs / f"{setting.name}-s{seed}.log",
                              threads, echo, validated_epochs, watch(setting, seed) if watch else None)
        store.add(result)
        done[0] += 1
        scores = ", ".join(f"{name} {values[-1]:.2f}%" for name, values in
                           (("selection", result.selection), ("held-out", result.heldout)) if values)
        echo(f"run {done[0]}/{len(pending)} finished: {setting.name} seed {seed}: {scores} ({result.wall_seconds:.0f}s)")

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(one, setting, seed) for setting, seed in pending]
        finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in finished if f.exception() is not None]
        if failed:
            for future in futures:
                future.cancel()
            raise failed[0].exception()


def pending_runs(settings: Sequence[Setting], seeds: Sequence[int], store: ResultStore) -> List[Tuple[Setting, int]]:
    """(setting, seed) pairs not yet in ``results.json``, seed-major so early results pair up across settings."""
    return [(s, seed) for seed in seeds for s in settings if run_key(s.name, seed) not in store.runs]

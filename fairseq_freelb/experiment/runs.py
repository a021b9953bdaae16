"""The training runs: which settings exist, the ``fairseq-train`` command of one run, and reading its log.

A run is one setting (vanilla, a FreeLB point of the grid, or a baseline)
trained with one seed. Every run validates after every epoch on the
selection side (fairseq subset ``valid``) and the held-out side (``valid1``;
MNLI's mismatched dev set is ``valid2``); :func:`run_training` reads the
task's metrics on each per epoch (accuracy by default; MCC, F1, Pearson,
Spearman where the criterion logs them), fairseq's ``train_wall`` and the
adversary's epoch averages from the JSON log.
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from fairseq_freelb import convert_hf
from fairseq_freelb.commands import CommandError


@dataclass(frozen=True)
class Setting:
    """A named method configuration; ``passes`` = forward/backward passes per minibatch (for time estimates)."""

    name: str
    method: str
    flags: tuple
    passes: int
    updates_per_batch: int = 1  # FreeAT replays each minibatch K times, each replay an optimizer update


def _adv(method: str, k: int, lr: float, max_norm: float, init: float, *extra: str) -> tuple:
    return ("--adv-method", method, "--adv-steps", str(k), "--adv-lr", str(lr), "--adv-max-norm", str(max_norm),
            "--adv-init-mag", str(init), "--adv-norm-type", "l2", *extra)


VANILLA = Setting("vanilla", "none", ("--adv-method", "none"), 1)
# The demo task's FreeLB grid: the three 4-epoch settings of an earlier GPU table (docs/demo_and_experiment.md;
# the first is the row of the
# paper's Table 7 for RTE). Names: K ascent passes, step alpha, radius epsilon, init magnitude M.
FREELB_GRID = [
    Setting("freelb-k3-a0.03-e0.15-m0.1", "freelb", _adv("freelb", 3, 0.03, 0.15, 0.1), 3),
    Setting("freelb-k2-a0.03-e0.1-m0.05", "freelb", _adv("freelb", 2, 0.03, 0.1, 0.05), 2),
    Setting("freelb-k3-a0.01-e0.03-m0.01", "freelb", _adv("freelb", 3, 0.01, 0.03, 0.01), 3),
]
# One row per baseline (--methods), at the cost of FreeLB-3 and the RTE row's step and radius; not tuned.
BASELINES = {
    "pgd": Setting("pgd-k2-a0.03-e0.15-m0.1", "pgd", _adv("pgd", 2, 0.03, 0.15, 0.1), 3),
    "freeat": Setting("freeat-k3-a0.03-e0.15-m0.1", "freeat", _adv("freeat", 3, 0.03, 0.15, 0.1), 3, 3),
    "yopo": Setting("yopo-3-3-a0.03-e0.15-m0.1", "yopo",
                    _adv("yopo", 3, 0.03, 0.15, 0.1, "--yopo-inner-steps", "3"), 3),
}
METHOD_FAMILIES = ("vanilla", "freelb", *BASELINES)


@dataclass(frozen=True)
class Schedule:
    epochs: int
    batch_size: int
    lr: float
    warmup_fraction: float = 0.06


@dataclass
class RunResult:
    setting: str
    seed: int
    selection: List[float]  # the headline metric (%) after each epoch, on the selection side
    heldout: List[float]  # the same on the held-out side
    updates: int
    seconds_per_update: float  # fairseq's train_wall, summed over epochs, / num_updates
    wall_seconds: float
    adversary: Dict[str, float] = field(default_factory=dict)  # last epoch's adv_loss_init/last, adv_delta_norm
    # Every metric on every side, per epoch: {"heldout": {"accuracy": [...], "f1": [...]}, "heldout_mismatched": ...}
    scores: Dict[str, Dict[str, List[float]]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return run_key(self.setting, self.seed)

    def to_json(self) -> dict:
        return asdict(self)


def run_key(setting: str, seed: int) -> str:
    return f"{setting}/seed{seed}"


def batches_per_epoch(train_size: int, batch_size: int) -> int:
    return -(-train_size // batch_size)


# Keep one model per run and nothing else: fairseq writes checkpoint_best.pt at each validation that
# improves on the last, without the Adam state (which would triple its size).
KEEP_BEST_ONLY = ("--no-epoch-checkpoints", "--no-last-checkpoints", "--no-save-optimizer-state")


def fairseq_train() -> str:
    """``$FAIRSEQ_TRAIN`` (as the launch scripts read it), else the ``fairseq-train`` next to this Python."""
    return os.environ.get("FAIRSEQ_TRAIN") or str(Path(sys.executable).parent / "fairseq-train")


def train_command(info: dict, setting: Setting, seed: int, schedule: Schedule, save_dir: Path, device: str,
                  valid_subsets: str = "valid,valid1", extra: Sequence[str] = (), keep_model: bool = False,
                  amp: str = "fp16") -> List[str]:
    """``fairseq-train`` from the converted MiniLM: Adam (0.9, 0.98), weight decay 0.1, polynomial decay with warmup.

    ``keep_model``: save ``save_dir/checkpoint_best.pt`` (:data:`KEEP_BEST_ONLY`) instead of nothing.
    On CUDA: ``--fp16``, or ``--amp --amp-dtype bf16`` with ``amp="bf16"``.
    """
    updates = schedule.epochs * batches_per_epoch(info["sizes"]["train"], schedule.batch_size) * setting.updates_per_batch
    if device == "cuda":
        device_flags = ["--amp", "--amp-dtype", "bf16"] if amp == "bf16" else ["--fp16"]
    else:
        device_flags = ["--cpu"]
    return [
        fairseq_train(), info["data_dir"],
        "--user-dir", "fairseq_freelb",
        "--task", "sentence_prediction", "--criterion", "freelb_sentence_prediction",
        "--num-classes", "2", "--init-token", "0", "--separator-token", "2",
        *convert_hf.train_args(info["model_dir"]),
        "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--adam-eps", "1e-06", "--weight-decay", "0.1",
        "--clip-norm", "0.0",
        "--lr", str(schedule.lr), "--lr-scheduler", "polynomial_decay",
        "--warmup-updates", str(max(1, round(schedule.warmup_fraction * updates))), "--total-num-update", str(updates),
        "--max-update", str(updates), "--max-epoch", str(schedule.epochs),
        "--batch-size", str(schedule.batch_size), "--required-batch-size-multiple", "1",
        "--valid-subset", valid_subsets,
        "--seed", str(seed), *device_flags, "--num-workers", "0",
        "--save-dir", str(save_dir), *(KEEP_BEST_ONLY if keep_model else ["--no-save"]),
        "--log-format", "json", "--log-interval", "10", "--no-progress-bar",
        *setting.flags, *extra,
    ]


def json_payload(line: str) -> Optional[dict]:
    start = line.find("{")
    if start < 0:
        return None
    try:
        return json.loads(line[start:])
    except json.JSONDecodeError:
        return None


# fairseq validation subsets of the protocol's data and the side each one is.
SIDES = {"valid": "selection", "valid1": "heldout", "valid2": "heldout_mismatched"}


def run_training(setting: Setting, cmd: Sequence[str], seed: int, log_path: Path, threads: int,
                 echo=print, validated_epochs: Optional[Sequence[int]] = None,
                 on_record: Optional[Callable[[dict], None]] = None, metrics: Sequence[str] = ("accuracy",)) -> RunResult:
    """Run fairseq-train, echo one line per epoch and subset, and read ``metrics`` per epoch (the first is the headline).

    ``on_record`` (e.g. :class:`.progress.TrainingProgress`) gets each ``train_inner`` record as it streams.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.time()
    # The subsets this command validates on (fairseq-train's --valid-subset): each must be logged every time.
    subsets = list(cmd)[list(cmd).index("--valid-subset") + 1].split(",")
    accuracy: Dict[str, Dict[int, float]] = {name: {} for name in subsets}
    scores: Dict[str, Dict[str, Dict[int, float]]] = {name: {m: {} for m in metrics} for name in subsets}
    unlogged = None  # a metric the command's criterion did not log
    last_train = None
    # fairseq resets its "train" meters every epoch: each epoch summary's train_wall covers that epoch only.
    epoch_train_walls: List[float] = []
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tag = f"[{setting.name} seed {seed}]"
    with open(log_path, "w", encoding="utf-8") as log, subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        for line in proc.stdout:
            log.write(line)
            payload = json_payload(line) if "| INFO |" in line else None
            if payload is None:
                continue
            if on_record is not None and "| train_inner |" in line:
                on_record(payload)
            for subset in accuracy:
                if f"| {subset} |" in line:
                    epoch = int(payload["epoch"])
                    missing = [m for m in metrics if f"{subset}_{m}" not in payload]
                    if missing:
                        unlogged = unlogged or f"{subset}_{missing[0]}"
                        continue
                    for metric in metrics:
                        scores[subset][metric][epoch] = float(payload[f"{subset}_{metric}"])
                    accuracy[subset][epoch] = scores[subset][metrics[0]][epoch]
                    name = SIDES.get(subset, subset).replace("heldout", "held-out").replace("_", " ")
                    echo(f"  {tag} epoch {epoch}: {name} {metrics[0]} {accuracy[subset][epoch]:.2f} "
                         f"({time.time() - start:.0f}s)")
            if "| train |" in line:
                last_train = payload
                epoch_train_walls.append(float(payload.get("train_train_wall", 0.0)))
        proc.wait()
    if proc.returncode != 0:
        lines = [ln for ln in log_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        raise CommandError(f"fairseq-train ({setting.name}, seed {seed}) failed with exit code {proc.returncode}: "
                           f"{lines[-1] if lines else '(no output)'} (log {log_path})")
    if unlogged:
        raise CommandError(f"{log_path}: fairseq-train logged no {unlogged} (give the criterion the flag that reports it)")
    result = finish_result(setting, seed, accuracy, last_train, log_path, time.time() - start, validated_epochs,
                           train_wall=sum(epoch_train_walls))
    result.scores = {SIDES.get(subset, subset): {m: [by_epoch[e] for e in sorted(by_epoch)] for m, by_epoch in per.items()}
                     for subset, per in scores.items()}
    return result


def finish_result(setting: Setting, seed: int, accuracy: Dict[str, Dict[int, float]], last_train: Optional[dict],
                  log_path: Path, wall: float, validated_epochs: Optional[Sequence[int]], train_wall: float) -> RunResult:
    """Check that each subset the command asked for was validated after the expected epochs, then build the result.

    ``validated_epochs`` None means every epoch, 1..last. ``train_wall`` is fairseq's training time summed
    over every epoch's summary (each covers its own epoch only).
    """
    if last_train is None:
        raise CommandError(f"{log_path}: no train summary in fairseq-train's log")
    epochs = int(last_train["epoch"])
    expected = list(validated_epochs or range(1, epochs + 1))
    for subset, by_epoch in accuracy.items():
        if sorted(by_epoch) != expected:
            raise CommandError(f"{log_path}: {subset} validated after epochs {sorted(by_epoch)}, expected {expected}")
    updates = int(last_train["train_num_updates"])
    adversary = {key: float(last_train[f"train_{key}"]) for key in ("adv_loss_init", "adv_loss_last", "adv_delta_norm")
                 if f"train_{key}" in last_train}
    return RunResult(
        setting=setting.name, seed=seed,
        selection=[accuracy.get("valid", {})[e] for e in sorted(accuracy.get("valid", {}))],
        heldout=[accuracy.get("valid1", {})[e] for e in sorted(accuracy.get("valid1", {}))],
        updates=updates, seconds_per_update=train_wall / max(updates, 1),
        wall_seconds=wall, adversary=adversary,
    )


def resolve_device(device: str) -> str:
    """``auto``: CUDA when torch sees a device, else CPU; ``cuda`` without one is refused in one line."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CommandError("--device cuda: torch sees no CUDA device (use --device cpu or auto)")
    return device

"""Shared test helpers: tiny binarized data, tiny RoBERTa models, fairseq-train runs."""

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence

BIN = Path(sys.executable).parent

# A 2-layer RoBERTa small enough to train on a CPU in seconds.
TINY_ROBERTA = [
    "--arch", "roberta_base",
    "--encoder-layers", "2",
    "--encoder-embed-dim", "32",
    "--encoder-ffn-embed-dim", "64",
    "--encoder-attention-heads", "2",
    "--max-positions", "64",
]

WORDS = [f"w{i}" for i in range(40)]


def write_dict(path: Path, symbols: Sequence[str]) -> Path:
    path.write_text("".join(f"{s} 1\n" for s in symbols))
    return path


def _sentences(rng: random.Random, n: int, num_classes: int, regression: bool):
    """Sentences whose label depends on their words, so a model can learn it."""
    rows = []
    for _ in range(n):
        length = rng.randint(3, 12)
        words = [rng.choice(WORDS) for _ in range(length)]
        score = sum(int(w[1:]) for w in words) / length  # 0..39
        if regression:
            label = f"{min(max(score / 39.0, 0.0), 1.0):.4f}"
        else:
            label = str(min(int(score / 40 * num_classes), num_classes - 1))
        rows.append((" ".join(words), label))
    return rows


def preprocess(src_pref: Path, destdir: Path, srcdict: Optional[Path], splits=("train", "valid")) -> None:
    cmd = [
        str(BIN / "fairseq-preprocess"), "--only-source",
        "--trainpref", f"{src_pref}.train",
        "--destdir", str(destdir), "--workers", "1",
    ]
    if "valid" in splits:
        cmd += ["--validpref", f"{src_pref}.valid"]
    if "test" in splits:
        cmd += ["--testpref", f"{src_pref}.test"]
    if srcdict is not None:
        cmd += ["--srcdict", str(srcdict)]
    subprocess.run(cmd, check=True, capture_output=True)


def make_sentence_prediction_data(
    root: Path, num_classes: int = 2, regression: bool = False, n_train: int = 64, n_valid: int = 32, seed: int = 0
) -> Path:
    """fairseq's RoBERTa GLUE layout: ``input0/`` and ``label/`` binarized with --only-source."""
    rng = random.Random(seed)
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    bin_dir = root / "data-bin"
    srcdict = write_dict(raw / "dict.txt", WORDS)
    for split, n in (("train", n_train), ("valid", n_valid)):
        rows = _sentences(rng, n, num_classes, regression)
        (raw / f"input0.{split}").write_text("".join(s + "\n" for s, _ in rows))
        (raw / f"label.{split}").write_text("".join(lab + "\n" for _, lab in rows))
    preprocess(raw / "input0", bin_dir / "input0", srcdict)
    if regression:
        # fairseq's sentence_prediction reads regression targets as text from label/{split}.label
        (bin_dir / "label").mkdir(parents=True, exist_ok=True)
        for split in ("train", "valid"):
            (bin_dir / "label" / f"{split}.label").write_text((raw / f"label.{split}").read_text())
    else:
        preprocess(raw / "label", bin_dir / "label", None)
    return bin_dir


def fairseq_train_cmd(data_bin: Path, save_dir: Path, extra: Sequence[str] = (), num_classes: int = 2) -> List[str]:
    return [
        str(BIN / "fairseq-train"), str(data_bin),
        "--user-dir", "fairseq_freelb",
        "--task", "sentence_prediction",
        "--criterion", "freelb_sentence_prediction",
        "--num-classes", str(num_classes),
        "--init-token", "0", "--separator-token", "2",
        *TINY_ROBERTA,
        "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "fixed",
        "--batch-size", "16", "--max-epoch", "2",
        "--save-dir", str(save_dir),
        "--no-epoch-checkpoints", "--no-progress-bar", "--log-format", "simple", "--log-interval", "1",
        "--seed", "1", "--cpu", "--num-workers", "0",
        *extra,
    ]


def run(cmd: Sequence[str], cwd: Optional[Path] = None, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


# Printed by the C++ runtime (std::terminate) when a process exits while a native
# thread is still joinable. Seen here, rarely, after fairseq-train's own work was
# done: at the end of a gloo worker and after a one-line error. It is torch's
# teardown, not the plugin's output; tests that read a process's last line or exit
# code accept it only as the very last line.
TEARDOWN_ABORT = "terminate called without an active exception"


def without_teardown_abort(text: str):
    """``(text without a trailing TEARDOWN_ABORT line, whether it was there)``."""
    lines = text.rstrip("\n").splitlines()
    if lines and lines[-1].strip() == TEARDOWN_ABORT:
        return "\n".join(lines[:-1]) + "\n", True
    return text, False

"""Data folders and a stand-in fairseq-train for the held-out protocol's fast tests.

- :func:`glue_bin`: the GLUE fixture (:mod:`glue_fixtures`) through the real
  ``python -m fairseq_freelb.glue.preprocess``, so the folders are exactly what users get;
- :func:`mc_data`: the CommonsenseQA fixture (:mod:`mc_fixtures`) through
  ``python -m fairseq_freelb.mc.preprocess --build-dict``;
- :func:`fake_trainer`: an executable that takes fairseq-train's command line,
  checks that every subset it is asked to read exists in the data folder, and
  prints the JSON log lines the experiment reads, with scores set per setting
  by the test (``FAKE_SCORES``: ``{"<--adv-lr or none>": [selection, held-out]}``,
  plus 0.1 x seed), and records each call in ``FAKE_CALLS``. It stands in for
  fairseq-train through ``$FAIRSEQ_TRAIN``, which the experiment reads as the
  launch scripts do.
"""

import contextlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Dict, Sequence

from glue_fixtures import build_srcdict, make_glue_dir
from mc_fixtures import make_csqa

FAKE_TRAIN = r'''
import json, math, os, sys
args = sys.argv[1:]

def flag(name, default=None):
    """The last value given (argparse keeps the last)."""
    spots = [i for i, a in enumerate(args) if a == name]
    return args[spots[-1] + 1] if spots else default

data = args[0]
with open(os.environ["FAKE_CALLS"], "a") as calls:
    calls.write(json.dumps(args) + "\n")
subsets = flag("--valid-subset", "valid").split(",")
for subset in ["train"] + subsets:
    if not (os.path.exists(f"{data}/input0/{subset}.bin") or os.path.exists(f"{data}/{subset}.jsonl")):
        print(f"FileNotFoundError: no {subset} in {data}")
        sys.exit(1)
stamp = "2026-01-01 00:00:00 | INFO | "
updates = int(flag("--max-update"))
if "--disable-validation" in args:
    for u in range(1, updates + 1):
        print(stamp + "train_inner | " + json.dumps({"epoch": 1, "num_updates": u, "loss": 1.0}), flush=True)
    sys.exit(0)
epochs = int(flag("--max-epoch"))
seed = int(flag("--seed"))
key = flag("--adv-lr", "none") if flag("--adv-method") != "none" else "none"
selection, heldout = json.loads(os.environ.get("FAKE_SCORES", "{}")).get(key, [50.0, 50.0])
for epoch in range(1, epochs + 1):
    for subset in subsets:
        base = selection if subset == "valid" else heldout
        value = base - (epochs - epoch) + 0.1 * seed
        scores = {m: value for m in ("accuracy", "mcc", "f1", "pearson", "spearman")}
        print(stamp + f"{subset} | " + json.dumps({"epoch": epoch, **{f"{subset}_{m}": str(v) for m, v in scores.items()}}))
    print(stamp + "train | " + json.dumps({"epoch": epoch, "train_num_updates": str(updates * epoch // epochs),
                                           "train_train_wall": "0.5", "train_adv_loss_init": "1.0",
                                           "train_adv_loss_last": "1.2", "train_adv_delta_norm": "0.1"}))
'''


def fake_trainer(folder: Path) -> Path:
    path = folder / "fake-fairseq-train"
    path.write_text(f"#!{sys.executable}\n" + FAKE_TRAIN)
    path.chmod(0o755)
    return path


def calls(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def glue_bin(root: Path, tasks: Sequence[str], n_train: int = 40, n_dev: int = 16, seed: int = 0) -> Path:
    """``root/glue-bin/<TASK>-bin`` for ``tasks``, from the fixture's GLUE folder and a dictionary counted from it."""
    from fairseq_freelb.glue import preprocess
    from fairseq_freelb.resources import gpt2_bpe_files

    make_glue_dir(root / "glue_data", n_train=n_train, n_dev=n_dev, seed=seed)
    srcdict = build_srcdict(root / "glue_data", *gpt2_bpe_files(), root / "dict.txt")
    with contextlib.redirect_stdout(io.StringIO()):
        assert preprocess.main(["--glue-dir", str(root / "glue_data"), "--srcdict", str(srcdict), "--out",
                                str(root / "glue-bin"), "--tasks", ",".join(tasks), "--workers", "1"]) == 0
    return root / "glue-bin"


def mc_data(root: Path, n_train: int = 30, n_dev: int = 12) -> Path:
    from fairseq_freelb.mc import preprocess

    files = make_csqa(root / "raw", n_train=n_train, n_dev=n_dev)
    dest = root / "csqa-data"
    assert preprocess.main(["--destdir", str(dest), "--train", str(files["train_rand_split"]),
                            "--valid", str(files["dev_rand_split"]), "--build-dict"]) == 0
    return dest


def fake_env(trainer: Path, calls_file: Path, scores: Dict[str, Sequence[float]] = None) -> Dict[str, str]:
    return {"FAIRSEQ_TRAIN": str(trainer), "FAKE_CALLS": str(calls_file), "FAKE_SCORES": json.dumps(scores or {}),
            "OMP_NUM_THREADS": "1"}


def set_env(monkeypatch, env: Dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    os.environ.pop("PYTHONSTARTUP", None)

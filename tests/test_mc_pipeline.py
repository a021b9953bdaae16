"""End to end on fixtures in the official formats: preprocess, train (SMOKE=1), evaluate, predict, validate.

Runs the user-facing scripts of ``examples/csqa`` and ``examples/arc`` and
the ``python -m fairseq_freelb.mc.*`` commands as subprocesses, from the
repository root (so ``--user-dir fairseq_freelb`` is this checkout).
"""

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mc_fixtures
from utils import BIN

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def _env(**extra):
    env = dict(os.environ, SMOKE="1", PYTHON=PY, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _sh(script, **env):
    import subprocess

    proc = subprocess.run(["bash", str(REPO / script)], cwd=REPO, env=_env(**env), capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode})\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def _mc(command, *args):
    import subprocess

    proc = subprocess.run([PY, "-m", f"fairseq_freelb.mc.{command}", *map(str, args)], cwd=REPO, env=_env(),
                          capture_output=True, text=True)
    return proc


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _accuracies(stdout):
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^\S+\t(\S+)\taccuracy ([\d.]+)", stdout, re.M)}


@pytest.mark.slow
def test_commonsenseqa_pipeline(tmp_path):
    files = mc_fixtures.make_csqa(tmp_path / "raw")
    data, ckpt = tmp_path / "data", tmp_path / "ckpt"
    _sh("examples/csqa/preprocess.sh", CSQA_DIR=tmp_path / "raw", DEST=data)
    log = _sh("examples/csqa/train.sh", DATA=data, SAVE_DIR=ckpt, MAX_UPDATE=3)
    assert "adv_delta_norm" in log and "num_updates 3" in log
    best = ckpt / "checkpoint_best.pt"

    acc = _accuracies(_ok(_mc("evaluate", "--data", data, "--split", "valid", "--path", best, "--cpu")))
    assert set(acc) == {"dev_rand_split", "merged"} and 0 <= acc["merged"] <= 100

    pred = tmp_path / "csqa_test.csv"
    _ok(_mc("predict", "--data", data, "--split", "test", "--path", best, "--output", pred, "--cpu"))
    test_file = files["test_rand_split_no_answers"]
    assert "OK, 8 predictions" in _ok(_mc("validate", pred, "--questions", test_file))
    ids = [line.split(",")[0] for line in pred.read_text().splitlines()]
    assert ids == [__import__("json").loads(l)["id"] for l in test_file.read_text().splitlines()]
    # A damaged file is rejected with its line number.
    lines = pred.read_text().splitlines()
    pred.write_text("\n".join(lines[:3] + [lines[3].split(",")[0] + ",F"] + lines[4:]) + "\n")
    bad = _mc("validate", pred, "--questions", test_file)
    assert bad.returncode == 1 and f"{pred}:4: answer 'F'" in bad.stderr
    # Evaluating the unlabelled test split is refused, not guessed.
    refused = _mc("evaluate", "--data", data, "--split", "test", "--path", best, "--cpu")
    assert refused.returncode == 1 and "accuracy needs a labelled split" in refused.stderr


@pytest.mark.slow
def test_race_then_arc_multitask_pipeline(tmp_path):
    raw = tmp_path / "raw"
    race_dir = mc_fixtures.make_race(raw)
    arc = mc_fixtures.make_arc(raw)
    obqa = mc_fixtures.make_obqa(raw)
    race, arc_data = tmp_path / "race", tmp_path / "arc"
    _sh("examples/arc/preprocess.sh", RACE_DIR=race_dir, ARC_DIR=raw, OBQA_DIR=obqa["main"],
        RACE_DEST=race, ARC_DEST=arc_data)
    summary = __import__("json").loads((arc_data / "preprocess.json").read_text())["splits"]
    assert summary["train"]["sources"] == {"ARC-Easy-Train": 16, "ARC-Challenge-Train": 16, "OpenBookQA-train": 16}
    assert summary["train"]["choices_per_question"] == {"3": 8, "4": 32, "5": 8}

    _sh("examples/arc/train_race.sh", DATA=race, SAVE_DIR=tmp_path / "ck_race")
    race_best = tmp_path / "ck_race" / "checkpoint_best.pt"
    acc = _accuracies(_ok(_mc("evaluate", "--data", race, "--split", "test", "--path", race_best, "--cpu")))
    assert set(acc) == {"RACE-high", "RACE-middle", "merged"}

    log = _sh("examples/arc/train_arc.sh", DATA=arc_data, SAVE_DIR=tmp_path / "ck_arc", RESTORE=race_best,
              ADV_METHOD="none")
    assert f"Loaded checkpoint {race_best}" in log
    arc_best = tmp_path / "ck_arc" / "checkpoint_best.pt"
    acc = _accuracies(_ok(_mc("evaluate", "--data", arc_data, "--split", "valid", "--path", arc_best, "--cpu")))
    assert set(acc) == {"ARC-Easy", "ARC-Challenge", "merged"}
    assert acc["merged"] == pytest.approx((acc["ARC-Easy"] + acc["ARC-Challenge"]) / 2)  # 8 + 8 questions

    # Leaderboard files: ARC test (labels A-E and 1-4) from an ensemble, OpenBookQA test.
    pred = tmp_path / "arc_test.csv"
    ensemble = f"{arc_best}{os.pathsep}{race_best}"
    _ok(_mc("predict", "--data", arc_data, "--split", "test", "--path", ensemble, "--output", pred, "--cpu"))
    official = [arc["ARC-Easy-Test"], arc["ARC-Challenge-Test"]]
    assert "OK, 16 predictions" in _ok(_mc("validate", pred, "--questions", *official))
    answers = [line.split(",")[1] for line in pred.read_text().splitlines()]
    assert set(answers) <= set("ABCDE1234")
    _check_ensemble_average(arc_data, [arc_best, race_best], answers)

    # One file per leaderboard: ARC-Easy and ARC-Challenge are ranked separately.
    for level in ("Easy", "Challenge"):
        out = tmp_path / f"arc_{level}_test.csv"
        _ok(_mc("predict", "--data", arc_data, "--split", "test", "--group", f"ARC-{level}", "--path", arc_best,
                "--output", out, "--cpu"))
        assert "OK, 8 predictions" in _ok(_mc("validate", out, "--questions", arc[f"ARC-{level}-Test"]))

    obqa_pred = tmp_path / "obqa_test.csv"
    _ok(_mc("predict", "--data", arc_data, "--split", "obqa_test", "--path", arc_best, "--output", obqa_pred, "--cpu"))
    assert "OK, 8 predictions" in _ok(_mc("validate", obqa_pred, "--questions", obqa["test"]))


@pytest.mark.slow
def test_checkpoint_on_other_data_is_refused_in_one_line(tmp_path):
    """An ARC checkpoint on CSQA data, or on data whose dictionary has the same size but other tokens, or
    (without a fingerprint) another size, stops with one line naming the checkpoint and the data.

    The SMOKE dictionaries of the ARC and CSQA fixtures have the same size (45 types): before the
    fingerprint this evaluated with exit code 0, every token id meaning another token."""
    raw = tmp_path / "raw"
    mc_fixtures.make_arc(raw)
    mc_fixtures.make_csqa(raw / "csqa")
    arc, csqa, permuted, bigger = (tmp_path / name for name in ("arc", "csqa", "arc_permuted", "arc_bigger"))
    old = tmp_path / "before_fingerprints.pt"
    _sh("examples/arc/preprocess.sh", ARC_DIR=raw, ARC_DEST=arc)
    _sh("examples/csqa/preprocess.sh", CSQA_DIR=raw / "csqa", DEST=csqa)
    _sh("examples/arc/train_arc.sh", DATA=arc, SAVE_DIR=tmp_path / "ck", TOTAL_UPDATES=1, ADV_METHOD="none")
    best = tmp_path / "ck" / "checkpoint_best.pt"
    _ok(_mc("evaluate", "--data", arc, "--split", "valid", "--path", best, "--cpu"))

    shutil.copytree(arc, permuted)
    symbols = (permuted / "dict.txt").read_text().splitlines()
    (permuted / "dict.txt").write_text("\n".join(reversed(symbols)) + "\n")  # same size, ids mean other tokens
    shutil.copytree(arc, bigger)
    with open(bigger / "dict.txt", "a") as handle:
        handle.write("extra1 1\nextra2 1\n")
    # A checkpoint written before dictionary fingerprints: the weight shapes are what is left to check.
    state = torch.load(best, map_location="cpu", weights_only=False)
    state["task_state"] = {}
    torch.save(state, old)
    cases = [(best, csqa, "trained with another dictionary"), (best, permuted, "trained with another dictionary"),
             (old, bigger, "its weights do not fit the model built for the data")]
    for checkpoint, data, reason in cases:
        proc = _mc("evaluate", "--data", data, "--split", "valid", "--path", checkpoint, "--cpu")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"python -m fairseq_freelb.mc.evaluate: error: {checkpoint}: {reason}")
        assert str(data) in last and last.endswith("this checkpoint does not match this data")


def _check_ensemble_average(data, checkpoints, answers):
    """The ensemble's answers are the argmax of the mean of the members' probabilities."""
    from fairseq_freelb.mc.inference import choice_probabilities, load_mc_ensemble

    members = []
    for path in checkpoints:
        models, _, task = load_mc_ensemble([str(path)], str(data), cpu=True)
        members.append(choice_probabilities(models, task, "test"))
    questions = task.questions["test"]
    mean = [np.mean([m[i] for m in members], axis=0) for i in range(len(questions))]
    assert answers == [q.labels[int(np.argmax(p))] for q, p in zip(questions, mean)]

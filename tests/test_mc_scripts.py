"""The multiple-choice scripts' flags, checked on the command they would run (no training).

Each training script prints its full ``fairseq-train`` command before running
it; with ``FAIRSEQ_TRAIN=true`` it prints and stops. The tests parse that
command with fairseq's own parser and count, with fairseq's own batching, the
questions validation would see, and compare the preprocessing length
with the training one under SMOKE=1.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import mc_fixtures

REPO = Path(__file__).resolve().parent.parent
TRAIN_SCRIPTS = ["examples/csqa/train.sh", "examples/arc/train_race.sh", "examples/arc/train_arc.sh"]


def _bash(script, **env):
    full = dict(os.environ, PYTHON=sys.executable, **{k: str(v) for k, v in env.items()})
    proc = subprocess.run(["bash", str(REPO / script)], cwd=REPO, env=full, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def _train_command(script, data, smoke=True):
    env = {"DATA": data, "FAIRSEQ_TRAIN": "true", "SAVE_DIR": "unused"}
    env.update({"SMOKE": "1"} if smoke else {"ROBERTA": "model.pt", "RESTORE": "model.pt"})
    return shlex.split(_bash(script, **env).strip().splitlines()[-1])


def _flag(cmd, name):
    """The value of the last ``name`` in ``cmd`` (the one argparse keeps), or None."""
    where = [k for k, arg in enumerate(cmd) if arg == name]
    return cmd[where[-1] + 1] if where else None


@pytest.fixture(scope="module")
def mc_data(tmp_path_factory):
    """SMOKE-preprocessed CSQA (50 dev questions, as in the report), RACE and ARC data."""
    raw = tmp_path_factory.mktemp("raw")
    mc_fixtures.make_csqa(raw / "csqa", n_dev=50)
    race = mc_fixtures.make_race(raw, articles_per_level=3)
    mc_fixtures.make_arc(raw / "arc", n_dev=13)
    obqa = mc_fixtures.make_obqa(raw)
    out = tmp_path_factory.mktemp("data")
    _bash("examples/csqa/preprocess.sh", SMOKE=1, CSQA_DIR=raw / "csqa", DEST=out / "csqa")
    _bash("examples/arc/preprocess.sh", SMOKE=1, RACE_DIR=race, ARC_DIR=raw / "arc", OBQA_DIR=obqa["main"],
          RACE_DEST=out / "race", ARC_DEST=out / "arc")
    return {"examples/csqa/train.sh": out / "csqa", "examples/arc/train_race.sh": out / "race",
            "examples/arc/train_arc.sh": out / "arc"}


@pytest.mark.parametrize("smoke", [True, False])
@pytest.mark.parametrize("script", TRAIN_SCRIPTS)
def test_every_script_keeps_partial_batches(script, smoke):
    cmd = _train_command(script, "data", smoke=smoke)
    assert _flag(cmd, "--required-batch-size-multiple") == "1", " ".join(cmd)


@pytest.mark.parametrize("script", TRAIN_SCRIPTS)
def test_validation_covers_every_dev_question(script, mc_data):
    """fairseq's validation iterator, built from the script's own flags, yields every dev question once."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    cmd = _train_command(script, mc_data[script])
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), cmd[1:]))
    task = tasks.setup_task(cfg.task)
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    iterator = task.get_batch_iterator(
        dataset,
        max_tokens=cfg.dataset.max_tokens_valid,
        max_sentences=cfg.dataset.batch_size_valid,
        max_positions=task.max_positions(),
        ignore_invalid_inputs=cfg.dataset.skip_invalid_size_inputs_valid_test,
        required_batch_size_multiple=cfg.dataset.required_batch_size_multiple,
        seed=cfg.common.seed,
    ).next_epoch_itr(shuffle=False)
    seen = sorted(i for batch in iterator for i in batch["id"].tolist())
    questions = len((mc_data[script] / "valid.jsonl").read_text().splitlines())
    assert seen == list(range(questions)), f"validation sees {len(seen)} of {questions} questions"


@pytest.mark.parametrize("script", TRAIN_SCRIPTS)
def test_smoke_preprocessing_checks_the_training_length(script, mc_data):
    summary = json.loads((mc_data[script] / "preprocess.json").read_text())
    assert summary["max_positions"] == int(_flag(_train_command(script, mc_data[script]), "--max-positions")) == 128


def test_smoke_preprocessing_refuses_what_smoke_training_could_not_load(tmp_path):
    """A question + answer of about 200 tokens fits 512 but not SMOKE training's 128: preprocessing says so."""
    files = mc_fixtures.make_csqa(tmp_path / "raw")
    lines = files["train_rand_split"].read_text().splitlines()
    row = json.loads(lines[2])
    row["question"]["stem"] = "Where would you keep it? " * 35
    lines[2] = json.dumps(row)
    files["train_rand_split"].write_text("\n".join(lines) + "\n")
    proc = subprocess.run(["bash", str(REPO / "examples/csqa/preprocess.sh")], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHON=sys.executable, SMOKE="1", CSQA_DIR=str(tmp_path / "raw"),
                                   DEST=str(tmp_path / "data")))
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert proc.stderr.strip().splitlines()[-1].endswith("more than --max-positions 128")
    assert f"{files['train_rand_split']}:3: question and choice" in proc.stderr


def test_arc_script_reads_openbookqa_additional_files_with_fact1(tmp_path):
    raw = tmp_path / "raw"
    mc_fixtures.make_arc(raw)
    obqa = mc_fixtures.make_obqa(raw)
    _bash("examples/arc/preprocess.sh", SMOKE=1, ARC_DIR=raw, OBQA_DIR=obqa["additional"], OBQA_FACT1=1,
          ARC_DEST=tmp_path / "arc")
    summary = json.loads((tmp_path / "arc" / "preprocess.json").read_text())
    assert summary["fact1_context"] is True
    splits = summary["splits"]
    assert splits["train"]["sources"] == {"ARC-Easy-Train": 16, "ARC-Challenge-Train": 16, "OpenBookQA-train": 16}
    assert splits["train"]["with_context"] == 16 and splits["obqa_test"]["with_context"] == 8
    assert all(info["unknown_tokens"] == 0 for info in splits.values())  # the SMOKE dictionary saw the facts

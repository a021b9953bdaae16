"""The launch scripts' commands (DRY_RUN=1): the issue's hyperparameter tables, overrides, errors."""

import os
import shlex
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "examples" / "roberta_glue"

# fairseq's RoBERTa GLUE recipe, the FreeLB paper's Table 7 and the official FreeLB launch scripts'
# random start and learning rate, copied from the official launch scripts.
#        script: (task, classes, recipe lr, bsz, updates, warmup, epsilon, alpha, m, official init-mag, official lr)
TABLE = {
    "mnli": ("MNLI", 3, "1e-5", 32, 123873, 7432, "0.2", "0.1", 2, "0.1", "1e-5"),
    "qnli": ("QNLI", 2, "1e-5", 32, 33112, 1986, "0.15", "0.1", 2, "0.15", "1e-5"),
    "qqp": ("QQP", 2, "1e-5", 32, 113272, 28318, "0.45", "0.15", 2, "0.32", "1e-5"),
    "rte": ("RTE", 2, "2e-5", 16, 2036, 122, "0.15", "0.03", 3, "0.16", "1e-5"),
    "sst2": ("SST-2", 2, "1e-5", 32, 20935, 1256, "0.6", "0.1", 2, "1.0", "1e-5"),
    "mrpc": ("MRPC", 2, "1e-5", 16, 2296, 137, "0.4", "0.04", 3, "0.64", "5e-6"),
    "cola": ("CoLA", 2, "1e-5", 16, 5336, 320, "0.2", "0.025", 3, "0.4", "1e-5"),
    "stsb": ("STS-B", 1, "2e-5", 16, 3598, 214, "0.3", "0.1", 3, "0.16", "2e-5"),
}


def dry_run(script, tmp_path, args=(), **env):
    (tmp_path / "glue-bin").mkdir(exist_ok=True)
    task = TABLE[script][0] if script in TABLE else script.upper()
    data = tmp_path / "glue-bin" / f"{task}-bin"
    data.mkdir(exist_ok=True)
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"")
    full_env = {k: v for k, v in os.environ.items() if k not in ("SMOKE", "ADV_METHOD", "SEED", "LR", "DATA_BIN")}
    full_env.update({"DRY_RUN": "1", "GLUE_BIN": str(tmp_path / "glue-bin"), "ROBERTA_PATH": str(ckpt), **env})
    proc = subprocess.run(["bash", str(SCRIPTS / f"{script}.sh"), *args], env=full_env, capture_output=True, text=True)
    return proc


def flags(command_line: str) -> dict:
    """Last value of every ``--flag value`` (argparse keeps the last), booleans as True."""
    words = shlex.split(command_line)
    out = {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            nxt = words[i + 1] if i + 1 < len(words) else None
            out[word] = nxt if nxt is not None and not nxt.startswith("--") else True
    return out


@pytest.mark.parametrize("script", sorted(TABLE))
def test_scripts_use_the_recipe_and_table7(script, tmp_path):
    task, classes, lr, bsz, updates, warmup, eps, alpha, m, init_mag, official_lr = TABLE[script]
    proc = dry_run(script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    f = flags(proc.stdout)
    assert f["--num-classes"] == str(classes)
    assert f["--lr"] == official_lr  # the official scripts' lr under adversarial training
    assert f["--adv-init-mag"] == init_mag  # the official scripts' random start, not delta = 0
    assert f["--batch-size"] == str(bsz)
    assert f["--total-num-update"] == str(updates) and f["--warmup-updates"] == str(warmup)
    assert f["--adv-max-norm"] == eps and f["--adv-lr"] == alpha
    assert f["--adv-steps"] == str(m + 1)  # m ascent steps = m + 1 gradient passes (config.py)
    assert f["--adv-method"] == "freelb"
    assert f["--adam-betas"] == "(0.9, 0.999)" and f["--adam-eps"] == "1e-06" and f["--weight-decay"] == "0.1"
    assert f["--lr-scheduler"] == "polynomial_decay" and f["--max-epoch"] == "10" and f["--max-tokens"] == "4400"
    assert f["--restore-file"] == str(tmp_path / "model.pt") and f["--arch"] == "roberta_large"
    assert "--fp16" in f
    if task == "STS-B":
        assert "--regression-target" in f and f["--best-checkpoint-metric"] == "loss"
        assert "--maximize-best-checkpoint-metric" not in f
    else:
        assert f["--best-checkpoint-metric"] == ("mcc" if task == "CoLA" else "accuracy")
        assert "--maximize-best-checkpoint-metric" in f
    assert ("--report-acc-and-f1" in f) == (task in ("MRPC", "QQP"))
    if task == "MNLI":
        assert f["--valid-subset"] == "valid,valid_mismatched"
    # Each number's source is written in the script: the official init and Table 7's epsilon appear in its header.
    header = (SCRIPTS / f"{script}.sh").read_text().split("set -euo")[0]
    assert f"rand-init-mag {init_mag}" in header and f"epsilon {eps}" in header and "Where they disagree" in header


@pytest.mark.parametrize("script", sorted(TABLE) + ["wnli"])
@pytest.mark.parametrize("smoke", ["0", "1"])
def test_every_script_validates_on_every_example(script, smoke, tmp_path):
    """fairseq's default --required-batch-size-multiple 8 drops the last partial batch of
    each split; and fairseq's --shorten-method truncate would cut the second sentence of long pairs."""
    proc = dry_run(script, tmp_path, SMOKE=smoke)
    assert proc.returncode == 0, proc.stderr
    f = flags(proc.stdout)
    assert f["--required-batch-size-multiple"] == "1"
    assert "--shorten-method" not in f  # examples are cut longest-first at preprocessing instead
    assert f["--max-positions"] == "512"  # as preprocessing's default, in SMOKE runs too


def test_no_random_start_for_plain_finetuning_and_data_cut_for_a_longer_model_is_refused(tmp_path):
    assert flags(dry_run("rte", tmp_path, ADV_METHOD="none").stdout)["--adv-init-mag"] == "0"
    (tmp_path / "glue-bin" / "RTE-bin" / "meta.json").write_text('{"task": "RTE", "max_positions": 1024}')
    proc = dry_run("rte", tmp_path)
    assert proc.returncode == 2 and "preprocessed for --max-positions 1024" in proc.stderr


def test_environment_and_argument_overrides(tmp_path):
    proc = dry_run("rte", tmp_path, ["--max-epoch", "3", "--adv-lr", "0.5"],
                   ARCH="roberta_base", ADV_METHOD="none", SEED="7", NUM_GPUS="4", FP16="0")
    assert proc.returncode == 0, proc.stderr
    f = flags(proc.stdout)
    assert f["--arch"] == "roberta_base" and f["--adv-method"] == "none" and f["--seed"] == "7"
    assert f["--distributed-world-size"] == "4" and f["--batch-size"] == "4"  # 16 per update over 4 GPUs
    assert "--fp16" not in f
    assert f["--max-epoch"] == "3" and f["--adv-lr"] == "0.5"  # appended last, so they win
    assert f["--save-dir"] == "checkpoints/RTE/none-seed7"
    assert proc.stdout.split()[0].endswith("fairseq-train")
    for script in TABLE:  # plain fine-tuning keeps fairseq's recipe lr
        assert flags(dry_run(script, tmp_path, ADV_METHOD="none").stdout)["--lr"] == TABLE[script][2], script


def test_smoke_mode_needs_no_checkpoint(tmp_path):
    proc = dry_run("cola", tmp_path, SMOKE="1", ROBERTA_PATH="")
    assert proc.returncode == 0, proc.stderr
    f = flags(proc.stdout)
    assert "--restore-file" not in f and "--cpu" in f and "--fp16" not in f
    assert f["--encoder-layers"] == "2" and f["--max-update"] == "3"


def test_errors_name_the_variable(tmp_path):
    proc = dry_run("rte", tmp_path, ROBERTA_PATH=str(tmp_path / "nope.pt"))
    assert proc.returncode == 2 and "ROBERTA_PATH=" in proc.stderr and "no such file" in proc.stderr
    proc = dry_run("rte", tmp_path, DATA_BIN=str(tmp_path / "missing"))
    assert proc.returncode == 2 and "DATA_BIN=" in proc.stderr
    proc = dry_run("rte", tmp_path, NUM_GPUS="3")
    assert proc.returncode == 2 and "NUM_GPUS=3" in proc.stderr


def test_every_task_has_a_script():
    names = {p.stem for p in SCRIPTS.glob("*.sh")} - {"common"}
    # qnli_ranking.sh and wnli_wsc.sh: the paper's submission formulations (tests/test_glue_paper_scripts.py)
    assert names == set(TABLE) | {"wnli", "qnli_ranking", "wnli_wsc"}

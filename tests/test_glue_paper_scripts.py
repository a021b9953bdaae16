"""The launch scripts of the paper's submission (DRY_RUN=1): QNLI as ranking, WNLI through WSC, INIT_FROM."""

import json

import pytest

from test_glue_scripts import SCRIPTS, dry_run, flags


def _data(tmp_path, folder, meta):
    data = tmp_path / "glue-bin" / folder
    data.mkdir(parents=True, exist_ok=True)
    (data / "meta.json").write_text(json.dumps(meta))
    return data


def test_qnli_ranking_uses_the_ranking_criterion_and_the_official_ranking_run(tmp_path):
    data = _data(tmp_path, "QNLI-ranking-bin", {"task": "QNLI-ranking", "max_positions": 512, "train_pairs": 1000})
    proc = dry_run("qnli_ranking", tmp_path, DATA_BIN=str(data))
    assert proc.returncode == 0, proc.stderr
    f = flags(proc.stdout)
    assert f["--task"] == "qnli_ranking" and f["--criterion"] == "freelb_sentence_ranking" and f["--num-classes"] == "2"
    assert f["--init-token"] == "0" and f["--separator-token"] == "2"
    assert f["--lr"] == "1e-5" and f["--batch-size"] == "16"  # 16 pairs per update
    assert f["--adv-lr"] == "0.05" and f["--adv-steps"] == "3" and f["--adv-init-mag"] == "0.01"
    assert f["--adv-max-norm"] == "0.15"  # not stated for the ranking run: Table 7's QNLI epsilon
    assert "--fp16" not in f  # the official ranking run was fp32
    assert f["--total-num-update"] == str(63 * 10) and f["--warmup-updates"] == str(630 * 6 // 100)  # 10 epochs of 1000 pairs
    assert f["--required-batch-size-multiple"] == "1" and f["--best-checkpoint-metric"] == "accuracy"
    header = (SCRIPTS / "qnli_ranking.sh").read_text().split("set -euo")[0]
    assert "adv-lr 5e-2" in header and "init-mag 1e-2" in header and "Where they disagree" in header


def test_qnli_ranking_needs_its_pair_count(tmp_path):
    data = _data(tmp_path, "QNLI-ranking-bin", {"task": "QNLI-ranking", "max_positions": 512})
    proc = dry_run("qnli_ranking", tmp_path, DATA_BIN=str(data))
    assert proc.returncode == 2 and "records no train_pairs" in proc.stderr and "--tasks QNLI-ranking" in proc.stderr
    assert flags(dry_run("qnli_ranking", tmp_path, DATA_BIN=str(data), TOTAL_UPDATES="50").stdout)["--total-num-update"] == "50"


@pytest.mark.parametrize("smoke", ["0", "1"])
def test_wnli_wsc_uses_appendix_a2_and_roberta_s_wsc_recipe(tmp_path, smoke):
    data = _data(tmp_path, "WNLI-wsc-bin", {"task": "WNLI-wsc", "max_positions": 512})
    proc = dry_run("wnli_wsc", tmp_path, DATA_BIN=str(data), SMOKE=smoke)
    assert proc.returncode == 0, proc.stderr
    f = flags(proc.stdout)
    assert f["--task"] == "freelb_wsc" and f["--criterion"] == "freelb_wsc" and "--num-classes" not in f
    assert f["--adv-max-norm"] == "0.01" and f["--adv-lr"] == "0.005" and f["--adv-steps"] == "3"
    assert f["--adv-init-mag"] == "0" and f["--weight-decay"] == "0.01"  # the last --weight-decay wins
    assert f["--required-batch-size-multiple"] == "1"
    if smoke == "0":
        assert f["--lr"] == "2e-5" and f["--batch-size"] == "16" and f["--total-num-update"] == "2000"
        assert f["--warmup-updates"] == "250" and f["--adam-betas"] == "(0.9, 0.98)" and "--fp16" in f


@pytest.mark.parametrize("script, task", [("rte", "RTE"), ("mrpc", "MRPC"), ("stsb", "STS-B")])
def test_init_from_restores_a_headless_copy_of_the_mnli_model(tmp_path, script, task):
    mnli = tmp_path / "mnli.pt"
    mnli.write_bytes(b"")
    proc = dry_run(script, tmp_path, INIT_FROM=str(mnli), ROBERTA_PATH="", SAVE_DIR=str(tmp_path / "save"))
    assert proc.returncode == 0, proc.stderr
    init_line, train_line = proc.stdout.strip().splitlines()
    init = flags(init_line)
    assert "-m fairseq_freelb.glue.init_from" in init_line and init["--checkpoint"] == str(mnli)
    assert init["--task"] == task and init["--out"] == str(tmp_path / "save" / "init_from_mnli.pt")
    f = flags(train_line)
    assert f["--restore-file"] == str(tmp_path / "save" / "init_from_mnli.pt") and "--reset-optimizer" in f
    assert "--reset-dataloader" in f and "--reset-meters" in f


def test_init_from_is_refused_where_the_paper_does_not_use_it_and_when_missing(tmp_path):
    mnli = tmp_path / "mnli.pt"
    mnli.write_bytes(b"")
    proc = dry_run("qnli", tmp_path, INIT_FROM=str(mnli))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        "qnli.sh: error: INIT_FROM is for rte.sh, mrpc.sh and stsb.sh (the tasks the paper starts from MNLI)")
    proc = dry_run("rte", tmp_path, INIT_FROM=str(tmp_path / "nope.pt"))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == f"rte.sh: error: INIT_FROM={tmp_path / 'nope.pt'}: no such file"

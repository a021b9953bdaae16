"""The whole GLUE chain on fixtures with every task's quirks.

preprocess -> each launch script with SMOKE=1 -> evaluate -> multi-seed report
-> submission folder and zip -> validation of the zip (and of a broken one).
Every command runs as a user would run it, from the repository root.
"""

import csv
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from glue_fixtures import build_srcdict, make_glue_dir
from fairseq_freelb.glue.benchmark_tasks import SUBMISSION_FILES, TASKS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCRIPTS = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "qqp": "QQP",
           "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE", "wnli": "WNLI"}


def sh(cmd, env=None, check=True):
    full_env = {k: v for k, v in os.environ.items() if k not in ("ADV_METHOD", "SEED", "LR", "DATA_BIN", "SAVE_DIR")}
    full_env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", FAIRSEQ_TRAIN=str(BIN / "fairseq-train"), **(env or {}))
    proc = subprocess.run([str(c) for c in cmd], cwd=REPO, env=full_env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def glue_bin(tmp_path_factory):
    from fairseq_freelb.resources import gpt2_bpe_files

    root = tmp_path_factory.mktemp("glue_e2e")
    make_glue_dir(root / "glue_data", bad_row=True)
    srcdict = build_srcdict(root / "glue_data", *gpt2_bpe_files(), root / "dict.txt")
    proc = sh([sys.executable, "-m", "fairseq_freelb.glue.preprocess", "--glue-dir", root / "glue_data",
               "--srcdict", srcdict, "--out", root / "glue-bin", "--on-bad-row", "skip", "--workers", "2"])
    assert "QQP train: 25 rows in, 24 out, 1 skipped" in proc.stdout
    assert "MNLI test_ax: 9 rows in, 9 out, 0 skipped" in proc.stdout
    return root / "glue-bin"


@pytest.fixture(scope="module")
def trained(glue_bin, tmp_path_factory):
    """Every launch script, SMOKE=1: a tiny random-init RoBERTa for 3 updates on CPU."""
    ckpts = tmp_path_factory.mktemp("ckpt")
    logs = {}
    for script, task in SCRIPTS.items():
        proc = sh(["bash", REPO / "examples" / "roberta_glue" / f"{script}.sh"],
                  env={"SMOKE": "1", "GLUE_BIN": str(glue_bin), "SAVE_DIR": str(ckpts / task), "ADV_METHOD": "freelb"})
        logs[task] = proc.stdout + proc.stderr
    return ckpts, logs


def valid_stats(log: str, subset: str = "valid") -> dict:
    line = [x for x in log.splitlines() if f"valid on '{subset}' subset" in x][-1]
    return {k: float(v) for k, v in re.findall(r"\| (\w+) (-?[\d.]+)", line)}


def test_every_script_trains_and_logs_the_task_metric(trained):
    ckpts, logs = trained
    for task, log in logs.items():
        first = log.splitlines()[0]
        assert "fairseq-train" in first and "--adv-method freelb" in first, task  # the full command is printed
        assert (ckpts / task / "checkpoint_best.pt").is_file(), task
        assert "adv_delta_norm" in log, task  # the adversarial step ran
        stats = valid_stats(log)
        want = {"CoLA": {"mcc"}, "MRPC": {"f1", "acc_and_f1"}, "QQP": {"f1"}, "STS-B": {"pearson", "spearman"}}
        assert want.get(task, {"accuracy"}) <= set(stats), (task, stats)
    assert "accuracy" in valid_stats(logs["MNLI"], "valid_mismatched")


def test_evaluate_reproduces_validation_metrics(trained, glue_bin, tmp_path):
    """The standalone command scores the best checkpoint as fairseq's validation did."""
    from fairseq_freelb.glue.evaluate import evaluate

    ckpts, logs = trained
    out = tmp_path / "CoLA.json"
    proc = sh([sys.executable, "-m", "fairseq_freelb.glue.evaluate", "--data-bin", glue_bin / "CoLA-bin",
               "--checkpoint", ckpts / "CoLA" / "checkpoint_best.pt", "--cpu", "--json", out])
    assert "CoLA valid: mcc " in proc.stdout
    results = {"CoLA": json.loads(out.read_text())["results"]["valid"]}
    for task in ("STS-B", "MRPC"):  # the same function, in-process (saves a fairseq start-up each)
        ckpt = str(ckpts / task / "checkpoint_best.pt")
        results[task] = evaluate([ckpt], glue_bin / f"{task}-bin", TASKS[task], cpu=True)["valid"]
    for task, result in results.items():
        logged = valid_stats(logs[task])
        assert result["n"] == 12
        for metric in TASKS[task].metrics:
            assert result[metric] == pytest.approx(logged[metric], abs=0.06), (task, metric)


@pytest.fixture(scope="module")
def report(glue_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "RTE"
    cmd = [sys.executable, "-m", "fairseq_freelb.glue.report", "--task", "RTE", "--methods", "none,freelb",
           "--seeds", "1,2", "--out", out, "--data-bin", glue_bin / "RTE-bin", "--cpu"]
    first = sh(cmd, env={"SMOKE": "1"})
    return out, cmd, first


def test_report_table_csv_plot_and_resume(report):
    out, cmd, first = report
    assert first.stdout.count("training:") == 4
    stored = json.loads((out / "results.json").read_text())["runs"]
    results = {(r["setting"], r["seed"]): r["result"] for r in stored}
    assert set(results) == {(m, s) for m in ("none", "freelb") for s in (1, 2)}
    assert all(r["fingerprint"]["task"] == "RTE" and r["fingerprint"]["environment"]["SMOKE"] == "1" for r in stored)
    rows = list(csv.DictReader(open(out / "report.csv")))
    assert {r["method"] for r in rows} == {"none", "freelb"}
    for r in rows:
        values = [results[(r["method"], s)]["results"][r["split"]][r["metric"]] for s in (1, 2)]
        assert float(r["median"]) == pytest.approx(np.median(values), abs=1e-3)
        assert float(r["std"]) == pytest.approx(np.std(values, ddof=1), abs=1e-3)
    md = (out / "report.md").read_text()
    assert "| none | 2 |" in md and "| freelb | 2 |" in md and "valid accuracy" in md
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Resuming: finished seeds are not rerun, and the table is the same.
    again = sh(cmd, env={"SMOKE": "1"})
    assert "training:" not in again.stdout and again.stdout.count("finished earlier") == 4
    assert (out / "report.md").read_text() == md


def _independent_predictions(checkpoints, data_bin, split, regression):
    """Each example alone, in file order, through fairseq's own loaders: no batching, no id bookkeeping."""
    import torch
    from fairseq import checkpoint_utils

    import fairseq_freelb  # noqa: F401

    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(c) for c in checkpoints],
                                                                    arg_overrides={"data": str(data_bin)})
    task.load_dataset(split)
    raw = task.dataset(split)
    order = np.argsort([raw[i]["id"] for i in range(len(raw))])
    out = []
    with torch.no_grad():
        for i in order:
            tokens = raw[i]["net_input.src_tokens"].unsqueeze(0)
            outs = []
            for model in models:
                model.eval()
                logits, _ = model(tokens, features_only=True, classification_head_name="sentence_classification_head")
                outs.append(logits.view(-1) if regression else logits.softmax(-1).view(-1))
            mean = torch.stack(outs).mean(0)
            if regression:
                out.append(min(max(float(mean) * 5, 0.0), 5.0))
            else:
                out.append(task.label_dictionary.string([int(mean.argmax()) + task.label_dictionary.nspecial]))
    return out


def test_submission_zip_is_complete_and_correct(trained, report, glue_bin, tmp_path):
    ckpts, _ = trained
    out_report = report[0]
    rte_ensemble = [out_report / "runs" / m / "seed1" / "checkpoint_best.pt" for m in ("none", "freelb")]
    args = [f"--checkpoints={task}={ckpts / task / 'checkpoint_best.pt'}" for task in SCRIPTS.values() if task != "RTE"]
    args.append("--checkpoints=RTE=" + ",".join(map(str, rte_ensemble)))
    sub = tmp_path / "submission"
    proc = sh([sys.executable, "-m", "fairseq_freelb.glue.submission", "--glue-bin", glue_bin, "--out", sub, "--cpu", *args])
    assert "RTE.tsv: 8 rows from RTE test (2 checkpoint(s))" in proc.stdout
    assert sorted(p.name for p in sub.iterdir()) == sorted([*SUBMISSION_FILES, "submission.zip"])  # the zip inside
    with zipfile.ZipFile(sub / "submission.zip") as archive:
        assert sorted(archive.namelist()) == sorted(SUBMISSION_FILES)
        files = {name: archive.read(name).decode() for name in archive.namelist()}
    for name, text in files.items():
        lines = text.splitlines()
        assert lines[0] == "index\tprediction", name
    counts = {"AX.tsv": 9}
    for name, text in files.items():
        assert len(text.splitlines()) - 1 == counts.get(name, 8), name
    mnli = {line.split("\t")[1] for line in files["AX.tsv"].splitlines()[1:]}
    assert mnli <= {"entailment", "neutral", "contradiction"}
    assert [l.split("\t")[0] for l in files["QQP.tsv"].splitlines()[1:]] == [str(i) for i in range(8)]

    # Predictions agree with an independent per-example computation (ensemble mean, label dictionary, order).
    rte = [line.split("\t")[1] for line in files["RTE.tsv"].splitlines()[1:]]
    assert rte == _independent_predictions(rte_ensemble, glue_bin / "RTE-bin", "test", regression=False)
    stsb = [float(line.split("\t")[1]) for line in files["STS-B.tsv"].splitlines()[1:]]
    want = _independent_predictions([ckpts / "STS-B" / "checkpoint_best.pt"], glue_bin / "STS-B-bin", "test", True)
    assert stsb == pytest.approx(want, abs=1e-3)
    mm = [line.split("\t")[1] for line in files["MNLI-mm.tsv"].splitlines()[1:]]
    assert mm == _independent_predictions([ckpts / "MNLI" / "checkpoint_best.pt"], glue_bin / "MNLI-bin", "test_mismatched", False)

    ok = sh([sys.executable, "-m", "fairseq_freelb.glue.submission", "--glue-bin", glue_bin, "--validate", sub / "submission.zip"])
    assert "valid GLUE submission" in ok.stdout

    # A broken zip: wrong label, a missing row, a missing file; every problem is named.
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        for name, text in files.items():
            if name == "CoLA.tsv":
                text = text.replace("\t0\n", "\tunacceptable\n").replace("\t1\n", "\tunacceptable\n")
            elif name == "QQP.tsv":
                text = "".join(text.splitlines(keepends=True)[:-1])
            elif name == "WNLI.tsv":
                continue
            archive.writestr(name, text)
    bad = sh([sys.executable, "-m", "fairseq_freelb.glue.submission", "--glue-bin", glue_bin, "--validate", broken], check=False)
    assert bad.returncode == 1
    assert "CoLA.tsv:2: prediction 'unacceptable' not in ['0', '1']" in bad.stderr
    assert "QQP.tsv: 7 rows, the QQP test file has 8 examples" in bad.stderr
    assert "WNLI.tsv: missing" in bad.stderr


def test_checkpoints_carry_their_label_names_and_are_checked(trained, glue_bin, tmp_path):
    """Re-preprocessing cannot change what a checkpoint predicts; a wrong task's is refused."""
    import shutil

    import torch

    ckpts, _ = trained
    for task in ("CoLA", "MNLI", "RTE"):
        state = torch.load(ckpts / task / "checkpoint_best.pt", map_location="cpu", weights_only=False)
        assert state["task_state"]["label_names"] == list(TASKS[task].labels), task
        # fairseq-train saved the data record too: the task, sentence pairs, the token dictionary's fingerprint.
        assert state["task_state"]["data_task"] == task
        assert state["task_state"]["sentence_pairs"] is (task != "CoLA")
        assert len(state["task_state"]["dictionary_sha1"]) == 40
    stsb = torch.load(ckpts / "STS-B" / "checkpoint_best.pt", map_location="cpu", weights_only=False)
    assert "label_names" not in stsb["task_state"]

    # The same checkpoint on a copy of RTE-bin whose label/dict.txt lists the labels the other way round
    # (as frequency-ordered preprocessing did when the label balance changed): the same predictions.
    rte = ckpts / "RTE" / "checkpoint_best.pt"
    flipped = tmp_path / "RTE-bin"
    shutil.copytree(glue_bin / "RTE-bin", flipped)
    lines = (flipped / "label" / "dict.txt").read_text().splitlines()
    (flipped / "label" / "dict.txt").write_text("\n".join(lines[::-1]) + "\n")
    outs = []
    for data in (glue_bin / "RTE-bin", flipped):
        out = tmp_path / f"{len(outs)}.tsv"
        proc = sh([sys.executable, "-m", "fairseq_freelb.glue.predict", "--data-bin", data, "--checkpoint", rte,
                   "--cpu", "--out", out])
        assert "8 rows from RTE test (1 checkpoint(s))" in proc.stdout
        outs.append(out.read_text())
    assert outs[0] == outs[1] and outs[0].startswith("index\tprediction\n0\t")

    # A 3-class MNLI checkpoint, or a QNLI one with RTE's very labels, given as RTE's: one line, nothing written.
    for other in ("MNLI", "QNLI"):
        for cmd in (["fairseq_freelb.glue.evaluate", "--data-bin", glue_bin / "RTE-bin"],
                    ["fairseq_freelb.glue.predict", "--data-bin", glue_bin / "RTE-bin", "--out", tmp_path / "no.tsv"]):
            bad = sh([sys.executable, "-m", *cmd, "--checkpoint", ckpts / other / "checkpoint_best.pt", "--cpu"],
                     check=False)
            assert bad.returncode == 1, bad.stderr
            assert bad.stderr.strip().splitlines()[-1].endswith(
                f"trained on {other} (recorded in the checkpoint), not RTE: it was not trained on RTE")
    assert not (tmp_path / "no.tsv").exists()

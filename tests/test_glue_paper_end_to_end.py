"""The paper's test-submission recipe end to end on official-format fixtures, as a user runs it (slow).

preprocess (the nine tasks, then QNLI-ranking and WNLI-wsc) -> mnli.sh -> rte.sh/mrpc.sh/stsb.sh with
INIT_FROM -> qnli_ranking.sh (two seeds) -> wnli_wsc.sh -> the dev commands -> glue.submission with the
ranking ensemble for QNLI and the WSC model for WNLI. Every launch script runs with SMOKE=1 (a tiny
random-init RoBERTa, 3 updates on CPU).
"""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import paper_fixtures as PF
from glue_fixtures import build_srcdict, make_glue_dir
from test_glue_paper_reference import masked_lm_score
from utils import without_teardown_abort

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def sh(cmd, env=None, check=True):
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("ADV_METHOD", "SEED", "LR", "DATA_BIN", "SAVE_DIR", "INIT_FROM", "SMOKE")}
    full_env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", FAIRSEQ_TRAIN=str(BIN / "fairseq-train"), **(env or {}))
    proc = subprocess.run([str(c) for c in cmd], cwd=REPO, env=full_env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def script(name, glue_bin, save_dir, **env):
    return sh(["bash", REPO / "examples" / "roberta_glue" / f"{name}.sh"],
              env={"SMOKE": "1", "GLUE_BIN": str(glue_bin), "SAVE_DIR": str(save_dir), **env})


@pytest.fixture(scope="module")
def glue_bin(tmp_path_factory):
    from fairseq_freelb.resources import gpt2_bpe_files

    root = tmp_path_factory.mktemp("paper_e2e")
    make_glue_dir(root / "glue_data")
    PF.make_qnli(root / "glue_data")  # QNLI and WNLI in the paper's shapes (groups, pairs, unaligned rows)
    PF.make_wnli(root / "glue_data")
    PF.make_wsc(root / "WSC")
    srcdict = build_srcdict(root, *gpt2_bpe_files(), root / "dict.txt")
    common = [sys.executable, "-m", "fairseq_freelb.glue.preprocess", "--glue-dir", root / "glue_data",
              "--srcdict", srcdict, "--out", root / "glue-bin", "--workers", "1"]
    sh(common + ["--tasks", "MNLI,RTE,MRPC,STS-B,QNLI,WNLI"])
    proc = sh(common + ["--tasks", "QNLI-ranking,WNLI-wsc", "--wsc-dir", root / "WSC"])
    assert "QNLI-ranking train: 14 rows, 6 questions; 6 pairs built" in proc.stdout
    assert "WNLI-wsc test: 8 WNLI rows: 5 mapped to 3 candidate groups" in proc.stdout
    return root / "glue-bin"


@pytest.fixture(scope="module")
def trained(glue_bin, tmp_path_factory):
    ckpts = tmp_path_factory.mktemp("paper_ckpt")
    logs = {}
    for seed in ("1", "2"):
        logs[f"QNLI-ranking{seed}"] = script("qnli_ranking", glue_bin, ckpts / f"QNLI-ranking{seed}", SEED=seed).stdout
    logs["WNLI-wsc"] = script("wnli_wsc", glue_bin, ckpts / "WNLI-wsc").stdout
    return ckpts, logs


def _rows(path):
    lines = Path(path).read_text().splitlines()
    assert lines[0] == "index\tprediction"
    return [line.split("\t") for line in lines[1:]]


def _independent_ranking_scores(checkpoints, data, split):
    """Each row alone, rebuilt from the binarized files as <s> sentence </s> </s> question </s>, mean over models."""
    from fairseq import checkpoint_utils
    from fairseq.data import data_utils

    import fairseq_freelb  # noqa: F401

    out = []
    for path in checkpoints:
        (model,), _, task = checkpoint_utils.load_model_ensemble_and_task(
            [str(path)], arg_overrides={"data": str(data), "num_classes": 1})
        model.eval()
        d = task.source_dictionary
        questions = data_utils.load_indexed_dataset(str(data / "input0" / split), d)
        sentences = data_utils.load_indexed_dataset(str(data / "input1" / split), d)
        head = next(iter(model.classification_heads))
        scores = []
        with torch.no_grad():
            for q, s in zip(questions, sentences):
                tokens = torch.cat([torch.tensor([d.bos()]), s, torch.tensor([d.eos()]), q]).unsqueeze(0)
                scores.append(float(model(tokens, features_only=True, classification_head_name=head)[0].view(())))
        out.append(scores)
    return np.mean(out, axis=0)


def test_qnli_ranking_and_wnli_wsc_submission(trained, glue_bin, tmp_path, capsys):
    ckpts, logs = trained
    for name, log in logs.items():
        assert "adv_delta_norm" in log and "valid on 'valid' subset" in log, name
    ranking = [ckpts / f"QNLI-ranking{s}" / "checkpoint_best.pt" for s in ("1", "2")]
    wsc = ckpts / "WNLI-wsc" / "checkpoint_best.pt"

    # Dev accuracy per original row: every QNLI dev row and every WNLI dev row, with the rules' counts.
    from fairseq_freelb.commands import run_command
    from fairseq_freelb.glue import qnli_ranking, wnli_wsc

    # In-process, as the command's main (saves a fairseq start-up each).
    assert run_command(qnli_ranking.PROG, qnli_ranking.main, ["--data-bin", str(glue_bin / "QNLI-ranking-bin"),
                                                              "--checkpoint", str(ranking[0]), "--cpu"]) == 0
    dev = capsys.readouterr().out
    assert "QNLI-ranking valid_rows: 6 rows decided by their question's pair (one entailment each), 4 by their score" in dev
    assert "(n=10, every original QNLI dev row)" in dev
    assert run_command(wnli_wsc.PROG, wnli_wsc.main, ["--data-bin", str(glue_bin / "WNLI-wsc-bin"), "--checkpoint",
                                                      str(wsc), "--cpu"]) == 0
    dev = capsys.readouterr().out
    assert ("WNLI-wsc wnli_valid: 4 rows decided by their group's best-scoring candidate, 1 alone in their group and "
            "1 not mapped got the fallback label 0") in dev and "(n=6, every WNLI dev row)" in dev

    sub = tmp_path / "submission"
    proc = sh([sys.executable, "-m", "fairseq_freelb.glue.submission", "--glue-bin", glue_bin, "--out", sub, "--cpu",
               "--allow-missing", "--checkpoints", "QNLI=" + ",".join(map(str, ranking)), "--checkpoints", f"WNLI={wsc}"])
    assert ("QNLI.tsv: 10 rows from QNLI-ranking test (2 checkpoint(s)); QNLI test (QNLI-ranking): 6 rows decided by "
            "their question's pair (one entailment each), 4 by their score against the dev threshold") in proc.stdout
    assert ("WNLI.tsv: 8 rows from WNLI-wsc test (1 checkpoint(s)); WNLI test (WNLI-wsc): 4 rows decided by their "
            "group's best-scoring candidate, 1 alone in their group and 3 not mapped got the fallback label 0") in proc.stdout
    with zipfile.ZipFile(sub / "submission.zip") as archive:  # the zip lives inside the folder
        assert sorted(archive.namelist()) == ["QNLI.tsv", "WNLI.tsv"]

    # QNLI: every test id once, in order; one entailment per paired question; the ensemble's mean scores decide.
    qnli = _rows(sub / "QNLI.tsv")
    assert [i for i, _ in qnli] == [str(i) for i in range(10)]
    labels = [lab for _, lab in qnli]
    for a, b in PF.QNLI_TEST_PAIRS:
        assert sorted([labels[a], labels[b]]) == ["entailment", "not_entailment"]
    data = glue_bin / "QNLI-ranking-bin"
    test_scores = _independent_ranking_scores(ranking, data, "test")
    dev_scores = _independent_ranking_scores(ranking, data, "valid_rows")
    gold = [line.split("\t")[2] for line in (data / "rows" / "valid_rows.tsv").read_text().splitlines()[1:]]
    cuts = sorted(set(dev_scores))
    cuts = [cuts[0] - 1] + [(a + b) / 2 for a, b in zip(cuts, cuts[1:])] + [cuts[-1] + 1]
    threshold = max(cuts, key=lambda t: (sum((s > t) == (g == "entailment") for s, g in zip(dev_scores, gold)), -t))
    want = [""] * 10
    for a, b in PF.QNLI_TEST_PAIRS:
        want[a], want[b] = ("entailment", "not_entailment") if test_scores[a] >= test_scores[b] else ("not_entailment", "entailment")
    for k in PF.QNLI_TEST_THRESHOLD_ROWS:
        want[k] = "entailment" if test_scores[k] > threshold else "not_entailment"
    assert labels == want

    # WNLI: every test id once; one 1 per group of two, from the candidates' masked-LM scores; the rest the fallback.
    wnli = _rows(sub / "WNLI.tsv")
    assert [i for i, _ in wnli] == [str(i) for i in range(8)]
    labels = [lab for _, lab in wnli]
    assert [labels[k] for k in PF.WNLI_TEST_FALLBACK_ROWS] == [PF.WNLI_FALLBACK] * 4
    scores = _independent_wsc_scores(wsc, glue_bin / "WNLI-wsc-bin")
    for a, b in PF.WNLI_TEST_GROUPS:
        assert [labels[a], labels[b]] == (["1", "0"] if scores[str(a)] >= scores[str(b)] else ["0", "1"])

    ok = sh([sys.executable, "-m", "fairseq_freelb.glue.submission", "--glue-bin", glue_bin, "--validate", sub / "submission.zip",
             "--allow-missing"])
    assert "valid GLUE submission" in ok.stdout


def _independent_wsc_scores(checkpoint, data):
    """Each mapped WNLI test row's candidate scored alone by the reference test's masked-LM scoring."""
    from fairseq import checkpoint_utils

    from fairseq_freelb.wsc.encoding import GPT2
    from fairseq_freelb.wsc.formats import read_rows, substitute

    (model,), _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)], arg_overrides={"data": str(data)})
    model.eval()
    d = task.source_dictionary
    bpe = GPT2(str(data / "encoder.json"), str(data / "vocab.bpe"))
    out = {}
    with torch.no_grad():
        for row in read_rows(str(data / "test.jsonl")):
            pieces = [d.encode_line(" ".join(map(str, bpe.ids(p))), append_eos=False, add_if_not_exist=False).long()
                      for p in substitute(row.text, row.pronoun_index, row.pronoun_words, row.candidate)]
            left, cand, right = pieces
            tokens = torch.cat([torch.tensor([d.bos()]), left, torch.full_like(cand, d.index("<mask>")), right,
                                torch.tensor([d.eos()])])
            span = torch.full_like(tokens, d.pad())
            span[1 + len(left): 1 + len(left) + len(cand)] = cand
            delta = torch.zeros(len(tokens), model.encoder.sentence_encoder.embed_tokens.embedding_dim)
            out[row.extra["wnli_index"]] = float(masked_lm_score(model, (tokens, span, d.pad()), delta))
    return out


def test_rte_mrpc_stsb_start_from_the_mnli_model_with_their_own_head(glue_bin, tmp_path):
    from fairseq_freelb.glue.benchmark_tasks import get_task

    script("mnli", glue_bin, tmp_path / "MNLI")
    mnli = tmp_path / "MNLI" / "checkpoint_best.pt"
    mnli_state = torch.load(mnli, map_location="cpu", weights_only=False)
    for name, task, classes in (("rte", "RTE", 2), ("mrpc", "MRPC", 2), ("stsb", "STS-B", 1)):
        save = tmp_path / task
        log = script(name, glue_bin, save, INIT_FROM=str(mnli)).stdout
        init = save / "init_from_mnli.pt"
        lines = [line for line in log.splitlines() if line.startswith("INIT_FROM=")]
        assert len(lines) == 1 and lines[0].startswith(f"INIT_FROM={mnli}: {task} starts from this fine-tuned MNLI model; "
                                                       "its 3-class head 'sentence_classification_head' is dropped")
        assert f"Loaded checkpoint {init}" in log
        start = torch.load(init, map_location="cpu", weights_only=False)
        assert not any("classification_heads" in k for k in start["model"])
        for key, value in start["model"].items():  # the encoder is MNLI's
            assert torch.equal(value, mnli_state["model"][key]), key
        state = torch.load(save / "checkpoint_best.pt", map_location="cpu", weights_only=False)
        head = state["model"]["classification_heads.sentence_classification_head.out_proj.weight"]
        assert head.shape[0] == classes  # never MNLI's 3-class head
        labels = get_task(task).labels
        assert state["task_state"].get("label_names") == (list(labels) if labels else None)

    # Not an MNLI model: one line, nothing trained.
    proc = sh(["bash", REPO / "examples" / "roberta_glue" / "mrpc.sh"], check=False,
              env={"SMOKE": "1", "GLUE_BIN": str(glue_bin), "SAVE_DIR": str(tmp_path / "bad"),
                   "INIT_FROM": str(tmp_path / "RTE" / "checkpoint_best.pt")})
    err, _ = without_teardown_abort(proc.stderr)
    assert proc.returncode == 2 and err.strip().splitlines()[-1].endswith(
        "trained on labels ['entailment', 'not_entailment'], not MNLI's ['entailment', 'neutral', 'contradiction']: "
        "give a fine-tuned MNLI checkpoint")
    assert not (tmp_path / "bad" / "checkpoint_best.pt").exists()


def test_wsc_refuses_a_model_whose_masked_lm_head_was_never_trained(trained, glue_bin, tmp_path):
    ckpts, _ = trained
    state = torch.load(ckpts / "WNLI-wsc" / "checkpoint_best.pt", map_location="cpu", weights_only=False)
    state["extra_state"] = {"converted_from": "all-MiniLM-L6-v2", "masked_lm_head": False}
    bad = tmp_path / "converted.pt"
    torch.save(state, bad)
    proc = sh(["bash", REPO / "examples" / "roberta_glue" / "wnli_wsc.sh", "--restore-file", bad, "--reset-optimizer"],
              check=False, env={"SMOKE": "1", "GLUE_BIN": str(glue_bin), "SAVE_DIR": str(tmp_path / "run")})
    err, _ = without_teardown_abort(proc.stderr)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert err.strip().splitlines()[-1] == (
        f"fairseq_freelb: error: --restore-file {bad} was converted from all-MiniLM-L6-v2 without a masked-LM head: its "
        "encoder.lm_head is fairseq's random initialisation; --criterion freelb_wsc scores candidates with the "
        "masked-LM head, so it needs a model with a trained one (fairseq's roberta.* checkpoints have one)")
    assert not (tmp_path / "run" / "checkpoint_best.pt").exists()


def test_checkpoints_are_tied_to_their_formulation_dictionary_and_test_file(trained, glue_bin, tmp_path, capsys):
    """Each refusal is one line and writes nothing."""
    import shutil

    from fairseq_freelb.commands import run_command
    from fairseq_freelb.glue import qnli_ranking, submission

    ckpts, _ = trained
    ranking = ckpts / "QNLI-ranking1" / "checkpoint_best.pt"
    wsc = ckpts / "WNLI-wsc" / "checkpoint_best.pt"

    def refused(prog, main, argv):
        assert run_command(prog, main, [str(a) for a in argv]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        return err[0]

    # A WSC model given to the ranking command.
    line = refused(qnli_ranking.PROG, qnli_ranking.main, ["--data-bin", glue_bin / "QNLI-ranking-bin", "--checkpoint", wsc,
                                                          "--cpu"])
    assert line.endswith(f"checkpoint {wsc}: trained with --task freelb_wsc, not qnli_ranking "
                         "(examples/roberta_glue/qnli_ranking.sh): it is no QNLI-ranking model")
    # The same folder with one more dictionary entry: another dictionary.
    other = tmp_path / "QNLI-ranking-bin"
    shutil.copytree(glue_bin / "QNLI-ranking-bin", other)
    with open(other / "input0" / "dict.txt", "a") as handle:
        handle.write("99999 1\n")
    line = refused(qnli_ranking.PROG, qnli_ranking.main, ["--data-bin", other, "--checkpoint", ranking, "--cpu"])
    assert f"checkpoint {ranking}: trained with another dictionary" in line and "does not match this data" in line
    # QNLI-bin preprocessed from another test file than QNLI-ranking-bin: the submission stops, nothing is written.
    copy = tmp_path / "glue-bin"
    shutil.copytree(glue_bin, copy)
    index = copy / "QNLI-bin" / "index" / "test.index"
    index.write_text("".join(f"{i}\n" for i in range(100, 110)))
    line = refused(submission.PROG, submission.main, ["--glue-bin", copy, "--out", tmp_path / "sub", "--cpu",
                                                      "--allow-missing", "--checkpoints", f"QNLI={ranking}"])
    assert line.endswith(f"{copy / 'QNLI-ranking-bin'} and {copy / 'QNLI-bin'} list other test ids: they were "
                         "preprocessed from different QNLI test files; preprocess both again")
    assert not (tmp_path / "sub").exists() and not (tmp_path / "sub.zip").exists()

"""A GLUE checkpoint is used only for its own task and with its own token dictionary.

Five GLUE tasks label 0/1 and two entailment/not_entailment, so label names
alone let a QQP checkpoint pass as MRPC's. Checkpoints now record their task,
whether they saw sentence pairs, and the token dictionary's size and digest;
predict, evaluate and submission refuse a mismatch in one line and write
nothing. The data is the fixture GLUE folder (official TSV layouts),
preprocessed by the real command; the checkpoints are tiny models saved as
fairseq-train saves them (tests/glue_checkpoints.py).
"""

import json
import shutil
from pathlib import Path

import pytest
import torch

from glue_checkpoints import save_glue_checkpoint, without_records
from glue_fixtures import build_srcdict, make_glue_dir
from fairseq_freelb.commands import run_command
from fairseq_freelb.glue import evaluate as E
from fairseq_freelb.glue import predict as PR
from fairseq_freelb.glue import preprocess as P
from fairseq_freelb.glue import submission as S
from fairseq_freelb.glue.benchmark_tasks import get_task
from fairseq_freelb.glue.checkpoint_match import CheckpointMismatch, check_checkpoint_matches
from fairseq_freelb.resources import gpt2_bpe_files

RECORDS = ("data_task", "sentence_pairs", "dictionary_size", "dictionary_sha1")


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    """``(glue-bin, {task: checkpoint})`` for MRPC, QQP (pairs, 0/1) and SST-2 (single sentences, 0/1)."""
    root = tmp_path_factory.mktemp("match")
    bpe = gpt2_bpe_files(dest=root / "bpe")
    make_glue_dir(root / "glue_data")
    srcdict = build_srcdict(root / "glue_data", *bpe, root / "dict.txt")
    assert P.main(["--glue-dir", str(root / "glue_data"), "--srcdict", str(srcdict), "--out", str(root / "glue-bin"),
                   "--tasks", "MRPC,QQP,SST-2", "--workers", "1",
                   "--encoder-json", str(bpe[0]), "--vocab-bpe", str(bpe[1])]) == 0
    ckpts = {name: save_glue_checkpoint(root / "glue-bin" / f"{name}-bin", root / "ckpt" / f"{name}.pt")
             for name in ("MRPC", "QQP", "SST-2")}
    return root / "glue-bin", ckpts


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _listing(folder: Path):
    return sorted(p.name for p in folder.iterdir())


def test_checkpoints_record_task_pairs_and_dictionary(glue):
    from fairseq.tasks.sentence_prediction import SentencePredictionTask

    from fairseq_freelb.adapters.data_record import dictionary_fingerprint

    glue_bin, ckpts = glue
    dictionary = SentencePredictionTask.load_dictionary(str(glue_bin / "MRPC-bin" / "input0" / "dict.txt"))
    for name, pairs in (("MRPC", True), ("QQP", True), ("SST-2", False)):
        state = torch.load(ckpts[name], map_location="cpu", weights_only=False)["task_state"]
        assert state["data_task"] == name and state["sentence_pairs"] is pairs
        assert {k: state[k] for k in ("dictionary_size", "dictionary_sha1")} == dictionary_fingerprint(dictionary)
        assert state["dictionary_size"] == len(dictionary)


def test_swapped_mrpc_and_qqp_checkpoints_are_refused_before_anything_is_written(glue, tmp_path, capsys):
    """Both tasks label 0/1: the swapped pair used to be written and "validated"."""
    glue_bin, ckpts = glue
    out = tmp_path / "submission"
    rc = run_command(S.PROG, S.main, ["--glue-bin", str(glue_bin), "--out", str(out), "--allow-missing", "--cpu",
                                      "--checkpoints", f"MRPC={ckpts['QQP']}", "--checkpoints", f"QQP={ckpts['MRPC']}"])
    line = _one_line(capsys)
    assert rc == 1
    assert line.endswith(f"checkpoint {ckpts['QQP']}: trained on QQP (recorded in the checkpoint), not MRPC: "
                         "it was not trained on MRPC")
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_single_sentence_task_checkpoint_is_refused_for_a_pair_task(glue, tmp_path, capsys, command):
    glue_bin, ckpts = glue
    common = ["--data-bin", str(glue_bin / "MRPC-bin"), "--checkpoint", str(ckpts["SST-2"]), "--cpu"]
    if command == "predict":
        rc = run_command(PR.PROG, PR.main, [*common, "--out", str(tmp_path / "MRPC.tsv")])
    else:
        rc = run_command(E.PROG, E.main, [*common, "--json", str(tmp_path / "MRPC.json")])
    assert rc == 1
    assert _one_line(capsys).endswith("trained on SST-2 (recorded in the checkpoint), not MRPC: it was not trained on MRPC")
    assert _listing(tmp_path) == []


def test_pair_record_is_checked_when_the_data_named_no_task(glue, tmp_path, capsys):
    """Data from fairseq's own GLUE preprocessing has no meta.json: the checkpoint still records single sentences."""
    glue_bin, _ = glue
    single = tmp_path / "sentiment"  # no <TASK>-bin name, no meta.json: the task cannot be inferred
    shutil.copytree(glue_bin / "SST-2-bin", single)
    (single / "meta.json").unlink()
    ckpt = save_glue_checkpoint(single, tmp_path / "single.pt")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["task_state"]
    assert "data_task" not in state and state["sentence_pairs"] is False
    args = ["--data-bin", str(glue_bin / "MRPC-bin"), "--checkpoint", str(ckpt), "--cpu", "--out", str(tmp_path / "o.tsv")]
    assert run_command(PR.PROG, PR.main, args) == 1
    assert "records no task" in _one_line(capsys)
    assert run_command(PR.PROG, PR.main, [*args, "--trust-label-dict"]) == 1
    assert _one_line(capsys).endswith(f"checkpoint {ckpt}: trained on single sentences, MRPC has sentence pairs: "
                                      "it was not trained on MRPC")
    assert not (tmp_path / "o.tsv").exists()


def test_data_preprocessed_for_another_task_is_refused(glue, tmp_path, capsys):
    glue_bin, ckpts = glue
    rc = run_command(PR.PROG, PR.main, ["--data-bin", str(glue_bin / "QQP-bin"), "--task", "MRPC", "--cpu",
                                        "--checkpoint", str(ckpts["MRPC"]), "--out", str(tmp_path / "o.tsv")])
    assert rc == 1
    assert _one_line(capsys).endswith(f"{glue_bin / 'QQP-bin'}: preprocessed for QQP (its meta.json), not MRPC")


def _with_dictionary(glue_bin: Path, dest: Path, edit) -> Path:
    """A copy of MRPC-bin whose token dictionary (input0 and input1) is ``edit(lines)``."""
    shutil.copytree(glue_bin / "MRPC-bin", dest)
    for name in ("input0", "input1"):
        path = dest / name / "dict.txt"
        path.write_text("".join(line + "\n" for line in edit(path.read_text().splitlines())))
    return dest


@pytest.mark.parametrize("edit, types", [(lambda lines: lines[::-1], 0), (lambda lines: lines[:-1], -1)],
                         ids=["reordered", "smaller"])
def test_another_token_dictionary_is_refused_in_one_line(glue, tmp_path, capsys, edit, types):
    """Reordered: accepted before, with other predictions. Another size: fairseq's size-mismatch traceback."""
    glue_bin, ckpts = glue
    size = torch.load(ckpts["MRPC"], map_location="cpu", weights_only=False)["task_state"]["dictionary_size"]
    data = _with_dictionary(glue_bin, tmp_path / "MRPC-bin", edit)
    out = tmp_path / "out"
    out.mkdir()
    rc = run_command(E.PROG, E.main, ["--data-bin", str(data), "--checkpoint", str(ckpts["MRPC"]), "--cpu",
                                      "--json", str(out / "r.json")])
    line = _one_line(capsys)
    assert rc == 1 and "size mismatch" not in line
    assert (f"checkpoint {ckpts['MRPC']}: trained with another dictionary ({size} types) than "
            f"{data / 'input0' / 'dict.txt'} ({size + types} types)") in line
    assert ("the same size" in line) == (types == 0)
    assert _listing(out) == []


def test_the_plugin_task_refuses_another_dictionary_before_fairseq_loads_the_weights(glue, tmp_path):
    """Any caller of fairseq's loader (fairseq-validate, hub code) with a --task freelb_sentence_prediction
    checkpoint: task.load_state_dict runs before the weights, so no size-mismatch traceback."""
    from fairseq import checkpoint_utils

    from fairseq_freelb.adapters.data_record import DictionaryMismatch

    glue_bin, _ = glue
    ckpt = save_glue_checkpoint(glue_bin / "MRPC-bin", tmp_path / "plugin-task.pt", task="freelb_sentence_prediction")
    data = _with_dictionary(glue_bin, tmp_path / "MRPC-bin", lambda lines: lines[:-1])
    with pytest.raises(DictionaryMismatch, match="trained with another dictionary"):
        checkpoint_utils.load_model_ensemble_and_task([str(ckpt)], arg_overrides={"data": str(data)})


def test_older_checkpoints_are_judged_by_the_data_they_recorded(glue, tmp_path, capsys):
    """Without the records: the task is inferred from the training data path; the dictionary checked by size."""
    glue_bin, ckpts = glue
    old = without_records(ckpts["MRPC"], tmp_path / "old.pt", *RECORDS)
    out = tmp_path / "out"
    out.mkdir()
    predict = ["--checkpoint", str(old), "--cpu"]
    # Its own task and data: accepted.
    assert run_command(PR.PROG, PR.main, ["--data-bin", str(glue_bin / "MRPC-bin"), *predict,
                                          "--out", str(out / "MRPC.tsv")]) == 0
    capsys.readouterr()
    # Another 0/1 task: refused, saying how the task was inferred and what overrides it.
    assert run_command(PR.PROG, PR.main, ["--data-bin", str(glue_bin / "QQP-bin"), *predict,
                                          "--out", str(out / "QQP.tsv")]) == 1
    line = _one_line(capsys)
    assert f"trained on MRPC (inferred from {glue_bin / 'MRPC-bin' / 'meta.json'}), not QQP" in line
    assert line.endswith("if it was trained on QQP after all, pass --trust-label-dict")
    # A dictionary of another size: one line from the embedding matrix, not fairseq's traceback.
    smaller = _with_dictionary(glue_bin, tmp_path / "MRPC-bin", lambda lines: lines[:-1])
    assert run_command(PR.PROG, PR.main, ["--data-bin", str(smaller), *predict, "--out", str(out / "s.tsv")]) == 1
    assert "its token embeddings have" in _one_line(capsys)
    # A recorded path that tells nothing: refused unless the user vouches for it.
    state = torch.load(old, map_location="cpu", weights_only=False)
    state["cfg"]["task"]["data"] = "/gone/data"
    torch.save(state, tmp_path / "nowhere.pt")
    args = ["--data-bin", str(glue_bin / "MRPC-bin"), "--checkpoint", str(tmp_path / "nowhere.pt"), "--cpu",
            "--out", str(out / "n.tsv")]
    assert run_command(PR.PROG, PR.main, args) == 1
    assert "records no task (written before fairseq_freelb recorded it) and its training data folder /gone/data " \
           "does not tell the task; if it was trained on MRPC with exactly this data, pass --trust-label-dict" \
           in _one_line(capsys)
    assert run_command(PR.PROG, PR.main, [*args, "--trust-label-dict"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["MRPC.tsv", "n.tsv"]


def test_the_check_takes_the_dict_torch_load_returns(glue):
    """The reusable entry point (report and other commands call it with a loaded checkpoint)."""
    glue_bin, ckpts = glue
    state = torch.load(ckpts["QQP"], map_location="cpu", weights_only=False)
    check_checkpoint_matches(state, get_task("QQP"), glue_bin / "QQP-bin", "qqp.pt")
    with pytest.raises(CheckpointMismatch, match=r"^checkpoint qqp.pt: trained on QQP .*not MRPC"):
        check_checkpoint_matches(state, get_task("MRPC"), glue_bin / "MRPC-bin", "qqp.pt")
    assert json.loads((glue_bin / "QQP-bin" / "meta.json").read_text())["task"] == "QQP"


def test_legacy_args_checkpoints_and_non_glue_records(glue):
    """fairseq <= 0.9 checkpoints keep their config as an argparse Namespace (``args``); data of no GLUE task."""
    from argparse import Namespace

    from fairseq_freelb.glue.checkpoint_match import checkpoint_mismatch

    glue_bin, _ = glue
    sst2 = get_task("SST-2")
    legacy = {"args": Namespace(data="/old/runs/RTE-bin"), "task_state": {}}
    assert checkpoint_mismatch(legacy, sst2, glue_bin / "SST-2-bin", "old.pt") == (
        "checkpoint old.pt: trained on RTE (inferred from its training data folder /old/runs/RTE-bin), not SST-2: "
        "it was not trained on SST-2; if it was trained on SST-2 after all, pass --trust-label-dict")
    assert checkpoint_mismatch(legacy, sst2, glue_bin / "SST-2-bin", "old.pt", trust_old=True) is None
    reviews = {"task_state": {"data_task": "reviews"}}
    assert checkpoint_mismatch(reviews, sst2, glue_bin / "SST-2-bin", "r.pt", trust_old=True) == (
        "checkpoint r.pt: trained on data of task 'reviews' (recorded in the checkpoint), not a GLUE task: "
        "it was not trained on SST-2")

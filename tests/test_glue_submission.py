"""Submission building and checking: atomic, exact, CRLF judged alike.

The glue-bin here holds only what the submission code reads: ``<TASK>-bin/index/<split>.index``
(the test ids preprocessing writes) and MNLI's meta.json.
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fairseq_freelb.commands import run_command
from fairseq_freelb.glue import submission as S
from fairseq_freelb.glue.benchmark_tasks import get_task

IDS = [str(i) for i in range(4)]


def _glue_bin(root: Path, ax: bool = True) -> Path:
    for name in ("RTE", "CoLA", "MNLI"):
        task = get_task(name)
        for split in task.submission_files.values():
            if split == "test_ax" and not ax:
                continue
            index = root / f"{name}-bin" / "index" / f"{split}.index"
            index.parent.mkdir(parents=True, exist_ok=True)
            index.write_text("".join(i + "\n" for i in IDS))
    (root / "MNLI-bin" / "meta.json").write_text(json.dumps({"task": "MNLI", "missing_splits": [] if ax else ["test_ax"]}))
    return root


def _rte_file(line_end="\n") -> bytes:
    rows = ["index\tprediction"] + [f"{i}\tentailment" for i in IDS]
    return "".join(r + line_end for r in rows).encode()


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_crlf_is_judged_the_same_in_a_folder_and_a_zip(tmp_path, line_end):
    """A CRLF file passed as a folder but failed inside a zip."""
    glue_bin = _glue_bin(tmp_path / "glue-bin")
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "RTE.tsv").write_bytes(_rte_file(line_end))
    archive = tmp_path / "sub.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(folder / "RTE.tsv", arcname="RTE.tsv")
    as_folder = S.validate(folder, glue_bin, allow_missing=True)
    as_zip = S.validate(archive, glue_bin, allow_missing=True)
    assert as_folder == as_zip
    assert (as_folder == []) == (line_end == "\n")
    if line_end != "\n":
        assert as_folder == ["RTE.tsv: has CR (CRLF) line ends; write LF only"]


def test_missing_checkpoint_creates_nothing(tmp_path, capsys):
    """A nonexistent checkpoint path created an empty --out."""
    glue_bin = _glue_bin(tmp_path / "glue-bin")
    out = tmp_path / "submission"
    rc = run_command(S.PROG, S.main, ["--glue-bin", str(glue_bin), "--out", str(out), "--allow-missing",
                                      "--checkpoints", f"RTE={tmp_path / 'nope.pt'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "nope.pt: no such file" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["glue-bin"]


def _fake_checkpoint(tmp_path) -> str:
    path = tmp_path / "rte.pt"
    path.write_bytes(b"checked for existence only; predictions come from the write step below")
    return str(path)


@pytest.fixture
def unchecked_checkpoints(monkeypatch):
    """The fake checkpoints above are not read: whether a checkpoint fits its task is tested in test_glue_checkpoint_match.py."""
    monkeypatch.setattr(S, "check_checkpoint_file", lambda *args, **kwargs: None)


def _writes(files_and_text):
    """A write step that puts these files (name -> text) into the staging folder, as prediction would."""
    def write(glue_bin, checkpoints, out, files, **kwargs):
        written = []
        for name, text in files_and_text.items():
            (out / name).write_bytes(text)
            written.append(out / name)
        return written
    return write


def test_zip_holds_exactly_this_runs_files_and_a_failed_build_leaves_the_old_one(tmp_path, monkeypatch,
                                                                                unchecked_checkpoints):
    """Stale files from an earlier run went into the zip; a failed build mixed old and new files."""
    glue_bin = _glue_bin(tmp_path / "glue-bin")
    out, zip_path = tmp_path / "submission", tmp_path / "submission.zip"
    out.mkdir()
    stale = "index\tprediction\n" + "".join(f"{i}\t1\n" for i in IDS)
    (out / "CoLA.tsv").write_text(stale)  # from an earlier run
    ckpt = _fake_checkpoint(tmp_path)

    monkeypatch.setattr(S, "write_submission", _writes({"RTE.tsv": _rte_file()}))
    S.build(glue_bin, {"RTE": [ckpt]}, out, zip_path, allow_missing=True)
    with zipfile.ZipFile(zip_path) as z:
        assert z.namelist() == ["RTE.tsv"]
    assert sorted(p.name for p in out.iterdir()) == ["RTE.tsv"]
    good_zip = zip_path.read_bytes()

    # A build whose file fails validation changes nothing and leaves no staging folder behind.
    bad = _rte_file().replace(b"\tentailment\n", b"\tmaybe\n")
    monkeypatch.setattr(S, "write_submission", _writes({"RTE.tsv": bad}))
    with pytest.raises(S.SubmissionError, match="RTE.tsv:2: prediction 'maybe'"):
        S.build(glue_bin, {"RTE": [ckpt]}, out, zip_path, allow_missing=True)
    assert zip_path.read_bytes() == good_zip and (out / "RTE.tsv").read_bytes() == _rte_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["glue-bin", "rte.pt", "submission", "submission.zip"]


def test_mnli_without_the_diagnostic_set_agrees_with_preprocessing(tmp_path, capsys, unchecked_checkpoints):
    """Without test_ax, MNLI-m/mm are submitted under --allow-missing and AX's absence is explained."""
    glue_bin = _glue_bin(tmp_path / "glue-bin", ax=False)
    ckpt = _fake_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"AX.tsv: .*MNLI-bin has no test_ax split.*--ax-file.*--allow-missing"):
        S.plan(glue_bin, {"MNLI": [ckpt]}, allow_missing=False)
    files = S.plan(glue_bin, {"MNLI": [ckpt]}, allow_missing=True)
    assert [(f, s) for f, _, s in files] == [("MNLI-m.tsv", "test"), ("MNLI-mm.tsv", "test_mismatched")]
    assert "AX.tsv: " in capsys.readouterr().out


def test_predict_is_a_documented_command():
    """`python -m fairseq_freelb.glue.predict --help` printed nothing and exited 0."""
    proc = subprocess.run([sys.executable, "-m", "fairseq_freelb.glue.predict", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m fairseq_freelb.glue.predict")
    assert "--checkpoint" in proc.stdout and "--out" in proc.stdout and "--trust-label-dict" in proc.stdout
    docs = (Path(__file__).resolve().parents[1] / "docs" / "glue.md").read_text()
    assert "python -m fairseq_freelb.glue.predict" in docs

"""``glue.report`` on the shared result store: a stored run is reused only for the same task, data and settings.

Fast: the launch scripts are stand-ins that only create the checkpoint file,
and the evaluation is replaced by a function that scores by task; the real
scripts and evaluation run in ``test_glue_end_to_end.py`` (slow).
"""

import json
import re
from pathlib import Path

import pytest

from fairseq_freelb.commands import CommandError
from fairseq_freelb.glue import report

SCRIPT = 'mkdir -p "$SAVE_DIR"; echo "$ADV_METHOD $SEED ${ADV_LR:-}" >> "$SAVE_DIR/../../../trained.txt"; ' \
         'touch "$SAVE_DIR/checkpoint_best.pt"\n'
DEV_ACCURACY = {"QNLI": 65.0, "WNLI": 43.33}


@pytest.fixture
def setup(tmp_path, monkeypatch):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for task in ("qnli", "wnli"):
        (scripts / f"{task}.sh").write_text(SCRIPT)
    for task in ("QNLI", "WNLI"):
        folder = tmp_path / "glue-bin" / f"{task}-bin"
        (folder / "input0").mkdir(parents=True)
        (folder / "meta.json").write_text(json.dumps({"task": task}))
        (folder / "input0" / "valid.bin").write_text(task)

    def fake_evaluate(checkpoints, data_bin, task, **kwargs):
        assert Path(checkpoints[0]).is_file()
        return {"valid": {"accuracy": DEV_ACCURACY[task.name], "n": 40}}

    monkeypatch.setattr("fairseq_freelb.glue.evaluate.evaluate", fake_evaluate)
    monkeypatch.delenv("ADV_LR", raising=False)
    out = tmp_path / "rep"

    def run(task, *more, data=None):
        data = data or tmp_path / "glue-bin" / f"{task}-bin"
        return report.main(["--task", task, "--seeds", "1,2", "--methods", "none", "--out", str(out),
                            "--data-bin", str(data), "--scripts-dir", str(scripts), *more])

    def trained():
        path = out / "trained.txt"
        return path.read_text().splitlines() if path.exists() else []

    return run, out, trained


def test_another_task_into_the_same_out_is_trained_not_reused(setup, capsys):
    run, out, trained = setup
    assert run("QNLI") == 0 and len(trained()) == 2
    assert "| none | 2 | 65.00 ± 0.00 |" in (out / "report.md").read_text()
    assert run("WNLI") == 0
    assert len(trained()) == 4, "WNLI must train its own runs"
    table = (out / "report.md").read_text()
    assert table.startswith("WNLI dev") and "| none | 2 | 43.33 ± 0.00 |" in table and "65.00" not in table
    printed = capsys.readouterr().out
    assert "holds a run of other data, scripts, task: emptied" in printed  # the QNLI run folders
    assert run("QNLI") == 0 and len(trained()) == 4  # both tasks' runs stay stored: QNLI is reused
    assert "| none | 2 | 65.00 ± 0.00 |" in (out / "report.md").read_text()
    assert "its checkpoint is gone: runs/none/seed1 now holds another run" in capsys.readouterr().out


def test_changed_settings_are_trained_again(setup, monkeypatch, capsys):
    run, out, trained = setup
    assert run("QNLI") == 0 and len(trained()) == 2
    assert run("QNLI") == 0 and len(trained()) == 2 and capsys.readouterr().out.count("finished earlier") == 2
    monkeypatch.setenv("ADV_LR", "0.2")  # a setting the script reads from the environment
    assert run("QNLI") == 0 and trained()[2:] == ["none 1 0.2", "none 2 0.2"]
    assert run("QNLI", "--", "--max-epoch", "3") == 0 and len(trained()) == 6  # flags for the script
    assert "another environment" in capsys.readouterr().out


def test_zero_byte_results_file_is_named_in_one_line(setup):
    run, out, trained = setup
    out.mkdir()
    (out / "results.json").write_text("")
    with pytest.raises(CommandError, match=re.escape(f"{out / 'results.json'}: not a readable results file")):
        run("QNLI")
    assert trained() == []


def test_a_zero_byte_result_of_an_older_version_is_retrained(setup, capsys):
    """An older version wrote runs/<method>/seed<n>/result.json in place; a kill left 0 bytes."""
    run, out, trained = setup
    legacy = out / "runs" / "none" / "seed1"
    legacy.mkdir(parents=True)
    (legacy / "result.json").write_text("")
    assert run("QNLI") == 0 and len(trained()) == 2
    assert "holds a run of no fingerprint: emptied, trained afresh" in capsys.readouterr().out
    assert not (legacy / "result.json").exists()


def test_data_of_another_task_is_refused(setup, tmp_path):
    run, _, trained = setup
    with pytest.raises(CommandError, match=r"--data-bin .*QNLI-bin: preprocessed for QNLI \(meta.json\), not WNLI"):
        run("WNLI", data=tmp_path / "glue-bin" / "QNLI-bin")
    assert trained() == []


def test_the_fingerprint_covers_every_variable_the_scripts_read():
    scripts = Path(__file__).resolve().parents[1] / "examples" / "roberta_glue"
    read = set()
    for path in scripts.glob("*.sh"):
        read |= set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):[-?]", path.read_text()))
    # set by the task script (TASK, MNLI_INIT) / superseded by DATA_BIN / no training
    internal = {"TASK", "MNLI_INIT", "GLUE_BIN", "DRY_RUN"}
    assert read - internal == set(report.SCRIPT_ENVIRONMENT) | set(report.SET_BY_REPORT)

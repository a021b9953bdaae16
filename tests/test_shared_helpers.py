"""The shared command wrapper and wheel lookup (fairseq_freelb.commands, fairseq_freelb.resources)."""

import subprocess
import sys
import zipfile

import pytest

from fairseq_freelb import commands, resources
from fairseq_freelb.glue.benchmark_tasks import UnknownGlueTask


def test_expected_error_is_one_line_and_exit_1(capsys):
    def main(argv):
        raise FileNotFoundError("data/train.tsv: no such file\n(second line)")

    assert commands.run_command("prog", main, []) == 1
    err = capsys.readouterr().err
    assert err == "prog: error: data/train.tsv: no such file (second line)\n"


def test_an_expected_key_error_loses_its_quotes(capsys):
    def main(argv):
        raise UnknownGlueTask("unknown GLUE task 'XYZ'")

    assert commands.run_command("prog", main, []) == 1
    assert capsys.readouterr().err == "prog: error: unknown GLUE task 'XYZ'\n"


@pytest.mark.parametrize("bug", [ZeroDivisionError("bug"), ValueError("bug"), KeyError("bug")])
def test_an_error_of_no_plugin_type_keeps_its_traceback(bug):
    """A ValueError or KeyError that is not one of the plugin's error types is a bug, not a user error."""

    def main(argv):
        raise bug

    with pytest.raises(type(bug)):
        commands.run_command("prog", main, [])


def test_a_key_error_inside_a_real_command_prints_its_traceback(tmp_path):
    """A deliberate ``raise KeyError`` inside ``mc.validate`` (a bug) reaches the user with its traceback."""
    code = (
        "import sys\n"
        "from fairseq_freelb.mc import validate\n"
        "def broken(path):\n"
        "    raise KeyError('a bug in the reader')\n"
        "validate.read_split = broken\n"
        "sys.exit(validate.cli_main(sys.argv[1:]))\n"
    )
    script, predictions = tmp_path / "broken_validate.py", tmp_path / "predictions.csv"
    script.write_text(code)
    predictions.write_text("q1,A\n")
    proc = subprocess.run([sys.executable, str(script), str(predictions), "--questions", str(tmp_path / "q.jsonl")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert "Traceback (most recent call last):" in lines  # after fairseq's import-time log lines
    assert any("raise KeyError('a bug in the reader')" in line for line in lines)
    assert lines[-1] == "KeyError: 'a bug in the reader'"
    assert "error:" not in proc.stderr


def test_success_passes_exit_code_through():
    assert commands.run_command("prog", lambda argv: 0, []) == 0


def test_wheels_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRSEQ_FREELB_WHEELS", str(tmp_path))
    assert resources.wheels_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="make data"):
        resources.wheel_path("absent.whl")


def _fake_gpt2_wheel(folder):
    wheel = folder / resources.GPT2_WHEEL
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, member in resources.GPT2_MEMBERS.items():
            archive.writestr(member, f"contents of {name}")
    return wheel


def test_gpt2_bpe_files_from_wheel(tmp_path):
    _fake_gpt2_wheel(tmp_path)
    encoder, vocab = resources.gpt2_bpe_files(dest=tmp_path / "bpe", folder=tmp_path)
    assert encoder.read_text() == "contents of encoder.json"
    assert vocab.read_text() == "contents of vocab.bpe"
    assert sorted(p.name for p in (tmp_path / "bpe").iterdir()) == ["encoder.json", "vocab.bpe"]


def test_gpt2_bpe_files_refuses_half_a_pair(tmp_path):
    (tmp_path / "encoder.json").write_text("{}")
    with pytest.raises(commands.CommandError, match="--encoder-json and --vocab-bpe"):
        resources.gpt2_bpe_files(encoder_json=str(tmp_path / "encoder.json"))
    with pytest.raises(FileNotFoundError, match="--vocab-bpe"):
        resources.gpt2_bpe_files(str(tmp_path / "encoder.json"), str(tmp_path / "missing.bpe"))

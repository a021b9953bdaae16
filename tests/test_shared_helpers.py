"""The shared command wrapper and wheel lookup (fairseq_freelb.commands, fairseq_freelb.resources)."""

import zipfile

import pytest

from fairseq_freelb import commands, resources


def test_expected_error_is_one_line_and_exit_1(capsys):
    def main(argv):
        raise FileNotFoundError("data/train.tsv: no such file\n(second line)")

    assert commands.run_command("prog", main, []) == 1
    err = capsys.readouterr().err
    assert err == "prog: error: data/train.tsv: no such file (second line)\n"


def test_key_error_loses_its_quotes(capsys):
    def main(argv):
        raise KeyError("unknown task 'XYZ'")

    assert commands.run_command("prog", main, []) == 1
    assert capsys.readouterr().err == "prog: error: unknown task 'XYZ'\n"


def test_unexpected_error_keeps_its_traceback():
    def main(argv):
        raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        commands.run_command("prog", main, [])


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
    with pytest.raises(ValueError, match="--encoder-json and --vocab-bpe"):
        resources.gpt2_bpe_files(encoder_json=str(tmp_path / "encoder.json"))
    with pytest.raises(FileNotFoundError, match="--vocab-bpe"):
        resources.gpt2_bpe_files(str(tmp_path / "encoder.json"), str(tmp_path / "missing.bpe"))

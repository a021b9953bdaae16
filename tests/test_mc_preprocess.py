"""``python -m fairseq_freelb.mc.preprocess`` and the readers on bad or unusual input, in-process (fast).

Each test builds files in the official formats (``mc_fixtures``) and runs the
command's ``cli_main`` as a user would, checking the exit code, the one-line
message and what is (not) left on disk.
"""

import json
import os
from pathlib import Path

import pytest

import mc_fixtures
from fairseq_freelb.mc.formats import MultipleChoiceFormatError, read_question_jsonl, source_name
from fairseq_freelb.mc.preprocess import cli_main


def _run(capsys, *args):
    code = cli_main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def _csqa_args(files, dest, **replace):
    paths = {"train": files["train_rand_split"], "valid": files["dev_rand_split"],
             "test": files["test_rand_split_no_answers"], **replace}
    return ["--destdir", dest, "--build-dict", "--max-positions", "128",
            "--train", paths["train"], "--valid", paths["valid"], "--test", paths["test"]]


def _snapshot(folder: Path):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --------------------------------------------------------------------------- missing answerKey


@pytest.mark.parametrize("split", ["train", "valid"])
def test_labelled_split_without_answer_key_is_refused_naming_file_and_line(tmp_path, capsys, split):
    files = mc_fixtures.make_csqa(tmp_path / "raw")
    name = {"train": "train_rand_split", "valid": "dev_rand_split"}[split]
    lines = files[name].read_text().splitlines()
    row = json.loads(lines[4])
    del row["answerKey"]
    lines[4] = json.dumps(row)
    files[name].write_text("\n".join(lines) + "\n")

    code, err = _run(capsys, *_csqa_args(files, tmp_path / "data"))
    assert code == 1
    assert err.splitlines() == [err]  # one line
    assert f"{files[name]}:5: no answerKey, but every question of split {split!r} needs one" in err
    assert not (tmp_path / "data").exists()


def test_extra_split_may_be_unlabelled_but_not_partly(tmp_path, capsys):
    files = mc_fixtures.make_csqa(tmp_path / "raw")
    test = files["test_rand_split_no_answers"]
    dev_line = files["dev_rand_split"].read_text().splitlines()[0]
    test.write_text(test.read_text() + dev_line + "\n")  # one labelled question among unlabelled ones
    code, err = _run(capsys, *_csqa_args(files, tmp_path / "data"))
    assert code == 1 and f"{test}:1: no answerKey, but other questions of split 'test' have one" in err


# --------------------------------------------------------------------------- all splits or none


def test_failed_run_leaves_no_output_in_a_new_destdir(tmp_path, capsys):
    files = mc_fixtures.make_csqa(tmp_path / "raw")
    bad = files["test_rand_split_no_answers"]
    bad.write_text(bad.read_text() + '{"id": "broken"\n')
    code, err = _run(capsys, *_csqa_args(files, tmp_path / "data"))
    assert code == 1 and f"{bad}:9: malformed JSON line" in err
    assert os.listdir(tmp_path) == ["raw"]  # no destdir, no encoder.json/vocab.bpe, no temporary folder


def test_late_failure_keeps_the_previous_output_byte_for_byte(tmp_path, capsys):
    files = mc_fixtures.make_csqa(tmp_path / "raw")
    dest = tmp_path / "data"
    assert _run(capsys, *_csqa_args(files, dest))[0] == 0
    before = _snapshot(dest)
    assert set(before) == {"dict.txt", "encoder.json", "vocab.bpe", "preprocess.json",
                           "train.jsonl", "valid.jsonl", "test.jsonl"}

    # New training data (so train/valid would be rewritten first), and a test question that only
    # fails at the length check, after train and valid are encoded.
    other = mc_fixtures.make_csqa(tmp_path / "raw2", seed=5)
    long_test = tmp_path / "raw2" / "long_test.jsonl"
    row = json.loads(other["test_rand_split_no_answers"].read_text().splitlines()[0])
    row["question"]["stem"] = "why " * 200
    long_test.write_text(json.dumps(row) + "\n")
    code, err = _run(capsys, *_csqa_args(other, dest, test=long_test))
    assert code == 1 and f"{long_test}:1: question and choice" in err and "--max-positions 128" in err
    assert _snapshot(dest) == before
    assert sorted(os.listdir(tmp_path)) == ["data", "raw", "raw2"]


def test_rerun_replaces_every_file_and_drops_stale_splits(tmp_path, capsys):
    files = mc_fixtures.make_csqa(tmp_path / "raw")
    dest = tmp_path / "data"
    assert _run(capsys, *_csqa_args(files, dest), "--split-name", f"extra={files['dev_rand_split']}")[0] == 0
    assert (dest / "extra.jsonl").is_file()
    other = mc_fixtures.make_csqa(tmp_path / "raw2", n_train=10, seed=5)
    assert _run(capsys, *_csqa_args(other, dest))[0] == 0
    summary = json.loads((dest / "preprocess.json").read_text())
    assert summary["max_positions"] == 128 and set(summary["splits"]) == {"train", "valid", "test"}
    assert not (dest / "extra.jsonl").exists()
    for split, info in summary["splits"].items():
        assert len((dest / f"{split}.jsonl").read_text().splitlines()) == info["questions"]
    assert summary["splits"]["train"]["questions"] == 10
    assert oct(dest.stat().st_mode & 0o777) != oct(0o700)  # not mkdtemp's private mode


def test_a_folder_not_written_by_preprocess_is_not_replaced(tmp_path, capsys):
    files = mc_fixtures.make_csqa(tmp_path / "raw")
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")
    code, err = _run(capsys, *_csqa_args(files, dest))
    assert code == 1 and f"--destdir {dest}: a non-empty folder without preprocess.json" in err
    assert os.listdir(dest) == ["notes.txt"]


# --------------------------------------------------------------------------- JSON error columns


END = '{"id": "x", "question": {"stem": "s", "choices": ['
MISSING_BRACE = '{"id": "x", "question": {"stem": "s"}'
UNTERMINATED = '{"id": "x", "question": {"stem": "s'
STRING_START = len(UNTERMINATED) - 1  # 1-based column of the quote before the final "s"


@pytest.mark.parametrize(
    "line, expected",
    [
        # The error is at the end of the line: one past its last character, not column 1 of a next line.
        (END, f"Expecting value at column {len(END) + 1})"),
        (MISSING_BRACE, f"Expecting ',' delimiter at column {len(MISSING_BRACE) + 1})"),
        # json's own message ends in "at" (where the string starts): no "at at".
        (UNTERMINATED, f"Unterminated string starting at column {STRING_START})"),
    ],
)
def test_malformed_json_column_is_on_the_line(tmp_path, line, expected):
    path = tmp_path / "ARC-Easy-Dev.jsonl"
    for ending in ("\n", "\r\n"):
        path.write_bytes((line + ending).encode())
        with pytest.raises(MultipleChoiceFormatError) as err:
            read_question_jsonl(str(path))
        assert str(err.value) == f"{path}:1: malformed JSON line ({expected}"
        assert "at at" not in str(err.value)


def test_race_file_error_column_is_on_the_last_line(tmp_path):
    race = mc_fixtures.make_race(tmp_path)
    bad = race / "dev" / "high" / "2000.txt"
    bad.write_text(bad.read_text()[:-1] + "\n")  # the closing brace lost, a newline left
    from fairseq_freelb.mc.formats import read_split

    with pytest.raises(MultipleChoiceFormatError) as err:
        read_split(str(race / "dev"))
    length = len(bad.read_text().rstrip())
    assert str(err.value).startswith(f"{bad}:1: malformed JSON (") and f"column {length + 1})" in str(err.value)


# --------------------------------------------------------------------------- OpenBookQA layout


def test_openbookqa_official_layout_gets_meaningful_source_names(tmp_path):
    obqa = mc_fixtures.make_obqa(tmp_path)
    assert [source_name(str(obqa[s])) for s in ("train", "dev", "test")] == \
        ["OpenBookQA-train", "OpenBookQA-dev", "OpenBookQA-test"]
    assert source_name(str(obqa["train_complete"])) == "OpenBookQA-train"
    assert source_name(str(tmp_path / "ARC-V1-Feb2018" / "ARC-Easy" / "ARC-Easy-Dev.jsonl")) == "ARC-Easy-Dev"
    assert source_name(str(tmp_path / "RegentsTests" / "train.jsonl")) == "RegentsTests-train"


def test_openbookqa_fact1_is_ignored_or_used_as_context(tmp_path, capsys):
    obqa = mc_fixtures.make_obqa(tmp_path / "raw")
    args = ["--build-dict", "--max-positions", "128", "--train", obqa["train_complete"],
            "--valid", obqa["dev_complete"], "--test", obqa["test_complete"]]
    assert _run(capsys, "--destdir", tmp_path / "plain", *args)[0] == 0
    summary = json.loads((tmp_path / "plain" / "preprocess.json").read_text())["splits"]
    assert summary["train"]["sources"] == {"OpenBookQA-train": 16}
    assert summary["train"]["with_fact1"] == 16 and summary["train"]["with_context"] == 0
    first = json.loads((tmp_path / "plain" / "train.jsonl").read_text().splitlines()[0])
    assert "context" not in first and "fact1" not in first

    assert _run(capsys, "--destdir", tmp_path / "fact", *args, "--fact1-context")[0] == 0
    fact = json.loads(obqa["train_complete"].read_text().splitlines()[0])["fact1"]
    first = json.loads((tmp_path / "fact" / "train.jsonl").read_text().splitlines()[0])
    assert first["context"] == fact
    assert json.loads((tmp_path / "fact" / "preprocess.json").read_text())["splits"]["valid"]["with_context"] == 8


def test_fact1_ignored_is_logged(tmp_path, caplog):
    obqa = mc_fixtures.make_obqa(tmp_path / "raw")
    with caplog.at_level("WARNING"):
        assert cli_main(["--destdir", str(tmp_path / "d"), "--build-dict", "--valid", str(obqa["dev_complete"])]) == 0
    assert "valid: 8 questions carry OpenBookQA's 'fact1'; it is ignored (pass --fact1-context" in caplog.text


def test_predict_group_selects_one_leaderboard(tmp_path):
    from fairseq_freelb.mc.formats import read_split
    from fairseq_freelb.commands import CommandError
    from fairseq_freelb.mc.inference import select_group

    arc = mc_fixtures.make_arc(tmp_path, n_test=4)
    questions = read_split(str(arc["ARC-Easy-Test"])) + read_split(str(arc["ARC-Challenge-Test"]))
    assert select_group(questions, "ARC-Easy", "test") == [0, 1, 2, 3]
    assert select_group(questions, "ARC-Challenge", "test") == [4, 5, 6, 7]
    assert select_group(questions, None, "test") == list(range(8))
    with pytest.raises(CommandError, match=r"--group ARC-Hard: no question of split 'test' belongs to it; its groups: "
                                         r"ARC-Challenge, ARC-Challenge-Test, ARC-Easy, ARC-Easy-Test"):
        select_group(questions, "ARC-Hard", "test")


def test_task_warns_when_data_was_checked_at_another_length(tmp_path, capsys, caplog):
    from fairseq_freelb.mc.preprocess_summary import warn_if_preprocessed_for_other_length

    files = mc_fixtures.make_csqa(tmp_path / "raw")
    assert _run(capsys, *_csqa_args(files, tmp_path / "data"))[0] == 0  # checked at 128
    with caplog.at_level("WARNING"):
        warn_if_preprocessed_for_other_length(str(tmp_path / "data"), 128)
        assert caplog.text == ""
        warn_if_preprocessed_for_other_length(str(tmp_path / "data"), 512)
    assert "the data was checked at --max-positions 128, this run uses 512" in caplog.text


def test_task_refuses_an_unlabelled_training_split(tmp_path, capsys):
    """Reading official files directly (no preprocess): CSQA's unlabelled test file as train is refused."""
    import shutil

    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    files = mc_fixtures.make_csqa(tmp_path / "raw")
    assert _run(capsys, *_csqa_args(files, tmp_path / "data"))[0] == 0
    shutil.copyfile(files["test_rand_split_no_answers"], tmp_path / "data" / "train.jsonl")
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(tmp_path / "data"), "--task", "multiple_choice", "--criterion", "freelb_sentence_ranking",
        "--arch", "roberta_base", "--max-positions", "128", "--cpu"])
    task = tasks.setup_task(convert_namespace_to_omegaconf(args).task)
    task.load_dataset("test")  # an unlabelled test split is fine
    with pytest.raises(MultipleChoiceFormatError, match=rf"^{tmp_path / 'data' / 'train.jsonl'}:1: no answerKey, "
                                                        r"but split 'train' needs one on every question"):
        task.load_dataset("train")

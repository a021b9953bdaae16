"""A missing or wrong data folder given to the plugin's tasks: one line naming it, not a 50-line traceback.

fairseq's tasks read their dictionaries in ``setup_task``; a missing folder ended
in ``FileNotFoundError: .../input0/dict.txt`` after about fifty lines of traceback.
"""

import pytest

from utils import TINY_ROBERTA, fairseq_train_cmd, run, without_teardown_abort
from fairseq_freelb.adapters import runtime
from fairseq_freelb.adapters.data_folder import DataFolderError


def _setup(task: str, data, *extra):
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import fairseq_freelb  # noqa: F401

    argv = [str(data), "--task", task, *TINY_ROBERTA, "--cpu", *extra]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
    return tasks.setup_task(cfg.task)


CASES = {
    "freelb_sentence_prediction": (["--criterion", "freelb_sentence_prediction", "--num-classes", "2"],
                                   "input0/dict.txt", "give the <TASK>-bin folder that python -m "
                                   "fairseq_freelb.glue.preprocess writes (or fairseq-preprocess)"),
    "freelb_sentence_ranking": (["--criterion", "freelb_sentence_ranking", "--num-classes", "4"], "input0/dict.txt",
                                "give the folder of fairseq's RACE recipe (input0/ .. inputN/, label/)"),
    "multiple_choice": (["--criterion", "freelb_sentence_ranking"], "dict.txt",
                        "give the folder that python -m fairseq_freelb.mc.preprocess --destdir writes"),
}


@pytest.mark.parametrize("task", sorted(CASES))
def test_a_missing_data_folder_is_one_line_naming_it(tmp_path, task):
    extra, needed, fix = CASES[task]
    missing = tmp_path / "no-such-data"
    with pytest.raises(DataFolderError) as info:
        _setup(task, missing, *extra)
    assert str(info.value) == f"--task {task}: data folder {missing} does not exist; {fix}"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataFolderError) as info:
        _setup(task, empty, *extra)
    assert str(info.value) == f"--task {task}: data folder {empty} has no {needed}, so it is not this task's data; {fix}"


def test_a_relative_path_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataFolderError, match=rf"data folder glue-bin/RTE-bin \(in {tmp_path}\) does not exist"):
        _setup("freelb_sentence_prediction", "glue-bin/RTE-bin", *CASES["freelb_sentence_prediction"][0])


def test_fairseq_trains_hook_prints_it_as_one_line(capsys):
    hook = runtime.one_line_errors(lambda *args: print("traceback", file=__import__("sys").stderr))
    error = DataFolderError("--task multiple_choice: data folder data/csqa does not exist; ...")
    hook(DataFolderError, error, None)
    assert capsys.readouterr().err == f"fairseq_freelb: error: {error}\n"


@pytest.mark.slow
def test_fairseq_train_on_a_missing_folder_ends_with_the_plugins_line(tmp_path):
    cmd = fairseq_train_cmd(tmp_path / "missing-bin", tmp_path / "ck")
    cmd[cmd.index("sentence_prediction")] = "freelb_sentence_prediction"
    proc = run(cmd, cwd=tmp_path, check=False)
    stderr, _ = without_teardown_abort(proc.stderr)
    assert proc.returncode != 0
    assert stderr.strip().splitlines()[-1] == (
        f"fairseq_freelb: error: --task freelb_sentence_prediction: data folder {tmp_path / 'missing-bin'} does not "
        "exist; " + CASES["freelb_sentence_prediction"][2])
    assert "Traceback" not in stderr

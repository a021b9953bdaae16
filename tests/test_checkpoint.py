"""fairseq_freelb.checkpoint: why a checkpoint did not load, in one line that names the file.

The files are real: a fairseq checkpoint written by fairseq's own saver (zip format) and
by torch's old format, each cut short; a text file; an intact checkpoint holding a type
that is not allow-listed. Each goes through fairseq's own loader
(``checkpoint_utils.load_checkpoint_to_cpu``, what ``--restore-file``, ``robustness``
and ``glue.evaluate`` call) and through ``run_command``, as a command would see it.
"""

import argparse
import datetime

import pytest
import torch

from fairseq_freelb import checkpoint
from fairseq_freelb.commands import run_command

HINT = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


def fairseq_state():
    """What fairseq's trainer saves: cfg, model weights, optimizer history (fairseq <= 0.9 also ``args``)."""
    return {
        "args": argparse.Namespace(arch="roberta_base"),
        "cfg": {"task": {"_name": "sentence_prediction"}, "model": None},
        "model": {"encoder.sentence_encoder.embed_tokens.weight": torch.randn(300, 64)},
        "optimizer_history": [{"criterion_name": "SentencePredictionCriterion", "num_updates": 3}],
        "extra_state": {"epoch": 1},
        "last_optimizer_state": None,
    }


@pytest.fixture
def real_checkpoint(tmp_path):
    from fairseq.checkpoint_utils import torch_persistent_save

    path = tmp_path / "checkpoint_last.pt"
    torch_persistent_save(fairseq_state(), str(path))
    return path


def via_fairseq(path, capsys) -> str:
    """The one line a command wrapping fairseq's loader prints for ``path``."""
    from fairseq import checkpoint_utils

    rc = run_command("prog", lambda argv: checkpoint_utils.load_checkpoint_to_cpu(str(path)) and 0, [])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    return err[0]


def test_intact_checkpoint_loads(real_checkpoint):
    state = checkpoint.load_checkpoint(str(real_checkpoint))
    assert state["optimizer_history"][0]["num_updates"] == 3


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_checkpoint(tmp_path, real_checkpoint, capsys, keep):
    data = real_checkpoint.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load_checkpoint(str(cut))
    message = str(info.value)
    assert message.startswith(f"{cut}: truncated or corrupt: a zip archive") and HINT not in message
    line = via_fairseq(cut, capsys)
    assert line == f"prog: error: {message}"


def test_truncated_old_format_checkpoint(tmp_path):
    """torch's pre-1.6 format: cut inside a type name, torch reports an unsupported global."""
    old = tmp_path / "old.pt"
    torch.save(fairseq_state(), old, _use_new_zipfile_serialization=False)
    data = old.read_bytes()
    name = data.index(b"c" + b"torch._utils\n_rebuild_tensor_v2\n")  # pickle GLOBAL: module, name
    cut = tmp_path / "cut_old.pt"
    cut.write_bytes(data[: name + len("ctorch._utils\n_rebuild_tens")])
    with pytest.raises(Exception) as raw:  # what torch itself says: a refused type
        torch.load(cut)
    assert checkpoint.refused_type(raw.value) == "torch._utils._rebuild_ten"  # the unpickler takes the last byte for the newline
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load_checkpoint(str(cut))
    message = str(info.value)
    assert message.startswith(f"{cut}: truncated or corrupt: its pickle names") and HINT not in message


def test_text_file(tmp_path, capsys):
    text = tmp_path / "checkpoint_best.pt"
    text.write_text("checkpoint_best.pt\nsee notes.txt\n")
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load_checkpoint(str(text))
    message = str(info.value)
    assert message == f"{text}: a text file, not a torch checkpoint (it begins 'checkpoint_best.pt')"
    assert via_fairseq(text, capsys) == f"prog: error: {message}"


def test_empty_file_and_directory(tmp_path, capsys):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert via_fairseq(empty, capsys) == f"prog: error: {empty}: empty file (0 bytes): the save or the copy did not complete"
    with pytest.raises(checkpoint.CheckpointError, match="is a directory"):
        checkpoint.load_checkpoint(str(tmp_path))


def test_unknown_type_gets_the_weights_only_advice(tmp_path, capsys):
    state = fairseq_state()
    state["extra_state"]["saved_on"] = datetime.date(2020, 4, 26)  # intact file, a type fairseq never pickles
    path = tmp_path / "dated.pt"
    torch.save(state, path)
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load_checkpoint(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: contains the type datetime.date, which is not among the types")
    assert message.endswith(checkpoint.TRUST_HINT)
    assert via_fairseq(path, capsys) == f"prog: error: {message}"


class CallsPrint:
    """Pickles as a call of ``print``: what a hostile checkpoint looks like (refused, never called)."""

    def __reduce__(self):
        return (print, ("this must not be printed",))


def test_hostile_builtin_is_named_with_the_advice(tmp_path, capsys):
    path = tmp_path / "hostile.pt"
    torch.save({"model": {}, "extra_state": CallsPrint()}, path)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load_checkpoint(str(path))
    assert "this must not be printed" not in capsys.readouterr().out
    line = via_fairseq(path, capsys)
    assert line == (f"prog: error: {path}: contains the type builtins.print, which is not among the types fairseq "
                    f"checkpoints need; {checkpoint.TRUST_HINT}")


def test_explain_refusal_finds_the_file_in_the_traceback(tmp_path):
    """The plugin's excepthook has only the exception; the file comes from torch.load's frame."""
    text = tmp_path / "notes.pt"
    text.write_text("cfg: see run.sh\n")
    try:
        torch.load(str(text))
    except Exception as exc:  # noqa: BLE001
        assert checkpoint.is_checkpoint_load_failure(exc)
        assert checkpoint.explain_refusal(exc) == f"{text}: a text file, not a torch checkpoint (it begins 'cfg: see run.sh')"
    else:
        pytest.fail("torch loaded a text file")
    assert not checkpoint.is_checkpoint_load_failure(ValueError("unrelated"))


@pytest.mark.slow
def test_fairseq_train_restore_file_names_the_real_cause(tmp_path, real_checkpoint):
    """``fairseq-train --user-dir fairseq_freelb --restore-file``: the last line of stderr is the diagnosis."""
    from utils import fairseq_train_cmd, make_sentence_prediction_data, run

    data_bin = make_sentence_prediction_data(tmp_path / "data")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(real_checkpoint.read_bytes()[:4000])
    text = tmp_path / "notes.pt"
    text.write_text("checkpoint_best.pt was copied to the cluster\n")
    expected = {
        cut: f"{cut}: truncated or corrupt: a zip archive (torch's checkpoint format) whose end is missing (4000 bytes)",
        text: f"{text}: a text file, not a torch checkpoint (it begins 'checkpoint_best.pt was copied to the cluster')",
    }
    for path, message in expected.items():
        cmd = fairseq_train_cmd(data_bin, tmp_path / "ckpt", [
            "--restore-file", str(path), "--reset-optimizer", "--max-update", "1", "--no-save",
            "--required-batch-size-multiple", "1", "--adv-steps", "2", "--adv-lr", "0.1",
        ])
        proc = run(cmd, cwd=tmp_path, check=False)
        assert proc.returncode != 0
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"fairseq_freelb: error: {message}"), proc.stderr[-2000:]
        assert HINT not in proc.stderr

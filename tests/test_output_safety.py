"""Outputs of preprocessing, prediction, evaluation and submission: modes, locks, leftovers, paths, full disks.

Each test runs the real command in-process on the fixture GLUE folder (official
TSV layouts) and checks what is, and is not, left on disk:

- files and folders get the user's umask (a colleague's job can read them);
- a second preprocessing run into the same output stops in one line;
- what killed runs left beside an output is removed by the next run, saying so;
- the submission's zip lives in its folder, replaced with it in one rename;
- ``--out`` may contain a comma;
- a missing, read-only or full output location stops in one line, before any
  model runs (read-only and full file systems are real tmpfs mounts where the
  tests may mount, and a read-only folder where they run as a normal user).
"""

import contextlib
import fcntl
import os
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from glue_checkpoints import save_glue_checkpoint
from glue_fixtures import build_srcdict, make_glue_dir
from fairseq_freelb.commands import run_command
from fairseq_freelb.glue import evaluate as E
from fairseq_freelb.glue import predict as PR
from fairseq_freelb.glue import preprocess as P
from fairseq_freelb.glue import submission as S
from fairseq_freelb.resources import gpt2_bpe_files


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    """The fixture GLUE folder, its dictionary and BPE files, SST-2 and RTE preprocessed, an SST-2 checkpoint."""
    root = tmp_path_factory.mktemp("outputs")
    bpe = gpt2_bpe_files(dest=root / "bpe")
    make_glue_dir(root / "glue_data")
    srcdict = build_srcdict(root / "glue_data", *bpe, root / "dict.txt")
    args = ["--glue-dir", str(root / "glue_data"), "--srcdict", str(srcdict), "--workers", "1",
            "--encoder-json", str(bpe[0]), "--vocab-bpe", str(bpe[1])]
    assert P.main([*args, "--out", str(root / "glue-bin"), "--tasks", "SST-2,RTE"]) == 0
    ckpt = save_glue_checkpoint(root / "glue-bin" / "SST-2-bin", root / "ckpt" / "sst2.pt")
    return {"args": args, "glue_bin": root / "glue-bin", "ckpt": ckpt}


def _preprocess(glue, out, tasks="SST-2"):
    return run_command(P.PROG, P.main, [*glue["args"], "--out", str(out), "--tasks", tasks])


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_002():
    old = os.umask(0o002)
    yield
    os.umask(old)


def test_outputs_follow_the_users_umask(glue, tmp_path, umask_002, capsys):
    """mkdtemp/mkstemp made 0700 bin folders and submission folders and 0600 prediction files."""
    from fairseq_freelb.mc.formats import Choice, Question
    from fairseq_freelb.mc.prediction_files import write_predictions

    assert _preprocess(glue, tmp_path / "glue-bin") == 0
    bin_dir = tmp_path / "glue-bin" / "SST-2-bin"
    assert _mode(bin_dir) == 0o775
    assert {_mode(p) for p in bin_dir.rglob("*") if p.is_dir()} == {0o775}
    assert {_mode(p) for p in bin_dir.rglob("*") if p.is_file()} == {0o664}

    common = ["--data-bin", str(bin_dir), "--checkpoint", str(glue["ckpt"]), "--cpu"]
    assert run_command(PR.PROG, PR.main, [*common, "--out", str(tmp_path / "SST-2.tsv")]) == 0
    assert run_command(E.PROG, E.main, [*common, "--json", str(tmp_path / "SST-2.json")]) == 0
    assert _mode(tmp_path / "SST-2.tsv") == 0o664 and _mode(tmp_path / "SST-2.json") == 0o664

    out = tmp_path / "submission"
    assert run_command(S.PROG, S.main, ["--glue-bin", str(tmp_path / "glue-bin"), "--out", str(out), "--cpu",
                                        "--allow-missing", "--checkpoints", f"SST-2={glue['ckpt']}"]) == 0
    assert _mode(out) == 0o775 and {_mode(p) for p in out.iterdir()} == {0o664}

    question = Question("q1", "Why?", [Choice("A", "yes"), Choice("B", "no")], None, "test", "t.jsonl:1")
    write_predictions(str(tmp_path / "mc.csv"), [question], ["A"])
    assert _mode(tmp_path / "mc.csv") == 0o664


def test_a_second_run_into_the_same_output_is_refused_in_one_line(glue, tmp_path, capsys):
    """Two runs into the same --out both exited 0 and the last writer won."""
    out = tmp_path / "glue-bin"
    assert _preprocess(glue, out) == 0
    before = (out / "SST-2-bin" / "meta.json").read_bytes()
    lock = out / ".SST-2-bin.lock"
    capsys.readouterr()
    # Another run holds the output (a lock taken through its own open file, as another process's would be).
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242\n")
        assert _preprocess(glue, out) == 1
        assert _one_line(capsys).endswith(f"--out {out / 'SST-2-bin'}: another run (pid 4242) is writing it now "
                                          f"(it holds {lock}); wait for it to finish, or write elsewhere")
        assert (out / "SST-2-bin" / "meta.json").read_bytes() == before
        assert _preprocess(glue, out, tasks="RTE") == 0  # another task's output is another lock
    finally:
        os.close(fd)
    capsys.readouterr()
    assert _preprocess(glue, out) == 0  # the holder is gone: the next run goes ahead
    assert not lock.exists() and not (out / ".RTE-bin.lock").exists()  # no lock file is left behind


def test_what_killed_runs_left_is_removed_by_the_next_run_of_that_output(glue, tmp_path, capsys):
    out = tmp_path / "glue-bin"
    out.mkdir()
    building = out / ".SST-2-bin.k3j2ab.building"
    (building / "input0").mkdir(parents=True)
    (building / "input0" / "train.bin").write_bytes(b"\0" * 1_000_000)
    (out / ".SST-2-bin.999.old").mkdir()
    other = out / ".RTE-bin.x1y2.building"  # another output's: not this run's business
    other.mkdir()
    assert _preprocess(glue, out) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "interrupted" in line]
    assert lines == [f"{out / 'SST-2-bin'}: removed what interrupted runs left beside it (1.0 MB): "
                     ".SST-2-bin.999.old, .SST-2-bin.k3j2ab.building"]
    assert sorted(p.name for p in out.iterdir()) == [".RTE-bin.x1y2.building", "SST-2-bin"]


@pytest.mark.slow
def test_a_preprocessing_run_killed_while_building_is_cleaned_up_by_the_next(glue, tmp_path, capsys):
    """kill -9 while BPE-encoding a bigger SST-2: the .building folder stays until the next run removes it."""
    import signal
    import sys
    import time

    glue_dir = tmp_path / "glue_data"
    make_glue_dir(glue_dir, n_train=30000)
    args = [arg if not arg.endswith("glue_data") else str(glue_dir) for arg in glue["args"]]
    out = tmp_path / "glue-bin"
    proc = subprocess.Popen([sys.executable, "-m", "fairseq_freelb.glue.preprocess", *args, "--out", str(out),
                             "--tasks", "SST-2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob(".SST-2-bin.*.building")):
        assert proc.poll() is None, "finished before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Its build folder, and its lock file (a dead process holds no lock: the file does not block the next run).
    assert len(list(out.glob(".SST-2-bin.*.building"))) == 1 and (out / ".SST-2-bin.lock").exists()
    assert run_command(P.PROG, P.main, [*args, "--out", str(out), "--tasks", "SST-2"]) == 0
    assert "removed what interrupted runs left beside it" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["SST-2-bin"]


def test_an_output_path_with_a_comma_is_preprocessed_like_any_other(glue, tmp_path):
    """fairseq-preprocess split the temporary paths at the comma: 'No such file or directory: runs/out'."""
    assert _preprocess(glue, tmp_path / "out,v2") == 0
    assert _preprocess(glue, tmp_path / "plain") == 0
    for name in ("input0/train.bin", "input0/test.idx", "label/valid.bin"):
        assert (tmp_path / "out,v2" / "SST-2-bin" / name).read_bytes() == (tmp_path / "plain" / "SST-2-bin" / name).read_bytes()


# --------------------------------------------------------------------------- the submission's folder and zip


@pytest.fixture
def fake_predictions(monkeypatch):
    """The submission's prediction step writes fixed SST-2 predictions (the builder is what is under test)."""
    def write(glue_bin, checkpoints, out, files, label="1", **kwargs):
        ids = (Path(glue_bin) / "SST-2-bin" / "index" / "test.index").read_text().splitlines()
        path = out / "SST-2.tsv"
        path.write_text("index\tprediction\n" + "".join(f"{i}\t{write.label}\n" for i in ids))
        return [path]

    write.label = "1"
    monkeypatch.setattr(S, "write_submission", write)
    return write


def test_the_zip_lives_in_the_submission_folder_and_must_agree_with_it(glue, tmp_path, fake_predictions):
    """Folder and zip were replaced one after the other: a kill between them left a new folder with an old zip."""
    out = tmp_path / "submission"
    build = dict(glue_bin=glue["glue_bin"], checkpoints={"SST-2": [str(glue["ckpt"])]}, allow_missing=True)
    S.build(out=out, zip_path=None, **build)
    assert sorted(p.name for p in out.iterdir()) == ["SST-2.tsv", "submission.zip"]
    with zipfile.ZipFile(out / "submission.zip") as archive:
        assert archive.read("SST-2.tsv") == (out / "SST-2.tsv").read_bytes()
    assert S.validate(out, glue["glue_bin"], allow_missing=True) == []
    first_zip = (out / "submission.zip").read_bytes()

    fake_predictions.label = "0"
    S.build(out=out, zip_path=None, **build)
    assert (out / "submission.zip").read_bytes() != first_zip
    # A folder whose zip is from another run is reported (the zip is what gets uploaded).
    (out / "submission.zip").write_bytes(first_zip)
    assert S.validate(out, glue["glue_bin"], allow_missing=True) == [
        "submission.zip: SST-2.tsv differ from the folder's: they are not from the same run"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission"]


def test_a_zip_inside_the_output_folder_and_a_kill_before_the_swap(glue, tmp_path, fake_predictions, monkeypatch):
    """--zip inside --out failed after the folder swap, leaving .PID.old folders and no zip."""
    out = tmp_path / "submission"
    build = dict(glue_bin=glue["glue_bin"], checkpoints={"SST-2": [str(glue["ckpt"])]}, allow_missing=True)
    S.build(out=out, zip_path=out / "upload.zip", **build)
    S.build(out=out, zip_path=out / "upload.zip", **build)  # over an earlier run
    assert sorted(p.name for p in out.iterdir()) == ["SST-2.tsv", "upload.zip"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def killed(new, dest):
        raise KeyboardInterrupt  # as a kill at the last moment

    monkeypatch.setattr(S, "swap_into_place", killed)
    fake_predictions.label = "0"
    with pytest.raises(KeyboardInterrupt):
        S.build(out=out, zip_path=out / "upload.zip", **build)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # files and zip still from one run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission"]


def test_a_submission_run_removes_what_a_killed_run_left(glue, tmp_path, fake_predictions, capsys):
    out = tmp_path / "submission"
    (tmp_path / ".submission.ab12cd.building").mkdir()
    (tmp_path / ".submission.31337.old").mkdir()
    S.build(glue["glue_bin"], {"SST-2": [str(glue["ckpt"])]}, out, None, allow_missing=True)
    assert "removed what interrupted runs left beside it" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission"]


# --------------------------------------------------------------------------- missing, read-only, full


@pytest.fixture
def model_must_not_run(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model ran before the output location was checked")

    monkeypatch.setattr(PR, "predict", refuse)
    monkeypatch.setattr(E, "evaluate", refuse)
    monkeypatch.setattr(S, "write_submission", refuse)


def test_a_missing_output_folder_is_refused_before_the_model_runs(glue, tmp_path, capsys, model_must_not_run):
    common = ["--data-bin", str(glue["glue_bin"] / "SST-2-bin"), "--checkpoint", str(glue["ckpt"]), "--cpu"]
    missing = tmp_path / "no" / "such"
    assert run_command(PR.PROG, PR.main, [*common, "--out", str(missing / "SST-2.tsv")]) == 1
    assert _one_line(capsys).endswith(f"--out {missing / 'SST-2.tsv'}: the folder {missing} does not exist; "
                                      "create it first")
    assert run_command(E.PROG, E.main, [*common, "--json", str(missing / "r.json")]) == 1
    assert _one_line(capsys).endswith(f"--json {missing / 'r.json'}: the folder {missing} does not exist; create it first")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.fixture
def read_only(tmp_path):
    """``(folder, errno)``: a read-only file system (root) or a folder without write permission (other users)."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder, 13
        folder.chmod(0o755)
        return
    with _tmpfs(tmp_path / "ro", "1m") as folder:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder, 30


def test_a_read_only_output_location_is_one_line_before_any_work(glue, read_only, capsys, model_must_not_run):
    folder, errno = read_only
    reason = {30: "read-only file system, errno 30", 13: "permission denied, errno 13"}[errno]
    assert _preprocess(glue, folder / "glue-bin") == 1
    assert _one_line(capsys).endswith(f"--out {folder / 'glue-bin'}: cannot create it ({reason})")
    common = ["--data-bin", str(glue["glue_bin"] / "SST-2-bin"), "--checkpoint", str(glue["ckpt"]), "--cpu"]
    assert run_command(PR.PROG, PR.main, [*common, "--out", str(folder / "SST-2.tsv")]) == 1
    assert _one_line(capsys).endswith(f"--out {folder / 'SST-2.tsv'}: cannot write in {folder} ({reason})")
    assert run_command(E.PROG, E.main, [*common, "--json", str(folder / "r.json")]) == 1
    assert _one_line(capsys).endswith(f"--json {folder / 'r.json'}: cannot write in {folder} ({reason})")
    assert run_command(S.PROG, S.main, ["--glue-bin", str(glue["glue_bin"]), "--out", str(folder / "submission"),
                                        "--allow-missing", "--checkpoints", f"SST-2={glue['ckpt']}"]) == 1
    assert _one_line(capsys).endswith(f"--out {folder}: cannot write in {folder} ({reason})")


def test_a_full_disk_is_one_line_naming_the_output(glue, tmp_path, capsys, model_must_not_run):
    """errno 28 during preprocessing (room for the check, not for the data), and before predicting."""
    with _tmpfs(tmp_path / "disk", "512k") as disk:
        filler = disk / "filler"
        with open(filler, "wb") as handle:  # leave about 40 KB: the check passes, the binarized data does not fit
            handle.write(b"\0" * (512 * 1024 - 40 * 1024))
        assert _preprocess(glue, disk / "glue-bin") == 1
        line = _one_line(capsys)
        assert line.startswith(f"{P.PROG}: error: {disk / 'glue-bin' / 'SST-2-bin'}: cannot write "
                               "(no space left on the device, errno 28"), line
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no half-built folder, no lock, no empty --out
        with open(filler, "ab") as handle:  # now nothing is left
            with contextlib.suppress(OSError):
                handle.write(b"\0" * 100 * 1024)
        common = ["--data-bin", str(glue["glue_bin"] / "SST-2-bin"), "--checkpoint", str(glue["ckpt"]), "--cpu"]
        assert run_command(PR.PROG, PR.main, [*common, "--out", str(disk / "SST-2.tsv")]) == 1
        assert _one_line(capsys).endswith(f"--out {disk / 'SST-2.tsv'}: cannot write in {disk} "
                                          "(no space left on the device, errno 28)")


# --------------------------------------------------------------------------- multiple-choice preprocessing


def test_multiple_choice_preprocessing_is_locked_and_cleans_up_after_killed_runs(tmp_path, capsys, umask_002):
    import mc_fixtures
    from fairseq_freelb.mc.preprocess import cli_main

    files = mc_fixtures.make_csqa(tmp_path / "csqa")
    dest = tmp_path / "data"
    args = ["--destdir", str(dest), "--build-dict", "--max-positions", "128",
            "--train", str(files["train_rand_split"]), "--valid", str(files["dev_rand_split"])]
    (tmp_path / ".data.x8k2.building").mkdir()  # a killed run's
    assert cli_main(args) == 0
    assert "removed what interrupted runs left beside it" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["csqa", "data"]
    assert _mode(dest) == 0o775
    fd = os.open(tmp_path / ".data.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"777\n")
        assert cli_main(args) == 1
        assert "--destdir " + str(dest) + ": another run (pid 777) is writing it now" in _one_line(capsys)
    finally:
        os.close(fd)

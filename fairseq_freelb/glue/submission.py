"""A GLUE leaderboard submission: predict every test set, write the folder and its zip, check both.

Usage::

    python -m fairseq_freelb.glue.submission --glue-bin glue-bin --out submission \\
        --checkpoints CoLA=ck/cola1.pt,ck/cola2.pt --checkpoints SST-2=ck/sst2.pt ... \\
        --checkpoints MNLI=ck/mnli.pt   # MNLI's models also predict AX

    python -m fairseq_freelb.glue.submission --glue-bin glue-bin --validate submission.zip

Several checkpoints for a task form an ensemble (mean class probabilities, or
mean scores for STS-B). A QNLI-ranking or WSC checkpoint given for QNLI or WNLI
is recognised by its training task and predicts from its own data folder
(:mod:`~fairseq_freelb.glue.formulations`). Each file has the header ``index<TAB>prediction`` and one
row per test example, in test-file order, with the ids of the test file's index
column; labels are as the server expects them (words for MNLI/AX/QNLI/RTE, 0/1
otherwise, a float in [0, 5] for STS-B). Before zipping, the files are checked
against ``<TASK>-bin/index/<split>.index``: file set, headers, row counts, ids
and label sets (line ends must be LF, judged the same in a folder and a zip).

The submission is built in a temporary folder beside ``--out``, checked, zipped
to a temporary name, the zip checked, and only then both are moved into place:
a failure leaves an earlier submission as it was, and the zip holds exactly
this run's files. Every checkpoint and every test split is checked to exist
before anything is written. A test split that preprocessing did not write
(MNLI's diagnostic set without its file, say) stops the build with the reason,
unless ``--allow-missing`` leaves its file out.
"""

import argparse
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple


from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.glue import formulations
from fairseq_freelb.glue.benchmark_tasks import STSB_MAX_SCORE, SUBMISSION_FILES, TASKS, GlueTask, get_task
from fairseq_freelb.glue.leaderboard_files import HEADER, SubmissionError, format_predictions, write_file
from fairseq_freelb.glue.predict import add_checkpoint_flags, load_glue_ensemble, predict


def expected_ids(glue_bin: Path, task: GlueTask, split: str) -> List[str]:
    path = formulations.index_file(glue_bin, task, split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (preprocess the {task.name} test files first)")
    return path.read_text(encoding="utf-8").splitlines()


def plan(glue_bin: Path, checkpoints: Dict[str, List[str]], allow_missing: bool) -> List[Tuple[str, GlueTask, str]]:
    """``(file, task, split)`` for every file this run writes; refuses what cannot be written, before anything is.

    A test split absent from ``<TASK>-bin`` (its file was missing at preprocessing)
    is left out under ``allow_missing`` and refused otherwise, with the reason.
    """
    for task_name, paths in checkpoints.items():
        for path in paths:
            if not Path(path).is_file():
                raise FileNotFoundError(f"--checkpoints {task_name}: checkpoint {path}: no such file")
    files = []
    for task_name in checkpoints:
        task = get_task(task_name)
        data_bin = formulations.data_folder(glue_bin, task, formulations.formulation_of(task, checkpoints[task_name]))
        if not data_bin.is_dir():
            raise FileNotFoundError(f"{data_bin}: no such folder (preprocess {task.name} first)")
        for filename, split in task.submission_files.items():
            if (data_bin / "index" / f"{split}.index").is_file():
                files.append((filename, task, split))
                continue
            reason = (f"{filename}: {data_bin} has no {split} split: its test file was not found at preprocessing"
                      + (" (the diagnostic set: give it with preprocess --ax-file)" if split == "test_ax" else ""))
            if not allow_missing:
                raise FileNotFoundError(f"{reason}; or pass --allow-missing to submit without {filename}")
            print(f"{reason}; left out (--allow-missing)", flush=True)
    return files


def write_submission(glue_bin: Path, checkpoints: Dict[str, List[str]], out: Path, files, batch_size=32, cpu=False,
                     fp16=False, trust_label_dict=False) -> List[Path]:
    """Predict and write each planned file into the folder ``out`` (which exists)."""
    written = []
    for task_name, paths in checkpoints.items():
        task = get_task(task_name)
        data_bin = glue_bin / f"{task.name}-bin"
        mine = [(f, s) for f, t, s in files if t.name == task.name]
        if not mine:
            continue
        formulation = formulations.formulation_of(task, paths)
        if formulation is not None:  # QNLI as ranking, WNLI through WSC: one label per original row
            for filename, split in mine:
                ids, labels, lines = formulations.predict_labels(formulation, glue_bin, task, paths, split, batch_size, cpu)
                write_file(out / filename, expected_ids(glue_bin, task, split), labels)
                print(f"{filename}: {len(ids)} rows from {formulation} {split} ({len(paths)} checkpoint(s)); "
                      + "; ".join(lines), flush=True)
                written.append(out / filename)
            continue
        loaded = load_glue_ensemble(paths, data_bin, task, cpu=cpu, fp16=fp16, trust_label_dict=trust_label_dict)
        for filename, split in mine:
            ids = expected_ids(glue_bin, task, split)
            predictions = predict(paths, data_bin, split, batch_size, loaded=loaded, glue_task=task)
            write_file(out / filename, ids, format_predictions(task, predictions))
            print(f"{filename}: {len(ids)} rows from {task.name} {split} ({len(paths)} checkpoint(s))", flush=True)
            written.append(out / filename)
    return written


def _read_member(source: Path, name: str) -> Optional[str]:
    """The file's text exactly as stored (no newline translation), from a folder or a zip alike."""
    if source.is_dir():
        path = source / name
        data = path.read_bytes() if path.is_file() else None
    else:
        with zipfile.ZipFile(source) as archive:
            data = archive.read(name) if name in archive.namelist() else None
    return None if data is None else data.decode("utf-8")


def _members(source: Path) -> List[str]:
    if source.is_dir():
        return sorted(p.name for p in source.iterdir() if p.is_file())
    with zipfile.ZipFile(source) as archive:
        return sorted(archive.namelist())


def validate(source: Path, glue_bin: Path, allow_missing: bool = False) -> List[str]:
    """Every problem of a submission folder or zip, as ``file: problem`` lines (empty list: valid)."""
    problems = []
    members = _members(source)
    for name in members:
        if name not in SUBMISSION_FILES:
            problems.append(f"{name}: not a GLUE submission file (expected {', '.join(SUBMISSION_FILES)})")
    checked = 0
    for name, task_name in SUBMISSION_FILES.items():
        text = _read_member(source, name)
        if text is None:
            if not allow_missing:
                problems.append(f"{name}: missing")
            continue
        checked += 1
        task = TASKS[task_name]
        split = task.submission_files[name]
        try:
            ids = expected_ids(glue_bin, task, split)
        except FileNotFoundError as exc:
            problems.append(f"{name}: cannot check: {exc}")
            continue
        problems += check_file(name, text, task, split, ids)
    if checked == 0:
        problems.append(f"{source}: no submission files")
    return problems


def check_file(name: str, text: str, task: GlueTask, split: str, ids: Sequence[str]) -> List[str]:
    """The problems of one submission file's text against the test ids it must list (empty list: valid).

    Shared by :func:`validate` and the Hugging Face example (examples/hf_glue), so a file from either side is
    held to the same rules: LF line ends, the header, one row per test id in test-file order, the server's labels.
    """
    if "\r" in text:
        return [f"{name}: has CR (CRLF) line ends; write LF only"]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    if not lines or lines[0] != HEADER:
        return [f"{name}:1: header must be {HEADER!r}, found {lines[0] if lines else ''!r}"]
    problems = []
    rows = lines[1:]
    if len(rows) != len(ids):
        problems.append(f"{name}: {len(rows)} rows, the {task.name} {split} file has {len(ids)} examples")
    allowed = set(task.labels)
    for line_no, (row, want) in enumerate(zip(rows, ids), start=2):
        cols = row.split("\t")
        if len(cols) != 2:
            problems.append(f"{name}:{line_no}: expected 2 tab-separated columns, found {len(cols)}")
            break
        if cols[0] != want:
            problems.append(f"{name}:{line_no}: index {cols[0]!r}, expected {want!r} (test-file order)")
            break
        if task.regression:
            try:
                value = float(cols[1])
            except ValueError:
                value = float("nan")
            if not 0.0 <= value <= STSB_MAX_SCORE:
                problems.append(f"{name}:{line_no}: prediction {cols[1]!r} is not a number in [0, 5]")
                break
        elif cols[1] not in allowed:
            problems.append(f"{name}:{line_no}: prediction {cols[1]!r} not in {sorted(allowed)}")
            break
    return problems


def make_zip(files: Sequence[Path], zip_path: Path) -> Path:
    """Exactly ``files``, at the top level of the archive, as the server expects."""
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, arcname=path.name)
    return zip_path


def build(glue_bin: Path, checkpoints: Dict[str, List[str]], out: Path, zip_path: Path, allow_missing: bool,
          **predict_kwargs) -> List[Path]:
    """Write, check and zip the submission aside; move folder and zip into place only when both are valid."""
    files = plan(glue_bin, checkpoints, allow_missing)
    if not files:
        raise CommandError("no submission file can be written (see the lines above)")
    out.parent.mkdir(parents=True, exist_ok=True)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".building", dir=out.parent))
    staged_zip = zip_path.with_name(f".{zip_path.name}.{os.getpid()}.building")
    try:
        written = write_submission(glue_bin, checkpoints, staging, files, **predict_kwargs)
        _check(validate(staging, glue_bin, allow_missing), out)
        make_zip(written, staged_zip)
        _check(validate(staged_zip, glue_bin, allow_missing), zip_path)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.{os.getpid()}.old")
            os.replace(out, old)
        os.replace(staging, out)
        os.replace(staged_zip, zip_path)
        if old is not None:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if staged_zip.exists():
            staged_zip.unlink()
    return [out / p.name for p in written]


def parse_checkpoints(specs: Sequence[str]) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for spec in specs:
        if "=" not in spec:
            raise CommandError(f"--checkpoints {spec!r}: expected TASK=path[,path...]")
        name, paths = spec.split("=", 1)
        try:
            task = get_task(name)
        except KeyError as exc:
            raise CommandError(f"--checkpoints {spec!r}: {exc.args[0]}") from None
        out.setdefault(task.name, []).extend(p for p in paths.split(",") if p)
    return out


def _check(problems: List[str], what: Path) -> None:
    if problems:
        raise SubmissionError(f"{what}: {len(problems)} problem(s): " + "; ".join(problems))


PROG = "python -m fairseq_freelb.glue.submission"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--glue-bin", required=True, help="folder of <TASK>-bin folders (preprocess --out)")
    parser.add_argument("--checkpoints", action="append", default=[],
                        help="TASK=ckpt[,ckpt...]: the model(s) for a task; repeat per task. MNLI's also predict AX")
    parser.add_argument("--out", default="submission", help="submission folder; the zip is <out>.zip")
    parser.add_argument("--zip", default=None, help="zip path (default: <out>.zip)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="accept a partial submission (the server needs all 11 files)")
    parser.add_argument("--validate", default=None, metavar="ZIP_OR_FOLDER", help="only check an existing submission")
    add_checkpoint_flags(parser)
    args = parser.parse_args(argv)
    glue_bin = Path(args.glue_bin)
    if args.validate:
        _check(validate(Path(args.validate), glue_bin, args.allow_missing), Path(args.validate))
        print(f"{args.validate}: valid GLUE submission")
        return 0
    checkpoints = parse_checkpoints(args.checkpoints)
    if not checkpoints:
        raise CommandError("give --checkpoints TASK=path for each task")
    missing = [t for t in TASKS if t not in checkpoints]
    if missing and not args.allow_missing:
        raise CommandError(f"no --checkpoints for {', '.join(missing)} (or pass --allow-missing)")
    out = Path(args.out)
    zip_path = Path(args.zip) if args.zip else Path(f"{out}.zip")
    written = build(glue_bin, checkpoints, out, zip_path, args.allow_missing, batch_size=args.batch_size, cpu=args.cpu,
                    fp16=args.fp16, trust_label_dict=args.trust_label_dict)
    print(f"wrote {out}/ and {zip_path} ({len(written)} files: {', '.join(p.name for p in written)}); "
          "checked: file set, headers, counts, ids, labels")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(PROG, main))

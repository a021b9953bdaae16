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

The submission is built in a temporary folder beside ``--out``, checked,
zipped *inside that folder* (``<out>/<out name>.zip`` unless ``--zip`` says
otherwise), the zip checked, and only then is the folder moved into place:
one rename, so the files and the zip beside them always come from the same
run, and a failure leaves an earlier submission as it was. A ``--zip`` outside
``--out`` is a copy of that zip, moved into place just before the folder.
Validating a folder also checks that every zip in it holds exactly the
folder's files. Every checkpoint and every test split is checked before
anything is written (each checkpoint's task, sentence pairs and token
dictionary: :mod:`~fairseq_freelb.glue.checkpoint_match`), and so is the
output location (it takes a new file). One run at a time per ``--out``
(``.<out>.lock``); the folders an interrupted run left beside ``--out`` are
removed by the next run. A test split that preprocessing did not write (MNLI's
diagnostic set without its file, say) stops the build with the reason, unless
``--allow-missing`` leaves its file out.
"""

import argparse
import contextlib
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple


from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.glue import formulations
from fairseq_freelb.glue.benchmark_tasks import STSB_MAX_SCORE, SUBMISSION_FILES, TASKS, GlueTask, get_task
from fairseq_freelb.glue.leaderboard_files import HEADER, SubmissionError, format_predictions, write_file
from fairseq_freelb.glue.predict import add_checkpoint_flags, load_glue_ensemble, predict
from fairseq_freelb.glue.checkpoint_match import check_checkpoint_file
from fairseq_freelb.output_files import (
    check_output_folder,
    make_temp_dir,
    naming_write_errors,
    output_lock,
    remove_leftovers,
    swap_into_place,
    written_aside,
)


def expected_ids(glue_bin: Path, task: GlueTask, split: str) -> List[str]:
    path = formulations.index_file(glue_bin, task, split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (preprocess the {task.name} test files first)")
    return path.read_text(encoding="utf-8").splitlines()


def plan(glue_bin: Path, checkpoints: Dict[str, List[str]], allow_missing: bool,
         trust_label_dict: bool = False) -> List[Tuple[str, GlueTask, str]]:
    """``(file, task, split)`` for every file this run writes; refuses what cannot be written, before anything is.

    Every checkpoint is checked against its task and ``<TASK>-bin``
    (:func:`~fairseq_freelb.glue.checkpoint_match.check_checkpoint_file`): a
    swapped MRPC/QQP pair stops here. A test split absent from ``<TASK>-bin``
    (its file was missing at preprocessing) is left out under ``allow_missing``
    and refused otherwise, with the reason.
    """
    for task_name, paths in checkpoints.items():
        for path in paths:
            if not Path(path).is_file():
                raise FileNotFoundError(f"--checkpoints {task_name}: checkpoint {path}: no such file")
    files = []
    for task_name in checkpoints:
        task = get_task(task_name)
        formulation = formulations.formulation_of(task, checkpoints[task_name])
        data_bin = formulations.data_folder(glue_bin, task, formulation)
        if not data_bin.is_dir():
            raise FileNotFoundError(f"{data_bin}: no such folder (preprocess {task.name} first)")
        # QNLI ranking and WNLI through WSC checkpoints are checked by their own loaders (training task,
        # formulation, dictionary) before anything of theirs is predicted; they carry no sentence-prediction record.
        for path in checkpoints[task_name] if formulation is None else ():
            check_checkpoint_file(path, task, data_bin, trust_old=trust_label_dict)
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
    """The files of a zip, or of a folder apart from the zips in it (checked by :func:`zip_disagrees`)."""
    if source.is_dir():
        return sorted(p.name for p in source.iterdir() if p.is_file() and p.suffix != ".zip")
    with zipfile.ZipFile(source) as archive:
        return sorted(archive.namelist())


def zip_disagrees(folder: Path, zip_path: Path) -> List[str]:
    """Problems when the zip ``zip_path`` does not hold exactly the submission files of ``folder``, byte for byte."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            inside = {name: archive.read(name) for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError) as exc:
        return [f"{zip_path.name}: not a readable zip ({exc})"]
    files = {name: (folder / name).read_bytes() for name in _members(folder)}
    problems = []
    if sorted(inside) != sorted(files):
        problems.append(f"{zip_path.name}: holds {', '.join(sorted(inside)) or 'nothing'}, the folder "
                        f"{', '.join(sorted(files)) or 'nothing'}: they are not from the same run")
    else:
        differ = [name for name in files if inside[name] != files[name]]
        if differ:
            problems.append(f"{zip_path.name}: {', '.join(differ)} differ from the folder's: they are not from the same run")
    return problems


def validate(source: Path, glue_bin: Path, allow_missing: bool = False) -> List[str]:
    """Every problem of a submission folder or zip, as ``file: problem`` lines (empty list: valid).

    A folder's zips (the one the builder writes into it) must hold exactly the folder's files.
    """
    problems = []
    if source.is_dir():
        for zip_path in sorted(p for p in source.iterdir() if p.is_file() and p.suffix == ".zip"):
            problems += zip_disagrees(source, zip_path)
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


def zip_inside(out: Path, zip_path: Path) -> Optional[Path]:
    """``zip_path`` relative to the folder ``out`` when it lies inside it, else None."""
    out_abs, zip_abs = Path(os.path.abspath(out)), Path(os.path.abspath(zip_path))
    if zip_abs == out_abs:
        raise CommandError(f"--zip {zip_path}: the same path as --out; give the zip another name")
    try:
        return zip_abs.relative_to(out_abs)
    except ValueError:
        return None


def default_zip(out: Path) -> Path:
    """Where the zip goes without ``--zip``: inside the folder, named after it (``submission/submission.zip``)."""
    return out / f"{out.name or 'submission'}.zip"


def build(glue_bin: Path, checkpoints: Dict[str, List[str]], out: Path, zip_path: Optional[Path], allow_missing: bool,
          **predict_kwargs) -> List[Path]:
    """Write, check and zip the submission aside; move it into place only when the files and the zip are valid.

    The zip is built inside the staging folder, so one rename of the folder
    replaces files and zip together. A ``zip_path`` outside ``out`` gets a copy
    of that zip, moved into place (atomically) just before the folder.
    """
    zip_path = zip_path if zip_path is not None else default_zip(out)
    inner = zip_inside(out, zip_path)
    files = plan(glue_bin, checkpoints, allow_missing, predict_kwargs.get("trust_label_dict", False))
    if not files:
        raise CommandError("no submission file can be written (see the lines above)")
    check_output_folder(out.parent, "--out")  # before any model runs
    if inner is None:
        check_output_folder(zip_path.parent, "--zip")
    with contextlib.ExitStack() as stack:
        stack.enter_context(output_lock(out, "--out"))
        remove_leftovers(out)
        if inner is None:
            stack.enter_context(output_lock(zip_path, "--zip"))
            remove_leftovers(zip_path)
        stack.enter_context(naming_write_errors(out))
        staging = make_temp_dir(out.parent, prefix=f".{out.name}.", suffix=".building")
        stack.callback(shutil.rmtree, staging, ignore_errors=True)
        written = write_submission(glue_bin, checkpoints, staging, files, **predict_kwargs)
        _check(validate(staging, glue_bin, allow_missing), out)
        staged_zip = staging / (inner if inner is not None else zip_path.name)
        staged_zip.parent.mkdir(parents=True, exist_ok=True)
        make_zip(written, staged_zip)
        _check(validate(staged_zip, glue_bin, allow_missing), zip_path)
        if inner is None:
            with naming_write_errors(zip_path), written_aside(zip_path) as tmp:
                shutil.copyfile(staged_zip, tmp)
            if staged_zip.parent == staging:
                staged_zip.unlink()  # the folder keeps only the files; the zip lives at --zip
        swap_into_place(staging, out)
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
    parser.add_argument("--out", default="submission", help="submission folder; the zip goes inside it")
    parser.add_argument("--zip", default=None,
                        help="zip path (default: <out>/<out name>.zip, inside the folder, replaced with it in one "
                        "rename); a path outside --out gets a copy, moved into place just before the folder")
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
    zip_path = Path(args.zip) if args.zip else default_zip(out)
    written = build(glue_bin, checkpoints, out, zip_path, args.allow_missing, batch_size=args.batch_size, cpu=args.cpu,
                    fp16=args.fp16, trust_label_dict=args.trust_label_dict)
    print(f"wrote {out}/ and {zip_path} ({len(written)} files: {', '.join(p.name for p in written)}); "
          "checked: file set, headers, counts, ids, labels; upload the zip")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(PROG, main))

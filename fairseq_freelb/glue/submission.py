"""A GLUE leaderboard submission: predict every test set, write the folder and its zip, check both.

Usage::

    python -m fairseq_freelb.glue.submission --glue-bin glue-bin --out submission \\
        --checkpoints CoLA=ck/cola1.pt,ck/cola2.pt --checkpoints SST-2=ck/sst2.pt ... \\
        --checkpoints MNLI=ck/mnli.pt   # MNLI's models also predict AX

    python -m fairseq_freelb.glue.submission --glue-bin glue-bin --validate submission.zip

Several checkpoints for a task form an ensemble (mean class probabilities, or
mean scores for STS-B). Each file has the header ``index<TAB>prediction`` and one
row per test example, in test-file order, with the ids of the test file's index
column; labels are as the server expects them (words for MNLI/AX/QNLI/RTE, 0/1
otherwise, a float in [0, 5] for STS-B). Before zipping, the files are checked
against ``<TASK>-bin/index/<split>.index``: file set, headers, row counts, ids
and label sets.
"""

import argparse
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from fairseq_freelb.glue.tasks_spec import STSB_MAX_SCORE, SUBMISSION_FILES, TASKS, GlueTask, get_task

HEADER = "index\tprediction"


class SubmissionError(ValueError):
    """A submission that the GLUE server would reject; the message lists every problem."""


def expected_ids(glue_bin: Path, task: GlueTask, split: str) -> List[str]:
    path = glue_bin / f"{task.name}-bin" / "index" / f"{split}.index"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (preprocess the {task.name} test files first)")
    return path.read_text(encoding="utf-8").splitlines()


def format_predictions(task: GlueTask, predictions) -> List[str]:
    """Server labels: class labels through the label dictionary, or STS-B scores back on 0..5."""
    if task.regression:
        values = np.clip(predictions.scores * task.regression_scale, 0.0, STSB_MAX_SCORE)
        return [f"{v:.3f}" for v in values]
    return [str(label) for label in predictions.labels]


def write_file(path: Path, ids: Sequence[str], labels: Sequence[str]) -> None:
    if len(ids) != len(labels):
        raise SubmissionError(f"{path.name}: {len(labels)} predictions for {len(ids)} test examples")
    path.write_text(HEADER + "\n" + "".join(f"{i}\t{lab}\n" for i, lab in zip(ids, labels)), encoding="utf-8")


def write_submission(glue_bin: Path, checkpoints: Dict[str, List[str]], out: Path, batch_size=32, cpu=False, fp16=False) -> List[Path]:
    from fairseq_freelb.glue.predict import load_ensemble, predict

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for task_name, paths in checkpoints.items():
        task = get_task(task_name)
        data_bin = glue_bin / f"{task.name}-bin"
        loaded = load_ensemble(paths, data_bin, cpu=cpu, fp16=fp16)
        for filename, split in task.submission_files.items():
            ids = expected_ids(glue_bin, task, split)
            predictions = predict(paths, data_bin, split, batch_size, loaded=loaded)
            write_file(out / filename, ids, format_predictions(task, predictions))
            print(f"{filename}: {len(ids)} rows from {task.name} {split} ({len(paths)} checkpoint(s))", flush=True)
            written.append(out / filename)
    return written


def _read_member(source: Path, name: str) -> Optional[str]:
    if source.is_dir():
        path = source / name
        return path.read_text(encoding="utf-8") if path.is_file() else None
    with zipfile.ZipFile(source) as archive:
        return archive.read(name).decode("utf-8") if name in archive.namelist() else None


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
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines = lines[:-1]
        if not lines or lines[0] != HEADER:
            problems.append(f"{name}:1: header must be {HEADER!r}, found {lines[0] if lines else ''!r}")
            continue
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
    if checked == 0:
        problems.append(f"{source}: no submission files")
    return problems


def make_zip(folder: Path, zip_path: Path) -> Path:
    """The files at the top level of the archive, as the server expects."""
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in SUBMISSION_FILES:
            if (folder / name).is_file():
                archive.write(folder / name, arcname=name)
    return zip_path


def parse_checkpoints(specs: Sequence[str]) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for spec in specs:
        if "=" not in spec:
            raise ValueError(f"--checkpoints {spec!r}: expected TASK=path[,path...]")
        name, paths = spec.split("=", 1)
        try:
            task = get_task(name)
        except KeyError as exc:
            raise ValueError(f"--checkpoints {spec!r}: {exc.args[0]}") from None
        out.setdefault(task.name, []).extend(p for p in paths.split(",") if p)
    return out


def _check(problems: List[str], what: Path) -> None:
    if problems:
        raise SubmissionError(f"{what}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fairseq_freelb.glue.submission", description=__doc__.split("\n")[0])
    parser.add_argument("--glue-bin", required=True, help="folder of <TASK>-bin folders (preprocess --out)")
    parser.add_argument("--checkpoints", action="append", default=[],
                        help="TASK=ckpt[,ckpt...]: the model(s) for a task; repeat per task. MNLI's also predict AX")
    parser.add_argument("--out", default="submission", help="submission folder; the zip is <out>.zip")
    parser.add_argument("--zip", default=None, help="zip path (default: <out>.zip)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="accept a partial submission (the server needs all 11 files)")
    parser.add_argument("--validate", default=None, metavar="ZIP_OR_FOLDER", help="only check an existing submission")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--fp16", action="store_true")
    args = parser.parse_args(argv)
    glue_bin = Path(args.glue_bin)
    try:
        if args.validate:
            _check(validate(Path(args.validate), glue_bin, args.allow_missing), Path(args.validate))
            print(f"{args.validate}: valid GLUE submission")
            return 0
        checkpoints = parse_checkpoints(args.checkpoints)
        if not checkpoints:
            raise ValueError("give --checkpoints TASK=path for each task")
        missing = [t for t in TASKS if t not in checkpoints]
        if missing and not args.allow_missing:
            raise ValueError(f"no --checkpoints for {', '.join(missing)} (or pass --allow-missing)")
        out = Path(args.out)
        write_submission(glue_bin, checkpoints, out, args.batch_size, args.cpu, args.fp16)
        _check(validate(out, glue_bin, args.allow_missing), out)
        zip_path = make_zip(out, Path(args.zip) if args.zip else Path(f"{out}.zip"))
        _check(validate(zip_path, glue_bin, args.allow_missing), zip_path)
        print(f"wrote {zip_path} ({len(_members(zip_path))} files); checked: file set, headers, counts, ids, labels")
    except (SubmissionError, ValueError, FileNotFoundError, KeyError) as exc:
        print(f"fairseq_freelb.glue.submission: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

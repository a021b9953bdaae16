"""Reading the GLUE download's TSV files by each task's layout (:mod:`~fairseq_freelb.glue.benchmark_tasks`).

Rows are split on tabs only: quotes inside GLUE sentences (QQP, MNLI) are text,
not TSV quoting. Lines end at LF; a CR before it is dropped, so CRLF files read
the same as LF files. Blank lines at the end of a file end it (many editors add
one); a blank line followed by more rows is a bad row. A row with the wrong
number of columns or an unknown label is reported as ``file:line: reason`` and,
by ``on_bad_row``, stops the run (after every bad row of the file is listed) or
is skipped and listed. Empty sentences are kept. A file without a single
example (0 bytes, or only its header) is refused, naming the file. Bytes that
are not UTF-8 are refused, naming ``file:line`` and the column.
"""

import codecs
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from fairseq_freelb.core.errors import FreeLBError
from fairseq_freelb.glue.benchmark_tasks import STSB_MAX_SCORE, GlueTask, SplitLayout
from fairseq_freelb.text_files import decode_line

logger = logging.getLogger("fairseq_freelb.glue.tsv")

AX_SPLIT = "test_ax"
# Where the standard download (and the gluebenchmark.com one) put the diagnostic set.
AX_CANDIDATES = ("diagnostic/diagnostic.tsv", "AX/diagnostic.tsv", "AX/AX.tsv", "MNLI/diagnostic.tsv")
MAX_LISTED_BAD_ROWS = 20  # in the one-line error; every bad row is logged before it


class GlueFormatError(FreeLBError, ValueError):
    """A GLUE file that does not have its task's layout; the message starts with the file name."""


@dataclass
class Example:
    sentences: Tuple[str, ...]
    label: Optional[str]  # as the file spells it; STS-B: the scaled score as text
    index: Optional[str]


@dataclass
class SplitRows:
    path: Path
    examples: List[Example] = field(default_factory=list)
    rows_in: int = 0
    bad_rows: List[str] = field(default_factory=list)  # "file:line: reason"


def _data_lines(path: Path) -> List[str]:
    """The file's lines without line ends (LF or CRLF) and without trailing blank lines.

    Bytes that are not UTF-8 (a Latin-1 ``é`` saved by an editor) stop the run
    naming ``file:line`` and the column.
    """
    lines = []
    # Binary lines split on LF only, so a stray CR or U+2028 inside a sentence stays text.
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            lines.append(decode_line(raw, path, line_no, GlueFormatError).rstrip("\n").rstrip("\r"))
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def read_split(path: Path, task: GlueTask, layout: SplitLayout, on_bad_row: str = "fail") -> SplitRows:
    """Parse one GLUE TSV file by its layout; bad rows raise or are collected, per ``on_bad_row``.

    Unlabeled (test) rows are never skipped: a submission needs every one of them.
    """
    out = SplitRows(path)
    expected = layout.expected_columns
    lines = _data_lines(path)
    if layout.header is not None:
        if not lines:
            raise GlueFormatError(f"{path}: empty file (expected the header {chr(9).join(layout.header)!r} and examples)")
        _check_header(path, lines[0].split("\t"), layout)
    first = 1 if layout.header is not None else 0
    if len(lines) <= first:
        what = "only a header" if first else "empty"
        raise GlueFormatError(f"{path}: no examples (the file is {what}); {task.name} {layout.split} needs at least one")
    for line_no, line in enumerate(lines[first:], start=first + 1):
        out.rows_in += 1
        example, reason = _parse_row(line.split("\t"), expected, task, layout)
        if example is not None:
            out.examples.append(example)
        else:
            out.bad_rows.append(f"{path}:{line_no}: {reason}")
    if out.bad_rows and (on_bad_row == "fail" or not layout.labeled):
        raise _bad_rows_error(path, out.bad_rows, layout.labeled)
    return out


def _bad_rows_error(path: Path, bad_rows: List[str], labeled: bool) -> GlueFormatError:
    """Every bad row is logged; the error lists the first :data:`MAX_LISTED_BAD_ROWS` on one line."""
    for where in bad_rows:
        logger.error("bad row: %s", where)
    hint = (
        "pass --on-bad-row skip to skip and list such rows"
        if labeled
        else "unlabeled test rows cannot be skipped (the leaderboard needs every one)"
    )
    if len(bad_rows) == 1:
        return GlueFormatError(f"{bad_rows[0]} ({hint})")
    listed = "; ".join("line " + b[len(str(path)) + 1 :] for b in bad_rows[:MAX_LISTED_BAD_ROWS])
    more = f"; and {len(bad_rows) - MAX_LISTED_BAD_ROWS} more (all logged above)" if len(bad_rows) > MAX_LISTED_BAD_ROWS else ""
    return GlueFormatError(f"{path}: {len(bad_rows)} bad rows: {listed}{more} ({hint})")


def _check_header(path: Path, cols: List[str], layout: SplitLayout) -> None:
    want = layout.header
    if len(cols) != len(want):
        raise GlueFormatError(
            f"{path}:1: header has {len(cols)} columns, expected {len(want)}: {chr(9).join(want)!r}"
        )
    used = set(layout.sentence_columns) | {c for c in (layout.label_column, layout.index_column) if c is not None}
    for c in sorted(used):
        if cols[c].strip() != want[c]:
            raise GlueFormatError(f"{path}:1: header column {c % len(want)} is {cols[c]!r}, expected {want[c]!r}")


def _parse_row(cols, expected, task, layout):
    if len(cols) != expected:
        return None, f"expected {expected} tab-separated columns, found {len(cols)}"
    label = None
    if layout.labeled:
        raw = cols[layout.label_column].strip()
        if task.regression:
            try:
                score = float(raw)
            except ValueError:
                return None, f"score {raw!r} is not a number"
            if not 0.0 <= score <= STSB_MAX_SCORE:
                return None, f"score {score} outside [0, {STSB_MAX_SCORE:g}]"
            label = repr(score / task.regression_scale)
        elif raw not in task.labels:
            return None, f"unknown label {raw!r} (expected one of {', '.join(task.labels)})"
        else:
            label = raw
    sentences = tuple(cols[c].strip() for c in layout.sentence_columns)
    index = cols[layout.index_column].strip() if layout.index_column is not None else None
    return Example(sentences, label, index), None


def locate_split_file(glue_dir: Path, task: GlueTask, layout: SplitLayout, ax_file: Optional[str]) -> Optional[Path]:
    if layout.split == AX_SPLIT:
        if ax_file:
            if not Path(ax_file).is_file():
                raise FileNotFoundError(f"--ax-file {ax_file}: no such file")
            return Path(ax_file)
        for candidate in AX_CANDIDATES:
            if (glue_dir / candidate).is_file():
                return glue_dir / candidate
        return None
    path = glue_dir / task.name / layout.filename
    return path if path.is_file() else None


def missing_split_message(glue_dir: Path, task: GlueTask, split: str) -> str:
    """The plain words for an unlabeled split whose file is absent: what is missing and what it costs."""
    files = [name for name, s in task.submission_files.items() if s == split]
    if split == AX_SPLIT:
        where = " or ".join(str(glue_dir / c) for c in AX_CANDIDATES)
        return (f"{task.name}: no diagnostic set (looked for {where}); {task.name}-bin gets no {split}, "
                f"so a submission will lack {', '.join(files)} (give the file with --ax-file)")
    return (f"{glue_dir / task.name / task.layout(split).filename}: not found; {task.name}-bin gets no {split}, "
            f"so a submission will lack {', '.join(files)}")


def read_task(
    task: GlueTask, glue_dir: Path, on_bad_row: str = "fail", ax_file: Optional[str] = None
) -> Dict[str, SplitRows]:
    """Read and validate every file of a task (a missing test file is only warned about)."""
    splits: Dict[str, SplitRows] = {}
    for layout in task.splits:
        path = locate_split_file(glue_dir, task, layout, ax_file)
        if path is None:
            if layout.labeled:
                where = glue_dir / task.name / layout.filename
                raise FileNotFoundError(f"{where}: {task.name} {layout.split} file not found")
            logger.warning(missing_split_message(glue_dir, task, layout.split))
            continue
        splits[layout.split] = read_split(path, task, layout, on_bad_row)
    return splits

"""An output folder built aside and moved into place: shared by ``convert_hf`` and ``export_hf``.

The folder is written into ``.<name>.<pid>.<random>.tmp`` next to ``OUT_DIR`` (same file
system, so the final move is a rename), checked there, and only then swapped in; a run
that fails at any point deletes its temporary folder and leaves ``OUT_DIR`` as it was.
An existing ``OUT_DIR`` is replaced only when it holds nothing but files such a run writes.
"""

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Collection, Iterator, Type


def check_replaceable(out_dir: Path, known_files: Collection[str], what: str, error: Type[Exception]) -> None:
    """Refuse an ``OUT_DIR`` that is a file, or a folder holding files ``what`` (e.g. "a conversion") does not write."""
    if out_dir.exists() and not out_dir.is_dir():
        raise error(f"{out_dir}: exists and is not a folder; give a new or empty folder as OUT_DIR")
    if out_dir.is_dir():
        others = sorted(p.name for p in out_dir.iterdir() if p.name not in known_files)
        if others:
            raise error(
                f"{out_dir}: holds files {what} does not write ({', '.join(others[:5])}); "
                "give a new or empty folder as OUT_DIR"
            )


def make_staging(out_dir: Path, error: Type[Exception]) -> Path:
    """A fresh temporary folder next to ``out_dir`` (same file system, so the final move is a rename)."""
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        # mkdir, not tempfile.mkdtemp: the folder keeps the user's umask (mkdtemp's is 0700).
        staging = parent / f".{out_dir.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        staging.mkdir()
        return staging
    except OSError as exc:
        raise error(f"{parent}: cannot create the output folder here ({exc.strerror})") from None


def swap_into_place(staging: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` (absent, empty, or an earlier run's output) by ``staging``."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.old")
        os.replace(out_dir, old)
    try:
        os.replace(staging, out_dir)
    except OSError:
        if old is not None:
            os.replace(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(out_dir: Path, error: Type[Exception]) -> Iterator[Path]:
    """A staging folder (:func:`make_staging`) that replaces ``out_dir`` when the block succeeds.

    Whatever happens, the staging folder is gone afterwards: moved into place, or deleted.
    """
    staging = make_staging(out_dir, error)
    try:
        yield staging
        swap_into_place(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)

"""Writing a command's outputs safely: the user's umask, aside then moved, one writer at a time, write errors in one line.

Every command that writes data (GLUE and multiple-choice preprocessing,
predictions, evaluation JSON, the GLUE submission) goes through these helpers:

* **Modes.** ``tempfile`` creates folders 0700 and files 0600, whatever the
  umask; a folder or file built under a temporary name and then moved into
  place would keep that mode, and a colleague's job on a shared cluster could
  not read it. :func:`make_temp_dir` and :func:`make_temp_file` give them the
  mode ``mkdir``/``open`` would have given (0777/0666 minus the umask).
* **Aside, then moved.** :func:`written_aside` yields a temporary path beside the
  output and replaces the output with it only when the block succeeds;
  :func:`build_folder_aside` does the same for a folder, and
  :func:`swap_into_place` moves a finished folder over an earlier one.
* **One writer.** :func:`output_lock` holds an exclusive ``flock`` on the file
  ``.<name>.lock`` beside the output (removed when the run ends); a second run
  into the same output stops in one line. While the lock is held, :func:`remove_leftovers` deletes the
  ``.<name>.*.building`` / ``.<name>.*.old`` folders that killed runs left
  (no live run can own them: it would hold the lock).
* **Before the work.** :func:`check_output_file` and :func:`check_output_folder`
  find a missing, read-only or full output location before any model runs.
* **Write errors.** :func:`naming_write_errors` turns a full disk, an exceeded
  quota, a read-only file system or a refused permission into one line naming
  the output (:class:`OutputError`).
"""

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, List, Sequence, TypeVar, Union

from fairseq_freelb.commands import CommandError

PathLike = Union[str, os.PathLike]
T = TypeVar("T")

# errno -> the plain words of the one-line error.
WRITE_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
LEFTOVER_SUFFIXES = (".building", ".old")
PROBE_BYTES = 4096  # written (and synced) by the pre-flight check: a full disk refuses it


class OutputError(CommandError):
    """An output location that cannot be written (missing, read-only, full, taken by another run)."""


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def apply_umask(path: PathLike) -> None:
    """Give ``path`` the mode that ``mkdir`` (folders) or ``open`` (files) gives under the current umask."""
    full = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, full & ~current_umask())


def make_temp_dir(parent: PathLike, prefix: str, suffix: str = "") -> Path:
    """``tempfile.mkdtemp`` in ``parent``, with the umask's mode instead of 0700."""
    path = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
    apply_umask(path)
    return path


def make_temp_file(parent: PathLike, prefix: str, suffix: str = "") -> Path:
    """An empty file from ``tempfile.mkstemp`` in ``parent``, with the umask's mode instead of 0600."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=parent)
    os.close(fd)
    apply_umask(name)
    return Path(name)


def describe_write_error(exc: OSError, output: PathLike) -> str:
    """``<output>: cannot write (<reason>, errno N[: <file>])``; the file is named when it is not the output."""
    reason = WRITE_ERRORS.get(exc.errno, exc.strerror or type(exc).__name__)
    where = f": {exc.filename}" if exc.filename and os.fspath(exc.filename) != os.fspath(output) else ""
    return f"{output}: cannot write ({reason}, errno {exc.errno}{where})"


@contextlib.contextmanager
def naming_write_errors(output: PathLike) -> Iterator[None]:
    """Inside the block, a full disk, quota, read-only file system or permission error is :class:`OutputError`."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in WRITE_ERRORS:
            raise
        raise OutputError(describe_write_error(exc, output)) from None


@contextlib.contextmanager
def written_aside(path: PathLike) -> Iterator[Path]:
    """A temporary file beside ``path`` (umask mode) that replaces ``path`` when the block succeeds.

    On any failure the temporary file is removed and ``path`` is untouched;
    write errors are :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    with naming_write_errors(path):
        tmp = make_temp_file(path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


def swap_into_place(new: PathLike, dest: PathLike) -> None:
    """``new`` becomes ``dest``; an earlier ``dest`` (folder, file or link) is moved aside first and then removed.

    The aside name ``.<dest>.<pid>.old`` is one :func:`remove_leftovers` deletes
    if this run is killed between the two moves.
    """
    new, dest = Path(new), Path(dest)
    old = None
    if dest.exists() or dest.is_symlink():
        old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
        os.replace(dest, old)
    os.replace(new, dest)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()


def build_folder_aside(dest: PathLike, build: Callable[[Path], T]) -> T:
    """``build(folder)`` on a new folder beside ``dest`` (umask mode), which then becomes ``dest``.

    On any failure the new folder is removed and ``dest`` is untouched.
    Returns what ``build`` returned.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    building = make_temp_dir(dest.parent, prefix=f".{dest.name}.", suffix=".building")
    try:
        result = build(building)
        swap_into_place(building, dest)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return result


def write_text_atomic(path: PathLike, text: str) -> None:
    """``path`` holds ``text`` (UTF-8) or is unchanged: written aside and moved into place."""
    with written_aside(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _probe(folder: Path, flag: str, output: Path) -> None:
    """Create, write, sync and remove a small file in ``folder``: a read-only or full file system fails here."""
    try:
        fd, name = tempfile.mkstemp(prefix=".write-check.", dir=folder)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        if exc.errno not in WRITE_ERRORS:
            raise
        raise OutputError(f"{flag} {output}: cannot write in {folder} "
                          f"({WRITE_ERRORS[exc.errno]}, errno {exc.errno})") from None


def check_output_file(path: PathLike, flag: str) -> None:
    """Before the work: ``path`` can be written (its folder exists and takes a new file); refuses in one line."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise OutputError(f"{flag} {path}: is a folder; give the path of the file to write")
    if not folder.exists():
        raise OutputError(f"{flag} {path}: the folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise OutputError(f"{flag} {path}: {folder} is not a folder")
    _probe(folder, flag, path)


def check_output_folder(path: PathLike, flag: str) -> None:
    """Before the work: the folder ``path`` exists (created with its parents if missing) and takes a new file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise OutputError(f"{flag} {path}: a part of the path is a file, not a folder") from None
        if exc.errno not in WRITE_ERRORS:
            raise
        raise OutputError(f"{flag} {path}: cannot create it ({WRITE_ERRORS[exc.errno]}, errno {exc.errno})") from None
    _probe(path, flag, path)


def lock_path(output: PathLike) -> Path:
    output = Path(output)
    return output.parent / f".{output.name}.lock"


@contextlib.contextmanager
def output_lock(output: PathLike, flag: str = "--out") -> Iterator[Path]:
    """Hold an exclusive lock on ``output`` for the block; refuse in one line if another run holds it.

    The lock is ``flock`` on ``.<name>.lock`` beside ``output``, created with the
    umask's mode and holding the holder's pid (for the message). The kernel
    drops the lock when its holder exits, however it exits, so a killed run
    never blocks the next one. The holder removes the file before it lets go;
    a run that locked a file just removed sees that the path no longer leads
    to it and starts again on the new file.
    """
    path = lock_path(output)
    for _ in range(100):
        with naming_write_errors(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise OutputError(f"{flag} {output}: another run (pid {holder}) is writing it now (it holds {path}); "
                              "wait for it to finish, or write elsewhere") from None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(current, os.fstat(fd)):
            break
        os.close(fd)  # locked a file its holder had just removed: try the new one
    else:
        raise OutputError(f"{flag} {output}: could not lock {path}")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield path
    finally:
        try:
            os.unlink(path)  # still holding the lock: nobody else can be using this file now
        except FileNotFoundError:
            pass
        os.close(fd)  # releases the lock


def _size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


def remove_leftovers(output: PathLike, suffixes: Sequence[str] = LEFTOVER_SUFFIXES) -> List[Path]:
    """Delete ``.<name>.*<suffix>`` beside ``output`` (folders or files of interrupted runs); one line if any.

    Call only while holding :func:`output_lock` on ``output``: a run that is
    still alive holds that lock, so whatever it builds cannot be removed here.
    """
    output = Path(output)
    parent = output.parent
    if not parent.is_dir():
        return []
    prefix = f".{output.name}."
    found = sorted(p for p in parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(tuple(suffixes)))
    if not found:
        return []
    size = sum(_size(p) for p in found)
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    print(f"{output}: removed what interrupted runs left beside it ({size / 1e6:.1f} MB): "
          + ", ".join(p.name for p in found), flush=True)
    return found

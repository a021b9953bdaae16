"""``results.json``: every finished run of a multi-seed comparison, with the fingerprint of what produced it.

A run is stored under its setting name and seed together with a *fingerprint*:
a JSON object naming everything that can change its numbers (the task, a
digest of the data, the model, the setting's flags, the fairseq flags, the
schedule, the precision). A stored run is reused only when the fingerprint is
exactly equal. Runs with another fingerprint stay in the file, so switching
back to an earlier grid or data set reuses them, but they never enter a table
of the current one; :meth:`RunStore.explain_stale` says in one line what
differs.

The file is rewritten whole after every run: written to a temporary file in
the same folder, flushed to disk, then moved into place with ``os.replace``.
A kill or a full disk leaves the previous complete file. A file that is not
valid JSON (for example a 0-byte file left by an older version) is refused in
one line that names it. :func:`exclusive` refuses a second command writing the
same store at the same time.
"""

import fcntl
import hashlib
import json
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from fairseq_freelb.commands import CommandError

FORMAT = 2


def fingerprint_digest(fingerprint: dict) -> str:
    """A short stable digest of a fingerprint (canonical JSON, sorted keys)."""
    text = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file's bytes (16 hex digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def folder_digest(folder: Path) -> str:
    """sha256 over every regular file of ``folder`` (relative path and bytes), in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(str(path.relative_to(folder)).encode("utf-8") + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@dataclass
class StoredRun:
    setting: str
    seed: int
    fingerprint: dict
    result: dict

    @property
    def digest(self) -> str:
        return fingerprint_digest(self.fingerprint)

    def to_json(self) -> dict:
        return {"setting": self.setting, "seed": self.seed, "fingerprint": self.fingerprint,
                "fingerprint_digest": self.digest, "result": self.result}


def _legacy_runs(stored: dict) -> List[StoredRun]:
    """The first ``results.json`` layout of the experiment: one protocol and one flags table for every run."""
    protocol, flags = stored.get("protocol", {}), stored.get("flags", {})
    return [StoredRun(run["setting"], int(run["seed"]), {"protocol": protocol, "flags": flags.get(run["setting"])}, run)
            for run in stored.get("runs", [])]


class RunStore:
    """The runs of one ``results.json``; :meth:`find` returns a run only for an identical fingerprint."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.runs: Dict[Tuple[str, int, str], StoredRun] = {}
        self.lock = threading.Lock()
        if not self.path.exists():
            return
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(stored, dict):
                raise ValueError("not a JSON object")
            if "format" not in stored and "protocol" in stored:
                runs = _legacy_runs(stored)
            else:
                runs = [StoredRun(r["setting"], int(r["seed"]), r["fingerprint"], r["result"]) for r in stored["runs"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise CommandError(f"{self.path}: not a readable results file ({type(exc).__name__}: {exc}); it was not "
                               "written completely or by this tool: move it away (its runs will be trained again)")
        for run in runs:
            self.runs[(run.setting, run.seed, run.digest)] = run

    def find(self, setting: str, seed: int, fingerprint: dict) -> Optional[dict]:
        """The stored result of (setting, seed) made with exactly this fingerprint, else None."""
        run = self.runs.get((setting, seed, fingerprint_digest(fingerprint)))
        return None if run is None else run.result

    def stale(self, setting: str, seed: int, fingerprint: dict) -> List[StoredRun]:
        """Stored runs of (setting, seed) made with another fingerprint."""
        digest = fingerprint_digest(fingerprint)
        return [r for (s, seed_, d), r in self.runs.items() if s == setting and seed_ == seed and d != digest]

    def explain_stale(self, wanted: List[Tuple[str, int, dict]]) -> Optional[str]:
        """One line on the stored runs that match a wanted (setting, seed) but not its fingerprint, or None."""
        keys, count = set(), 0
        for setting, seed, fingerprint in wanted:
            if self.find(setting, seed, fingerprint) is not None:
                continue
            for run in self.stale(setting, seed, fingerprint):
                count += 1
                keys |= {k for k in set(fingerprint) | set(run.fingerprint) if fingerprint.get(k) != run.fingerprint.get(k)}
        if not count:
            return None
        return (f"{self.path}: {count} stored run(s) of these settings and seeds were made with another "
                f"{', '.join(sorted(keys))}; they are kept in the file but not reused (trained again)")

    def add(self, setting: str, seed: int, fingerprint: dict, result: dict) -> None:
        """Store one finished run and rewrite the file atomically (thread-safe)."""
        with self.lock:
            run = StoredRun(setting, seed, fingerprint, result)
            self.runs[(setting, seed, run.digest)] = run
            ordered = sorted(self.runs.values(), key=lambda r: (r.setting, r.seed, r.digest))
            write_json_atomic(self.path, {"format": FORMAT, "runs": [r.to_json() for r in ordered]})


def json_text(payload, inline_lists: bool = False) -> str:
    """Indented JSON; with ``inline_lists``, lists of numbers on one line (``splits.json``'s example indices)."""
    text = json.dumps(payload, indent=1)
    if inline_lists:
        text = re.sub(r"\[\s*(-?\d[\d.eE+-]*(?:,\s*-?\d[\d.eE+-]*)*)\s*\]",
                      lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]", text)
    return text + "\n"


def write_json_atomic(path: Path, payload, inline_lists: bool = False) -> None:
    """Write JSON beside ``path`` (the user's umask), flush it to disk, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(json_text(payload, inline_lists))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write text beside ``path``, then move it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def exclusive(folder: Path, flag: str) -> Iterator[None]:
    """Hold ``folder/.lock`` for the duration; a second command on the same folder is refused in one line."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / ".lock"
    handle = open(lock_path, "a")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CommandError(f"{flag} {folder}: another command is running in this folder (it holds {lock_path}); "
                               f"wait for it to finish or use another {flag}") from None
        yield
    finally:
        handle.close()

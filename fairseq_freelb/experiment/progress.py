"""What a person watching ``make demo`` sees while ``fairseq-train`` runs: progress lines and commands to paste.

:class:`TrainingProgress` reads the ``train_inner`` records of fairseq's JSON
log as the subprocess streams them (``--log-format json``: one record every
``--log-interval`` updates, with ``num_updates`` and the interval's mean
``loss`` in bits) and prints one line each time a run crosses another tenth of
its updates: updates done, the last loss, seconds per update and the training
time left. The rate is measured between the first record and the latest, so
the process start-up (loading torch, fairseq and the checkpoint) is not
counted as training time.

:func:`shell_line` writes a command so that it pastes into bash: every
argument goes through :func:`shlex.quote` (``--adam-betas '(0.9,0.98)'``),
environment assignments come first.
"""

import math
import os
import shlex
import time
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Union


def shell_line(argv: Sequence[str], env: Optional[Mapping[str, str]] = None) -> str:
    """``K=V ... argv`` quoted for bash: ``shlex.split`` of the result gives back the same words."""
    assignments = [f"{key}={shlex.quote(str(value))}" for key, value in (env or {}).items()]
    return " ".join(assignments + [shlex.quote(str(arg)) for arg in argv])


def display_path(path: Union[str, Path]) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute.

    A relative path is never returned with a leading ``.`` (so also not for a
    hidden folder such as ``.venv``): fairseq's ``from_pretrained`` reads a data
    path that starts with ``.`` as relative to the model folder.
    """
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    return absolute if relative.startswith(".") else relative


def duration(seconds: float) -> str:
    """``45 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class TrainingProgress:
    """Called with each ``train_inner`` record of one run; echoes a line at every tenth of ``total_updates``."""

    def __init__(self, label: str, total_updates: int, echo: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic, steps: int = 10, finished: str = "training done"):
        self.label, self.total, self.echo, self.clock, self.steps = label, max(1, total_updates), echo, clock, steps
        self.finished = finished
        self.first: Optional[tuple] = None  # (time, updates) of the first record: the rate starts there
        self.shown = 0  # the last tenth echoed

    def __call__(self, record: dict) -> None:
        if "num_updates" not in record:
            return
        done = int(float(record["num_updates"]))
        now = self.clock()
        if self.first is None:
            self.first = (now, done)
        tenth = math.floor(self.steps * done / self.total)
        if tenth <= self.shown and done < self.total:
            return
        self.shown = tenth
        self.echo(self.line(done, record.get("loss"), now))

    def seconds_per_update(self, done: int, now: float) -> Optional[float]:
        start, start_done = self.first
        return (now - start) / (done - start_done) if done > start_done else None

    def line(self, done: int, loss, now: float) -> str:
        parts = [f"  {self.label}: update {done}/{self.total} ({100 * done // self.total}%)"]
        if loss is not None:
            parts.append(f"loss {float(loss):.3f} bits")
        rate = self.seconds_per_update(done, now)
        if rate is not None:
            parts.append(f"{rate:.2f} s/update")
        if done >= self.total:
            parts.append(self.finished)
        elif rate is not None:
            parts.append(f"about {duration(rate * (self.total - done))} of training left")
        return ", ".join(parts)

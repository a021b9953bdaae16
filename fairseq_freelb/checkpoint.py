"""Loading fairseq checkpoints under torch's ``weights_only=True`` default (torch >= 2.6),
and saying in one line why a file could not be loaded.

torch reports a damaged file in ways that point elsewhere: a text file or a
truncated old-format checkpoint is "Weights only load failed ... Unsupported
global" (the unpickler reads text or a cut-off type name as a type), a
truncated zip is an ``OSError: [Errno 22]`` or a miniz error. So the cause is
taken from the file itself (its size, zip structure, first bytes) and the
``weights_only`` opt-in is suggested only when the file is intact and names a
type that really exists but is not allow-listed.
"""

import argparse
import builtins
import os
import pickle
import re
import sys
import zipfile
from pathlib import Path
from typing import Optional

import torch

from fairseq_freelb.core.errors import FreeLBError

TRUST_HINT = (
    "if you trust the file, set TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 to load it with full pickle "
    "(this can run arbitrary code)"
)

# Exactly the non-tensor types that fairseq checkpoints pickle: the legacy
# ``args`` Namespace (every fairseq <= 0.9 checkpoint, roberta.large's model.pt
# among them). Everything else in a checkpoint is dicts, lists, numbers,
# strings and tensors, which torch already allows.
FAIRSEQ_SAFE_GLOBALS = [argparse.Namespace]

ZIP_MAGIC = b"PK\x03\x04"  # torch >= 1.6 saves a zip archive
PICKLE_PROTOCOL_2 = b"\x80"  # older torch saves pickles of protocol >= 2


class CheckpointError(FreeLBError, ValueError):
    """A checkpoint file that cannot be loaded; the message names the file and the cause."""


def allow_fairseq_checkpoints() -> None:
    """Allow-list the types of :data:`FAIRSEQ_SAFE_GLOBALS` for ``torch.load(weights_only=True)``."""
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is not None:  # torch < 2.4 loads with full pickle by default anyway
        add(FAIRSEQ_SAFE_GLOBALS)


def is_weights_only_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's ``weights_only`` unpickler stopping (a refused type *or* bytes it cannot read)."""
    return isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc)


def _torch_load_frames(exc: BaseException):
    """The local variables of each ``torch.load`` / fairseq ``load_checkpoint_to_cpu`` frame ``exc`` passed."""
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        is_torch_load = code.co_name == "load" and code.co_filename.endswith(os.path.join("torch", "serialization.py"))
        if is_torch_load or code.co_name == "load_checkpoint_to_cpu":
            yield tb.tb_frame.f_locals
        tb = tb.tb_next


def is_checkpoint_load_failure(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while ``torch.load`` read a file (any cause)."""
    return is_weights_only_refusal(exc) or any(
        "f" in frame or "path" in frame for frame in _torch_load_frames(exc)
    )


def _path_of(exc: BaseException) -> Optional[str]:
    """The file ``torch.load`` was reading when ``exc`` was raised, when the traceback shows it."""
    found = None
    for frame in _torch_load_frames(exc):
        for name in ("f", "local_path", "path"):
            value = frame.get(name)
            value = getattr(value, "name", value)  # an open file: its name
            if isinstance(value, (str, os.PathLike)):
                found = os.fspath(value)
                break
    return found


def refused_type(exc: BaseException) -> Optional[str]:
    """The dotted name in torch's "Unsupported global: GLOBAL <name> was not an allowed global"."""
    match = re.search(r"Unsupported global: GLOBAL (.+?) was not an allowed global", str(exc), re.S)
    return match.group(1) if match else None


def _exists(dotted: str) -> Optional[bool]:
    """True: ``dotted`` names an object of an imported module; False: it cannot; None: its module is not imported.

    Nothing is imported here: the name comes from a file that may be hostile or damaged.
    """
    parts = dotted.split(".")
    if not all(part.isidentifier() for part in parts):
        return False
    if len(parts) == 1:  # torch names builtins without their module ("print")
        return hasattr(builtins, dotted)
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is not None:
            obj = module
            for attr in parts[cut:]:
                obj = getattr(obj, attr, None)
                if obj is None:
                    return False
            return True
    return None


def _as_text(head: bytes, truncated: bool) -> Optional[str]:
    """``head`` decoded when it is UTF-8 text without NUL bytes (a character cut at the end of a prefix is fine)."""
    if b"\0" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut_at_end = truncated and exc.start >= len(head) - 3
        return head[: exc.start].decode("utf-8") if cut_at_end else None


def describe_file(path) -> Optional[str]:
    """Why ``path`` cannot be a torch checkpoint, judged from the file alone; None when it may be one."""
    path = Path(path)
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "is a directory, not a checkpoint file"
    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes): the save or the copy did not complete"
    with open(path, "rb") as f:
        head = f.read(256)
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return (
                f"truncated or corrupt: a zip archive (torch's checkpoint format) whose end is missing "
                f"({size} bytes); the save or the copy did not complete"
            )
        if not any(name.endswith("data.pkl") for name in names):
            return "a zip archive without data.pkl, not a torch checkpoint"
        return None
    if head.startswith(PICKLE_PROTOCOL_2):
        return None  # an old-format torch file or a plain pickle: only unpickling can tell
    text = _as_text(head, truncated=size > len(head))
    if text is not None:
        first = text.strip().splitlines()[0] if text.strip() else text
        return f"a text file, not a torch checkpoint (it begins {first[:60]!r})"
    return "not a torch checkpoint: neither a zip archive (torch >= 1.6) nor a pickle (older torch)"


def explain_refusal(exc: BaseException, path=None) -> str:
    """One line: the file (``path``, else the one in ``exc``'s traceback) and the real reason it did not load.

    The ``weights_only`` opt-in is given only when the file is intact and names
    a type that exists but is not allow-listed.
    """
    path = path if path is not None else _path_of(exc)
    cause = describe_file(path) if path is not None else None
    if cause is None:
        cause = _cause_from_exception(exc)
    return f"{path}: {cause}" if path is not None else f"checkpoint {cause}"


def _cause_from_exception(exc: BaseException) -> str:
    name = refused_type(exc) if is_weights_only_refusal(exc) else None
    if name is not None:
        exists = _exists(name)
        if exists:
            name = f"builtins.{name}" if "." not in name else name
            return f"contains the type {name}, which is not among the types fairseq checkpoints need; {TRUST_HINT}"
        if exists is None:
            return (
                f"refers to the type {name}, whose module is not imported here: install the package that "
                f"defines it, or, {TRUST_HINT}"
            )
        return f"truncated or corrupt: its pickle names {name!r}, which is no Python type"
    if is_weights_only_refusal(exc):
        operand = re.search(r"Unsupported operand (\d+)", str(exc))
        what = f" (byte {int(operand.group(1))!r} is no pickle instruction)" if operand else ""
        return f"corrupt: not a readable pickle{what}"
    if isinstance(exc, EOFError) or "truncated" in str(exc):
        return "truncated: the pickle ends early; the save or the copy did not complete"
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"torch.load failed ({type(exc).__name__}{': ' + first_line[:120] if first_line else ''})"


def load_checkpoint(path: str, map_location="cpu"):
    """``torch.load`` of a fairseq checkpoint with the allow-list; :class:`CheckpointError` (one line) otherwise."""
    allow_fairseq_checkpoints()
    try:
        return torch.load(path, map_location=map_location)
    except Exception as exc:
        raise CheckpointError(explain_refusal(exc, path=os.fspath(path))) from None


def trained_task(path) -> str:
    """The ``--task`` a fairseq checkpoint was trained with ("" when it does not say), read without its tensors.

    A zip checkpoint (torch >= 1.6) is memory-mapped, so only its pickle is
    read; an old-format file is loaded whole, with :func:`load_checkpoint`'s
    one-line errors.
    """
    allow_fairseq_checkpoints()
    try:
        state = torch.load(path, map_location="cpu", mmap=True)
    except Exception:
        state = load_checkpoint(path)
    cfg = state.get("cfg")
    task = cfg.get("task") if isinstance(cfg, dict) else None
    if task is None and state.get("args") is not None:
        return str(getattr(state["args"], "task", "") or "")
    if isinstance(task, dict):
        return str(task.get("_name", "") or "")
    return str(getattr(task, "_name", "") or "")  # a legacy task's argparse.Namespace

"""One home for how the plugin's commands fail: a single line on stderr, exit code 1.

Every ``python -m fairseq_freelb.*`` command wraps its ``main`` with
:func:`run_command`. An *expected* failure (a bad input file, a missing
checkpoint, a wrong flag value) is a :class:`~fairseq_freelb.core.errors.FreeLBError`
(:class:`CommandError` or another of the plugin's error types) or a
``FileNotFoundError``; it is printed as ``<prog>: error: <message>`` and
nothing else, so the reason is the last line a user sees. A file that
``torch.load`` could not read is expected too: it is explained by
:func:`fairseq_freelb.checkpoint.explain_refusal` (the file and the real cause).
Anything else, a bare ``ValueError`` or ``KeyError`` included, is a bug and
keeps its traceback.
"""

import sys
from typing import Callable, Optional, Sequence, Tuple, Type

from fairseq_freelb import checkpoint
from fairseq_freelb.core.errors import FreeLBError


class CommandError(FreeLBError):
    """An expected failure of a command; its message names the file, line or flag at fault."""


EXPECTED_ERRORS: Tuple[Type[BaseException], ...] = (FreeLBError, FileNotFoundError)


def error_line(prog: str, exc: BaseException) -> str:
    """``prog: error: message`` on one line (the quotes ``str()`` puts around a ``KeyError``'s message are dropped)."""
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    text = " ".join(str(message).split("\n"))
    return f"{prog}: error: {text}"


def run_command(
    prog: str,
    main: Callable[[Optional[Sequence[str]]], int],
    argv: Optional[Sequence[str]] = None,
    errors: Tuple[Type[BaseException], ...] = EXPECTED_ERRORS,
) -> int:
    """Run ``main(argv)``; an exception of ``errors`` becomes one line on stderr and exit code 1."""
    try:
        return main(argv)
    except Exception as exc:  # noqa: BLE001  (re-raised below unless expected)
        if checkpoint.is_checkpoint_load_failure(exc):
            exc = checkpoint.CheckpointError(checkpoint.explain_refusal(exc))
        elif not isinstance(exc, errors):
            raise
        print(error_line(prog, exc), file=sys.stderr)
        return 1

"""The plugin's process-wide settings, installed explicitly by its entry points (never at import).

:func:`install` is called by the criteria and tasks when fairseq builds them,
by ``fairseq-freelb-hydra-train``, and by the commands that load fairseq
checkpoints. It is idempotent. It:

* allow-lists the types fairseq checkpoints pickle for torch's
  ``weights_only`` loading (:mod:`fairseq_freelb.checkpoint`);
* prints an expected error of the plugin (a
  :class:`~fairseq_freelb.core.errors.FreeLBError`: a bad ``--adv-*`` flag,
  data that does not match a checkpoint, ...) or a checkpoint file torch.load
  could not read (refused type, truncated, not a checkpoint) as one line,
  ``fairseq_freelb: error: ...``, when it ends fairseq-train; every other
  uncaught exception keeps its traceback;
* lets ``--user-dir fairseq_freelb`` accept the already-imported package
  (:func:`accept_fairseqs_spelling_of_this_folder`).
"""

import os
import sys

import fairseq

from fairseq_freelb import checkpoint
from fairseq_freelb.core.errors import FreeLBError

_MARK = "_fairseq_freelb"

# This package, found from this file rather than by importing it: its folder (the one above adapters/)
# and its name. Python imports a package before any of its modules, so it is always in sys.modules here.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_NAME = __name__.split(".")[0]


def install() -> None:
    """Install the three settings above (once per process)."""
    checkpoint.allow_fairseq_checkpoints()
    accept_fairseqs_spelling_of_this_folder()
    if not getattr(sys.excepthook, _MARK, False):
        sys.excepthook = one_line_errors(sys.excepthook)
        setattr(sys.excepthook, _MARK, True)


def one_line_errors(previous_hook):
    """An excepthook printing the plugin's expected failures as one line, delegating everything else."""

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, FreeLBError):
            print(f"fairseq_freelb: error: {exc}", file=sys.stderr)
        elif checkpoint.is_checkpoint_load_failure(exc):
            print(f"fairseq_freelb: error: {checkpoint.explain_refusal(exc)}", file=sys.stderr)
        else:
            previous_hook(exc_type, exc, tb)

    return hook


def accept_fairseqs_spelling_of_this_folder() -> None:
    """Let ``--user-dir fairseq_freelb`` accept the package when it is already imported.

    fairseq resolves a relative ``--user-dir`` that does not exist in the
    working directory to ``<fairseq>/../fairseq_freelb`` (not normalised), and
    refuses an already-imported package whose ``__path__`` lacks that exact
    string ("not globally unique"). That happens whenever the plugin is
    imported before fairseq's own ``import_user_module`` runs, e.g. in
    ``fairseq-freelb-hydra-train`` or a script that imports it and then calls
    fairseq's ``cli_main``. Listing fairseq's spelling of this same folder
    makes fairseq log "already imported" instead.
    """
    spelling = os.path.join(os.path.dirname(fairseq.__file__), "..", PACKAGE_NAME)
    path = sys.modules[PACKAGE_NAME].__path__
    if spelling not in path and os.path.isdir(spelling) and os.path.samefile(spelling, PACKAGE_DIR):
        path.append(spelling)

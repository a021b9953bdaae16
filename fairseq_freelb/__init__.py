"""fairseq_freelb: FreeLB and its baselines as a fairseq plugin.

Load it with ``fairseq-train --user-dir fairseq_freelb``; importing the package
registers its criteria and tasks with fairseq and makes fairseq checkpoints
loadable under torch's ``weights_only`` default (:mod:`fairseq_freelb.checkpoint`).
"""

import sys

from fairseq_freelb import checkpoint as _checkpoint
from fairseq_freelb.adapters import criterions, models, tasks  # noqa: F401  (registers with fairseq)
from fairseq_freelb.adapters.config import AdversarialConfigError

__version__ = "0.1.0"

_checkpoint.allow_fairseq_checkpoints()


def _list_fairseqs_spelling_of_this_folder() -> None:
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
    import os

    import fairseq

    spelling = os.path.join(os.path.dirname(fairseq.__file__), "..", __name__)
    if spelling not in __path__ and os.path.isdir(spelling) and os.path.samefile(spelling, __path__[0]):
        __path__.append(spelling)


_list_fairseqs_spelling_of_this_folder()


def _one_line_errors(previous_hook):
    """Print a bad ``--adv-*`` flag, or a checkpoint refused by ``weights_only``, as one line.

    Every other uncaught exception keeps its usual traceback.
    """

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, AdversarialConfigError):
            print(f"fairseq_freelb: error: {exc}", file=sys.stderr)
        elif _checkpoint.is_weights_only_refusal(exc):
            print(f"fairseq_freelb: error: {_checkpoint.explain_refusal(exc)}", file=sys.stderr)
        else:
            previous_hook(exc_type, exc, tb)

    return hook


if not getattr(sys.excepthook, "_fairseq_freelb", False):
    sys.excepthook = _one_line_errors(sys.excepthook)
    sys.excepthook._fairseq_freelb = True

"""fairseq_freelb: FreeLB and its baselines as a fairseq plugin.

Load it with ``fairseq-train --user-dir fairseq_freelb``; importing the package
registers its criteria and tasks with fairseq and makes fairseq checkpoints
loadable under torch's ``weights_only`` default (:mod:`fairseq_freelb.checkpoint`).
"""

import sys

from fairseq_freelb import checkpoint as _checkpoint
from fairseq_freelb import criterions, models, tasks  # noqa: F401  (registers with fairseq)
from fairseq_freelb.config import AdversarialConfigError

__version__ = "0.1.0"

_checkpoint.allow_fairseq_checkpoints()


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

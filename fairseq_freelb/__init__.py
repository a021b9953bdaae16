"""fairseq_freelb: FreeLB and its baselines as a fairseq plugin.

Load it with ``fairseq-train --user-dir fairseq_freelb``. Importing the
package only registers: its criteria, tasks and the ``roberta_hf`` architecture
with fairseq, and the types fairseq checkpoints pickle with torch's
``weights_only`` allow-list. The process-wide handlers (one-line errors for
fairseq-train, fairseq's ``--user-dir`` spelling of this folder) are installed
by the plugin's entry points through :func:`fairseq_freelb.adapters.runtime.install`.

Layout: ``core/`` is the method (perturbation math, the pass primitive, the
adversary and its methods), ``adapters/`` the fairseq glue (config, criteria,
tasks, models, runtime), and the applications sit at the top level (glue, mc,
robustness, convert_hf, demo, experiment). See docs/design.md.
"""

from fairseq_freelb import checkpoint
from fairseq_freelb.adapters import criterions, models, tasks  # noqa: F401  (registers with fairseq)
from fairseq_freelb.glue import ranking_task  # noqa: F401  (registers --task qnli_ranking)
from fairseq_freelb.wsc import criterion as wsc_criterion, task as wsc_task  # noqa: F401  (registers freelb_wsc)
from fairseq_freelb.core.settings import AdversarialConfigError  # noqa: F401  (public: the bad-flag error)

__version__ = "0.1.0"

# Registration with torch, as the imports above register with fairseq: the one
# non-tensor type fairseq checkpoints pickle joins torch's weights_only
# allow-list. It has to happen at import because `fairseq-validate`,
# `fairseq-generate` and `from_pretrained` load a checkpoint right after
# importing --user-dir, before any plugin object exists to call
# adapters.runtime.install(). No handler is replaced here (that is install()'s).
checkpoint.allow_fairseq_checkpoints()

"""fairseq_freelb: FreeLB and its baselines as a fairseq plugin.

Load it with ``fairseq-train --user-dir fairseq_freelb``. Importing the
package only registers: its criteria, tasks and the ``roberta_hf`` architecture
with fairseq (each module that registers one is imported by name below), and
the types fairseq checkpoints pickle with torch's ``weights_only`` allow-list.
The process-wide handlers (one-line errors for fairseq-train, fairseq's
``--user-dir`` spelling of this folder) are installed by the plugin's entry
points through :func:`fairseq_freelb.adapters.runtime.install`.

Layout, in floors whose imports only run down (see docs/design.md):
``core/`` is the method (perturbation math, the pass primitive, the adversary
and its methods; pure torch), ``adapters/`` the generic fairseq plugin
machinery (config, criterion base, task mixin, runtime, the sentence-prediction
criterion and task, the ``roberta_hf`` model), and the applications sit on
top, each owning its fairseq task and criterion (glue, mc, robustness,
convert_hf, demo, experiment).
"""

from fairseq_freelb import checkpoint
# Each module that registers a criterion, task or model with fairseq, which looks them up by name.
from fairseq_freelb.adapters import roberta_hf  # noqa: F401  (--arch roberta_hf)
from fairseq_freelb.adapters import sentence_prediction_criterion  # noqa: F401  (--criterion freelb_sentence_prediction)
from fairseq_freelb.adapters import sentence_prediction_task  # noqa: F401  (--task freelb_sentence_prediction)
from fairseq_freelb.glue import ranking_task  # noqa: F401  (--task qnli_ranking)
from fairseq_freelb.core.errors import AdversarialConfigError, FreeLBError  # noqa: F401  (public: the error types)
from fairseq_freelb.mc import criterion as mc_criterion  # noqa: F401  (--criterion freelb_sentence_ranking)
from fairseq_freelb.mc import sentence_ranking_task  # noqa: F401  (--task freelb_sentence_ranking)
from fairseq_freelb.mc import task as mc_task  # noqa: F401  (--task multiple_choice)
from fairseq_freelb.wsc import criterion as wsc_criterion  # noqa: F401  (--criterion freelb_wsc)
from fairseq_freelb.wsc import task as wsc_task  # noqa: F401  (--task freelb_wsc)

__version__ = "0.1.0"

# Registration with torch, as the imports above register with fairseq: the one
# non-tensor type fairseq checkpoints pickle joins torch's weights_only
# allow-list. It has to happen at import because `fairseq-validate`,
# `fairseq-generate` and `from_pretrained` load a checkpoint right after
# importing --user-dir, before any plugin object exists to call
# adapters.runtime.install(). No handler is replaced here (that is install()'s).
checkpoint.allow_fairseq_checkpoints()

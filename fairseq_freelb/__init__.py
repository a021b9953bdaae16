"""fairseq_freelb: FreeLB and its baselines as a fairseq plugin.

Load it with ``fairseq-train --user-dir fairseq_freelb``. Importing the
package only registers its criteria, tasks and the ``roberta_hf`` architecture
with fairseq; the process-wide settings (one-line errors, fairseq checkpoint
types for ``weights_only`` loading) are installed by the plugin's entry points
through :func:`fairseq_freelb.adapters.runtime.install`.

Layout: ``core/`` is the method (perturbation math, the pass primitive, the
adversary and its methods), ``adapters/`` the fairseq glue (config, criteria,
tasks, models, runtime), and the applications sit at the top level (glue, mc,
robustness, convert_hf, demo, experiment). See docs/design.md.
"""

from fairseq_freelb.adapters import criterions, models, tasks  # noqa: F401  (registers with fairseq)
from fairseq_freelb.core.settings import AdversarialConfigError  # noqa: F401  (public: the bad-flag error)

__version__ = "0.1.0"

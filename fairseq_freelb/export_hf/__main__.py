"""``python -m fairseq_freelb.export_hf``: see :mod:`fairseq_freelb.export_hf.command`."""

import sys

from fairseq_freelb.export_hf.command import run

sys.exit(run())

"""``python -m fairseq_freelb.convert_hf``: see :mod:`fairseq_freelb.convert_hf.command`."""

import sys

from fairseq_freelb.convert_hf.command import run

sys.exit(run())

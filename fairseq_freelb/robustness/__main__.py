"""``python -m fairseq_freelb.robustness``: see :mod:`fairseq_freelb.robustness.driver`."""

import sys

from fairseq_freelb.robustness.driver import main

if __name__ == "__main__":
    sys.exit(main())

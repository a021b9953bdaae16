"""Reading back ``preprocess.json`` (written by ``python -m fairseq_freelb.mc.preprocess``); no fairseq import."""

import json
import logging
import os

logger = logging.getLogger(__name__)


def warn_if_preprocessed_for_other_length(data: str, max_positions: int) -> None:
    """Log when ``data`` was checked at another ``--max-positions`` than the one training uses.

    The task re-encodes every question at its own length (a question that no
    longer fits is then refused there), but the truncation counts of
    ``preprocess.json`` no longer describe the run.
    """
    path = os.path.join(data, "preprocess.json")
    if not os.path.isfile(path):
        return
    with open(path) as handle:
        checked = json.load(handle).get("max_positions")
    if checked is not None and checked != max_positions:
        logger.warning(
            f"{path}: the data was checked at --max-positions {checked}, this run uses {max_positions}; "
            "rerun preprocessing with the training value for its length checks and truncation counts to apply"
        )

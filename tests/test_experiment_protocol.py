"""The held-out protocol on preprocessed GLUE and multiple-choice folders (``--data``), with a stand-in fairseq-train.

The stand-in (:func:`protocol_fixtures.fake_trainer`) prints the log lines of a
run with scores the test chooses, so the splits, the materialized data, the
commands, the rule, resume and the report are checked in seconds; the real
fairseq-train runs are in ``test_experiment.py`` (slow).
"""

import json
import re

import numpy as np
import pytest

from fairseq_freelb.commands import CommandError
from fairseq_freelb.experiment import __main__ as experiment, folder as folders, grids, paper, splitting
from fairseq_freelb.experiment.runs import RunResult
from fairseq_freelb.multiseed import stats
from fairseq_freelb.multiseed.store import RunStore, write_json_atomic
from protocol_fixtures import calls, fake_env, fake_trainer, glue_bin, mc_data, set_env

TINY = ["--arch", "roberta_base", "--encoder-layers", "2", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
        "--encoder-attention-heads", "2"]
A, B = "freelb-k2-a0.01-e0.1-m0.1", "freelb-k2-a0.02-e0.1-m0.1"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol-data")
    return {"glue": glue_bin(root, ["RTE", "MNLI", "STS-B"]), "mc": mc_data(root)}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Run the experiment in-process with the stand-in trainer; returns (run, calls file)."""
    trainer, calls_file = fake_trainer(tmp_path), tmp_path / "calls.jsonl"

    def run(*args, scores=None):
        set_env(monkeypatch, fake_env(trainer, calls_file, scores))
        return experiment.main([str(a) for a in args])

    return run, calls_file


def _sides(workdir):
    return json.loads((workdir / "splits.json").read_text())["sides"]


def test_glue_folder_end_to_end_splits_results_table(data, fake, tmp_path, capsys):
    run, calls_file = fake
    work = tmp_path / "W"
    assert run("--data", data["glue"] / "RTE-bin", "--device", "cpu", "--seeds", "1,2", "--grid", A,
               "--workdir", work, "--", *TINY) == 0
    out = capsys.readouterr().out
    assert re.search(r"estimated total: [\d.]+ min for 4 runs", out)
    assert "no --restore-file: training starts from random weights" in out
    # The sides: disjoint, and with the rest of train they account for every labelled example.
    sides = _sides(work)
    assert set(sides) == {"train", "selection", "heldout"}
    train, selection, heldout = (set(sides[s]["indices"]) for s in ("train", "selection", "heldout"))
    assert not train & selection and train | selection == set(range(40)) and heldout == set(range(16))
    assert sides["selection"]["source_split"] == "train" and sides["heldout"]["source_split"] == "valid"
    assert len(selection) == 4  # 10 % of the 40 training pairs, each premise its own group here
    # The materialized subsets hold exactly those examples, token for token.
    from fairseq.data import indexed_dataset

    (materialized,) = work.glob("data-*")
    for side, subset in (("train", "train"), ("selection", "valid"), ("heldout", "valid1")):
        for name in ("input0", "input1", "label"):
            source = indexed_dataset.MMapIndexedDataset(str(data["glue"] / "RTE-bin" / name / sides[side]["source_split"]))
            written = indexed_dataset.MMapIndexedDataset(str(materialized / name / subset))
            assert len(written) == len(sides[side]["indices"])
            for i, j in enumerate(sides[side]["indices"]):
                assert np.array_equal(written[i], source[j]), (side, name, i)
    # Each run validated on both sides, with the task's flags and the tiny model from after --.
    made = calls(calls_file)
    runs = [c for c in made if "--disable-validation" not in c]
    assert len(runs) == 4 and all(c[c.index("--valid-subset") + 1] == "valid,valid1" for c in runs)
    assert all("--num-classes" in c and c[c.index("--encoder-embed-dim") + 1] == "32" for c in runs)
    results = json.loads((work / "results.json").read_text())
    assert len(results["runs"]) == 4 and {r["setting"] for r in results["runs"]} == {"vanilla", A}
    table = (work / "table.md").read_text()
    assert f"Selected FreeLB setting (by selection-side mean accuracy): **{A}**" in table
    assert "95 % interval" in table and "FreeLB wins on" in table
    assert "RoBERTa 86.60, FreeLB 88.13" in table and "theirs, not measured here" in table
    assert (work / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rule_never_picks_the_held_out_best_setting(data, fake, tmp_path):
    """B is best on held-out and worst on selection: the rule takes A, and the table says FreeLB lost."""
    run, _ = fake
    work = tmp_path / "W"
    scores = {"none": [70, 70], "0.01": [90, 60], "0.02": [50, 95]}
    assert run("--data", data["glue"] / "RTE-bin", "--device", "cpu", "--seeds", "1,2,3", "--grid", f"{A},{B}",
               "--workdir", work, "--", *TINY, scores=scores) == 0
    table = (work / "table.md").read_text()
    assert f"| {A} **(selected)** |" in table and f"| {B} |" in table
    assert "seed 1: -10.00, seed 2: -10.00, seed 3: -10.00; mean -10.00" in table
    assert "FreeLB wins on 0 of 3 seeds" in table


def test_rerun_reuses_only_identical_runs(data, fake, tmp_path, capsys):
    run, calls_file = fake
    work = tmp_path / "W"
    base = ["--data", data["glue"] / "RTE-bin", "--device", "cpu", "--seeds", "1", "--workdir", work]

    def trained():
        return [c for c in calls(calls_file) if "--disable-validation" not in c]

    assert run(*base, "--grid", A, "--", *TINY) == 0
    assert len(trained()) == 2
    assert run(*base, "--grid", A, "--", *TINY) == 0  # the same: nothing trained
    assert len(trained()) == 2 and "2 runs already in" in capsys.readouterr().out
    assert run(*base, "--grid", f"{A},{B}", "--", *TINY) == 0  # a grid point more: only it
    assert [c[c.index("--adv-lr") + 1] for c in trained()[2:]] == ["0.02"]
    assert run(*base, "--grid", A, "--", *TINY, "--dropout", "0.2") == 0  # a fairseq flag: everything again
    assert len(trained()) == 5 and "another fairseq_flags" in capsys.readouterr().out
    assert run(*base, "--grid", A, "--selection-fraction", "0.2", "--", *TINY) == 0  # other splits: again
    assert len(trained()) == 7 and "another data" in capsys.readouterr().out
    stored = json.loads((work / "results.json").read_text())["runs"]
    assert len(stored) == 7  # runs of other fingerprints stay in the file, but never in the table


def test_changed_data_is_not_reused(data, fake, tmp_path, capsys):
    run, calls_file = fake
    other = glue_bin(tmp_path / "other", ["RTE"], seed=5)  # same sizes, other sentences
    args = ["--device", "cpu", "--seeds", "1", "--grid", A, "--workdir", tmp_path / "W", "--", *TINY]
    assert run("--data", data["glue"] / "RTE-bin", *args) == 0
    assert run("--data", other / "RTE-bin", *args) == 0
    assert len([c for c in calls(calls_file) if "--disable-validation" not in c]) == 4
    assert "another data" in capsys.readouterr().out


def test_mnli_groups_by_premise_and_holds_out_mismatched(data, fake, tmp_path):
    run, calls_file = fake
    work = tmp_path / "W"
    assert run("--data", data["glue"] / "MNLI-bin", "--device", "cpu", "--seeds", "1", "--grid", A,
               "--selection-fraction", "0.25", "--workdir", work, "--", *TINY) == 0
    record = json.loads((work / "splits.json").read_text())
    sides = record["sides"]
    assert record["group_by"] == "premise (sentence1)"
    assert sides["heldout_mismatched"]["source_split"] == "valid_mismatched"
    # The fixture repeats 4 premises over half of the 40 training pairs: each stays on one side.
    from fairseq.data import indexed_dataset

    premises = indexed_dataset.MMapIndexedDataset(str(data["glue"] / "MNLI-bin" / "input0" / "train"))
    key = lambda i: tuple(premises[i].tolist())  # noqa: E731
    train_keys = {key(i) for i in sides["train"]["indices"]}
    assert not train_keys & {key(i) for i in sides["selection"]["indices"]}
    assert sides["train"]["groups"] + sides["selection"]["groups"] < 40
    subsets = {c[c.index("--valid-subset") + 1] for c in calls(calls_file) if "--disable-validation" not in c}
    assert subsets == {"valid,valid1,valid2"}
    table = (work / "table.md").read_text()
    assert "held-out mismatched accuracy (mean ± std)" in table and "FreeLB 90.61" in table


def test_regression_task_uses_pearson_and_copies_text_labels(data, fake, tmp_path):
    run, calls_file = fake
    work = tmp_path / "W"
    assert run("--data", data["glue"] / "STS-B-bin", "--device", "cpu", "--seeds", "1", "--grid", A,
               "--selection-from", "dev", "--workdir", work, "--", *TINY) == 0
    sides = _sides(work)
    assert sides["selection"]["source_split"] == sides["heldout"]["source_split"] == "valid"
    assert sorted(sides["selection"]["indices"] + sides["heldout"]["indices"]) == list(range(16))
    (materialized,) = work.glob("data-*")
    source = (data["glue"] / "STS-B-bin" / "label" / "valid.label").read_text().splitlines()
    assert (materialized / "label" / "valid1.label").read_text().splitlines() == [
        source[i] for i in sides["heldout"]["indices"]]
    made = [c for c in calls(calls_file) if "--disable-validation" not in c][0]
    assert "--regression-target" in made and "--report-pearson-and-spearman" in made
    table = (work / "table.md").read_text()
    assert "selection pearson (mean ± std)" in table and "held-out spearman (mean ± std)" in table
    assert "For reference" not in table  # the paper's figures are whole-dev figures: not next to a dev half


def test_multiple_choice_folder(data, fake, tmp_path):
    run, calls_file = fake
    work = tmp_path / "W"
    assert run("--data", data["mc"], "--device", "cpu", "--seeds", "1", "--grid", A, "--workdir", work,
               "--", *TINY) == 0
    record = json.loads((work / "splits.json").read_text())
    assert record["kind"] == "mc" and record["group_by"] == "question stem"
    (materialized,) = work.glob("data-*")
    source = (data["mc"] / "train.jsonl").read_text().splitlines()
    for side, subset in (("train", "train"), ("selection", "valid")):
        assert (materialized / f"{subset}.jsonl").read_text().splitlines() == [
            source[i] for i in record["sides"][side]["indices"]]
    assert (materialized / "valid1.jsonl").read_text() == (data["mc"] / "valid.jsonl").read_text()
    made = [c for c in calls(calls_file) if "--disable-validation" not in c][0]
    assert made[made.index("--task") + 1] == "multiple_choice" and "freelb_sentence_ranking" in made
    assert "held-out accuracy" in (work / "table.md").read_text()


def test_carve_keeps_groups_whole_and_check_sides_refuses_in_one_line():
    keys = ["p1", "p1", "p2", "p3", "p3", "p3", "p4", "p5"]
    rest, part = splitting.carve(keys, 0.25, seed=3)
    assert sorted(rest + part) == list(range(8)) and len(part) >= 2
    assert not {keys[i] for i in rest} & {keys[i] for i in part}
    sides = [splitting.Side("train", "train", (0, 2, 3, 4, 5, 6, 7)), splitting.Side("selection", "train", (1,))]
    with pytest.raises(CommandError, match=r"train: group 'p1' is on both the train and the selection side"):
        splitting.check_sides(sides, {"train": keys})
    with pytest.raises(CommandError, match=r"train: 1 example\(s\) on no side \(first: \[7\]\)"):
        splitting.check_sides([splitting.Side("train", "train", tuple(range(7)))], {"train": keys})
    with pytest.raises(CommandError, match="--selection-fraction 0: the selection side is empty"):
        splitting.make_sides({"train": keys, "valid": ["a"]}, ["valid"], "train", 0.0, 1)


@pytest.mark.parametrize("args, message", [
    (["--group-by", "hypothesis"], "--group-by applies to --data folders"),
    (["--data", "{tmp}"], "neither meta.json (python -m fairseq_freelb.glue.preprocess) nor preprocess.json"),
    (["--data", "{rte}", "--group-by", "movie"], "--group-by movie: RTE groups by first, second, pair, none"),
    (["--data", "{rte}", "--selection-fraction", "1.5"], "--selection-fraction 1.5: must be between 0 and 1"),
    (["--data", "{rte}", "--train-size", "10"], "--train-size, --selection-size and --heldout-size apply to the demo"),
    (["--data", "{rte}", "--grid", "freelb-k1-a0.1-e0.1-m0"], "FreeLB needs K >= 2 passes"),
    (["--data", "{rte}", "--restore-file", "{tmp}/nope.pt"], "nope.pt: no such file"),
    (["--data", "{rte}", "--preset", "quick"], "--preset quick names the demo's task; with --data the task is"),
])
def test_bad_inputs_get_one_line(data, tmp_path, args, message):
    args = [a.format(tmp=tmp_path, rte=data["glue"] / "RTE-bin") for a in args]
    with pytest.raises(CommandError, match=re.escape(message)):
        experiment.main(["--device", "cpu", "--workdir", str(tmp_path / "W"), *args])


def test_checkpoint_of_another_dictionary_is_refused(data, tmp_path):
    import torch

    state = {"cfg": {"model": {"_name": "roberta_base", "encoder_layers": 2, "encoder_embed_dim": 8,
                               "max_positions": 512}},
             "model": {"encoder.sentence_encoder.embed_tokens.weight": torch.zeros(10, 8)}}
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(CommandError, match=r"its token embedding has 10 rows, the data's .*gives \d+"):
        experiment.main(["--device", "cpu", "--workdir", str(tmp_path / "W"), "--data",
                         str(data["glue"] / "RTE-bin"), "--restore-file", str(tmp_path)])


def test_store_reuses_equal_fingerprints_only_and_names_a_corrupt_file(tmp_path):
    path = tmp_path / "results.json"
    store = RunStore(path)
    result = RunResult("vanilla", 1, [80.0], [81.0], 10, 0.5, 30.0).to_json()
    store.add("vanilla", 1, {"data": "abc", "flags": ["--x"]}, result)
    again = RunStore(path)
    assert again.find("vanilla", 1, {"flags": ["--x"], "data": "abc"}) == result  # key order is irrelevant
    assert again.find("vanilla", 1, {"data": "abd", "flags": ["--x"]}) is None
    assert "another data" in again.explain_stale([("vanilla", 1, {"data": "abd", "flags": ["--x"]})])
    path.write_text("")  # what an in-place write left on a full disk
    with pytest.raises(CommandError, match=re.escape(f"{path}: not a readable results file")):
        RunStore(path)


def test_store_writes_aside_so_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json_atomic(path, {"format": 2, "runs": []})
    before = path.read_text()

    def full_disk(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full_disk)
    with pytest.raises(OSError):
        RunStore(path).add("vanilla", 1, {}, {"x": 1})
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_first_results_layout_is_read_and_reused(tmp_path):
    """results.json of the first layout (one protocol for every run) keeps its runs for the same protocol."""
    protocol = {"epochs": 4, "digest": "abc"}
    run = RunResult("vanilla", 1, [80.0], [81.0], 10, 0.5, 30.0).to_json()
    (tmp_path / "results.json").write_text(json.dumps({"protocol": protocol, "flags": {"vanilla": "--adv-method none"},
                                                       "runs": [run]}))
    store = RunStore(tmp_path / "results.json")
    assert store.find("vanilla", 1, {"protocol": protocol, "flags": "--adv-method none"}) == run


def test_paired_difference_interval_and_wins():
    paired = stats.paired([1, 2, 3, 4], [81.0, 80.0, 82.0, 79.0], [80.0, 80.0, 80.0, 80.0])
    assert paired.differences == [1.0, 0.0, 2.0, -1.0] and paired.mean == pytest.approx(0.5)
    half = 3.182446305284263 * paired.std / 2  # t(0.975, 3) * std / sqrt(4)
    assert (paired.low, paired.high) == pytest.approx((0.5 - half, 0.5 + half))
    assert (paired.wins, paired.ties) == (2, 1)
    assert stats.paired([1], [81.0], [80.0]).interval_text == "n/a (one seed)"


def test_table7_grid_agrees_with_the_launch_scripts():
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[1] / "examples" / "roberta_glue"
    for task, row in paper.TABLE7.items():
        text = (scripts / f"{task.replace('-', '').lower()}.sh").read_text()
        values = dict(re.findall(r"^(TABLE7_EPS|TABLE7_ALPHA|TABLE7_M|OFFICIAL_INIT_MAG)=([\d.]+)", text, re.M))
        assert (float(values["TABLE7_EPS"]), float(values["TABLE7_ALPHA"]), int(values["TABLE7_M"]),
                float(values["OFFICIAL_INIT_MAG"])) == tuple(row), task
        assert re.search(rf"BSZ=\${{BSZ:-{paper.RECIPE[task].batch_size}}}", text), task
    rte = grids.default_grid("RTE", "glue")
    assert [s.name for s in rte] == ["freelb-k4-a0.03-e0.15-m0.16", "freelb-k4-a0.015-e0.075-m0.08",
                                     "freelb-k4-a0.06-e0.3-m0.32"]
    assert rte[0].flags[rte[0].flags.index("--adv-steps") + 1] == "4" and rte[0].passes == 4
    pgd, freeat = grids.baselines(["pgd", "freeat"], rte[0], demo=False)
    assert (pgd.passes, freeat.passes, freeat.updates_per_batch) == (4, 4, 4)
    assert grids.parse("freelb-k3-a0.03-e0.15-m0.1").name == "freelb-k3-a0.03-e0.15-m0.1"


def test_folder_metadata(data):
    rte = folders.read_folder(data["glue"] / "RTE-bin")
    assert (rte.kind, rte.task, rte.metrics, rte.num_classes) == ("glue", "RTE", ("accuracy",), 2)
    assert rte.counts == {"train": 40, "valid": 16} and rte.unused == {"test": 8}
    mnli = folders.read_folder(data["glue"] / "MNLI-bin")
    assert mnli.dev_splits == ("valid", "valid_mismatched") and mnli.num_classes == 3
    stsb = folders.read_folder(data["glue"] / "STS-B-bin")
    assert stsb.metrics == ("pearson", "spearman") and "--regression-target" in stsb.metric_flags
    mc = folders.read_folder(data["mc"])
    assert (mc.kind, mc.metrics, mc.counts) == ("mc", ("accuracy",), {"train": 30, "valid": 12})


def test_cuda_precision_flags(data, tmp_path):
    """On CUDA: --fp16, or --amp --amp-dtype bf16 with --bf16 (the GPU path itself needs a GPU to run)."""
    from fairseq_freelb.experiment.folder_command import train_command
    from fairseq_freelb.experiment.runs import VANILLA, Schedule

    folder = folders.read_folder(data["glue"] / "RTE-bin")
    common = (folder, tmp_path, 36, ["valid", "valid1"], (), VANILLA, 1, Schedule(2, 8, 1e-5))
    cpu = train_command(*common, "cpu", "fp16", [], tmp_path)
    fp16 = train_command(*common, "cuda", "fp16", [], tmp_path)
    bf16 = train_command(*common, "cuda", "bf16", ["--max-epoch", "1"], tmp_path)
    assert "--cpu" in cpu and "--fp16" not in cpu
    assert "--fp16" in fp16 and "--cpu" not in fp16
    assert bf16[bf16.index("--amp-dtype") - 1:bf16.index("--amp-dtype") + 2] == ["--amp", "--amp-dtype", "bf16"]
    assert bf16[-2:] == ["--max-epoch", "1"]  # the user's flags come last
    updates = int(fp16[fp16.index("--max-update") + 1])
    assert updates == 2 * 5 and fp16[fp16.index("--warmup-updates") + 1] == "1"  # 36 examples / 8 = 5 batches

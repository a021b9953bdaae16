"""examples/hf_glue/run_glue.py: --help, a real-MiniLM run on GLUE fixture files, label order, recipes.

The fixture files have the official layouts (tests/glue_fixtures.py). The
leaderboard file is checked twice: by the package's submission rules, and
line by line against the test file's own index column, read here directly.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from glue_fixtures import make_glue_dir
from hf_fixtures import extract_minilm, make_tiny_bert

pytest.importorskip("accelerate")

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "hf_glue" / "run_glue.py"
FAST = ["--use_cpu", "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true",
        "--per_device_train_batch_size", "8", "--adv-steps", "2", "--adv-lr", "0.1", "--adv-init-mag", "0.1"]


def run_glue():
    spec = importlib.util.spec_from_file_location("run_glue", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("glue")
    make_glue_dir(root)
    return root


def test_help_documents_the_script():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for text in ("GLUE with FreeLB on any Hugging Face checkpoint", "--glue_dir", "--recipe", "--adv-steps",
                 "albert-xxlarge-v2", "--per_device_train_batch_size"):
        assert text in proc.stdout, text


def index_column(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[0] for line in lines[1:]]


def check_leaderboard_file(path: Path, test_tsv: Path, labels):
    from fairseq_freelb.glue import submission
    from fairseq_freelb.glue.benchmark_tasks import get_task

    task = get_task(path.stem)
    ids = index_column(test_tsv)
    assert submission.check_file(path.name, path.read_text(encoding="utf-8"), task, "test", ids) == []
    lines = path.read_bytes().decode("utf-8").split("\n")
    assert lines[0] == "index\tprediction" and lines[-1] == ""
    rows = [line.split("\t") for line in lines[1:-1]]
    assert [r[0] for r in rows] == ids
    for _, prediction in rows:
        assert prediction in labels if labels else 0.0 <= float(prediction) <= 5.0


@pytest.mark.slow
def test_real_minilm_on_rte_writes_a_valid_leaderboard_file(glue_dir, tmp_path):
    minilm = extract_minilm(tmp_path / "minilm")
    out = tmp_path / "out"
    assert run_glue().main(["--task", "RTE", "--glue_dir", str(glue_dir), "--model_name_or_path", str(minilm),
                            "--output_dir", str(out), "--max_steps", "2", *FAST]) == 0
    check_leaderboard_file(out / "submission" / "RTE.tsv", glue_dir / "RTE" / "test.tsv",
                           {"entailment", "not_entailment"})
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "entailment", "1": "not_entailment"}
    assert config["label2id"] == {"entailment": 0, "not_entailment": 1}


def test_regression_task_writes_scores_on_the_server_scale(glue_dir, tmp_path):
    model = make_tiny_bert(tmp_path / "bert", masked_lm=False)
    out = tmp_path / "out"
    assert run_glue().main(["--task", "sts-b", "--glue_dir", str(glue_dir), "--model_name_or_path", str(model),
                            "--output_dir", str(out), "--max_steps", "1", *FAST]) == 0
    check_leaderboard_file(out / "submission" / "STS-B.tsv", glue_dir / "STS-B" / "test.tsv", None)


def test_a_checkpoint_with_other_label_order_is_refused(glue_dir, tmp_path):
    from fairseq_freelb.commands import CommandError

    model = make_tiny_bert(tmp_path / "bert", masked_lm=False)
    config = json.loads((model / "config.json").read_text())
    config["id2label"] = {"0": "not_entailment", "1": "entailment"}
    config["label2id"] = {"not_entailment": 0, "entailment": 1}
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(CommandError, match=r"its classes are labels \['not_entailment', 'entailment'\], RTE's are"):
        run_glue().main(["--task", "RTE", "--glue_dir", str(glue_dir), "--model_name_or_path", str(model),
                         "--output_dir", str(tmp_path / "out"), *FAST])


def test_recipes_name_their_source_and_reach_the_arguments(glue_dir, tmp_path):
    module = run_glue()
    glue, adversarial, training = module.parse(["--task", "RTE", "--glue_dir", str(glue_dir), "--model_name_or_path",
                                                "x", "--recipe", "albert-xxlarge-v2", "--output_dir", str(tmp_path),
                                                "--use_cpu", "--learning_rate", "1e-5"])
    # launch/run_glue.sh: runexp RTE ... 1e-1 0 0 3 3e-5 32 1 0.1 0.1 800 200 42 1e-2
    assert (adversarial.adv_lr, adversarial.adv_steps, adversarial.adv_init_mag) == (0.1, 3, 0.0)
    assert (training.per_device_train_batch_size, training.max_steps, training.warmup_steps) == (32, 800, 200)
    assert glue.max_seq_length == 512 and glue.attention_dropout == 0.1
    assert training.learning_rate == 1e-5  # a flag given on the command line wins over the recipe's 3e-5
    assert training.do_train and training.do_eval and training.do_predict
    recipes = (REPO / "examples" / "hf_glue" / "recipes.py").read_text()
    assert "zhuchen03/FreeLB" in recipes and "Devlin et al. 2019" in recipes

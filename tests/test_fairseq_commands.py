"""fairseq's own commands with the plugin, as the README shows them: tensorboard scalars, hydra overrides on a
config in the style of fairseq's RoBERTa fine-tuning configs, and the full fairseq-validate command."""

import re
import shlex
import struct
from pathlib import Path

import pytest
import torch

from fairseq_freelb import hydra_train
from utils import BIN, TINY_ROBERTA, fairseq_train_cmd, run

REPO = Path(__file__).resolve().parents[1]
FREELB = ["--adv-steps", "2", "--adv-lr", "0.1", "--adv-init-mag", "0.1", "--max-epoch", "1"]


def test_plugin_criterion_overrides_become_force_adds():
    fields = hydra_train.plugin_criterion_fields()
    assert {"adv_steps", "adv_lr", "adv_method", "yopo_inner_steps", "classification_head_name"} <= fields
    argv = ["--config-name", "rte", "task.data=RTE-bin", "criterion._name=freelb_sentence_prediction",
            "criterion.adv_steps=3", "+criterion.adv_lr=0.03", "++criterion.adv_init_mag=0.1", "~criterion.adv_max_norm",
            "criterion.unknown_field=1", "optimization.adv_steps=2"]
    assert hydra_train.force_plugin_overrides(argv, fields) == [
        "--config-name", "rte", "task.data=RTE-bin", "criterion._name=freelb_sentence_prediction",
        "++criterion.adv_steps=3", "+criterion.adv_lr=0.03", "++criterion.adv_init_mag=0.1", "~criterion.adv_max_norm",
        "criterion.unknown_field=1", "optimization.adv_steps=2"]


def tensorboard_tags(path: Path) -> set:
    """Scalar tags of one tensorboard event file (TFRecord: length, crc, Event proto, crc)."""
    from tensorboardX.proto import event_pb2

    data, i, tags = path.read_bytes(), 0, set()
    while i < len(data):
        (length,) = struct.unpack("<Q", data[i:i + 8])
        event = event_pb2.Event()
        event.ParseFromString(data[i + 12:i + 12 + length])
        tags |= {value.tag for value in event.summary.value}
        i += 12 + length + 4
    return tags


@pytest.mark.slow
def test_tensorboard_logdir_records_the_adversary_meters(tmp_path, sp_data):
    logdir = tmp_path / "tb"
    proc = run(fairseq_train_cmd(sp_data() / "data-bin", tmp_path / "ck", [*FREELB, "--tensorboard-logdir", str(logdir)]),
               cwd=tmp_path)
    assert "tensorboard not found" not in proc.stdout + proc.stderr
    assert "Please install tensorboardX" not in proc.stdout + proc.stderr
    for subset in ("train_inner", "train"):
        files = list((logdir / subset).glob("events.out.tfevents.*"))
        assert len(files) == 1, subset
        assert {"adv_loss_init", "adv_loss_last", "adv_delta_norm", "loss"} <= tensorboard_tags(files[0]), subset


# The layout of fairseq's examples/roberta/config/finetuning/*.yaml: no defaults list, and a criterion node that
# names fairseq's own criterion, in struct mode. Values shrunk for a tiny CPU run.
RTE_STYLE = """\
# @package _group_

common:
  cpu: true
  log_format: simple
  log_interval: 1
  seed: 1

task:
  _name: sentence_prediction
  data: ???
  init_token: 0
  separator_token: 2
  num_classes: 2
  max_positions: 64

checkpoint:
  save_dir: {save_dir}
  no_epoch_checkpoints: true
  best_checkpoint_metric: accuracy
  maximize_best_checkpoint_metric: true

criterion:
  _name: sentence_prediction

dataset:
  batch_size: 16
  required_batch_size_multiple: 1
  num_workers: 0

optimizer:
  _name: adam
  weight_decay: 0.1
  adam_betas: (0.9,0.98)
  adam_eps: 1e-06

lr_scheduler:
  _name: polynomial_decay
  warmup_updates: 1

optimization:
  clip_norm: 0.0
  lr: [0.001]
  max_update: 4
  max_epoch: 1

model:
  _name: roberta_base
  encoder_layers: 2
  encoder_embed_dim: 32
  encoder_ffn_embed_dim: 64
  encoder_attention_heads: 2
  max_positions: 64
"""


def readme_hydra_overrides() -> list:
    """The criterion overrides of the README's hydra example."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"```\n(fairseq-freelb-hydra-train .*?)```", text, re.S).group(1)
    return [w for w in shlex.split(block.replace("\\\n", " ")) if w.startswith("criterion")]


@pytest.mark.slow
def test_readme_hydra_overrides_on_a_roberta_finetuning_style_config(tmp_path, sp_data):
    """`criterion.adv_steps=3` used to fail on such a config with "Key 'adv_steps' is not in struct"."""
    overrides = readme_hydra_overrides()
    assert overrides == ["criterion._name=freelb_sentence_prediction", "criterion.adv_steps=3", "criterion.adv_lr=0.03"]
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "rte.yaml").write_text(RTE_STYLE.format(save_dir=tmp_path / "ck"))
    proc = run([str(BIN / "fairseq-freelb-hydra-train"), "--config-dir", str(conf), "--config-name", "rte",
                f"task.data={sp_data() / 'data-bin'}", *overrides], cwd=tmp_path)
    cfg = torch.load(tmp_path / "ck" / "checkpoint_last.pt", map_location="cpu", weights_only=False)["cfg"]["criterion"]
    assert cfg["_name"] == "freelb_sentence_prediction" and cfg["adv_steps"] == 3 and cfg["adv_lr"] == 0.03
    assert "adv_loss_last" in proc.stdout + proc.stderr


def documented_validate_command() -> str:
    text = (REPO / "docs" / "errors.md").read_text()
    return re.search(r"```\n(fairseq-validate .*?)```", text, re.S).group(1).replace("\\\n", " ")


@pytest.mark.slow
def test_documented_fairseq_validate_command_and_the_error_without_criterion(tmp_path, sp_data):
    data = sp_data() / "data-bin"
    run(fairseq_train_cmd(data, tmp_path / "checkpoints", FREELB), cwd=tmp_path)
    readme = (REPO / "README.md").read_text()
    command = documented_validate_command()
    assert " ".join(command.split()) in " ".join(readme.replace("\\\n", " ").split())  # the README shows the same
    words = [str(data) if w == "DATA-bin" else w for w in shlex.split(command)]
    assert {"--task", "--criterion", "--required-batch-size-multiple", "--valid-subset"} <= set(words)
    proc = run([str(BIN / words[0]), *words[1:], "--cpu"], cwd=tmp_path)
    assert "valid on 'valid' subset" in proc.stdout + proc.stderr and "accuracy" in proc.stdout + proc.stderr

    # Without --criterion: fairseq's own error, which docs/errors.md names with the flag to add.
    i = words.index("--criterion")
    failed = run([str(BIN / words[0]), *words[1:i], *words[i + 2:], "--cpu"], cwd=tmp_path, check=False)
    error = "omegaconf.errors.InterpolationKeyError: Interpolation key 'criterion.classification_head_name' not found"
    assert failed.returncode == 1 and error in failed.stderr.splitlines()
    row = next(line for line in (REPO / "docs" / "errors.md").read_text().splitlines() if line.startswith("| `--criterion` |"))
    assert f"`{error}`" in row and "`--criterion freelb_sentence_prediction`" in row

"""Real `fairseq-train` / `fairseq-validate` runs with the plugin, from a directory outside the repo."""

import pytest
import torch

from utils import BIN, fairseq_train_cmd, run

pytestmark = pytest.mark.slow

FREELB = ["--adv-steps", "3", "--adv-lr", "0.1", "--adv-init-mag", "0.1", "--adv-max-norm", "0.5"]


def train(tmp_path, data_root, extra=(), num_classes=2, name="ck", check=True):
    save_dir = tmp_path / name
    cmd = fairseq_train_cmd(data_root / "data-bin", save_dir, extra, num_classes=num_classes)
    # cwd outside the repo: --user-dir fairseq_freelb must resolve to the installed package.
    return save_dir, run(cmd, cwd=tmp_path, check=check)


def train_log_value(stdout, key):
    lines = [l for l in stdout.splitlines() if "| train |" in l]
    assert lines, stdout[-2000:]
    fields = lines[-1].split(" | ")
    return float(next(f.split()[1] for f in fields if f.startswith(key + " ")))


def validate(data_root, checkpoint, tmp_path, extra=()):
    cmd = [str(BIN / "fairseq-validate"), str(data_root / "data-bin"), "--user-dir", "fairseq_freelb",
           "--task", "sentence_prediction", "--criterion", "freelb_sentence_prediction",
           "--path", str(checkpoint), "--batch-size", "16", "--cpu",
           "--valid-subset", "valid", *extra]
    return run(cmd, cwd=tmp_path)


@pytest.mark.parametrize(
    "num_classes,regression",
    [(2, False), (3, False), (1, True)],
    ids=["2-classes", "3-classes", "regression"],
)
def test_train_save_reload_evaluate(tmp_path, sp_data, num_classes, regression):
    data = sp_data(max(num_classes, 2) if not regression else 1, regression)
    extra = FREELB + (["--regression-target", "--best-checkpoint-metric", "loss"] if regression else [])
    save_dir, proc = train(tmp_path, data, extra, num_classes=num_classes)
    for key in ("adv_loss_init", "adv_loss_last", "adv_delta_norm"):
        assert torch.isfinite(torch.tensor(train_log_value(proc.stdout, key)))
    assert 0 < train_log_value(proc.stdout, "adv_delta_norm") <= 0.5 + 1e-4  # inside the eps ball
    assert (save_dir / "checkpoint_best.pt").exists()
    proc = validate(data, save_dir / "checkpoint_best.pt", tmp_path, ["--regression-target"] if regression else [])
    out = proc.stdout + proc.stderr
    assert "valid on 'valid' subset" in out and "loss" in out
    if not regression:
        assert "accuracy" in out


def test_restore_file_fine_tunes_from_a_fairseq_checkpoint(tmp_path, sp_data):
    """--restore-file is how every RoBERTa recipe starts from model.pt; it must load under torch 2.13."""
    save_dir, _ = train(tmp_path, sp_data(), ["--adv-method", "none", "--max-epoch", "1"], name="pretrained")
    extra = FREELB + ["--restore-file", str(save_dir / "checkpoint_last.pt"), "--reset-optimizer",
                      "--reset-dataloader", "--reset-meters", "--max-epoch", "1"]
    _, proc = train(tmp_path, sp_data(), extra, name="finetuned")
    assert "Loaded checkpoint" in proc.stdout + proc.stderr


def test_amp_bf16_trains_and_validates_on_cpu(tmp_path, sp_data):
    """``--amp --amp-dtype bf16``: the plugin's passes and validation under CPU bf16 autocast, finite losses."""
    _, proc = train(tmp_path, sp_data(), FREELB + ["--amp", "--amp-dtype", "bf16", "--max-epoch", "1"])
    for key in ("loss", "adv_loss_init", "adv_loss_last", "adv_delta_norm"):
        assert torch.isfinite(torch.tensor(train_log_value(proc.stdout, key))), key
    valid = [l for l in proc.stdout.splitlines() if "| valid |" in l]
    assert valid and "loss" in valid[-1]


def test_freeat_warm_up_is_plain_fine_tuning(tmp_path, sp_data):
    """With --adv-begin-update 3, the first three batches take one plain update each; replays start after."""
    flags = ["--adv-method", "freeat", "--adv-steps", "2", "--adv-lr", "0.1", "--adv-init-mag", "0.1",
             "--adv-begin-update", "3", "--max-epoch", "1"]
    _, proc = train(tmp_path, sp_data(), flags)
    # 64 examples, batches of 16: 3 warm-up updates, then the last batch replayed twice
    assert train_log_value(proc.stdout, "num_updates") == 5


def test_validation_that_would_drop_examples_stops_naming_the_flag(tmp_path):
    from utils import make_sentence_prediction_data

    make_sentence_prediction_data(tmp_path / "d30", n_train=64, n_valid=30)
    save_dir, proc = train(tmp_path, tmp_path / "d30", ["--adv-method", "none", "--max-epoch", "1"], check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "fairseq_freelb: error: valid: the batches cover 24 of 30 examples; fairseq drops a last batch that is not a "
        "multiple of --required-batch-size-multiple (default 8): pass --required-batch-size-multiple 1"
    )
    assert not list(save_dir.glob("*.pt"))
    _, proc = train(tmp_path, tmp_path / "d30", ["--adv-method", "none", "--max-epoch", "1",
                                                 "--required-batch-size-multiple", "1"], name="ok")
    assert "valid on 'valid' subset" in proc.stdout + proc.stderr


def test_memory_efficient_fp16_and_amp_run_without_nan(tmp_path, sp_data):
    for flag in ("--memory-efficient-fp16", "--amp"):
        for method in ("freelb", "pgd"):
            _, proc = train(tmp_path, sp_data(), FREELB + [flag, "--adv-method", method, "--max-epoch", "1"],
                            name=f"ck{flag}{method}")
            for key in ("loss", "adv_loss_last", "adv_delta_norm"):
                assert torch.isfinite(torch.tensor(train_log_value(proc.stdout, key))), (flag, method, key)


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--adv-steps", "0"], "fairseq_freelb: error: --adv-steps must be >= 1, got 0"),
        (["--adv-max-norm", "-0.5"], "fairseq_freelb: error: --adv-max-norm must be >= 0, got -0.5"),
        (["--adv-method", "freeat", "--adv-steps", "2", "--update-freq", "2"],
         "fairseq_freelb: error: --adv-method freeat needs --update-freq 1 (each replay is one update), got --update-freq 2"),
        (["--adv-method", "freeat", "--adv-steps", "2", "--train-subset", "valid"],
         "fairseq_freelb: error: --adv-method freeat replays the batches of --adv-train-subset train, but --train-subset "
         "is valid; set --adv-train-subset valid"),
        (["--amp-dtype", "bf16"], "fairseq_freelb: error: --amp-dtype bf16 needs --amp (mixed precision with bf16 autocast)"),
    ],
    ids=["adv-steps", "adv-max-norm", "freeat-update-freq", "freeat-train-subset", "bf16-without-amp"],
)
def test_bad_flag_is_one_line_and_nothing_is_trained(tmp_path, sp_data, extra, message):
    save_dir, proc = train(tmp_path, sp_data(), extra, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == message
    assert "Traceback" not in proc.stderr
    assert not list(save_dir.glob("*.pt"))


def test_criterion_refuses_a_task_it_cannot_serve(tmp_path, sp_data):
    data = sp_data()
    cmd = [str(BIN / "fairseq-train"), str(data / "data-bin" / "input0"), "--user-dir", "fairseq_freelb",
           "--task", "masked_lm", "--criterion", "freelb_sentence_prediction", "--arch", "roberta_base",
           "--encoder-layers", "1", "--encoder-embed-dim", "16", "--encoder-ffn-embed-dim", "16",
           "--encoder-attention-heads", "1", "--cpu", "--max-update", "1", "--save-dir", str(tmp_path / "ck"),
           "--optimizer", "adam", "--lr", "1e-3", "--batch-size", "4"]
    proc = run(cmd, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("fairseq_freelb: error: --criterion freelb_sentence_prediction cannot serve --task masked_lm")
    assert not list((tmp_path / "ck").glob("*.pt"))


def _params(checkpoint):
    from fairseq_freelb.adapters import runtime

    runtime.install()  # allow-lists fairseq checkpoint types

    return torch.load(checkpoint, map_location="cpu")["model"]


def _assert_same_model(a, b):
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], rtol=1e-6, atol=1e-7, msg=k)


@pytest.mark.parametrize(
    "method_flags,stop_at",
    [
        (["--adv-method", "freeat", "--adv-steps", "2", "--adv-lr", "0.1", "--adv-init-mag", "0.1"], 3),
        (FREELB + ["--adv-begin-update", "3"], 2),
        (["--adv-method", "freeat", "--adv-steps", "2", "--adv-lr", "0.1", "--adv-init-mag", "0.1",
          "--adv-begin-update", "3"], 4),
    ],
    ids=["freeat-mid-replay", "freelb-before-warmup-ends", "freeat-warmup-then-mid-replay"],
)
def test_resume_from_checkpoint_last_continues_exactly(tmp_path, sp_data, method_flags, stop_at):
    """Stopping and resuming gives the same model as an uninterrupted run (update count, replay position, warm-up)."""
    common = method_flags + ["--max-epoch", "3"]
    full_dir, full = train(tmp_path, sp_data(), common + ["--max-update", "7"], name="full")
    part_dir, _ = train(tmp_path, sp_data(), common + ["--max-update", str(stop_at)], name="part")
    state = torch.load(part_dir / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert state["optimizer_history"][-1]["num_updates"] == stop_at
    _, resumed = train(tmp_path, sp_data(), common + ["--max-update", "7"], name="part")
    assert train_log_value(resumed.stdout, "num_updates") == 7
    _assert_same_model(full_dir / "checkpoint_last.pt", part_dir / "checkpoint_last.pt")


HYDRA_CONFIG = """\
# @package _group_
common: {{user_dir: fairseq_freelb, cpu: true, log_format: simple, log_interval: 1, seed: 1}}
task: {{_name: sentence_prediction, data: {data}, num_classes: 2, init_token: 0, separator_token: 2, max_positions: 64}}
checkpoint: {{no_epoch_checkpoints: true, save_dir: {save_dir}}}
dataset: {{batch_size: 16, num_workers: 0}}
optimization: {{max_epoch: 1, lr: [0.001]}}
model: {{_name: roberta_base, encoder_layers: 2, encoder_embed_dim: 32, encoder_ffn_embed_dim: 64,
         encoder_attention_heads: 2, max_positions: 64}}
criterion: {{_name: freelb_sentence_prediction, adv_steps: 2, adv_lr: 0.1}}
optimizer: {{_name: adam}}
lr_scheduler: {{_name: fixed}}
"""


def test_hydra_config_and_overrides(tmp_path, sp_data):
    """The --adv-* fields are hydra config fields: set in YAML and overridden on the command line."""
    conf = tmp_path / "conf"
    conf.mkdir()
    save_dir = tmp_path / "ck"
    (conf / "freelb.yaml").write_text(HYDRA_CONFIG.format(data=sp_data() / "data-bin", save_dir=save_dir))
    proc = run([str(BIN / "fairseq-freelb-hydra-train"), "--config-dir", str(conf), "--config-name", "freelb",
                "+criterion.adv_method=pgd", "+criterion.adv_max_norm=0.05"], cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert (save_dir / "checkpoint_last.pt").exists()
    cfg = torch.load(save_dir / "checkpoint_last.pt", map_location="cpu", weights_only=False)["cfg"]
    assert cfg["criterion"]["adv_method"] == "pgd" and cfg["criterion"]["adv_steps"] == 2
    assert cfg["criterion"]["adv_max_norm"] == 0.05
    norms = [float(line.split("adv_delta_norm ")[1].split()[0]) for line in log.splitlines() if "[train][INFO]" in line]
    assert norms and 0 < norms[-1] <= 0.05 + 1e-6

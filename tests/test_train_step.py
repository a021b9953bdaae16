"""Behaviour of the adversarial training step: dropout reuse, injection, validation, dummy batch, fp16."""

import pytest
import torch

from fairseq_freelb.adapters.config import AdversarialConfigError
from fairseq_freelb.core.model_access import token_embedding_module
from fairseq_freelb.core.passes import EmbeddingPerturbation
from inprocess_fairseq import build

HEAD = "sentence_classification_head"


def record_head_outputs(model):
    """Classification-head outputs of every forward, in order (one per pass)."""
    outputs = []
    handle = model.classification_heads[HEAD].register_forward_hook(lambda m, i, o: outputs.append(o.detach().clone()))
    return outputs, handle


def record_dropout_masks(model):
    """Zero patterns of every dropout module that runs, keyed by module name, one entry per call."""
    masks = {}
    handles = []
    for name, module in model.named_modules():
        if type(module).__name__ in ("FairseqDropout", "Dropout"):
            def hook(m, inputs, output, name=name):
                masks.setdefault(name, []).append((output == 0) & (inputs[0] != 0))
            handles.append(module.register_forward_hook(hook))
    return masks, handles


# A pure-dropout setting: delta stays 0 in every pass, so only the masks can differ.
STILL = ["--adv-steps", "3", "--adv-lr", "0", "--adv-init-mag", "0"]


def test_dropout_masks_are_reused_across_the_k_passes(sp_data):
    setup = build(sp_data(), STILL, dropout=True)
    outputs, h1 = record_head_outputs(setup.model)
    masks, hs = record_dropout_masks(setup.model)
    _, _, log = setup.train_step(setup.batch(8))
    assert len(outputs) == 3
    for out in outputs[1:]:
        assert torch.equal(out, outputs[0]), "all passes must see the same dropout masks"
    assert masks, "expected dropout modules to run"
    for calls in masks.values():
        per_pass = len(calls) // 3  # a module may run more than once per pass (e.g. a layer's residual dropout)
        assert per_pass >= 1 and len(calls) == 3 * per_pass
        for t in (1, 2):
            for j in range(per_pass):
                assert torch.equal(calls[t * per_pass + j], calls[j])
    assert any(c[0].any() for c in masks.values()), "dropout should have zeroed something"
    assert log["adv_loss_init"] == log["adv_loss_last"]


def test_resample_dropout_draws_fresh_masks(sp_data):
    setup = build(sp_data(), STILL + ["--adv-resample-dropout"], dropout=True)
    outputs, _ = record_head_outputs(setup.model)
    setup.train_step(setup.batch(8))
    assert not torch.equal(outputs[0], outputs[1]) and not torch.equal(outputs[1], outputs[2])


def test_next_minibatch_gets_fresh_masks(sp_data):
    setup = build(sp_data(), STILL, dropout=True)
    outputs, _ = record_head_outputs(setup.model)
    sample = setup.batch(8)
    setup.train_step(sample, update_num=0)
    first = outputs[0]
    # Same batch, same parameters (no optimizer step): only the masks can differ.
    setup.train_step(sample, update_num=1)
    assert not torch.equal(first, outputs[3])


def test_perturbation_reaches_the_encoder_output(sp_data):
    """fairseq 0.12's RobertaModel.forward drops token_embeddings=; the hook must not be ignored."""
    setup = build(sp_data())
    model, sample = setup.model, setup.batch(4)
    model.eval()
    embed = token_embedding_module(model)
    tokens = sample["net_input"]["src_tokens"]
    with torch.no_grad():
        clean, _ = model(**sample["net_input"], features_only=True)
        with EmbeddingPerturbation(embed) as p:
            p.set([torch.zeros(*tokens.shape, embed.embedding_dim)])
            same, _ = model(**sample["net_input"], features_only=True)
            p.set([0.5 * torch.randn(*tokens.shape, embed.embedding_dim)])
            moved, _ = model(**sample["net_input"], features_only=True)
    assert torch.equal(clean, same)
    assert (moved - clean).abs().max() > 1e-3
    assert not embed._forward_hooks, "the hook is removed after use"


def test_validation_is_untouched(sp_data):
    setup = build(sp_data(), ["--adv-steps", "3", "--adv-lr", "0.5", "--adv-init-mag", "0.5"])
    sample = setup.batch(8, split="valid")
    calls, handle = record_head_outputs(setup.model)
    loss, _, log = setup.task.valid_step(sample, setup.model, setup.criterion)
    assert len(calls) == 1, "one plain forward pass"
    assert "adv_loss_init" not in log
    setup.model.eval()
    with torch.no_grad():
        want, _, _ = setup.criterion(setup.model, sample)
    assert torch.equal(loss, want)


def test_dummy_batch_ignore_grad_gives_zero_gradients_and_no_nan(sp_data):
    setup = build(sp_data(), ["--adv-steps", "3", "--adv-lr", "0.1", "--adv-init-mag", "0.1", "--adv-max-norm", "0.5"])
    loss, _, log = setup.train_step(setup.batch(8), ignore_grad=True)
    assert loss.item() == 0
    for p in setup.model.parameters():
        assert p.grad is None or (p.grad == 0).all()
    assert torch.isfinite(log["adv_delta_norm"])


@pytest.mark.parametrize("method", ["freelb", "pgd", "yopo", "freeat"])
def test_every_method_survives_the_dummy_batch(sp_data, method):
    setup = build(sp_data(), ["--adv-method", method, "--adv-steps", "2", "--adv-lr", "0.1", "--adv-init-mag", "0.1"])
    loss, _, log = setup.train_step(setup.batch(4), ignore_grad=True)
    assert loss.item() == 0 and torch.isfinite(log["adv_delta_norm"])


def test_adv_begin_update_trains_plainly_before_it(sp_data):
    setup = build(sp_data(), ["--adv-steps", "3", "--adv-lr", "0.1", "--adv-begin-update", "2"])
    calls, _ = record_head_outputs(setup.model)
    _, _, log = setup.train_step(setup.batch(8), update_num=1)
    assert len(calls) == 1 and "adv_loss_init" not in log
    _, _, log = setup.train_step(setup.batch(8), update_num=2)
    assert len(calls) == 4 and "adv_loss_init" in log


class OverflowingOptimizer:
    """Stands in for fairseq's FP16Optimizer at a loss scale too high for fp16 gradients."""

    def __init__(self, scale):
        self.scale = scale

    def backward(self, loss):
        (loss * self.scale).backward()

    def zero_grad(self):
        pass


@pytest.mark.parametrize("method", ["freelb", "pgd", "yopo", "freeat"])
def test_fp16_overflow_skips_the_ascent_step_without_nan(sp_data, method):
    setup = build(sp_data(), ["--adv-method", method, "--adv-steps", "3", "--adv-lr", "0.1",
                              "--adv-init-mag", "0.1", "--adv-max-norm", "1"])
    setup.model.half()
    optimizer = OverflowingOptimizer(scale=1e30)  # the scaled loss is inf in fp16: every gradient overflows
    loss, _, log = setup.task.train_step(setup.batch(8), setup.model, setup.criterion, optimizer, 0)
    assert torch.isfinite(log["adv_delta_norm"]), "delta must stay finite"
    # The parameter gradients did overflow: fairseq's scaler would skip this update and lower the scale.
    assert any(not torch.isfinite(p.grad).all() for p in setup.model.parameters() if p.grad is not None)


def test_fp16_model_trains_with_fp32_delta(sp_data):
    setup = build(sp_data(), ["--adv-steps", "3", "--adv-lr", "0.1", "--adv-init-mag", "0.1", "--adv-max-norm", "1"])
    setup.model.half()
    optimizer = OverflowingOptimizer(scale=128.0)
    loss, _, log = setup.task.train_step(setup.batch(8), setup.model, setup.criterion, optimizer, 0)
    assert torch.isfinite(loss) and torch.isfinite(log["adv_delta_norm"]) and log["adv_delta_norm"] > 0
    assert all(torch.isfinite(p.grad).all() for p in setup.model.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--adv-steps", "0"], "--adv-steps must be >= 1"),
        (["--adv-lr", "-0.1"], "--adv-lr must be >= 0"),
        (["--adv-init-mag", "-1"], "--adv-init-mag must be >= 0"),
        (["--adv-max-norm", "-1"], "--adv-max-norm must be >= 0"),
        (["--adv-begin-update", "-1"], "--adv-begin-update must be >= 0"),
        (["--yopo-inner-steps", "0"], "--yopo-inner-steps must be >= 1"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(sp_data, flags, message):
    with pytest.raises(AdversarialConfigError, match=message):
        build(sp_data(), flags)


def test_unknown_norm_type_is_refused_in_one_line(sp_data):
    # A plain string checked by the plugin, not an argparse choice (whose error prints the whole usage).
    with pytest.raises(AdversarialConfigError, match="--adv-norm-type must be l2 or linf, got 'l1'"):
        build(sp_data(), ["--adv-norm-type", "l1"])


class TwoCallCriterion:
    """A criterion whose example is two model calls (like a 2-choice question), to test per-call replay."""

    def __init__(self, inner):
        self.inner, self.adversary = inner, inner.adversary

    def adversarial_inputs(self, sample):
        return [sample["net_input"], sample["net_input"]]

    def __call__(self, model, sample):
        a = self.inner(model, sample)
        b = self.inner(model, sample)
        return a[0] + b[0], a[1], a[2]


@pytest.mark.parametrize("calls", [1, 2])
def test_yopo_inner_steps_replay_each_calls_dropout_masks(sp_data, calls):
    """f0 in YOPO's first inner step (at the pass's own delta) equals f0 of the full pass, dropout on."""
    setup = build(sp_data(), ["--adv-method", "yopo", "--adv-steps", "2", "--yopo-inner-steps", "1",
                              "--adv-lr", "0.1", "--adv-init-mag", "0.1"], dropout=True)
    criterion = setup.criterion if calls == 1 else TwoCallCriterion(setup.criterion)
    block = setup.model.encoder.sentence_encoder.layers[0]
    outputs = []
    block.register_forward_hook(lambda m, i, o: outputs.append((o[0] if isinstance(o, tuple) else o).detach().clone()))
    setup.optimizer.zero_grad()
    setup.task.train_step(setup.batch(8), setup.model, criterion, setup.optimizer, 0)
    # full pass 0: `calls` f0 outputs; then the inner step: `calls` f0 outputs; then full pass 1.
    assert len(outputs) == 3 * calls
    for c in range(calls):
        assert torch.equal(outputs[calls + c], outputs[c])
    if calls == 2:
        assert not torch.equal(outputs[0], outputs[1]), "the two calls draw different masks"


@pytest.mark.parametrize("method", ["freelb", "pgd", "freeat", "yopo", "none"])
@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("resample", [False, True])
@pytest.mark.parametrize("max_norm", ["0", "0.05"])
def test_every_flag_combination_takes_finite_steps(sp_data, method, norm, resample, max_norm):
    """The official fork crashed on some flag combinations; every combination here takes two finite steps."""
    flags = ["--adv-method", method, "--adv-norm-type", norm, "--adv-max-norm", max_norm, "--adv-steps", "2",
             "--adv-lr", "0.05", "--adv-init-mag", "0.05", *(["--yopo-inner-steps", "2"] if method == "yopo" else [])]
    setup = build(sp_data(), flags + (["--adv-resample-dropout"] if resample else []), dropout=True)
    for update in range(2):
        loss, sample_size, log = setup.train_step(setup.batch(8, start=8 * update), update_num=update)
        setup.optimizer.step()
        assert torch.isfinite(loss) and sample_size == 8
        if method != "none":
            assert torch.isfinite(log["adv_delta_norm"])
            if max_norm != "0" and norm == "l2":
                assert log["adv_delta_norm"] <= 8 * 0.05 + 1e-5
    assert all(torch.isfinite(p).all() for p in setup.model.parameters())


# --------------------------------------------------------------------------- the core's structure


# Full forward passes (through the classification head) of one train_step at K = 3: each --adv-method's
# own count (YOPO's inner steps stop at the first block; a FreeAT step is one of its K replays).
FULL_PASSES_AT_K3 = {"freelb": 3, "pgd": 4, "freeat": 1, "yopo": 3, "none": 1}


@pytest.mark.parametrize("method", sorted(FULL_PASSES_AT_K3))
def test_each_adv_method_runs_its_own_step(sp_data, method):
    """--adv-method picks its own step function: the passes it makes and the log it writes are that method's."""
    from fairseq_freelb.core.settings import ADV_METHODS

    assert set(FULL_PASSES_AT_K3) == set(ADV_METHODS), "a new --adv-method needs its pass count here"
    flags = ["--adv-method", method, "--adv-steps", "3", "--adv-lr", "0.1", "--adv-init-mag", "0.1"]
    setup = build(sp_data(), flags + (["--yopo-inner-steps", "2"] if method == "yopo" else []))
    outputs, handle = record_head_outputs(setup.model)
    _, _, log = setup.train_step(setup.batch(8))
    handle.remove()
    assert len(outputs) == FULL_PASSES_AT_K3[method]
    assert ("adv_delta_norm" in log) == (method != "none")
    assert ("freeat_replay" in log) == (method == "freeat")


def test_each_criterion_on_one_task_steps_with_its_own_adversary(sp_data):
    """Criteria built on one task (the benchmark builds one per method) each run their own --adv-method."""
    import copy

    from omegaconf import open_dict

    setup = build(sp_data(), ["--adv-method", "freelb", "--adv-steps", "3", "--adv-lr", "0.1", "--adv-init-mag", "0.1"])
    pgd_cfg = copy.deepcopy(setup.cfg.criterion)
    with open_dict(pgd_cfg):
        pgd_cfg.adv_method = "pgd"
    pgd = setup.task.build_criterion(pgd_cfg)  # built last: the task's adversarial_criterion
    assert setup.task.adversarial_criterion is pgd
    for criterion, passes in ((setup.criterion, 3), (pgd, 4), (setup.criterion, 3)):
        outputs, handle = record_head_outputs(setup.model)
        setup.optimizer.zero_grad()
        setup.task.train_step(setup.batch(8), setup.model, criterion, setup.optimizer, 0)
        handle.remove()
        assert len(outputs) == passes


def test_importing_the_plugin_changes_no_global_handler():
    import subprocess
    import sys

    code = ("import sys; hook = sys.excepthook; import fairseq_freelb; "
            "assert sys.excepthook is hook, 'excepthook replaced at import'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_stock_task_is_switched_once_and_keeps_its_class_lineage(sp_data):
    from fairseq.tasks.sentence_prediction import SentencePredictionTask

    from fairseq_freelb.adapters.task_mixin import AdversarialTrainingMixin, attach_criterion

    setup = build(sp_data())
    task = setup.task
    cls = type(task)
    assert isinstance(task, SentencePredictionTask) and isinstance(task, AdversarialTrainingMixin)
    attach_criterion(task, setup.criterion)  # a second criterion on the same task: no second swap
    assert type(task) is cls and task.adversarial_criterion is setup.criterion


# --------------------------------------------------------------------------- FreeAT

FREEAT = ["--adv-method", "freeat", "--adv-steps", "2", "--adv-lr", "0.1", "--adv-init-mag", "0.1"]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--train-subset", "valid"], "--adv-method freeat replays the batches of --adv-train-subset train, but --train-subset is valid"),
        (["--update-freq", "2"], "--adv-method freeat needs --update-freq 1"),
    ],
)
def test_freeat_refuses_settings_that_break_the_replay_when_built(sp_data, flags, message):
    with pytest.raises(AdversarialConfigError, match=message):
        build(sp_data(), FREEAT + flags)


def test_freeat_carries_at_most_one_batch(sp_data):
    """Batches that are not replayed (e.g. driven without the replay iterator) do not pile up carried deltas."""
    setup = build(sp_data(), FREEAT)
    for update in range(4):
        setup.train_step(setup.batch(8, start=8 * update), update_num=update)
    carried = setup.criterion.adversary.state_dict()["freeat_deltas"]
    assert len(carried) == 1 and carried[0]["ids"] == setup.batch(8, start=24)["id"].tolist()


def _replayed_ids(task):
    itr = task.get_batch_iterator(task.dataset("train"), max_sentences=16, required_batch_size_multiple=1, seed=1)
    return [tuple(b["id"].tolist()) for b in itr.next_epoch_itr(shuffle=False)]


def test_freeat_does_not_replay_during_the_warm_up(sp_data):
    setup = build(sp_data(), FREEAT + ["--adv-begin-update", "2"])
    ids = _replayed_ids(setup.task)
    batches = list(dict.fromkeys(ids))
    assert len(batches) == 4  # 64 examples, 16 per batch
    # updates 0 and 1 are plain fine-tuning (one update per batch); from update 2 every batch is replayed K=2 times
    assert ids == [batches[0], batches[1], batches[2], batches[2], batches[3], batches[3]]


def test_freeat_warm_up_batches_take_plain_steps(sp_data):
    setup = build(sp_data(), FREEAT + ["--adv-begin-update", "1"])
    itr = setup.task.get_batch_iterator(setup.task.dataset("train"), max_sentences=16, required_batch_size_multiple=1)
    logs = []
    for update, sample in enumerate(itr.next_epoch_itr(shuffle=False)):
        logs.append(setup.train_step(sample, update_num=update)[2])
    assert len(logs) == 1 + 3 * 2
    assert "adv_loss_init" not in logs[0] and all("freeat_replay" in log for log in logs[1:])
    assert [log["freeat_replay"] for log in logs[1:]] == [1, 2, 1, 2, 1, 2]


# --------------------------------------------------------------------------- bf16 autocast


def _amp_setup(sp_data, extra):
    from fairseq.optim.amp_optimizer import AMPOptimizer

    setup = build(sp_data(), ["--adv-steps", "2", "--adv-lr", "0.1", "--adv-init-mag", "0.1", "--amp", *extra])
    params = [p for p in setup.model.parameters() if p.requires_grad]
    return setup, AMPOptimizer.build_optimizer(setup.cfg, params)


def _head_dtypes(model):
    dtypes = []
    dense = model.classification_heads[HEAD].dense
    dense.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    return dtypes


def test_amp_dtype_bf16_trains_and_validates_under_bf16_autocast(sp_data):
    setup, optimizer = _amp_setup(sp_data, ["--amp-dtype", "bf16"])
    dtypes = _head_dtypes(setup.model)
    optimizer.zero_grad()
    loss, _, log = setup.task.train_step(setup.batch(8), setup.model, setup.criterion, optimizer, 0)
    assert dtypes == [torch.bfloat16, torch.bfloat16], "both FreeLB passes autocast to bf16"
    assert torch.isfinite(loss) and torch.isfinite(log["adv_delta_norm"])
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in setup.model.parameters())
    with torch.no_grad():
        setup.task.valid_step(setup.batch(8, split="valid"), setup.model, setup.criterion)
    assert dtypes[-1] == torch.bfloat16, "validation runs under the same autocast"


def test_amp_fp16_on_cpu_is_unchanged_fp32(sp_data):
    setup, optimizer = _amp_setup(sp_data, [])
    dtypes = _head_dtypes(setup.model)
    setup.task.train_step(setup.batch(8), setup.model, setup.criterion, optimizer, 0)
    setup.task.valid_step(setup.batch(8, split="valid"), setup.model, setup.criterion)
    assert dtypes == [torch.float32] * 3


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--amp-dtype", "bf16"], "--amp-dtype bf16 needs --amp"),
        (["--amp-dtype", "bf16", "--amp", "--fp16"], "--amp-dtype bf16 cannot be combined with --fp16"),
    ],
)
def test_bad_amp_dtype_combinations_are_refused(sp_data, flags, message):
    with pytest.raises(AdversarialConfigError, match=message):
        build(sp_data(), flags)


def test_bf16_on_a_cuda_device_without_bf16_is_refused(monkeypatch):
    from omegaconf import OmegaConf

    from fairseq_freelb.adapters.run_context import validate_run_context

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    cfg = OmegaConf.create({"adv_method": "freelb", "amp_dtype": "bf16", "amp": True, "fp16": False, "cpu": False})
    with pytest.raises(AdversarialConfigError, match="Tesla V100 does not support bf16"):
        validate_run_context(cfg)


def test_amp_dtype_rejects_unknown_values_in_one_line(sp_data):
    with pytest.raises(AdversarialConfigError, match="--amp-dtype must be one of fp16, bf16, got 'fp8'"):
        build(sp_data(), ["--amp", "--amp-dtype", "fp8"])


# --------------------------------------------------------------------------- batches cover every example


def test_batches_that_would_drop_examples_are_refused(tmp_path):
    from utils import make_sentence_prediction_data

    make_sentence_prediction_data(tmp_path, n_train=64, n_valid=30)
    setup = build(tmp_path)
    valid = setup.task.dataset("valid")
    with pytest.raises(AdversarialConfigError, match="valid: the batches cover 24 of 30 examples.*--required-batch-size-multiple 1"):
        setup.task.get_batch_iterator(valid, max_sentences=16, required_batch_size_multiple=8)
    itr = setup.task.get_batch_iterator(valid, max_sentences=16, required_batch_size_multiple=1)
    assert sum(len(b) for b in itr.frozen_batches) == 30

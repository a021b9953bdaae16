"""The Trainer adapter in use: training and logging, dropout masks, one all-reduce per update, refusals.

All on tiny random models on CPU (tests/hf_tiny_models.py), through
``Trainer.train()`` itself unless a test says otherwise.
"""

import pytest
import torch
from torch import nn

import hf_tiny_models as tiny
from test_distributed import FakeDDP

pytest.importorskip("accelerate")

from transformers import HfArgumentParser, TrainingArguments  # noqa: E402

from fairseq_freelb.core.settings import AdversarialConfigError  # noqa: E402
from fairseq_freelb.hf import ADV_LOG_KEYS, AdversarialArguments, AdversarialTrainer  # noqa: E402

FREELB = dict(adv_steps=3, adv_lr=0.1, adv_init_mag=0.1, adv_max_norm=0.5)


def args(tmp_path, **extra):
    base = dict(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2, logging_steps=1, report_to=[],
                use_cpu=True, save_strategy="no", disable_tqdm=True, learning_rate=1e-3)
    base.update(extra)
    return TrainingArguments(**base)


def trainer(model, tmp_path, adversarial=None, n=8, choices=0, **extra):
    data = tiny.ListDataset(tiny.batch(n, choices=choices))
    return AdversarialTrainer(model=model, args=args(tmp_path, **extra), train_dataset=data,
                              adversarial_args=AdversarialArguments(**(adversarial or FREELB)))


# ----------------------------------------------------------------------------- training and logging


@pytest.mark.parametrize("family", ["albert", "bert"])
def test_trains_with_freelb_and_logs_the_adversarial_figures(family, tmp_path):
    model = tiny.model(family, dropout=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    t = trainer(model, tmp_path)
    t.train()
    logs = [h for h in t.state.log_history if "loss" in h]
    assert len(logs) == 2
    for log in logs:
        assert all(key in log for key in ADV_LOG_KEYS), log
        # Delta is projected onto the ball of radius 0.5 after each ascent step.
        assert 0 < log["adv_delta_norm"] <= 0.5 + 1e-4
        # FreeLB's loss is the mean over its K passes, which climb from delta_0 to delta_{K-1}.
        assert log["adv_loss_init"] < log["adv_loss_last"]
        assert log["adv_loss_init"] <= log["loss"] <= log["adv_loss_last"]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_vanilla_logs_no_adversarial_figures(tmp_path):
    t = trainer(tiny.model("bert"), tmp_path, adversarial=dict(adv_method="none"))
    t.train()
    logs = [h for h in t.state.log_history if "loss" in h]
    assert logs and not any(key in log for log in logs for key in ADV_LOG_KEYS)


def test_begin_update_trains_plainly_before_it(tmp_path):
    t = trainer(tiny.model("bert"), tmp_path, adversarial=dict(FREELB, adv_begin_update=1))
    t.train()
    logs = [h for h in t.state.log_history if "loss" in h]
    assert "adv_loss_init" not in logs[0] and "adv_loss_init" in logs[1]


def test_bf16_through_the_trainers_autocast(tmp_path):
    t = trainer(tiny.model("albert"), tmp_path, bf16=True)
    t.train()
    log = next(h for h in t.state.log_history if "loss" in h)
    assert all(torch.isfinite(torch.tensor(log[key])) for key in ADV_LOG_KEYS)


def test_multiple_choice_trains(tmp_path):
    t = trainer(tiny.model("albert", "choice"), tmp_path, choices=3)
    t.train()
    assert all(key in t.state.log_history[0] for key in ADV_LOG_KEYS)


# ----------------------------------------------------------------------------- dropout masks


def one_step_log(model, tmp_path, adversarial, batch):
    """The core's logging output of one training step (the raw per-pass losses, unrounded)."""
    t = AdversarialTrainer(model=model, args=args(tmp_path), train_dataset=tiny.ListDataset(batch),
                           adversarial_args=AdversarialArguments(**adversarial))
    t.current_gradient_accumulation_steps = 1
    logs = []
    record = t._record
    t._record = lambda log, backward: (logs.append(log), record(log, backward))
    torch.manual_seed(7)
    t.training_step(model, dict(batch))
    return logs[0], {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_the_k_passes_share_the_first_passes_dropout_masks(tmp_path):
    """At delta = 0 the K passes see the same masks: equal losses, and the update of one vanilla pass."""
    batch = tiny.batch(6)
    log, grads = one_step_log(tiny.model("bert", dropout=0.3), tmp_path, dict(adv_steps=3), batch)
    assert float(log["adv_loss_init"]) == float(log["adv_loss_last"])
    _, vanilla = one_step_log(tiny.model("bert", dropout=0.3), tmp_path, dict(adv_method="none"), batch)
    for name, g in vanilla.items():
        torch.testing.assert_close(grads[name], g, rtol=1e-5, atol=1e-7, msg=name)


def test_resample_dropout_draws_new_masks(tmp_path):
    batch = tiny.batch(6)
    log, _ = one_step_log(tiny.model("bert", dropout=0.3), tmp_path, dict(adv_steps=3, adv_resample_dropout=True), batch)
    assert float(log["adv_loss_init"]) != float(log["adv_loss_last"])


# ----------------------------------------------------------------------------- one all-reduce per update


class ModelOutputDDP(FakeDDP):
    """tests/test_distributed.py's DDP stand-in, for models that return a ``ModelOutput`` (the loss arms the hook)."""

    def forward(self, *args, **kwargs):
        out = self.module(*args, **kwargs)
        sync = self.require_backward_grad_sync and torch.is_grad_enabled()
        self.passes.append(sync)
        if sync and out.loss.requires_grad:
            out.loss.register_hook(self._all_reduce)
        return out


class _Distributed:
    """Makes accelerate's no_sync use the wrapper's, as it does under torchrun (one process here)."""

    use_distributed = True


@pytest.mark.parametrize("method,passes", [("freelb", 3), ("pgd", 3), ("none", 1)])
def test_every_update_all_reduces_once_after_its_last_pass(method, passes, tmp_path, monkeypatch):
    """The Trainer's own loop, gradient accumulation 2, a DDP stand-in with a real ``no_sync``.

    The Trainer runs the first micro-batch of an update inside ``no_sync``; the
    adversary runs all but the last pass of the last one there too, so each
    update synchronises in exactly one pass, its last one.
    """
    adversarial = {"freelb": dict(adv_steps=3, adv_lr=0.1, adv_init_mag=0.1, adv_max_norm=0.5),
                   "pgd": dict(adv_method="pgd", adv_steps=2, adv_lr=0.1, adv_max_norm=0.5),
                   "none": dict(adv_method="none")}[method]
    model = tiny.model("bert")
    t = trainer(model, tmp_path, adversarial, n=8, per_device_train_batch_size=2, gradient_accumulation_steps=2)
    ddp = ModelOutputDDP(model)
    monkeypatch.setattr(t, "_wrap_model", lambda model, training=True, dataloader=None: ddp)
    accelerator = t.accelerator
    monkeypatch.setattr(accelerator, "__class__", type("DistributedAccelerator", (_Distributed, type(accelerator)), {}))
    updates = []
    monkeypatch.setattr(ddp, "_all_reduce", lambda grad: updates.append(len(ddp.passes)))
    t.train()
    per_update = passes * 2
    assert ddp.passes == ([False] * (per_update - 1) + [True]) * 2
    assert updates == [per_update, 2 * per_update]  # one all-reduce, after each update's last pass


# ----------------------------------------------------------------------------- refusals, in one line


@pytest.mark.parametrize("adversarial,message", [
    (dict(adv_steps=0), "--adv-steps must be >= 1, got 0"),
    (dict(adv_lr=0.1, adv_max_norm=0.3), "--adv-lr 0.1 and --adv-max-norm 0.3 have no effect: --adv-method freelb at "
                                         "--adv-steps 1 makes one pass at delta_0 and no ascent step"),
    (dict(adv_method="pdg"), "--adv-method must be one of freelb, pgd, freeat, yopo, none, got 'pdg'"),
    (dict(adv_method="freeat", adv_steps=2), "--adv-method freeat replays every minibatch K times"),
    (dict(adv_method="yopo", adv_steps=2), "--adv-method yopo ascends on the output of the model's first"),
])
def test_bad_settings_are_refused_when_the_trainer_is_built(adversarial, message, tmp_path):
    with pytest.raises(AdversarialConfigError) as err:
        trainer(tiny.model("bert"), tmp_path, adversarial)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_same_line_as_fairseq_train(tmp_path):
    from fairseq_freelb.adapters.config import AdversarialConfig, validate_adversarial_config

    cfg = AdversarialConfig(adv_lr=0.1, adv_max_norm=0.3)
    with pytest.raises(AdversarialConfigError) as fairseq_err:
        validate_adversarial_config(cfg)
    with pytest.raises(AdversarialConfigError) as hf_err:
        trainer(tiny.model("bert"), tmp_path, dict(adv_lr=0.1, adv_max_norm=0.3))
    assert str(hf_err.value) == str(fairseq_err.value)


class _NoEmbeddingCall(nn.Module):
    """Has get_input_embeddings(), but its forward never calls it."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(tiny.VOCAB, 4)
        self.table = nn.Parameter(torch.randn(tiny.VOCAB, 2))

    def get_input_embeddings(self):
        return self.embed

    def forward(self, input_ids, attention_mask=None, labels=None, token_type_ids=None):
        logits = self.table[input_ids].mean(dim=1)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


def test_a_model_whose_embedding_hook_never_fires_gets_one_line(tmp_path):
    t = trainer(_NoEmbeddingCall(), tmp_path, dict(adv_steps=2, adv_lr=0.1))
    with pytest.raises(AdversarialConfigError, match=r"_NoEmbeddingCall: its forward never called get_input_embeddings"):
        t.train()


def test_a_model_without_input_embeddings_is_refused_when_built(tmp_path):
    class Plain(_NoEmbeddingCall):
        def get_input_embeddings(self):
            raise NotImplementedError

    with pytest.raises((AdversarialConfigError, NotImplementedError)):
        trainer(Plain(), tmp_path)


def test_hf_argument_parser_reads_the_fairseq_flag_names():
    (parsed,) = HfArgumentParser(AdversarialArguments).parse_args_into_dataclasses(
        ["--adv-steps", "3", "--adv-lr", "0.1", "--adv-init-mag", "0.2", "--adv-max-norm", "0.6",
         "--adv-norm-type", "linf", "--adv-method", "pgd", "--adv-begin-update", "4", "--adv-resample-dropout"])
    assert parsed == AdversarialArguments(adv_method="pgd", adv_steps=3, adv_lr=0.1, adv_init_mag=0.2, adv_max_norm=0.6,
                                          adv_norm_type="linf", adv_begin_update=4, adv_resample_dropout=True)


def test_argument_fields_are_the_fairseq_flag_names():
    import dataclasses

    from fairseq_freelb.core.settings import ADV_FLAGS
    from fairseq_freelb.hf.arguments import FAIRSEQ_ONLY_FLAGS

    fields = dataclasses.fields(AdversarialArguments)
    assert [f.name for f in fields] == [
        "adv_method", "adv_steps", "adv_lr", "adv_init_mag", "adv_max_norm", "adv_norm_type", "adv_begin_update",
        "adv_resample_dropout"]
    # The same flags as core.settings (less FreeAT's and YOPO's, refused here), with the same types and defaults.
    specs = {spec.name: spec for spec in ADV_FLAGS if spec.name not in FAIRSEQ_ONLY_FLAGS}
    assert {f.name: (f.type, f.default) for f in fields} == {n: (s.type, s.default) for n, s in specs.items()}


def test_core_and_fairseq_adapter_never_import_transformers():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "fairseq_freelb"
    offenders = [str(p.relative_to(root)) for folder in ("core", "adapters") for p in (root / folder).rglob("*.py")
                 if "import transformers" in p.read_text() or "from transformers" in p.read_text()]
    assert offenders == []


def test_data_parallel_in_one_process_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(TrainingArguments, "n_gpu", property(lambda self: 2))
    with pytest.raises(AdversarialConfigError, match="2 GPUs in one process .* launch one process per GPU with torchrun"):
        trainer(tiny.model("bert"), tmp_path)


def test_an_optimizer_that_steps_inside_backward_is_refused(tmp_path):
    with pytest.raises(AdversarialConfigError, match="--optim lomo updates the parameters inside every backward pass"):
        trainer(tiny.model("bert"), tmp_path, optim="lomo")

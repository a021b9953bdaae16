"""The core ``--adv-*`` flags are refused in one line when they are bad or cannot act.

Fast tests check the rules on configs and on criteria built the way fairseq-train
builds them; the slow ones run fairseq-train and read its stderr.
"""

import logging
import math

import pytest
import torch
from omegaconf import OmegaConf

import dataclasses

from fairseq_freelb.core import flag_rules
from fairseq_freelb.core.settings import ADV_FLAGS, AdversarySettings
from fairseq_freelb.adapters.config import AdversarialConfig, AdversarialConfigError, RestoreFileGuard, validate_adversarial_config
from fairseq_freelb.adapters.sentence_prediction_criterion import FreeLBSentencePredictionConfig
from fairseq_freelb.mc.criterion import FreeLBSentenceRankingConfig
from inprocess_fairseq import build
from utils import fairseq_train_cmd, run, without_teardown_abort


def cfg(**values):
    return AdversarialConfig(**values)


# --------------------------------------------------------------------------- one definition of the flags


@pytest.mark.parametrize("config_class", [AdversarialConfig, FreeLBSentencePredictionConfig, FreeLBSentenceRankingConfig])
def test_every_criterion_config_has_exactly_the_settings_flags(config_class):
    """A flag declared or redeclared in a fairseq config instead of core.settings fails here."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    for spec in ADV_FLAGS:
        assert spec.name in fields, f"{config_class.__name__} lacks {spec.option}"
        f = fields[spec.name]
        assert (f.type, f.default, f.metadata.get("help")) == (spec.type, spec.default, spec.help), spec.name
    stray = {n for n in fields if n.startswith(("adv_", "yopo_"))} - {spec.name for spec in ADV_FLAGS}
    assert not stray, f"--adv-* fields outside core.settings.ADV_FLAGS: {sorted(stray)}"


def test_settings_fields_and_rule_table_cover_the_same_flags():
    assert {spec.name for spec in ADV_FLAGS} == set(flag_rules.INERT_RULES)
    assert all(spec.attribute in {f.name for f in dataclasses.fields(AdversarySettings)} for spec in ADV_FLAGS)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(steps=0), "--adv-steps must be >= 1, got 0"),
        (dict(norm_type="l1"), "--adv-norm-type must be l2 or linf, got 'l1'"),
        (dict(lr=-0.1, steps=2), "--adv-lr must be >= 0, got -0.1"),
        (dict(lr=0.1), "--adv-lr 0.1 has no effect: --adv-method freelb at --adv-steps 1"),
    ],
)
def test_the_settings_validate_themselves_when_built(kwargs, message):
    """No fairseq involved: the core refuses what fairseq-train refuses, with the same line."""
    with pytest.raises(AdversarialConfigError) as err:
        AdversarySettings(**kwargs)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    with pytest.raises(AdversarialConfigError) as again:
        flag_name = {spec.attribute: spec.name for spec in ADV_FLAGS}
        AdversarySettings.from_flags({flag_name[k]: v for k, v in kwargs.items()})
    assert str(again.value) == str(err.value)


def test_from_flags_reads_config_field_names_and_keeps_defaults():
    settings = AdversarySettings.from_flags({"adv_steps": 3, "adv_lr": "0.1", "adv_max_norm": 0.3}, amp=True)
    assert (settings.steps, settings.lr, settings.max_norm, settings.method, settings.amp) == (3, 0.1, 0.3, "freelb", True)
    assert settings.flag_values()["adv_steps"] == 3


# --------------------------------------------------------------------------- inert flags


def test_the_issues_example_is_refused_naming_adv_steps():
    with pytest.raises(AdversarialConfigError) as err:
        validate_adversarial_config(cfg(adv_lr=0.1, adv_max_norm=0.3))
    message = str(err.value)
    assert message.startswith("--adv-lr 0.1 and --adv-max-norm 0.3 have no effect: --adv-method freelb at --adv-steps 1")
    assert "use --adv-steps 2 or more" in message and "\n" not in message


def test_the_issues_example_is_refused_when_fairseq_builds_the_criterion(sp_data):
    with pytest.raises(AdversarialConfigError, match=r"^--adv-lr 0.1 and --adv-max-norm 0.3 have no effect: .*--adv-steps"):
        build(sp_data(), ["--adv-lr", "0.1", "--adv-max-norm", "0.3"])


# (method, K, flags set) -> the flags that must be refused as inert (empty: accepted).
CASES = [
    ("freelb", 1, dict(adv_lr=0.1), ["adv_lr"]),
    ("freelb", 1, dict(adv_init_mag=0.1, adv_max_norm=0.3), ["adv_max_norm"]),
    ("freelb", 1, dict(adv_init_mag=0.1), []),  # FreeLB-1 with a random start: noise training, acts
    ("freelb", 1, dict(adv_norm_type="linf"), ["adv_norm_type"]),
    ("freelb", 1, dict(adv_norm_type="linf", adv_init_mag=0.1), []),
    ("freelb", 1, dict(adv_resample_dropout=True), ["adv_resample_dropout"]),
    ("freelb", 2, dict(adv_lr=0.1, adv_max_norm=0.3, adv_resample_dropout=True), []),
    ("freelb", 3, dict(adv_max_norm=0.3), ["adv_max_norm"]),  # delta stays 0: nothing to project
    ("freelb", 3, dict(adv_norm_type="linf"), ["adv_norm_type"]),
    ("freelb", 3, dict(), []),  # K identical passes at delta = 0: the README's documented control
    ("freelb", 2, dict(adv_lr=0.1, yopo_inner_steps=2), ["yopo_inner_steps"]),
    ("freelb", 2, dict(adv_lr=0.1, adv_train_subset="train2"), ["adv_train_subset"]),
    ("pgd", 1, dict(adv_lr=0.1, adv_max_norm=0.3, adv_resample_dropout=True), []),  # one ascent + one descent pass
    ("freeat", 1, dict(adv_lr=0.1), ["adv_lr"]),  # one replay: its ascent step is dropped
    ("freeat", 1, dict(adv_init_mag=0.1, adv_resample_dropout=True), ["adv_resample_dropout"]),
    ("freeat", 2, dict(adv_lr=0.1, adv_max_norm=0.3, adv_train_subset="train2"), []),
    ("yopo", 1, dict(adv_lr=0.1, yopo_inner_steps=3), ["adv_lr", "yopo_inner_steps"]),
    ("yopo", 2, dict(adv_lr=0.1, yopo_inner_steps=3), []),
    ("yopo", 2, dict(yopo_inner_steps=3), ["yopo_inner_steps"]),  # --adv-lr 0: the inner steps never move delta
    ("freelb", 1, dict(adv_begin_update=5), ["adv_begin_update"]),  # FreeLB-1 at delta = 0 is plain fine-tuning
    ("freelb", 3, dict(adv_begin_update=5), ["adv_begin_update"]),
    ("freelb", 3, dict(adv_begin_update=5, adv_resample_dropout=True), []),  # averages over K dropout masks
    ("freelb", 1, dict(adv_begin_update=5, adv_init_mag=0.1), []),
    ("pgd", 2, dict(adv_begin_update=5), ["adv_begin_update"]),
    ("freeat", 2, dict(adv_begin_update=5), []),  # K updates per minibatch even at delta = 0
]


@pytest.mark.parametrize("method,steps,flags,inert", CASES)
def test_flags_that_cannot_act_at_this_method_and_k_are_refused(method, steps, flags, inert):
    config = cfg(adv_method=method, adv_steps=steps, **flags)
    if not inert:
        validate_adversarial_config(config)
        return
    with pytest.raises(AdversarialConfigError) as err:
        validate_adversarial_config(config)
    message = str(err.value)
    assert "\n" not in message
    for name in inert:
        assert "--" + name.replace("_", "-") in message
    for name in set(flags) - set(inert):
        assert "--" + name.replace("_", "-") not in message.split(": ")[0], f"{name} acts, yet is named"


def test_a_single_pass_message_names_adv_steps_and_the_fix():
    with pytest.raises(AdversarialConfigError) as err:
        validate_adversarial_config(cfg(adv_method="yopo", adv_lr=0.1))
    assert "--adv-method yopo at --adv-steps 1" in str(err.value) and "use --adv-steps 2 or more" in str(err.value)


def test_method_none_ignores_every_flag_and_logs_which(caplog):
    """The launch scripts' vanilla baselines pass the adversarial runs' flags with ADV_METHOD=none."""
    with caplog.at_level(logging.INFO, logger="fairseq_freelb.core.settings"):
        validate_adversarial_config(cfg(adv_method="none", adv_steps=4, adv_lr=0.03, adv_max_norm=0.15))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["--adv-method none: ignoring --adv-steps 4, --adv-lr 0.03, --adv-max-norm 0.15 (plain fine-tuning)"]


def _second_replay_grads(setup, sample):
    """Parameter gradients of a second step on the same minibatch (FreeAT's next replay uses the carried delta)."""
    for update in range(2):
        torch.manual_seed(11)
        setup.train_step(sample, update_num=update)
    return torch.cat([p.grad.flatten() for p in setup.model.parameters() if p.grad is not None])


# (method, K, base flags, the flag varied): the rule's verdict is checked against the real training step.
BEHAVIOUR = [
    ("freelb", 1, [], ["--adv-lr", "0.5"]),
    ("freelb", 2, [], ["--adv-lr", "0.5"]),
    ("freelb", 1, ["--adv-init-mag", "1"], ["--adv-max-norm", "0.01"]),
    ("freelb", 2, ["--adv-init-mag", "1", "--adv-lr", "0.5"], ["--adv-max-norm", "0.01"]),
    ("freelb", 1, [], ["--adv-resample-dropout"]),
    ("pgd", 1, [], ["--adv-lr", "0.5"]),
    ("freeat", 1, [], ["--adv-lr", "0.5"]),
    ("freeat", 2, [], ["--adv-lr", "0.5"]),
    ("yopo", 1, [], ["--adv-lr", "0.5"]),
    ("yopo", 2, ["--adv-lr", "0.5"], ["--yopo-inner-steps", "3"]),
    ("freelb", 1, [], ["--adv-begin-update", "5"]),
    ("freelb", 2, ["--adv-lr", "0.5"], ["--adv-begin-update", "5"]),
]


@pytest.mark.parametrize("method,steps,base,varied", BEHAVIOUR)
def test_the_rule_agrees_with_the_training_step(sp_data, monkeypatch, method, steps, base, varied):
    """Where the table says a flag is inert, it leaves the gradients bit-identical; where it acts, it changes them."""
    common = ["--adv-method", method, "--adv-steps", str(steps), *base]
    monkeypatch.setattr(flag_rules, "inert_flags", lambda values, defaults: [])  # build what validation refuses
    with_flag = build(sp_data(), common + varied, dropout=True)
    without = build(sp_data(), common, dropout=True)
    sample = with_flag.batch(8)
    acts = not torch.equal(_second_replay_grads(with_flag, sample), _second_replay_grads(without, sample))
    monkeypatch.undo()

    field = varied[0][2:].replace("-", "_")
    values = dict(flag_rules.INERT_RULES)  # every field, at its default, then this case's values
    defaults = {f: getattr(AdversarialConfig(), f) for f in values}
    values = dict(defaults, adv_method=method, adv_steps=steps)
    for flag, value in zip(base[::2], base[1::2]):
        name = flag[2:].replace("-", "_")
        values[name] = type(defaults[name])(value)
    values[field] = True if len(varied) == 1 else type(defaults[field])(varied[1])
    said_inert = field in {item.field for item in flag_rules.inert_flags(values, defaults)}
    assert acts != said_inert, f"{varied} {'acts' if acts else 'is inert'} but the table says the opposite"


# --------------------------------------------------------------------------- non-finite and huge values


@pytest.mark.parametrize("name", ["adv_lr", "adv_init_mag", "adv_max_norm"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 1e30])
def test_non_finite_or_overflowing_values_are_refused_naming_the_flag(name, value):
    with pytest.raises(AdversarialConfigError) as err:
        validate_adversarial_config(cfg(adv_steps=3, **{name: value}))
    flag = "--" + name.replace("_", "-")
    rule = "must be a finite number" if not math.isfinite(value) else "must be below 1.84e+19"
    assert str(err.value).startswith(f"{flag} {rule}") and "\n" not in str(err.value)


@pytest.mark.parametrize("flags", [["--adv-lr", "inf"], ["--adv-init-mag", "1e30"], ["--adv-max-norm", "nan"]])
def test_non_finite_values_are_refused_before_fairseq_builds_anything_more(sp_data, flags):
    with pytest.raises(AdversarialConfigError, match="^" + flags[0]):
        build(sp_data(), ["--adv-steps", "2", "--adv-lr", "0.1", *flags])


@pytest.mark.parametrize("method,steps,passes", [("freelb", 3, 3), ("pgd", 2, 3), ("yopo", 2, 2)])
def test_k_passes_with_delta_fixed_at_zero_are_allowed_but_warned(caplog, method, steps, passes):
    """A control run: K times the cost and no adversary, which a user who forgot --adv-lr should hear about."""
    with caplog.at_level(logging.WARNING, logger="fairseq_freelb.core.settings"):
        validate_adversarial_config(cfg(adv_method=method, adv_steps=steps))
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"--adv-steps {steps} with --adv-lr 0 and --adv-init-mag 0: {passes} passes per update with "
                           "delta fixed at 0")


@pytest.mark.parametrize("flags", [dict(adv_lr=0.1), dict(adv_init_mag=0.1), dict(adv_method="freeat")])
def test_an_adversary_that_moves_delta_is_not_warned_as_a_control_run(caplog, flags):
    with caplog.at_level(logging.WARNING, logger="fairseq_freelb.core.settings"):
        validate_adversarial_config(cfg(**dict(dict(adv_steps=3), **flags)))
    assert not [r for r in caplog.records if "delta fixed at 0" in r.getMessage()]


def test_a_step_as_large_as_the_ball_is_warned(caplog):
    with caplog.at_level(logging.WARNING, logger="fairseq_freelb.core.settings"):
        validate_adversarial_config(cfg(adv_steps=3, adv_lr=0.5, adv_max_norm=0.3))
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("--adv-lr 0.5 >= --adv-max-norm 0.3: a single ascent step")


@pytest.mark.parametrize("norm,init", [("l2", 1.0), ("linf", 0.5)])
def test_an_initialisation_outside_the_ball_is_warned(caplog, norm, init):
    with caplog.at_level(logging.WARNING, logger="fairseq_freelb.core.settings"):
        validate_adversarial_config(cfg(adv_steps=3, adv_lr=0.1, adv_init_mag=init, adv_max_norm=0.3, adv_norm_type=norm))
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"--adv-init-mag {init:g} draws a delta_0 of typical {norm} norm")


@pytest.mark.parametrize(
    "lr,init,eps",
    # The official launch scripts' MNLI, SST-2 and MRPC lines: no warning.
    [(0.1, 0.1, 0.3), (0.1, 1.0, 0.6), (0.04, 0.64, 0.4)],
)
def test_the_official_settings_are_not_warned(caplog, lr, init, eps):
    with caplog.at_level(logging.WARNING, logger="fairseq_freelb.core.settings"):
        validate_adversarial_config(cfg(adv_steps=3, adv_lr=lr, adv_init_mag=init, adv_max_norm=eps))
    assert not caplog.records


# --------------------------------------------------------------------------- a missing --restore-file


def live_config(restore_file, suffix=""):
    """The criterion node of a full fairseq config, as fairseq-train's hydra path has it."""
    root = OmegaConf.create({"checkpoint": {"restore_file": restore_file, "checkpoint_suffix": suffix}})
    root.criterion = OmegaConf.structured(AdversarialConfig)
    return root.criterion


def test_restore_file_follows_fairseqs_path_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert RestoreFileGuard(live_config("checkpoint_last.pt")).path is None  # fairseq's default: --save-dir's
    assert RestoreFileGuard(live_config("model.pt")).path == "model.pt"
    assert RestoreFileGuard(live_config("model.pt", "-rank1")).path == "model-rank1.pt"
    (tmp_path / "model.pt").write_bytes(b"")
    RestoreFileGuard(live_config("model.pt")).check()


@pytest.mark.parametrize("make", ["nothing", "folder"])
def test_a_missing_restore_file_is_refused_in_one_line(tmp_path, monkeypatch, make):
    monkeypatch.chdir(tmp_path)
    if make == "folder":
        (tmp_path / "roberta.large").mkdir()
        path = "roberta.large"
    else:
        path = "roberta.large/model.pt"
    guard = RestoreFileGuard(live_config(path))
    with pytest.raises(AdversarialConfigError) as err:
        guard.check()
    assert str(err.value).startswith(f"--restore-file {path} (in {tmp_path}) ")
    assert "train from random initialisation" in str(err.value) and "\n" not in str(err.value)
    guard.check()  # once only


def test_configs_built_outside_fairseq_train_disable_the_guard():
    assert RestoreFileGuard(AdversarialConfig()).path is None  # a dataclass: the interpolation is a plain string
    assert RestoreFileGuard(OmegaConf.structured(AdversarialConfig)).path is None  # nothing to resolve against


def test_the_criterion_refuses_a_missing_restore_file_when_training_starts(sp_data):
    """Built, it only records the path: evaluating a checkpoint rebuilds the criterion with the training run's path."""
    setup = build(sp_data(), ["--restore-file", "no/such/model.pt"])
    setup.criterion.eval()
    with pytest.raises(AdversarialConfigError, match=r"^--restore-file no/such/model.pt \(in .*\) does not exist"):
        setup.criterion.train()


def test_the_task_refuses_a_missing_restore_file_before_batching_the_training_split(sp_data):
    """fairseq-train builds the training iterator right after the failed load: the guard stops it there,
    before any iterator thread or training step (a late exit left 'terminate called' after the line)."""
    setup = build(sp_data(), ["--restore-file", "no/such/model.pt"])
    setup.task.get_batch_iterator(setup.task.dataset("valid"), max_sentences=8, required_batch_size_multiple=1)
    with pytest.raises(AdversarialConfigError, match=r"^--restore-file no/such/model.pt \(in .*\) does not exist"):
        setup.task.get_batch_iterator(setup.task.dataset("train"), max_sentences=8, required_batch_size_multiple=1)


# --------------------------------------------------------------------------- plugin flag typos


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--adv-norm-type", "l1"], "--adv-norm-type must be l2 or linf, got 'l1'"),
        (["--adv-method", "pdg"], "--adv-method must be one of freelb, pgd, freeat, yopo, none, got 'pdg'"),
    ],
)
def test_a_bad_choice_is_one_plugin_line_not_an_argparse_usage_dump(sp_data, capsys, flags, message):
    with pytest.raises(AdversarialConfigError, match="^" + message + "$"):
        build(sp_data(), flags)
    assert "usage:" not in capsys.readouterr().err


# --------------------------------------------------------------------------- fairseq-train end to end


def _stderr_lines(proc):
    stderr, _ = without_teardown_abort(proc.stderr)
    return stderr.strip().splitlines()


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra,message",
    [
        (["--adv-lr", "0.1", "--adv-max-norm", "0.3"],
         "fairseq_freelb: error: --adv-lr 0.1 and --adv-max-norm 0.3 have no effect: --adv-method freelb at "
         "--adv-steps 1 makes one pass at delta_0 and no ascent step; use --adv-steps 2 or more (K passes: "
         "the official scripts' --adv-steps m is m+1 here)"),
        (["--adv-steps", "2", "--adv-lr", "inf"], "fairseq_freelb: error: --adv-lr must be a finite number, got inf"),
        (["--adv-norm-type", "l1"], "fairseq_freelb: error: --adv-norm-type must be l2 or linf, got 'l1'"),
        (["--restore-file", "no/such/model.pt"], None),
    ],
    ids=["inert-adv-lr", "inf-adv-lr", "bad-norm-type", "missing-restore-file"],
)
def test_fairseq_train_stops_with_the_plugins_line_last(tmp_path, sp_data, extra, message):
    save_dir = tmp_path / "ck"
    extra = [*extra, "--required-batch-size-multiple", "1"]  # no dropped examples
    proc = run(fairseq_train_cmd(sp_data() / "data-bin", save_dir, extra), cwd=tmp_path, check=False)
    lines = _stderr_lines(proc)
    assert proc.returncode != 0, proc.stdout[-2000:]
    if message is None:
        message = (f"fairseq_freelb: error: --restore-file no/such/model.pt (in {tmp_path}) does not exist: fairseq "
                   "would train from random initialisation; give an existing checkpoint, or leave --restore-file "
                   "out to start from scratch")
    assert lines[-1] == message
    assert "Traceback" not in proc.stderr and "usage:" not in proc.stderr
    # What precedes it is fairseq's own hydra deprecation warnings (about 21 lines with hydra 1.3), nothing more.
    assert len(lines) <= 25, proc.stderr
    assert not list(save_dir.glob("*.pt")), "nothing may be trained or saved (crash.pt included)"

"""Reference tests of the Trainer adapter: its update equals a plain-PyTorch loop written from the paper.

The references below use no fairseq_freelb code: they feed
``inputs_embeds = get_input_embeddings()(input_ids) + delta`` to the model,
as the official FreeLB Hugging Face code does, with delta of shape
(B, T, d) for sentence classification and (B, C, T, d) for multiple choice
(one ball per question over all its choices), per-example norms over
everything but the batch dimension. FreeLB-K is Algorithm 1 of Zhu et al.
2020; PGD-K is eq. 1-2 (K ascent steps on delta alone, then the descent
step at delta_K). Dropout is off and delta_0 = 0, so both sides are
deterministic; the Trainer runs SGD with lr 1 and a constant schedule, so its
update is minus the accumulated gradient.
"""

import copy

import pytest
import torch

import hf_tiny_models as tiny
from test_reference import assert_updates_match

pytest.importorskip("accelerate")


def _norm(x, norm_type):
    flat = x.reshape(x.size(0), -1)
    n = flat.norm(dim=1) if norm_type == "l2" else flat.abs().max(dim=1).values
    return n.view(-1, *([1] * (x.dim() - 1)))


def ref_ascend(delta, grad, mask, alpha, eps, norm_type):
    """delta <- Proj_eps(delta + alpha * g / ||g||) (Algorithm 1, lines 9-10)."""
    g = grad * mask
    delta = delta + alpha * g / _norm(g, norm_type)
    if eps > 0:
        if norm_type == "l2":
            n = _norm(delta, "l2")
            delta = torch.where(n > eps, delta * eps / n, delta)
        else:
            delta = delta.clamp(-eps, eps)
    return delta.detach()


def ref_loss(model, batch, delta):
    embeds = model.get_input_embeddings()(batch["input_ids"])
    rest = {k: v for k, v in batch.items() if k != "input_ids"}
    return model(inputs_embeds=embeds + delta, **rest).loss


def ref_start(model, batch):
    embeds = model.get_input_embeddings()(batch["input_ids"])
    return batch["attention_mask"].unsqueeze(-1).float(), torch.zeros_like(embeds)


def ref_freelb(model, batch, K, alpha, eps, norm_type):
    """Algorithm 1: gradients of loss(delta_t) / K accumulated over t = 0..K-1."""
    mask, delta = ref_start(model, batch)
    for _ in range(K):
        delta.requires_grad_(True)
        (ref_loss(model, batch, delta) / K).backward()
        delta = ref_ascend(delta.detach(), delta.grad, mask, alpha, eps, norm_type)


def ref_pgd(model, batch, K, alpha, eps, norm_type):
    """K ascent steps on delta alone (eq. 2), then the gradient at delta_K (eq. 1)."""
    mask, delta = ref_start(model, batch)
    for _ in range(K):
        delta.requires_grad_(True)
        (g,) = torch.autograd.grad(ref_loss(model, batch, delta), delta)
        delta = ref_ascend(delta.detach(), g, mask, alpha, eps, norm_type)
    ref_loss(model, batch, delta).backward()


def reference_update(model, run):
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    model.train()
    model.zero_grad()
    run(model)
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= p.grad
    return {k: v.detach() - before[k] for k, v in model.named_parameters()}


def sgd_args(tmp_path, batch_size, **extra):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=batch_size, max_steps=1, learning_rate=1.0,
        optim="sgd", lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0, report_to=[],
        use_cpu=True, save_strategy="no", disable_tqdm=True, logging_steps=1, **extra,
    )


def trainer_update(model, batch, adversarial, tmp_path):
    from fairseq_freelb.hf import AdversarialTrainer

    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    n = batch["labels"].size(0)
    trainer = AdversarialTrainer(model=model, args=sgd_args(tmp_path, n), train_dataset=tiny.ListDataset(batch),
                                 adversarial_args=adversarial)
    trainer.train()
    return {k: v.detach() - before[k] for k, v in model.named_parameters()}, trainer


def adv(method, K, alpha, eps, norm):
    from fairseq_freelb.hf import AdversarialArguments

    return AdversarialArguments(adv_method=method, adv_steps=K, adv_lr=alpha, adv_init_mag=0.0, adv_max_norm=eps,
                                adv_norm_type=norm)


def check(family, head, method, K, alpha, eps, norm, tmp_path):
    choices = 3 if head == "choice" else 0
    model = tiny.model(family, head)
    batch = tiny.batch(6, choices=choices, token_types=family != "distilbert")
    ref_model = copy.deepcopy(model)
    got, trainer = trainer_update(model, batch, adv(method, K, alpha, eps, norm), tmp_path)
    reference = ref_freelb if method == "freelb" else ref_pgd
    want = reference_update(ref_model, lambda m: reference(m, batch, K, alpha, eps, norm))
    assert_updates_match(got, want)
    return got, trainer


@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_freelb_update_matches_algorithm_1(family, tmp_path):
    check(family, "sequence", "freelb", 3, 0.1, 0.05, "l2", tmp_path)


@pytest.mark.parametrize("family", ["bert", "albert", "roberta", "distilbert"])
def test_pgd_update_matches_eq_1_2(family, tmp_path):
    check(family, "sequence", "pgd", 2, 0.1, 0.05, "l2", tmp_path)


def test_freelb_linf_matches_algorithm_1(tmp_path):
    check("bert", "sequence", "freelb", 3, 0.01, 0.002, "linf", tmp_path)


@pytest.mark.parametrize("family", ["bert", "albert", "roberta"])
def test_multiple_choice_freelb_has_one_ball_per_question(family, tmp_path):
    check(family, "choice", "freelb", 3, 0.1, 0.05, "l2", tmp_path)


def test_multiple_choice_pgd_matches_eq_1_2(tmp_path):
    check("bert", "choice", "pgd", 2, 0.1, 0.05, "l2", tmp_path)


def test_albert_perturbs_its_factorised_embedding(tmp_path):
    """ALBERT's delta lives in the 8-dim factorised embedding (128 in albert-*-v2), not the 16-dim hidden space."""
    from fairseq_freelb.hf.core_view import ModelView

    model = tiny.model("albert")
    view = ModelView(model, None)
    assert view.port.embedding_dim == model.config.embedding_size == 8 != model.config.hidden_size


def test_freelb_differs_from_plain_fine_tuning(tmp_path):
    """Guards the reference tests: the perturbation really changes the update."""
    got, _ = check("bert", "sequence", "freelb", 3, 0.5, 0.0, "l2", tmp_path / "freelb")
    model = tiny.model("bert")
    none, _ = trainer_update(model, tiny.batch(6), adv("none", 1, 0.0, 0.0, "l2"), tmp_path / "none")
    assert max((got[k] - none[k]).abs().max().item() for k in got) > 1e-4

"""Reference tests: the plugin's parameter update equals a plain-PyTorch loop written from the paper.

Each reference below is written from the equations (Algorithm 1 of FreeLB for
FreeLB-K; eq. 1-2 for PGD-K; Shafahi et al. for FreeAT; FreeLB section 4.3 for
YOPO-m-n). It calls the fairseq model's own modules but no fairseq_freelb code.
Dropout is off and delta_0 = 0, so both sides are deterministic; the optimizer
is SGD with lr 1, so the update is minus the accumulated gradient.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from inprocess_fairseq import build

HEAD = "sentence_classification_head"


# ----------------------------------------------------------------------------- reference pieces


def _norm(x, norm_type):
    flat = x.reshape(x.size(0), -1)
    n = flat.norm(dim=1) if norm_type == "l2" else flat.abs().max(dim=1).values
    return n.view(-1, 1, 1)


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


def ref_loss(model, sample, delta, regression=False, all_hiddens=False):
    tokens = sample["net_input"]["src_tokens"]
    embeds = model.encoder.sentence_encoder.embed_tokens(tokens) + delta
    features, extra = model.encoder.extract_features(tokens, token_embeddings=embeds, return_all_hiddens=all_hiddens)
    logits = model.classification_heads[HEAD](features)
    target = sample["target"].view(-1)
    if regression:
        loss = F.mse_loss(logits.view(-1).float(), target.float(), reduction="sum")
    else:
        loss = F.cross_entropy(logits.float(), target, reduction="sum")
    return (loss, extra["inner_states"]) if all_hiddens else loss


def ref_setup(model, sample):
    tokens = sample["net_input"]["src_tokens"]
    mask = tokens.ne(model.encoder.sentence_encoder.padding_idx).unsqueeze(-1).float()
    d = model.encoder.sentence_encoder.embed_tokens.embedding_dim
    return mask, torch.zeros(*tokens.shape, d)


def ref_freelb(model, sample, K, alpha, eps, norm_type, regression=False):
    """Algorithm 1: grads of loss(delta_t)/K accumulated over t = 0..K-1."""
    mask, delta = ref_setup(model, sample)
    for t in range(K):
        delta.requires_grad_(True)
        loss = ref_loss(model, sample, delta, regression) / K
        loss.backward()
        delta = ref_ascend(delta.detach(), delta.grad, mask, alpha, eps, norm_type)


def ref_pgd(model, sample, K, alpha, eps, norm_type):
    """K ascent steps on delta alone (eq. 2), then the gradient at delta_K (eq. 1)."""
    mask, delta = ref_setup(model, sample)
    for _ in range(K):
        delta.requires_grad_(True)
        (g,) = torch.autograd.grad(ref_loss(model, sample, delta), delta)
        delta = ref_ascend(delta.detach(), g, mask, alpha, eps, norm_type)
    ref_loss(model, sample, delta).backward()


def ref_yopo(model, sample, m, n, alpha, eps, norm_type):
    """m full passes (loss/m); after each but the last, n steps of size alpha/n on <p, f0(X+delta)>."""
    mask, delta = ref_setup(model, sample)
    for t in range(m):
        delta.requires_grad_(True)
        loss, states = ref_loss(model, sample, delta, all_hiddens=True)
        f0 = states[1]  # output of the first transformer block (states[0] is the embedding)
        (p,) = torch.autograd.grad(loss / m, f0, retain_graph=True)
        (loss / m).backward()
        if t == m - 1:
            break
        delta = delta.detach()
        for _ in range(n):
            delta.requires_grad_(True)
            _, states = ref_loss(model, sample, delta, all_hiddens=True)
            (g,) = torch.autograd.grad((states[1] * p).sum(), delta)
            delta = ref_ascend(delta.detach(), g, mask, alpha / n, eps, norm_type)


def sgd_step(model, lr=1.0):
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= lr * p.grad
    model.zero_grad()


# ----------------------------------------------------------------------------- comparison


def plugin_update(setup, sample, steps=1):
    before = {k: v.detach().clone() for k, v in setup.model.named_parameters()}
    for update in range(steps):
        setup.train_step(sample, update_num=update)
        setup.optimizer.step()
    return {k: v.detach() - before[k] for k, v in setup.model.named_parameters()}


def reference_update(model, run, steps=1):
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    for _ in range(steps):
        model.zero_grad()
        run(model)
        sgd_step(model)
    return {k: v.detach() - before[k] for k, v in model.named_parameters()}


def assert_updates_match(got, want, rtol=1e-5):
    scale = max(w.abs().max().item() for w in want.values())
    assert scale > 0
    worst = max((got[k] - want[k]).abs().max().item() for k in want)
    assert worst <= rtol * scale, f"max |diff| {worst:.3e} > {rtol} * {scale:.3e}"


def _check(sp_data, adv_args, reference, steps=1, regression=False, num_classes=2):
    setup = build(sp_data(num_classes, regression), adv_args, regression=regression, num_classes=num_classes)
    model_ref = copy.deepcopy(setup.model)
    model_ref.train()
    sample = setup.batch(8)
    got = plugin_update(setup, sample, steps)
    want = reference_update(model_ref, lambda m: reference(m, sample), steps)
    assert_updates_match(got, want)
    return got


def adv(method, K, alpha, eps, norm, *extra):
    return ["--adv-method", method, "--adv-steps", str(K), "--adv-lr", str(alpha), "--adv-init-mag", "0",
            "--adv-max-norm", str(eps), "--adv-norm-type", norm, *extra]


# eps = 0: projection inactive; eps small: active at every step (alpha > eps).
CASES = [("l2", 0.0), ("l2", 0.05), ("linf", 0.0), ("linf", 0.002)]


@pytest.mark.parametrize("norm,eps", CASES)
def test_freelb_matches_algorithm_1(sp_data, norm, eps):
    alpha = 0.1 if norm == "l2" else 0.01
    _check(sp_data, adv("freelb", 3, alpha, eps, norm), lambda m, s: ref_freelb(m, s, 3, alpha, eps, norm))


def test_freelb_regression_matches_algorithm_1(sp_data):
    _check(sp_data, adv("freelb", 2, 0.1, 0.05, "l2"),
           lambda m, s: ref_freelb(m, s, 2, 0.1, 0.05, "l2", regression=True), regression=True, num_classes=1)


def test_freelb_three_classes_matches_algorithm_1(sp_data):
    _check(sp_data, adv("freelb", 2, 0.1, 0.0, "l2"), lambda m, s: ref_freelb(m, s, 2, 0.1, 0.0, "l2"), num_classes=3)


def test_freelb_differs_from_plain_fine_tuning(sp_data):
    """Guards the reference tests: the perturbation really changes the update."""
    got = _check(sp_data, adv("freelb", 3, 0.5, 0.0, "l2"), lambda m, s: ref_freelb(m, s, 3, 0.5, 0.0, "l2"))
    plain = build(sp_data(), adv("none", 1, 0.0, 0.0, "l2"))
    none = plugin_update(plain, plain.batch(8))
    diff = max((got[k] - none[k]).abs().max().item() for k in got)
    assert diff > 1e-4


@pytest.mark.parametrize("norm,eps", [("l2", 0.0), ("l2", 0.05), ("linf", 0.002)])
def test_pgd_matches_eq_1_2(sp_data, norm, eps):
    alpha = 0.1 if norm == "l2" else 0.01
    _check(sp_data, adv("pgd", 2, alpha, eps, norm), lambda m, s: ref_pgd(m, s, 2, alpha, eps, norm))


@pytest.mark.parametrize("norm,eps", [("l2", 0.05), ("linf", 0.0)])
def test_yopo_matches_section_4_3(sp_data, norm, eps):
    alpha = 0.1 if norm == "l2" else 0.01
    _check(sp_data, adv("yopo", 3, alpha, eps, norm, "--yopo-inner-steps", "2"),
           lambda m, s: ref_yopo(m, s, 3, 2, alpha, eps, norm))


@pytest.mark.parametrize("norm,eps", [("l2", 0.05), ("linf", 0.002)])
def test_freeat_two_consecutive_replays(sp_data, norm, eps):
    """FreeAT (Shafahi et al.): each replay updates theta at delta, then ascends delta; delta carries over."""
    alpha = 0.1 if norm == "l2" else 0.01
    state = {}

    def replay(model, sample):
        mask, zero = ref_setup(model, sample)
        delta = state.get("delta", zero).requires_grad_(True)
        ref_loss(model, sample, delta).backward()
        state["delta"] = ref_ascend(delta.detach(), delta.grad, mask, alpha, eps, norm)

    _check(sp_data, adv("freeat", 2, alpha, eps, norm), replay, steps=2)

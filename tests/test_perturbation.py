"""Unit tests of the perturbation math (fairseq_freelb/core/perturbation.py): pure tensors, no fairseq."""

import math

import pytest
import torch

from fairseq_freelb.core.perturbation import ascent_step, init_delta, per_example_norm, project_to_ball


def masks_of(lengths, T):
    return torch.arange(T).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)


def test_per_example_norm_l2_is_frobenius_over_the_group():
    a = torch.randn(3, 4, 5)
    b = torch.randn(3, 2, 5)
    want = torch.cat([a.reshape(3, -1), b.reshape(3, -1)], dim=1).norm(dim=1)
    torch.testing.assert_close(per_example_norm([a, b], "l2"), want)


def test_per_example_norm_linf_is_max_abs_over_the_group():
    a = torch.zeros(2, 3, 4)
    b = torch.zeros(2, 1, 4)
    a[0, 1, 2] = -7.0
    b[1, 0, 3] = 5.0
    torch.testing.assert_close(per_example_norm([a, b], "linf"), torch.tensor([7.0, 5.0]))


def test_norms_are_fp32_and_do_not_overflow_in_half():
    x = torch.full((1, 4, 8), 60000.0, dtype=torch.float16)  # squares overflow fp16
    n = per_example_norm([x], "l2")
    assert n.dtype == torch.float32 and torch.isfinite(n).all()
    assert n.item() == pytest.approx(60000.0 * math.sqrt(32), rel=1e-3)


def test_l2_init_scale_and_pad_masking():
    torch.manual_seed(0)
    lengths, T, d, M = [3, 10], 12, 64, 2.0
    masks = masks_of(lengths, T)
    (delta,) = init_delta([masks], d, M, "l2")
    assert delta.dtype == torch.float32
    assert (delta[~masks] == 0).all(), "pad positions must be zero"
    for i, L in enumerate(lengths):
        bound = M / math.sqrt(L * d)
        vals = delta[i, :L]
        assert vals.abs().max() <= bound + 1e-7
        # U(-1,1)*bound has std bound/sqrt(3): checks the scale, not just the bound.
        assert vals.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.15)


def test_l2_init_counts_tokens_over_the_whole_group():
    """A question's C candidates share one scale: M / sqrt((sum of lengths) * d)."""
    torch.manual_seed(0)
    d, M = 16, 1.0
    m1, m2 = masks_of([4], 6), masks_of([6], 6)
    d1, d2 = init_delta([m1, m2], d, M, "l2")
    bound = M / math.sqrt(10 * d)
    assert max(d1.abs().max(), d2.abs().max()) <= bound + 1e-7
    assert max(d1.abs().max(), d2.abs().max()) > 0.9 * bound


def test_linf_init_is_uniform_in_the_box():
    torch.manual_seed(0)
    masks = masks_of([5, 2], 5)
    (delta,) = init_delta([masks], 32, 0.3, "linf")
    assert delta.abs().max() <= 0.3 and delta.abs().max() > 0.29
    assert (delta[~masks] == 0).all()


def test_zero_init_is_exactly_zero_and_draws_no_random_numbers():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    (delta,) = init_delta([masks_of([3], 4)], 8, 0.0, "l2")
    assert (delta == 0).all()
    assert torch.equal(state, torch.get_rng_state())


def test_ascent_step_l2_moves_by_alpha_along_normalised_gradient():
    delta = [torch.zeros(2, 3, 4)]
    g = torch.randn(2, 3, 4)
    (out,) = ascent_step(delta, [g], 0.5, "l2")
    torch.testing.assert_close(per_example_norm([out], "l2"), torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(out[0], 0.5 * g[0] / g[0].norm())


def test_ascent_step_linf_divides_by_max_abs():
    g = torch.tensor([[[1.0, -4.0], [2.0, 0.5]]])
    (out,) = ascent_step([torch.zeros_like(g)], [g], 0.2, "linf")
    torch.testing.assert_close(out, 0.2 * g / 4.0)


def test_ascent_step_never_moves_pads():
    masks = masks_of([1, 2], 3)
    g = torch.ones(2, 3, 2)
    (out,) = ascent_step([torch.zeros(2, 3, 2)], [g], 1.0, "l2", masks)
    assert (out[~masks] == 0).all()
    torch.testing.assert_close(per_example_norm([out], "l2"), torch.tensor([1.0, 1.0]))


@pytest.mark.parametrize("bad", [0.0, float("inf"), float("nan")])
def test_zero_or_non_finite_gradient_skips_only_that_example(bad):
    delta = torch.full((2, 2, 2), 0.1)
    g = torch.ones(2, 2, 2)
    g[0] = bad
    (out,) = ascent_step([delta], [g], 1.0, "l2")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], delta[0])  # skipped
    assert not torch.allclose(out[1], delta[1])  # stepped


def test_missing_gradient_counts_as_zero():
    delta = torch.full((1, 2, 2), 0.1)
    (out,) = ascent_step([delta], [None], 1.0, "l2")
    torch.testing.assert_close(out, delta)


def test_fp16_gradient_with_huge_loss_scale_gives_the_same_step():
    g32 = torch.randn(2, 3, 4)
    g16 = (g32 * 2**12).half()
    (a,) = ascent_step([torch.zeros(2, 3, 4)], [g32], 0.1, "l2")
    (b,) = ascent_step([torch.zeros(2, 3, 4)], [g16], 0.1, "l2")
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_l2_projection_rescales_only_examples_outside_the_ball():
    x = torch.zeros(2, 1, 2)
    x[0, 0] = torch.tensor([3.0, 4.0])  # norm 5
    x[1, 0] = torch.tensor([0.3, 0.4])  # norm 0.5
    (out,) = project_to_ball([x], 1.0, "l2")
    torch.testing.assert_close(out[0, 0], torch.tensor([0.6, 0.8]))
    torch.testing.assert_close(out[1], x[1])


def test_l2_projection_is_per_question_over_the_group():
    a = torch.tensor([[[3.0]]])
    b = torch.tensor([[[4.0]]])
    pa, pb = project_to_ball([a, b], 1.0, "l2")
    torch.testing.assert_close(per_example_norm([pa, pb], "l2"), torch.tensor([1.0]))
    torch.testing.assert_close(pa / pb, a / b)


def test_linf_projection_clamps():
    x = torch.tensor([[[0.5, -2.0, 0.1]]])
    (out,) = project_to_ball([x], 0.3, "linf")
    torch.testing.assert_close(out, torch.tensor([[[0.3, -0.3, 0.1]]]))


def test_zero_max_norm_is_unbounded():
    x = torch.randn(2, 3, 4) * 100
    (out,) = project_to_ball([x], 0.0, "l2")
    torch.testing.assert_close(out, x)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="norm type"):
        per_example_norm([torch.zeros(1, 1, 1)], "l1")
    with pytest.raises(ValueError, match="init_mag"):
        init_delta([masks_of([1], 1)], 2, -1.0)
    with pytest.raises(ValueError, match="max_norm"):
        project_to_ball([torch.zeros(1, 1, 1)], -1.0)


# --------------------------------------------------------------------------- per-example radii


def _group(batch=5):
    torch.manual_seed(0)
    # Two tensors per example (a 2-choice question), entries spread so that some rows are
    # inside and some outside each ball, under either norm.
    return [torch.randn(batch, 3, 4) * 2, torch.randn(batch, 2, 4) * 2]


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_per_example_radii_equal_per_row_scalar_projection(norm):
    group = _group()
    radii = torch.tensor([0.5, 1.0, 2.5, 40.0, 3.0])
    projected = project_to_ball(group, radii, norm)
    for b, r in enumerate(radii.tolist()):
        alone = project_to_ball([t[b : b + 1] for t in group], r, norm)
        for p, a in zip(projected, alone):
            torch.testing.assert_close(p[b : b + 1], a, rtol=1e-6, atol=0)
    # The projection bites: rows of small radius moved, and end on (l2) or inside (linf) their ball.
    norms = per_example_norm(projected, norm)
    assert bool((norms <= radii * (1 + 1e-6)).all())
    assert not torch.allclose(projected[0][0], group[0][0])
    torch.testing.assert_close(projected[0][3], group[0][3])  # radius 40: already inside


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_a_number_and_a_tensor_of_equal_radii_project_alike(norm):
    group = _group()
    by_number = project_to_ball(group, 0.7, norm)
    for radii in (torch.tensor(0.7), torch.full((5,), 0.7)):
        for a, b in zip(project_to_ball(group, radii, norm), by_number):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=0)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_zero_radius_leaves_only_that_example_unbounded(norm):
    """0 means unbounded, per example: the --adv-max-norm 0 convention (see the docstring)."""
    group = _group()
    radii = torch.tensor([0.5, 0.0, 0.5, 0.0, 0.5])
    projected = project_to_ball(group, radii, norm)
    for p, g in zip(projected, group):
        torch.testing.assert_close(p[[1, 3]], g[[1, 3]])
        assert not torch.allclose(p[[0, 2, 4]], g[[0, 2, 4]])
    assert bool((per_example_norm(projected, norm)[[0, 2, 4]] <= 0.5 * (1 + 1e-6)).all())


def test_bad_per_example_radii_are_refused():
    group = _group()
    with pytest.raises(ValueError, match=r"\(5,\) tensor"):
        project_to_ball(group, torch.ones(4), "l2")
    with pytest.raises(ValueError, match="every example"):
        project_to_ball(group, torch.tensor([1.0, -1.0, 1.0, 1.0, 1.0]), "l2")
    with pytest.raises(ValueError, match="every example"):
        project_to_ball(group, torch.tensor([1.0, float("nan"), 1.0, 1.0, 1.0]), "linf")
    with pytest.raises(ValueError, match="max_norm"):
        project_to_ball(group, float("nan"), "l2")

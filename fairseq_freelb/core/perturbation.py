"""The perturbation math of FreeLB (Zhu et al., ICLR 2020), as pure tensor code.

Nothing here imports fairseq. Every function works on a *group* of tensors
that together form one example: a sentence-prediction example is a single
``(B, T, d)`` tensor, a multiple-choice question is C such tensors (one per
candidate), and the norm of an example is taken over the concatenation of all
of its tensors (appendix A.1 of the paper). Masks are ``(B, T)`` booleans,
``True`` on real (non-pad) tokens; pad positions are always zero.

All norms and scales are computed in fp32 whatever the input dtype, so that
fp16 gradients (possibly multiplied by a loss scale) neither overflow nor
underflow in the normalisation.
"""

from typing import List, Optional, Sequence, Union

import torch
from torch import Tensor

NORM_TYPES = ("l2", "linf")


def _check_norm_type(norm_type: str) -> None:
    if norm_type not in NORM_TYPES:
        raise ValueError(f"unknown norm type {norm_type!r}; expected one of {NORM_TYPES}")


def _per_example(x: Tensor) -> Tensor:
    """``(B, ...)`` → ``(B, N)`` float32 view for per-example reductions."""
    return x.reshape(x.size(0), -1).float()


def per_example_norm(tensors: Sequence[Tensor], norm_type: str = "l2") -> Tensor:
    """Norm of each example over all of its tensors, in fp32.

    ``l2`` is the Frobenius norm of the concatenated ``(L_i, d)`` matrix; ``linf``
    is its largest absolute entry. Returns a ``(B,)`` float32 tensor.
    """
    _check_norm_type(norm_type)
    flat = [_per_example(t) for t in tensors]
    if norm_type == "l2":
        return torch.sqrt(sum(f.pow(2).sum(dim=1) for f in flat))
    return torch.stack([f.abs().amax(dim=1) for f in flat], dim=0).amax(dim=0)


def _broadcast(per_example: Tensor, like: Tensor) -> Tensor:
    """``(B,)`` → ``(B, 1, ..., 1)`` so that it scales every entry of ``like``."""
    return per_example.view(-1, *([1] * (like.dim() - 1)))


def init_delta(
    masks: Sequence[Tensor],
    hidden_dim: int,
    init_mag: float,
    norm_type: str = "l2",
    generator: Optional[torch.Generator] = None,
) -> List[Tensor]:
    """Draw delta_0 for each tensor of a group (Algorithm 1, line 4).

    * ``l2``: ``U(-1, 1) * init_mag / sqrt(L_i * d)``, where ``L_i`` is the number
      of non-pad tokens of example i over all tensors of the group; so
      ``E ||delta_0||_F^2 = init_mag^2 / 3`` whatever the sequence length.
    * ``linf``: ``U(-init_mag, init_mag)``.

    Pad positions are zero. ``init_mag == 0`` gives exact zeros (and draws no
    random numbers, so the RNG stream is the same as plain fine-tuning's).
    Returns float32 tensors of shape ``(B, T_c, hidden_dim)``.
    """
    _check_norm_type(norm_type)
    if init_mag < 0:
        raise ValueError(f"init_mag must be >= 0, got {init_mag}")
    masks = [m.bool() for m in masks]
    if init_mag == 0:
        return [m.new_zeros(*m.shape, hidden_dim, dtype=torch.float32) for m in masks]
    deltas = []
    for m in masks:
        u = torch.rand(*m.shape, hidden_dim, generator=generator, dtype=torch.float32, device=m.device)
        deltas.append((u * 2 - 1) * m.unsqueeze(-1))
    if norm_type == "l2":
        lengths = sum(m.sum(dim=1) for m in masks).float().clamp(min=1)
        scale = init_mag / torch.sqrt(lengths * hidden_dim)
        return [d * _broadcast(scale, d) for d in deltas]
    return [d * init_mag for d in deltas]


def ascent_step(
    deltas: Sequence[Tensor],
    grads: Sequence[Optional[Tensor]],
    step_size: float,
    norm_type: str = "l2",
    masks: Optional[Sequence[Tensor]] = None,
) -> List[Tensor]:
    """One normalised gradient-ascent step on delta (Algorithm 1, line 9; eq. 2).

    ``delta + step_size * g / ||g||`` with the per-example norm of
    :func:`per_example_norm`. An example whose gradient norm is zero or not
    finite (an fp16 overflow, or the zeroed loss of fairseq's dummy batch) keeps
    its delta unchanged, so the step never produces NaN; fairseq's own
    overflow check then decides about the parameter update. A ``None`` gradient
    (the tensor did not reach the loss) counts as zero. Pad positions (where
    ``masks`` is False) never move. Returns new float32 tensors; the projection
    is separate (:func:`project_to_ball`).
    """
    _check_norm_type(norm_type)
    grads = [torch.zeros_like(d, dtype=torch.float32) if g is None else g.float() for d, g in zip(deltas, grads)]
    if masks is not None:
        grads = [g * m.unsqueeze(-1) for g, m in zip(grads, masks)]
    gnorm = per_example_norm(grads, norm_type)
    usable = torch.isfinite(gnorm) & (gnorm > 0)
    # Where the step is unusable, scale by 0 and replace g by 0 so that inf*0
    # cannot reintroduce NaN.
    scale = torch.where(usable, step_size / gnorm.clamp(min=torch.finfo(torch.float32).tiny), torch.zeros_like(gnorm))
    out = []
    for d, g in zip(deltas, grads):
        g = torch.where(_broadcast(usable, g), g, torch.zeros_like(g))
        out.append(d.float() + _broadcast(scale, g) * g)
    return out


def project_to_ball(
    deltas: Sequence[Tensor], max_norm: Union[float, Tensor], norm_type: str = "l2"
) -> List[Tensor]:
    """Project each example's delta onto ``{||delta|| <= max_norm}`` (Algorithm 1, line 10).

    ``max_norm`` is one radius for every example (a number, or a 0-dim
    tensor) or one radius per example (a ``(B,)`` tensor). ``l2`` rescales an
    example whose norm over its group exceeds its radius onto the sphere and
    leaves the others untouched; ``linf`` clamps every entry of example b to
    ``[-max_norm[b], max_norm[b]]``.

    A radius of 0 means *unbounded*, for that example only: the
    ``--adv-max-norm 0`` convention of the training flags. A caller that
    wants the ball {0} (e.g. the robustness attack at eps = 0) holds those
    examples at zero itself. Radii must be >= 0 and not NaN; ``inf`` is
    unbounded too.
    """
    _check_norm_type(norm_type)
    if not torch.is_tensor(max_norm):
        if not max_norm >= 0:  # also refuses NaN
            raise ValueError(f"max_norm must be >= 0, got {max_norm}")
        if max_norm == 0:
            return [d.float() for d in deltas]
        if norm_type == "linf":
            return [d.float().clamp(-max_norm, max_norm) for d in deltas]
        norm = per_example_norm(deltas, "l2")
        factor = torch.where(norm > max_norm, max_norm / norm.clamp(min=torch.finfo(torch.float32).tiny), torch.ones_like(norm))
        return [d.float() * _broadcast(factor, d) for d in deltas]

    batch = deltas[0].size(0)
    radii = max_norm.detach().to(device=deltas[0].device, dtype=torch.float32)
    if radii.dim() == 0:
        radii = radii.expand(batch)
    if radii.shape != (batch,):
        raise ValueError(f"max_norm must be a number or a ({batch},) tensor of per-example radii, got shape {tuple(radii.shape)}")
    if not bool((radii >= 0).all()):  # also refuses NaN
        raise ValueError(f"max_norm must be >= 0 for every example, got {radii.tolist()}")
    radii = torch.where(radii > 0, radii, torch.full_like(radii, float("inf")))
    if norm_type == "linf":
        return [torch.minimum(torch.maximum(d.float(), -_broadcast(radii, d)), _broadcast(radii, d)) for d in deltas]
    norm = per_example_norm(deltas, "l2")
    factor = torch.where(norm > radii, radii / norm.clamp(min=torch.finfo(torch.float32).tiny), torch.ones_like(norm))
    return [d.float() * _broadcast(factor, d) for d in deltas]

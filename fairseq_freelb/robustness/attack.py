"""The attack of FreeLB section 4.3: PGD on the token embeddings of one fine-tuned model.

For a sample X with label y, eq. 5 of the paper is

    DeltaL_max(X, eps) = max_{||delta|| <= eps} L(f(X + delta), y) - L(f(X), y)

and the maximiser is sought by PGD in token-embedding space:
``delta <- Pi_eps(delta + alpha * g / ||g||)`` (eq. 2; the normalised step of
:func:`~fairseq_freelb.core.perturbation.ascent_step`, the per-example projection of
:func:`~fairseq_freelb.core.perturbation.project_to_ball`), dropout off, each
example in its own ball of radius ``eps[b]``.

The pass (:func:`~fairseq_freelb.core.passes.perturbed_pass`: the forward
hook on the token embedding) and the perturbation group are those of
training, so the ball attacked here is the ball the models were trained in.
"""

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from fairseq_freelb.core.contract import example_inputs
from fairseq_freelb.core.model_access import token_embedding_module
from fairseq_freelb.core.passes import EmbeddingPerturbation, perturbed_pass
from fairseq_freelb.core.perturbation import ascent_step, init_delta, per_example_norm, project_to_ball
from fairseq_freelb.robustness.arguments import AttackConfig, RobustnessError


def restart_seed(seed: int, sample_id: int, restart: int) -> int:
    """A seed for one sample's restart, independent of batching and of the other samples."""
    return int(np.random.SeedSequence([seed, sample_id, restart]).generate_state(1, dtype=np.uint64)[0] >> 1)


def random_start(masks: Sequence[Tensor], hidden_dim: int, radii: Tensor, norm_type: str, seeds: Sequence[int]) -> List[Tensor]:
    """A random delta_0 in each example's ball, drawn per example over its real tokens only.

    Each example's draw is :func:`init_delta` with ``init_mag = radii[b]`` on a
    pad-free mask of its own length, from its own generator, so it does not
    depend on the batch it is in or on the batch's padding.
    """
    out = [torch.zeros(*m.shape, hidden_dim, dtype=torch.float32) for m in masks]
    cpu_masks = [m.bool().cpu() for m in masks]
    for b, seed in enumerate(seeds):
        generator = torch.Generator().manual_seed(seed)
        lengths = [int(m[b].sum()) for m in cpu_masks]
        draws = init_delta(
            [torch.ones(1, n, dtype=torch.bool) for n in lengths], hidden_dim, float(radii[b]), norm_type, generator
        )
        for o, m, d in zip(out, cpu_masks, draws):
            o[b][m[b]] = d[0]
    return [o.to(m.device) for o, m in zip(out, masks)]


def slice_sample(sample, index: Sequence[int], batch_size: Optional[int] = None):
    """The sub-batch of a collated fairseq sample holding the examples ``index``.

    Every tensor whose first dimension is the batch is indexed; ``nsentences``
    is updated; everything else is kept. Works for nested net_inputs
    (``net_input1`` .. ``net_inputC`` of ranking tasks).
    """
    if batch_size is None:
        batch_size = sample["id"].numel()

    def cut(x):
        if torch.is_tensor(x) and x.dim() >= 1 and x.size(0) == batch_size:
            return x[torch.as_tensor(list(index), dtype=torch.long, device=x.device)]
        if isinstance(x, dict):
            return {k: cut(v) for k, v in x.items()}
        return x

    out = cut(sample)
    if isinstance(out, dict) and "nsentences" in out:
        out["nsentences"] = len(index)
    return out


def _column(x: Tensor, b: int) -> Tensor:
    return x[b : b + 1]


# --------------------------------------------------------------------------- the attack


@dataclass
class AttackResult:
    """Per-example outcome of :meth:`EmbeddingAttack.attack`; tensors on the CPU, float64."""

    eps: Tensor  # (B,)
    natural_loss: Tensor  # (B,)
    restart_loss: Tensor  # (B, R): loss at each restart's final delta
    restart_correct: Tensor  # (B, R) bool: still correct at that delta

    @property
    def max_loss(self) -> Tensor:
        return self.restart_loss.max(dim=1).values

    @property
    def max_increase(self) -> Tensor:
        """DeltaL_max of eq. 5 (not clipped at 0: a negative value would mean the attack failed)."""
        return self.max_loss - self.natural_loss

    @property
    def restart_spread(self) -> Tensor:
        """max - min over restarts of the final loss: 0 when the restarts agree."""
        return self.restart_loss.max(dim=1).values - self.restart_loss.min(dim=1).values

    @property
    def correct_after(self) -> Tensor:
        """Correct at every restart's final delta (i.e. no restart flipped it)."""
        return self.restart_correct.all(dim=1)


class EmbeddingAttack:
    """PGD on one model's token embeddings, through a criterion's own loss.

    The criterion must define ``adversarial_inputs(sample)`` (the plugin's
    criteria do): the net_inputs its model calls use, in call order; their
    token embeddings together form one example's perturbation group (all C
    candidates of a multiple-choice question share one norm ball, as in
    training). The batch loss may be any sum or mean over examples: examples do
    not interact with dropout off, and the per-example normalised step removes
    any common scale, so each example's path is the one it would take alone.
    Per-example losses are read from the criterion run on one-example
    sub-batches.
    """

    def __init__(self, model: nn.Module, criterion, cfg: AttackConfig):
        if not callable(getattr(criterion, "adversarial_inputs", None)):
            raise RobustnessError(
                f"criterion {type(criterion).__name__} has no adversarial_inputs(sample); "
                "pass --criterion with a fairseq_freelb criterion (e.g. freelb_sentence_prediction)"
            )
        self.model = model
        self.criterion = criterion
        self.cfg = cfg
        self.embed = token_embedding_module(model)
        self.regression = bool(getattr(criterion, "regression_target", False))

    # ----------------------------------------------------------- pieces

    def _masks(self, sample) -> List[Tensor]:
        """The perturbed positions, exactly as in training (:func:`~fairseq_freelb.core.contract.example_inputs`).

        A criterion may narrow the group beyond "non-pad" (the ranking
        criterion leaves out the placeholder rows of missing choices); the
        ball here is then the ball of training.
        """
        _, _, masks = example_inputs(sample, self.model, self.criterion)
        return masks

    @torch.no_grad()
    def embedding_norms(self, sample) -> Tensor:
        """||X||_F per example: the token embeddings (what delta is added to) over all non-pad tokens."""
        embs = []
        for net_input, mask in zip(self.criterion.adversarial_inputs(sample), self._masks(sample)):
            embs.append(self.embed(net_input["src_tokens"]).float() * mask.unsqueeze(-1))
        return per_example_norm(embs, "l2").double().cpu()

    def _correct(self, loss: Tensor, log: Dict) -> bool:
        if self.regression:
            # The squared-error loss of sentence_prediction --regression-target: |error| = sqrt(loss).
            return bool(math.sqrt(max(float(loss), 0.0)) < self.cfg.regression_tolerance)
        if "ncorrect" not in log:
            raise RobustnessError(
                f"criterion {type(self.criterion).__name__} logs no 'ncorrect' and is not a regression "
                "criterion: cannot tell which samples are classified correctly"
            )
        return bool(int(log["ncorrect"]) == 1)

    @torch.no_grad()
    def evaluate(self, sample, deltas: Optional[List[Tensor]] = None):
        """Per-example loss and correctness at ``X + delta`` (``delta = 0`` when None)."""
        n = sample["id"].numel()
        losses, correct = [], []
        with EmbeddingPerturbation(self.embed) as perturbation:
            for b in range(n):
                one = slice_sample(sample, [b], n)
                perturbation.set(None if deltas is None else [_column(d, b) for d in deltas])
                loss, _, log = self.criterion(self.model, one)
                perturbation.check_all_used()
                losses.append(float(loss))
                correct.append(self._correct(loss, log))
        return torch.tensor(losses, dtype=torch.float64), torch.tensor(correct, dtype=torch.bool)

    def _pgd(self, sample, masks: List[Tensor], deltas: List[Tensor], radii: Tensor) -> List[Tensor]:
        """``--steps`` normalised ascent steps, each projected onto example b's own ball ``||delta_b|| <= radii[b]``.

        :func:`project_to_ball` reads a zero radius as "unbounded" (the
        ``--adv-max-norm 0`` convention of training); here eps = 0 means the
        ball {0}, so those examples are held at delta = 0.
        """
        radii_dev = radii.to(masks[0].device).float()
        held = [(radii_dev > 0).view(-1, *([1] * (d.dim() - 1))) for d in deltas]
        with EmbeddingPerturbation(self.embed) as perturbation, torch.enable_grad():
            for _ in range(self.cfg.steps):
                grads = perturbed_pass(self.model, self.criterion, sample, perturbation, deltas, delta_grads=True).delta_grads
                stepped = ascent_step([d.detach() for d in deltas], grads, self.cfg.step_size, self.cfg.norm, masks)
                projected = project_to_ball(stepped, radii_dev, self.cfg.norm)
                deltas = [d * h for d, h in zip(projected, held)]
        return [d.detach() for d in deltas]

    # ----------------------------------------------------------- entry point

    def attack(self, sample, eps: Tensor, natural_loss: Optional[Tensor] = None) -> AttackResult:
        """Maximise each example's loss over ``||delta_b|| <= eps[b]``, ``--restarts`` times."""
        self.model.eval()  # dropout off: the loss is a deterministic function of delta
        eps = eps.double().cpu()
        masks = self._masks(sample)
        hidden = self.embed.embedding_dim
        ids = [int(i) for i in sample["id"].tolist()]
        if natural_loss is None:
            natural_loss, _ = self.evaluate(sample)
        losses, correct = [], []
        for restart in range(self.cfg.restarts):
            if restart == 0:
                deltas = [torch.zeros(*m.shape, hidden, dtype=torch.float32, device=m.device) for m in masks]
            else:
                seeds = [restart_seed(self.cfg.seed, i, restart) for i in ids]
                deltas = random_start(masks, hidden, eps, self.cfg.norm, seeds)
            if bool((eps > 0).any()):
                deltas = self._pgd(sample, masks, deltas, eps)
            loss, ok = self.evaluate(sample, deltas)
            # eps = 0 leaves X unperturbed: report the natural loss exactly.
            loss = torch.where(eps > 0, loss, natural_loss)
            losses.append(loss)
            correct.append(ok)
        return AttackResult(
            eps=eps,
            natural_loss=natural_loss.double(),
            restart_loss=torch.stack(losses, dim=1),
            restart_correct=torch.stack(correct, dim=1),
        )


def search_eps(
    reference: EmbeddingAttack, sample, start: float, levels: int, natural_loss: Optional[Tensor] = None
):
    """Footnote 12: per example, the largest ``eps = start * (1 - k / levels)`` at which the
    reference model still classifies it correctly after the full attack.

    Returns ``(eps (B,), reference AttackResult at that eps)``; ``k = levels``
    (eps = 0) always succeeds for a correctly classified example.
    """
    n = sample["id"].numel()
    if natural_loss is None:
        natural_loss, _ = reference.evaluate(sample)
    found_eps = torch.zeros(n, dtype=torch.float64)
    found_loss = natural_loss.view(n, 1).repeat(1, reference.cfg.restarts).clone()
    found_correct = torch.ones(n, reference.cfg.restarts, dtype=torch.bool)
    remaining = list(range(n))
    for k in range(levels):
        if not remaining:
            break
        eps_k = start * (1.0 - k / levels)
        sub = slice_sample(sample, remaining, n)
        result = reference.attack(sub, torch.full((len(remaining),), eps_k, dtype=torch.float64), natural_loss[remaining])
        still = []
        for j, b in enumerate(remaining):
            if bool(result.correct_after[j]):
                found_eps[b] = eps_k
                found_loss[b] = result.restart_loss[j]
                found_correct[b] = result.restart_correct[j]
            else:
                still.append(b)
        remaining = still
    return found_eps, AttackResult(found_eps, natural_loss.double(), found_loss, found_correct)

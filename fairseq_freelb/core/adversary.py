"""The :class:`Adversary`: one training step of the configured method, and its method table.

fairseq's public hook for a step that does several backward passes is
``FairseqTask.train_step``; the task mixin
(:mod:`fairseq_freelb.adapters.task_mixin`) does fairseq's own preparation
(``model.train()``, ``set_num_updates``) and hands the step to the task's
adversary. Nothing here imports fairseq: the optimizer only needs
``backward(loss)`` (and, for fp16, a loss ``scaler``). Like a ``torch.optim`` optimizer, the adversary is a thin stateful
class (settings, FreeAT's carried deltas with ``state_dict``) over functional
kernels: the perturbation math (:mod:`~fairseq_freelb.core.perturbation`) and
the pass primitive (:func:`~fairseq_freelb.core.passes.perturbed_pass`).
"""

import contextlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor, nn

from fairseq_freelb.core import freeat, yopo
from fairseq_freelb.core.contract import example_inputs, perturbed_embedding
from fairseq_freelb.core.model_access import model_device
from fairseq_freelb.core.passes import EmbeddingPerturbation, RNGSnapshot, loss_scale, perturbed_pass
from fairseq_freelb.core.perturbation import ascent_step, init_delta, per_example_norm, project_to_ball
from fairseq_freelb.core.settings import ADV_METHODS, AdversarySettings


@dataclass
class Step:
    """The arguments of one ``train_step`` call."""

    sample: dict
    model: nn.Module
    criterion: object
    optimizer: object
    update_num: int
    ignore_grad: bool
    device: torch.device
    autocast_dtype: Optional[torch.dtype]


class Adversary:
    """Runs one training step of the configured adversarial method (``--adv-method``).

    The criterion passed to :meth:`train_step` follows the contract of
    :mod:`fairseq_freelb.core.contract`.
    """

    def __init__(self, settings: AdversarySettings):
        self.settings = settings
        self.freeat = freeat.FreeATState(self.settings) if self.method == "freeat" else None

    @property
    def method(self) -> str:
        return self.settings.method

    # ----------------------------------------------------------- state (FreeAT's carried deltas)

    def state_dict(self) -> dict:
        return {} if self.freeat is None else self.freeat.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if self.freeat is not None:
            self.freeat.load_state_dict(state)

    # ----------------------------------------------------------- entry points

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False, amp_optimizer=False):
        """One training step on ``sample`` (the model is already in training mode).

        ``optimizer.backward(loss)`` backpropagates each pass; ``amp_optimizer``
        says whether it is fairseq's ``--amp`` optimizer (the passes then run
        under autocast, :meth:`AdversarySettings.train_autocast_dtype`).
        Returns fairseq's ``(loss, sample_size, logging_output)``.
        """
        device = model_device(model)
        dtype = self.settings.train_autocast_dtype(amp_optimizer, device)
        step = Step(sample, model, criterion, optimizer, update_num, ignore_grad, device, dtype)
        if self.freeat is not None:
            adversarial = self.freeat.step_is_adversarial(update_num)
        else:
            adversarial = update_num >= self.settings.begin_update
        return METHODS[self.method if adversarial else "none"](self, step)

    def valid_autocast(self, device: torch.device):
        """The autocast validation runs under (bf16 validates as it trains; otherwise none)."""
        dtype = self.settings.valid_autocast_dtype()
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype)

    # ----------------------------------------------------------- pieces shared by the methods

    def init_deltas(self, embed, masks) -> List[Tensor]:
        """delta_0 (Algorithm 1, line 4): fp32, zero on pads."""
        return init_delta(masks, embed.embedding_dim, self.settings.init_mag, self.settings.norm_type)

    def start(self, sample, model, criterion):
        """(inputs, embedding module, masks, delta_0) of a minibatch."""
        inputs, embed, masks = example_inputs(sample, model, criterion)
        return inputs, embed, masks, self.init_deltas(embed, masks)

    def rng(self, model) -> Optional[RNGSnapshot]:
        # Taken after delta_0 is drawn, so that every pass replays the masks of the first.
        return None if self.settings.resample_dropout else RNGSnapshot(model_device(model))

    def ascend(self, deltas, grads, masks, step_size: float) -> List[Tensor]:
        """Algorithm 1, lines 9-10: a normalised ascent step, then the projection onto the ball."""
        stepped = ascent_step(deltas, grads, step_size, self.settings.norm_type, masks)
        return project_to_ball(stepped, self.settings.max_norm, self.settings.norm_type)

    def log(self, first_log, losses, deltas) -> dict:
        """fairseq's logging output, plus what shows the adversary at work.

        ``loss`` is the mean over passes (the objective the update descends);
        counts and accuracy come from the first pass; ``adv_loss_init`` and
        ``adv_loss_last`` are the losses at delta_0 and at the last pass;
        ``adv_delta_norm`` sums the per-example norms of the last pass's delta.
        """
        log = dict(first_log)
        log["loss"] = sum(losses) / len(losses)
        log["adv_loss_init"] = losses[0]
        log["adv_loss_last"] = losses[-1]
        log["adv_delta_norm"] = per_example_norm(deltas, self.settings.norm_type).sum().detach()
        return log

    def accumulating_passes(self, step: Step, deltas, ascend: Callable, around=None):
        """The K passes of FreeLB and YOPO: each backpropagates loss/K into the parameter gradients.

        Every pass replays the first pass's dropout masks (unless
        ``--adv-resample-dropout``); all but the last skip DDP's all-reduce.
        Between passes ``ascend(deltas, grads, perturbation, rng)`` returns the
        next delta, ``grads`` being this pass's gradient of each delta.
        """
        steps = self.settings.steps
        rng = self.rng(step.model)
        losses, first_log = [], None
        with EmbeddingPerturbation(perturbed_embedding(step.model, step.criterion)) as perturbation:
            for t in range(steps):
                last = t == steps - 1
                out = perturbed_pass(
                    step.model, step.criterion, step.sample, perturbation, deltas, rng=rng, sync=last,
                    autocast_dtype=step.autocast_dtype, ignore_grad=step.ignore_grad,
                    backward=lambda loss: step.optimizer.backward(loss / steps), around=around,
                )
                losses.append(out.loss)
                first_log = out.log if t == 0 else first_log
                if not last:
                    deltas = ascend(deltas, out.delta_grads, perturbation, rng)
        return sum(losses) / steps, out.sample_size, self.log(first_log, losses, deltas)


# --------------------------------------------------------------------------- the methods


def plain_step(adversary: Adversary, step: Step):
    """No perturbation: fairseq's own step (``--adv-method none`` and the ``--adv-begin-update`` warm-up)."""
    out = perturbed_pass(step.model, step.criterion, step.sample, autocast_dtype=step.autocast_dtype,
                         ignore_grad=step.ignore_grad, backward=step.optimizer.backward)
    return out.loss, out.sample_size, out.log


def freelb_step(adversary: Adversary, step: Step):
    """FreeLB-K, Algorithm 1: K passes, parameter gradients averaged over delta_0..delta_{K-1}."""
    _, _, masks, deltas = adversary.start(step.sample, step.model, step.criterion)

    def ascend(deltas, grads, perturbation, rng):
        return adversary.ascend(deltas, grads, masks, adversary.settings.lr)

    return adversary.accumulating_passes(step, deltas, ascend)


def pgd_step(adversary: Adversary, step: Step):
    """PGD-K (eq. 1-2): K delta-only ascent passes, then one descent pass at delta_K."""
    settings = adversary.settings
    _, embed, masks, deltas = adversary.start(step.sample, step.model, step.criterion)
    rng = adversary.rng(step.model)
    scale = loss_scale(step.optimizer)
    losses = []
    with EmbeddingPerturbation(embed) as perturbation:
        for _ in range(settings.steps):
            out = perturbed_pass(step.model, step.criterion, step.sample, perturbation, deltas, rng=rng, sync=False,
                                 autocast_dtype=step.autocast_dtype, ignore_grad=step.ignore_grad,
                                 delta_grads=True, grad_scale=scale)
            losses.append(out.loss)
            deltas = adversary.ascend(deltas, out.delta_grads, masks, settings.lr)
        out = perturbed_pass(step.model, step.criterion, step.sample, perturbation, deltas, rng=rng,
                             autocast_dtype=step.autocast_dtype, ignore_grad=step.ignore_grad,
                             backward=step.optimizer.backward)
    losses.append(out.loss)
    log = adversary.log(out.log, losses, deltas)
    log["loss"] = out.loss  # the descent pass alone makes the update
    return out.loss, out.sample_size, log


# The method table: one step function per --adv-method.
METHODS: Dict[str, Callable] = {
    "freelb": freelb_step,
    "pgd": pgd_step,
    "freeat": freeat.freeat_step,
    "yopo": yopo.yopo_step,
    "none": plain_step,
}
if tuple(METHODS) != ADV_METHODS:
    raise ImportError(f"adversary.METHODS {tuple(METHODS)} must list ADV_METHODS {ADV_METHODS} in order")

"""The pass primitive: one forward and backward pass at X + delta, shared by every method.

FreeLB's K passes, PGD's ascent and descent passes, a FreeAT replay, YOPO's
full passes and the robustness attack all call :func:`perturbed_pass`. It
does, in one place:

* the forward hook that adds ``delta`` to the token embeddings (word
  embeddings only: not positions, not segments), inside the model's own
  forward, whatever the criterion calls (:class:`EmbeddingPerturbation`);
* the RNG restore that makes every pass of a minibatch draw the first pass's
  dropout masks (section 3.3 of Zhu et al. 2020; :class:`RNGSnapshot`);
* autocast (``--amp``; ``--amp-dtype``);
* DDP's ``no_sync`` for every pass but the one that completes the update,
  so an update all-reduces once;
* fairseq's ``ignore_grad`` (the dummy batch): the loss is zeroed.
"""

import contextlib
from dataclasses import dataclass
from typing import Callable, List, Optional

import torch
from torch import Tensor, nn


class RNGSnapshot:
    """CPU and current-CUDA-device RNG state, restored before each pass.

    Restoring the state makes every dropout of the model (attention, FFN,
    embedding, classification head) draw the same mask again: section 3.3's
    reuse of dropout masks over the K passes, without touching fairseq.
    """

    def __init__(self, device: torch.device):
        self.cpu = torch.get_rng_state()
        self.cuda_device = device if device.type == "cuda" else None
        self.cuda = torch.cuda.get_rng_state(device) if self.cuda_device is not None else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda_device is not None:
            torch.cuda.set_rng_state(self.cuda, self.cuda_device)

    def state_dict(self) -> dict:
        return {"cpu": self.cpu, "cuda": self.cuda, "cuda_device": None if self.cuda_device is None else str(self.cuda_device)}

    @classmethod
    def from_state_dict(cls, state: dict) -> "RNGSnapshot":
        snapshot = cls.__new__(cls)
        snapshot.cpu, snapshot.cuda = state["cpu"], state["cuda"]
        snapshot.cuda_device = None if state["cuda_device"] is None else torch.device(state["cuda_device"])
        return snapshot


class EmbeddingPerturbation:
    """Forward hook adding ``deltas[i]`` to the i-th token-embedding call of a pass.

    fp32 deltas are cast to the embedding's dtype (fp16/bf16 models), so the
    gradient reaching them is accumulated in fp32.
    """

    def __init__(self, module: nn.Module):
        self.module = module
        self.deltas: Optional[List[Tensor]] = None
        self.calls = 0
        self._handle = None

    def __enter__(self):
        self._handle = self.module.register_forward_hook(self._add)
        return self

    def __exit__(self, *exc):
        self._handle.remove()
        self.deltas = None

    def set(self, deltas: Optional[List[Tensor]]) -> None:
        self.deltas, self.calls = deltas, 0

    def check_all_used(self) -> None:
        if self.deltas is not None and self.calls != len(self.deltas):
            raise RuntimeError(
                f"the criterion declared {len(self.deltas)} embedding call(s) per example in "
                f"adversarial_inputs() but the model made {self.calls}"
            )

    def _add(self, module, inputs, output):
        if self.deltas is None:
            return None
        if self.calls >= len(self.deltas):
            raise RuntimeError(
                "the model called its token embedding more often than the criterion's adversarial_inputs() declared"
            )
        delta = self.deltas[self.calls]
        self.calls += 1
        if delta.shape != output.shape:
            raise RuntimeError(f"delta of shape {tuple(delta.shape)} does not match embeddings {tuple(output.shape)}")
        return output + delta.to(output.dtype)


def sync_context(model: nn.Module, sync: bool):
    """Inside DDP, every pass but the one that completes the update skips the all-reduce."""
    if not sync and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """``torch.autocast`` to ``dtype`` on ``device``'s type; no autocast when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def loss_scale(optimizer) -> float:
    """The fp16 loss scale, so delta-only gradients (PGD) do not underflow in half precision.

    Read from the optimizer's public ``scaler``: fairseq's ``--fp16`` keeps a
    ``DynamicLossScaler`` there (``loss_scale``), ``--amp`` torch's ``GradScaler``
    (``get_scale()``); an optimizer without one has scale 1.
    """
    scaler = getattr(optimizer, "scaler", None)
    if scaler is None:
        return 1.0
    if getattr(scaler, "loss_scale", None):
        return float(scaler.loss_scale)
    get_scale = getattr(scaler, "get_scale", None)
    return float(get_scale()) if callable(get_scale) else 1.0


@dataclass
class PassOutput:
    loss: Tensor  # detached; zero under ignore_grad
    sample_size: int
    log: dict
    # d(loss)/d(delta_i) of this pass (None entries: delta_i did not reach the loss); None if not asked for
    delta_grads: Optional[List[Optional[Tensor]]]


def perturbed_pass(
    model: nn.Module,
    criterion,
    sample,
    perturbation: Optional[EmbeddingPerturbation] = None,
    deltas: Optional[List[Tensor]] = None,
    *,
    rng: Optional[RNGSnapshot] = None,
    sync: bool = True,
    autocast_dtype: Optional[torch.dtype] = None,
    ignore_grad: bool = False,
    backward: Optional[Callable[[Tensor], None]] = None,
    delta_grads: bool = False,
    grad_scale: float = 1.0,
    around=None,
) -> PassOutput:
    """One pass of ``criterion(model, sample)`` at ``X + deltas``.

    ``rng`` (if given) is restored first, so the pass draws the dropout masks
    of the pass that took the snapshot. ``deltas`` (fp32, one per model call
    the criterion declares) are added through ``perturbation``. After the
    forward (under ``autocast_dtype``), ``backward(loss)`` accumulates the
    parameter gradients (FreeLB passes ``loss / K``); the gradients reaching
    ``deltas`` are then returned. With ``delta_grads=True`` and no
    ``backward`` only the delta gradients of ``loss * grad_scale`` are taken
    (PGD's ascent, the robustness attack); parameters get none. Forward and
    backward run inside ``no_sync`` unless ``sync``, and inside ``around()``
    when given (YOPO records the first block's gradients there).
    """
    if rng is not None:
        rng.restore()
    leaves = None if deltas is None else [d.detach().requires_grad_(True) for d in deltas]
    if perturbation is not None:
        perturbation.set(leaves)
    device = next(iter(model.parameters())).device
    with sync_context(model, sync), (around() if around is not None else contextlib.nullcontext()):
        with autocast(device, autocast_dtype):
            loss, sample_size, log = criterion(model, sample)
        if perturbation is not None:
            perturbation.check_all_used()
        if ignore_grad:
            loss = loss * 0
        grads = None
        if backward is not None:
            backward(loss)
            if leaves is not None:
                grads = [leaf.grad for leaf in leaves]
        elif delta_grads and leaves is not None:
            grads = list(torch.autograd.grad(loss * grad_scale, leaves, allow_unused=True))
    return PassOutput(loss.detach(), sample_size, log, grads)

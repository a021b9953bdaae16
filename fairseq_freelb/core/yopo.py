"""YOPO-m-n (Zhang et al. 2019) as FreeLB's section 4.3 runs it.

m = ``--adv-steps`` full passes accumulate parameter gradients as in FreeLB.
After each but the last, n = ``--yopo-inner-steps`` cheap ascent steps
maximise <p, f0(X + delta)>, where f0 ends at the first transformer block and
p = dL/d f0 is frozen from the full pass; their step size is ``--adv-lr`` / n.
"""

import contextlib
from typing import List, Optional

import torch
from torch import Tensor

from fairseq_freelb.core.model_access import first_block_module, unwrap_model
from fairseq_freelb.core.passes import RNGSnapshot, autocast


class _StopForward(Exception):
    """Raised by the hook on the first block to end a forward pass early."""


def _block_output(output) -> Tensor:
    # fairseq encoder layers return x, or (x, fc_result) when asked for FFN outputs.
    return output[0] if isinstance(output, tuple) else output


def _capture_output_grad(store: List[Optional[Tensor]]):
    """Forward hook recording dL/d(first block output) of each embedding call in order."""
    counter = [0]

    def hook(module, inputs, output):
        index = counter[0]
        counter[0] += 1
        x = _block_output(output)
        if x.requires_grad and index < len(store):

            def save(grad, index=index):
                store[index] = grad.detach()

            x.register_hook(save)

    return hook


def _capture_call_rng(store: List[Optional[RNGSnapshot]], device: torch.device):
    """Forward pre-hook on the token embedding recording the RNG state at each model call of a pass."""
    counter = [0]

    def hook(module, inputs):
        if counter[0] < len(store):
            store[counter[0]] = RNGSnapshot(device)
        counter[0] += 1

    return hook


def _stop_after(outputs: List[Tensor]):
    def hook(module, inputs, output):
        outputs.append(_block_output(output))
        raise _StopForward

    return hook


def first_block_ascent_grads(plain, block, inputs, perturbation, deltas, p_grads, call_rngs):
    """d/d delta of sum_c <p_c, f0(X_c + delta_c)>, running the model only up to its first block.

    ``call_rngs[c]`` (None with ``--adv-resample-dropout``) replays the
    dropout masks candidate c had in the full pass.
    """
    leaves = [d.detach().requires_grad_(True) for d in deltas]
    objective = 0.0
    for c, net_input in enumerate(inputs):
        if p_grads[c] is None:
            continue
        if call_rngs is not None:
            call_rngs[c].restore()
        outputs: List[Tensor] = []
        handle = block.register_forward_hook(_stop_after(outputs))
        perturbation.set([leaves[c]])
        try:
            plain(**net_input)
        except _StopForward:
            pass
        finally:
            handle.remove()
        objective = objective + (outputs[0].float() * p_grads[c].float()).sum()
    if not torch.is_tensor(objective):
        return [None] * len(leaves)
    return list(torch.autograd.grad(objective, leaves, allow_unused=True))


def yopo_step(adversary, step):
    """m full passes (FreeLB's accumulation) with n first-block ascent steps between them."""
    settings = adversary.settings
    inner = settings.yopo_inner_steps
    inputs, embed, masks, deltas = adversary.start(step.sample, step.model, step.criterion)
    block = first_block_module(step.model)
    plain = unwrap_model(step.model)
    p_grads: List[Optional[Tensor]] = [None] * len(inputs)
    # The RNG state at the start of each model call of a full pass, so that
    # f0 of candidate c replays candidate c's own dropout masks.
    call_rngs: List[Optional[RNGSnapshot]] = [None] * len(inputs)

    @contextlib.contextmanager
    def capture():
        pre = embed.register_forward_pre_hook(_capture_call_rng(call_rngs, step.device))
        post = block.register_forward_hook(_capture_output_grad(p_grads))
        try:
            yield
        finally:
            pre.remove()
            post.remove()

    def ascend(deltas, grads, perturbation, rng):
        replay = call_rngs if rng is not None else None
        for _ in range(inner):
            with autocast(step.device, step.autocast_dtype):
                grads = first_block_ascent_grads(plain, block, inputs, perturbation, deltas, p_grads, replay)
            deltas = adversary.ascend(deltas, grads, masks, settings.lr / inner)
        return deltas

    return adversary.accumulating_passes(step, deltas, ascend, around=capture)

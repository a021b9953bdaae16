"""The adversarial training step: one hook for every task and every method.

fairseq's public hook for a step that does several backward passes is
``FairseqTask.train_step``. :class:`AdversarialTrainingMixin` overrides it on
any task and hands the step to :class:`Adversary`, which holds the method loop
(FreeLB, PGD, FreeAT, YOPO, or none), dropout-mask reuse and the gradient
synchronisation rules. Criteria stay thin: they expose their ``--adv-*``
config as ``criterion.adversary`` and say which model calls make up one
example (:meth:`adversarial_inputs`).

The perturbation enters the model through a forward hook on the token
embedding module, so it is added to the word embeddings only (not positions,
not segments), inside the model's own forward, whatever the criterion calls.
"""

import contextlib
from typing import Dict, List, Optional

import torch
from fairseq.data.iterators import CountingIterator
from fairseq.optim.amp_optimizer import AMPOptimizer
from torch import Tensor, nn

from fairseq_freelb.adapters.config import AdversarialConfigError
from fairseq_freelb.core.perturbation import ascent_step, init_delta, per_example_norm, project_to_ball


# --------------------------------------------------------------------------- model access


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip DDP / fairseq proxy wrappers (each keeps the wrapped model in ``.module``)."""
    while isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model


def _sentence_encoder(model: nn.Module) -> nn.Module:
    encoder = getattr(unwrap_model(model), "encoder", None)
    # RoBERTa keeps its TransformerEncoder in encoder.sentence_encoder; a plain
    # fairseq encoder is the TransformerEncoder itself.
    inner = getattr(encoder, "sentence_encoder", encoder)
    if inner is None or not isinstance(getattr(inner, "embed_tokens", None), nn.Module):
        raise TypeError(
            f"{type(unwrap_model(model)).__name__} has no encoder.sentence_encoder.embed_tokens or "
            "encoder.embed_tokens: fairseq_freelb needs a fairseq encoder with token embeddings"
        )
    return inner


def token_embedding_module(model: nn.Module) -> nn.Module:
    """The module whose output is the word/subword token embedding."""
    return _sentence_encoder(model).embed_tokens


def first_block_module(model: nn.Module) -> nn.Module:
    """The first transformer block (YOPO's f0 ends at its output)."""
    return _sentence_encoder(model).layers[0]


# --------------------------------------------------------------------------- helpers


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


@contextlib.contextmanager
def _hooked(module: nn.Module, hook):
    """A forward hook on ``module`` for the duration of the block."""
    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


class _StopForward(Exception):
    """Raised by YOPO's hook on the first block to end a forward pass early."""


def _sync_context(model: nn.Module, sync: bool):
    """Inside DDP, every pass but the one that completes the update skips the all-reduce."""
    if not sync and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()


def _autocast(optimizer, device: torch.device):
    """Autocast exactly where fairseq's own train_step does: ``--amp`` on CUDA, every pass."""
    if isinstance(optimizer, AMPOptimizer) and device.type == "cuda":
        return torch.autocast(device_type="cuda")
    return contextlib.nullcontext()


def _loss_scale(optimizer) -> float:
    """The fp16 loss scale, so delta-only gradients (PGD) do not underflow in half precision."""
    scaler = getattr(optimizer, "scaler", None)
    if scaler is not None and getattr(scaler, "loss_scale", None):
        return float(scaler.loss_scale)
    grad_scaler = getattr(optimizer, "_grad_scaler", None)
    if grad_scaler is not None:
        return float(grad_scaler.get_scale())
    return 1.0


def example_inputs(sample, model, criterion):
    """A minibatch's model inputs, the token-embedding module, and the masks of what may move.

    The masks are the non-pad tokens of each of ``criterion.adversarial_inputs(sample)``,
    narrowed by the criterion's optional ``adversarial_masks(sample, masks)``
    (e.g. placeholder rows of missing multiple-choice answers).
    """
    inputs = criterion.adversarial_inputs(sample)
    embed = token_embedding_module(model)
    masks = [net_input["src_tokens"].ne(embed.padding_idx) for net_input in inputs]
    narrow = getattr(criterion, "adversarial_masks", None)
    if narrow is not None:
        masks = narrow(sample, masks)
    return inputs, embed, masks


def _leaves(deltas: List[Tensor]) -> List[Tensor]:
    return [d.detach().requires_grad_(True) for d in deltas]


# --------------------------------------------------------------------------- FreeAT batch replay


class ReplayEpochBatchIterator:
    """An ``EpochBatchIterating`` that yields every batch of ``inner`` ``replays`` times in a row.

    FreeAT (Shafahi et al. 2019) replays each minibatch K times, each replay a
    full optimizer update. Checkpoints (fairseq saves this iterator's
    ``state_dict`` in ``extra_state["train_iterator"]``) store the underlying
    batch position, the replay offset and the delta carried between replays,
    so a resumed run continues exactly where it stopped.
    """

    def __init__(self, inner, replays: int, adversary: "Adversary"):
        self.inner = inner
        self.replays = replays
        self.adversary = adversary
        self._itr = None
        self._resume_replay = 0

    def __getattr__(self, name):  # epoch, dataset, ... of the wrapped iterator
        return getattr(self.__dict__["inner"], name)

    def __len__(self) -> int:
        return len(self.inner) * self.replays

    @property
    def next_epoch_idx(self):
        return self.inner.next_epoch_idx

    @property
    def first_batch(self):
        return self.inner.first_batch

    def next_epoch_itr(self, shuffle=True, fix_batches_to_gpus=False, set_dataset_epoch=True):
        inner_itr = self.inner.next_epoch_itr(
            shuffle=shuffle, fix_batches_to_gpus=fix_batches_to_gpus, set_dataset_epoch=set_dataset_epoch
        )
        skip, self._resume_replay = self._resume_replay, 0
        start = inner_itr.n * self.replays + skip

        def replayed():
            first_skip = skip
            for batch in inner_itr:
                for _ in range(self.replays - first_skip):
                    yield batch
                first_skip = 0

        self._itr = CountingIterator(replayed(), start=start, total=len(self))
        return self._itr

    def end_of_epoch(self) -> bool:
        if self._itr is None:
            return self.inner.end_of_epoch()
        return not self._itr.has_next()

    @property
    def iterations_in_epoch(self) -> int:
        if self._itr is not None:
            return self._itr.n
        return self.inner.iterations_in_epoch * self.replays

    def state_dict(self):
        state = self.inner.state_dict()
        if self._itr is not None and not self.end_of_epoch():
            state["iterations_in_epoch"] = self._itr.n // self.replays
            state["freeat_replay"] = self._itr.n % self.replays
            state["freeat_deltas"] = self.adversary.freeat_state_dict()
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        self._resume_replay = state.pop("freeat_replay", 0)
        self.adversary.load_freeat_state_dict(state.pop("freeat_deltas", []))
        self.inner.load_state_dict(state)


# --------------------------------------------------------------------------- the hook


class Adversary:
    """Runs one training step of the configured adversarial method.

    ``cfg`` carries the ``--adv-*`` flags (:class:`fairseq_freelb.adapters.config.AdversarialConfig`).
    The criterion passed to :meth:`train_step` must provide ``adversarial_inputs(sample)``:
    the ``net_input`` dicts of its model calls for one minibatch, in call order
    (one for sentence prediction, C for a C-choice question). Their token
    embeddings together form one example's perturbation. It may also provide
    ``adversarial_masks(sample, masks)`` to keep more than pads at zero.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.method = str(cfg.adv_method)
        self.norm_type = str(cfg.adv_norm_type)
        # FreeAT: per-batch (delta, RNG snapshot, replays done, update of last replay).
        self._freeat_state: Dict[tuple, dict] = {}

    def freeat_state_dict(self) -> list:
        """The deltas FreeAT carries between replays (checkpointed with the batch iterator)."""
        return [
            {
                "ids": list(key),
                "deltas": state["deltas"],
                "rng": None if state["rng"] is None else state["rng"].state_dict(),
                "done": state["done"],
                "update": state["update"],
            }
            for key, state in self._freeat_state.items()
        ]

    def load_freeat_state_dict(self, entries: list) -> None:
        self._freeat_state = {
            tuple(e["ids"]): {
                "deltas": e["deltas"],
                "rng": None if e["rng"] is None else RNGSnapshot.from_state_dict(e["rng"]),
                "done": e["done"],
                "update": e["update"],
            }
            for e in entries
        }

    # ----------------------------------------------------------- entry point

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        model.train()
        model.set_num_updates(update_num)
        method = self.method if update_num >= self.cfg.adv_begin_update else "none"
        run = getattr(self, f"_step_{method}")
        return run(sample, model, criterion, optimizer, update_num, ignore_grad)

    # ----------------------------------------------------------- shared pieces

    def _device(self, model) -> torch.device:
        return next(unwrap_model(model).parameters()).device

    def _init(self, embed, masks) -> List[Tensor]:
        """delta_0: fp32, zero on pads."""
        return init_delta(masks, embed.embedding_dim, float(self.cfg.adv_init_mag), self.norm_type)

    def _start(self, sample, model, criterion):
        inputs, embed, masks = example_inputs(sample, model, criterion)
        return inputs, embed, masks, self._init(embed, masks)

    def _rng(self, model) -> Optional[RNGSnapshot]:
        # Taken after delta_0 is drawn, so that every pass replays the masks of the first.
        return None if self.cfg.adv_resample_dropout else RNGSnapshot(self._device(model))

    def _ascend(self, deltas, grads, masks, step_size):
        stepped = ascent_step(deltas, grads, step_size, self.norm_type, masks)
        return project_to_ball(stepped, float(self.cfg.adv_max_norm), self.norm_type)

    def _forward(self, model, criterion, sample, optimizer, perturbation, deltas):
        perturbation.set(deltas)
        with _autocast(optimizer, self._device(model)):
            loss, sample_size, log = criterion(model, sample)
        perturbation.check_all_used()
        return loss, sample_size, log

    def _log(self, first_log, losses, deltas):
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
        log["adv_delta_norm"] = per_example_norm(deltas, self.norm_type).sum().detach()
        return log

    # ----------------------------------------------------------- methods

    def _step_none(self, sample, model, criterion, optimizer, update_num, ignore_grad):
        with _autocast(optimizer, self._device(model)):
            loss, sample_size, log = criterion(model, sample)
        if ignore_grad:
            loss = loss * 0
        optimizer.backward(loss)
        return loss, sample_size, log

    def _accumulating_passes(self, sample, model, criterion, optimizer, ignore_grad, deltas, ascend, during_pass=None):
        """The K passes of FreeLB and YOPO: each backpropagates loss/K into the parameter gradients.

        Every pass replays the first pass's dropout masks (unless
        ``--adv-resample-dropout``); all but the last run inside DDP's
        ``no_sync`` so the update all-reduces once. Between passes,
        ``ascend(deltas, leaves, perturbation, rng)`` returns the next delta
        (``leaves[i].grad`` holds the pass's gradient for ``deltas[i]``);
        ``during_pass()``, if given, is a context entered around each pass's
        forward and backward.
        """
        steps = int(self.cfg.adv_steps)
        embed = token_embedding_module(model)
        rng = self._rng(model)
        losses, first_log = [], None
        with EmbeddingPerturbation(embed) as perturbation:
            for t in range(steps):
                last = t == steps - 1
                if rng is not None:
                    rng.restore()
                leaves = _leaves(deltas)
                with _sync_context(model, sync=last), (during_pass() if during_pass else contextlib.nullcontext()):
                    loss, sample_size, log = self._forward(model, criterion, sample, optimizer, perturbation, leaves)
                    if ignore_grad:
                        loss = loss * 0
                    optimizer.backward(loss / steps)
                losses.append(loss.detach())
                if t == 0:
                    first_log = log
                if not last:
                    deltas = ascend(deltas, leaves, perturbation, rng)
        return sum(losses) / steps, sample_size, self._log(first_log, losses, deltas)

    def _step_freelb(self, sample, model, criterion, optimizer, update_num, ignore_grad):
        """FreeLB-K, Algorithm 1: K passes, parameter gradients averaged over delta_0..delta_{K-1}."""
        inputs, embed, masks, deltas = self._start(sample, model, criterion)

        def ascend(deltas, leaves, perturbation, rng):
            return self._ascend(deltas, [x.grad for x in leaves], masks, float(self.cfg.adv_lr))

        return self._accumulating_passes(sample, model, criterion, optimizer, ignore_grad, deltas, ascend)

    def _step_pgd(self, sample, model, criterion, optimizer, update_num, ignore_grad):
        """PGD-K (eq. 1-2): K delta-only ascent passes, then one descent pass at delta_K."""
        steps = int(self.cfg.adv_steps)
        inputs, embed, masks, deltas = self._start(sample, model, criterion)
        rng = self._rng(model)
        scale = _loss_scale(optimizer)
        losses = []
        with EmbeddingPerturbation(embed) as perturbation:
            for t in range(steps):
                if rng is not None:
                    rng.restore()
                leaves = _leaves(deltas)
                with _sync_context(model, sync=False):
                    loss, _, _ = self._forward(model, criterion, sample, optimizer, perturbation, leaves)
                    if ignore_grad:
                        loss = loss * 0
                    grads = torch.autograd.grad(loss * scale, leaves, allow_unused=True)
                losses.append(loss.detach())
                deltas = self._ascend(deltas, list(grads), masks, float(self.cfg.adv_lr))
            if rng is not None:
                rng.restore()
            loss, sample_size, log = self._forward(model, criterion, sample, optimizer, perturbation, deltas)
            if ignore_grad:
                loss = loss * 0
            optimizer.backward(loss)
        losses.append(loss.detach())
        out = self._log(log, losses, deltas)
        out["loss"] = loss.detach()  # the descent pass alone makes the update
        return loss.detach(), sample_size, out

    def _step_yopo(self, sample, model, criterion, optimizer, update_num, ignore_grad):
        """YOPO-m-n as FreeLB's section 4.3 runs it.

        m = ``--adv-steps`` full passes accumulate parameter gradients as in
        FreeLB. After each but the last, n = ``--yopo-inner-steps`` cheap
        ascent steps maximise <p, f0(X + delta)>, where f0 ends at the first
        transformer block and p = dL/d f0 is frozen from the full pass; their
        step size is ``--adv-lr`` / n.
        """
        inner = int(self.cfg.yopo_inner_steps)
        inputs, embed, masks, deltas = self._start(sample, model, criterion)
        block = first_block_module(model)
        plain = unwrap_model(model)
        p_grads: List[Optional[Tensor]] = [None] * len(inputs)
        # The RNG state at the start of each model call of a full pass, so that
        # f0 of candidate c replays candidate c's own dropout masks.
        call_rngs: List[Optional[RNGSnapshot]] = [None] * len(inputs)
        device = self._device(model)

        @contextlib.contextmanager
        def capture():
            pre = embed.register_forward_pre_hook(_capture_call_rng(call_rngs, device))
            try:
                with _hooked(block, _capture_output_grad(p_grads)):
                    yield
            finally:
                pre.remove()

        def ascend(deltas, leaves, perturbation, rng):
            replay = call_rngs if rng is not None else None
            for _ in range(inner):
                with _autocast(optimizer, device):
                    grads = self._first_block_ascent_grads(plain, block, inputs, perturbation, deltas, p_grads, replay)
                deltas = self._ascend(deltas, grads, masks, float(self.cfg.adv_lr) / inner)
            return deltas

        return self._accumulating_passes(sample, model, criterion, optimizer, ignore_grad, deltas, ascend, capture)

    def _first_block_ascent_grads(self, plain, block, inputs, perturbation, deltas, p_grads, call_rngs):
        """d/d delta of sum_c <p_c, f0(X_c + delta_c)>, running the model only up to its first block.

        ``call_rngs[c]`` (None with ``--adv-resample-dropout``) replays the
        dropout masks candidate c had in the full pass.
        """
        leaves = _leaves(deltas)
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

    def _step_freeat(self, sample, model, criterion, optimizer, update_num, ignore_grad):
        """One FreeAT replay: a full update at delta, then one ascent step carried to the next replay."""
        steps = int(self.cfg.adv_steps)
        key = None if ignore_grad else _batch_key(sample)
        state = self._freeat_state.get(key) if key is not None else None
        if state is not None and state["update"] == update_num:
            raise AdversarialConfigError(
                "--adv-method freeat needs --update-freq 1: a replayed minibatch reached the same update twice"
            )
        inputs, embed, masks = example_inputs(sample, model, criterion)
        if state is None:
            state = {"deltas": self._init(embed, masks), "rng": self._rng(model), "done": 0}
        device = masks[0].device
        deltas, rng = [d.to(device) for d in state["deltas"]], state["rng"]
        if rng is not None:
            rng.restore()
        with EmbeddingPerturbation(embed) as perturbation:
            leaves = _leaves(deltas)
            loss, sample_size, log = self._forward(model, criterion, sample, optimizer, perturbation, leaves)
            if ignore_grad:
                loss = loss * 0
            optimizer.backward(loss)
        new_deltas = self._ascend(deltas, [x.grad for x in leaves], masks, float(self.cfg.adv_lr))
        state.update(deltas=new_deltas, done=state["done"] + 1, update=update_num)
        if key is not None:
            if state["done"] >= steps:
                self._freeat_state.pop(key, None)
            else:
                self._freeat_state[key] = state
        out = self._log(log, [loss.detach()], deltas)
        out["freeat_replay"] = state["done"]
        return loss.detach(), sample_size, out


def _batch_key(sample) -> Optional[tuple]:
    ids = sample.get("id") if isinstance(sample, dict) else None
    return tuple(ids.tolist()) if torch.is_tensor(ids) else None


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


# --------------------------------------------------------------------------- task side


class AdversarialTrainingMixin:
    """Mixed into a fairseq task: routes ``train_step`` through the criterion's :class:`Adversary`.

    ``valid_step`` and inference are not touched: no perturbation, no extra passes.
    """

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        adversary = getattr(criterion, "adversary", None)
        if adversary is None:
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        return adversary.train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def get_batch_iterator(self, dataset, *args, **kwargs):
        itr = super().get_batch_iterator(dataset, *args, **kwargs)
        adversary = getattr(self, "_freeat_adversary", None)
        if adversary is None:
            return itr
        subset = str(adversary.cfg.adv_train_subset)
        if subset in getattr(self, "datasets", {}) and dataset is self.datasets[subset]:
            return ReplayEpochBatchIterator(itr, int(adversary.cfg.adv_steps), adversary)
        return itr


_ADVERSARIAL_TASK_CLASSES: Dict[type, type] = {}


def make_adversarial(task, adversary: Adversary):
    """Give ``task`` the adversarial ``train_step`` (and FreeAT's batch replay).

    A stock task instance (e.g. ``--task sentence_prediction``) is switched to a
    subclass that mixes in :class:`AdversarialTrainingMixin`; everything else
    about it is unchanged. The plugin's own tasks already are such subclasses.
    """
    if not isinstance(task, AdversarialTrainingMixin):
        base = type(task)
        if base not in _ADVERSARIAL_TASK_CLASSES:
            _ADVERSARIAL_TASK_CLASSES[base] = type(f"Adversarial{base.__name__}", (AdversarialTrainingMixin, base), {})
        task.__class__ = _ADVERSARIAL_TASK_CLASSES[base]
    task._freeat_adversary = adversary if adversary.method == "freeat" else None
    return task

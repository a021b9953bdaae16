"""FreeAT (Shafahi et al. 2019): each minibatch replayed K times, delta carried from replay to replay.

Each replay is a full optimizer update at the current delta; one ascent step
then moves delta for the next replay. The fairseq adapter's
:class:`~fairseq_freelb.adapters.replay_iterator.ReplayEpochBatchIterator`
yields every training batch K times in a row; :class:`FreeATState` (owned by
the adversary, checkpointed with ``state_dict()``) carries the delta of the
one batch being replayed, and the update clock that iterator plans with.
During the ``--adv-begin-update`` warm-up batches are not replayed: each is
one plain update.
"""

import logging
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import Tensor

from fairseq_freelb.core.contract import example_inputs
from fairseq_freelb.core.passes import EmbeddingPerturbation, RNGSnapshot, perturbed_pass
from fairseq_freelb.core.errors import AdversarialConfigError

logger = logging.getLogger(__name__)


@dataclass
class CarriedDelta:
    """The delta of the batch being replayed, between two of its replays."""

    ids: tuple  # the batch's example ids
    deltas: List[Tensor]
    rng: Optional[RNGSnapshot]  # the dropout masks of its first replay
    done: int  # replays done
    update: int  # fairseq update number of the last replay


class FreeATState:
    """FreeAT's state between steps: at most one carried delta, and the update clock of the replay plan."""

    def __init__(self, settings):
        self.settings = settings
        self.carried: Optional[CarriedDelta] = None
        # The update number the next step will have (the replay plan's clock).
        self.next_update = 0
        # Set by the replay iterator for the batch it yielded last: whether it is replayed adversarially.
        self.planned_adversarial: Optional[bool] = None

    def step_is_adversarial(self, update_num: int) -> bool:
        """The replay plan's decision for the batch at hand (warm-up batches are plain), else the update count."""
        if self.planned_adversarial is not None:
            return self.planned_adversarial
        return update_num >= self.settings.begin_update

    def state_dict(self) -> dict:
        """Checkpointed with the batch position (``extra_state["train_iterator"]``), so a resumed run replays on."""
        entries = []
        if self.carried is not None:
            c = self.carried
            entries.append({"ids": list(c.ids), "deltas": c.deltas, "rng": None if c.rng is None else c.rng.state_dict(),
                            "done": c.done, "update": c.update})
        return {"freeat_deltas": entries, "freeat_next_update": self.next_update}

    def load_state_dict(self, state: dict) -> None:
        entries = state.get("freeat_deltas", [])
        if len(entries) > 1:
            raise ValueError(f"FreeAT state holds {len(entries)} carried deltas; a run replays one batch at a time")
        self.carried = None
        for e in entries:
            rng = None if e["rng"] is None else RNGSnapshot.from_state_dict(e["rng"])
            self.carried = CarriedDelta(tuple(e["ids"]), e["deltas"], rng, e["done"], e["update"])
        self.next_update = int(state.get("freeat_next_update", self.next_update))


def batch_key(sample) -> Optional[tuple]:
    ids = sample.get("id") if isinstance(sample, dict) else None
    return tuple(ids.tolist()) if torch.is_tensor(ids) else None


def freeat_step(adversary, step):
    """One FreeAT replay: a full update at delta, then one ascent step carried to the next replay."""
    state: FreeATState = adversary.freeat
    settings = adversary.settings
    state.next_update = step.update_num + 1
    key = None if step.ignore_grad else batch_key(step.sample)
    carried = state.carried if key is not None and state.carried is not None and state.carried.ids == key else None
    if carried is not None and carried.update == step.update_num:
        raise AdversarialConfigError(
            "--adv-method freeat needs --update-freq 1: a replayed minibatch reached the same update twice"
        )
    if key is not None and state.carried is not None and carried is None:
        logger.warning(
            f"FreeAT: a new minibatch arrived after {state.carried.done} of {settings.steps} replays of the previous "
            "one; its carried delta is dropped (batches are replayed only from --adv-train-subset)"
        )
        state.carried = None
    _, embed, masks = example_inputs(step.sample, step.model, step.criterion)
    if carried is None:
        carried = CarriedDelta(key, adversary.init_deltas(embed, masks), adversary.rng(step.model), 0, step.update_num)
    deltas = [d.to(masks[0].device) for d in carried.deltas]
    with EmbeddingPerturbation(embed) as perturbation:
        out = perturbed_pass(step.model, step.criterion, step.sample, perturbation, deltas, rng=carried.rng,
                             autocast_dtype=step.autocast_dtype, ignore_grad=step.ignore_grad,
                             backward=step.optimizer.backward)
    carried.deltas = adversary.ascend(deltas, out.delta_grads, masks, settings.lr)
    carried.done += 1
    carried.update = step.update_num
    if key is not None:
        state.carried = carried if carried.done < settings.steps else None
    log = adversary.log(out.log, [out.loss], deltas)
    log["freeat_replay"] = carried.done
    return out.loss, out.sample_size, log

"""The criterion and optimizer sides of the core's contract, for one Trainer training step.

:class:`TrainerCriterion` satisfies :mod:`fairseq_freelb.core.contract`: its
``__call__`` is the Trainer's own ``compute_loss`` (so a subclass's loss,
``compute_loss_func`` and label smoothing apply to every pass), and
``token_masks`` hands the core the attention mask of the batch, whose real
tokens set each example's perturbation ball and random-start scale, and
``token_embedding`` the model's input embedding (through the model view's port).

:class:`TrainerBackward` is what the core calls ``optimizer``: its
``backward(loss)`` does what ``Trainer.training_step`` does after its forward
(the gradient-accumulation scaling, then ``accelerator.backward``, which
applies fp16 loss scaling).
"""

from typing import List

import torch

from fairseq_freelb.hf.core_view import EmbeddingPort, ModelView


def choices_of(inputs: dict) -> int:
    """C for a multiple-choice batch (``input_ids`` of shape (B, C, T)), else 1."""
    ids = inputs.get("input_ids")
    return int(ids.size(1)) if torch.is_tensor(ids) and ids.dim() == 3 else 1


def real_token_mask(inputs: dict) -> torch.Tensor:
    """(B, C*T) long: 1 on real tokens (the attention mask), 0 on pads; all ones without a mask."""
    mask = inputs.get("attention_mask")
    if mask is None:
        mask = torch.ones_like(inputs["input_ids"])
    mask = mask.ne(0).long()
    return mask.reshape(mask.size(0), -1)


def loss_is_scaled_for_ga(trainer, num_items_in_batch) -> bool:
    """Whether ``compute_loss`` already normalised over the whole accumulated batch (as in ``Trainer.training_step``)."""
    if trainer.loss_is_scaled_for_ga is not None:
        return bool(trainer.loss_is_scaled_for_ga)
    return bool((trainer.model_accepts_loss_kwargs and num_items_in_batch is not None)
                or trainer.compute_loss_func is not None)


class TrainerCriterion:
    """``criterion(model, sample) -> (loss, sample_size, logging_output)`` through ``trainer.compute_loss``."""

    def __init__(self, trainer, adversary, num_items_in_batch=None):
        self.trainer = trainer
        self.adversary = adversary
        self.num_items_in_batch = num_items_in_batch

    def adversarial_inputs(self, sample) -> List[dict]:
        """One model call per batch: the batch itself."""
        return [sample]

    def token_embedding(self, model: ModelView) -> EmbeddingPort:
        """Where delta is added: ``get_input_embeddings()``, seen one group per question for multiple choice."""
        return model.port

    def token_masks(self, inputs: List[dict]) -> List[torch.Tensor]:
        """The real tokens of each call: its attention mask, (B, C*T) for C choices."""
        return [real_token_mask(batch) for batch in inputs]

    def __call__(self, model, sample):
        # compute_loss may pop "labels" (label smoothing, compute_loss_func): every pass gets its own dict.
        inputs = dict(sample)
        with self.trainer.compute_loss_context_manager():
            loss = self.trainer.compute_loss(model.model, inputs, num_items_in_batch=self.num_items_in_batch)
        nsentences = real_token_mask(sample).size(0)
        return loss, nsentences, {"loss": loss.detach(), "nsentences": nsentences}


class TrainerBackward:
    """The ``optimizer.backward(loss)`` the core calls for every pass that adds to the parameter gradients."""

    def __init__(self, trainer, num_items_in_batch=None):
        self.trainer = trainer
        self.scaled_for_ga = loss_is_scaled_for_ga(trainer, num_items_in_batch)
        # Read by core.passes.loss_scale: PGD's delta-only gradients are taken at the fp16 loss scale.
        self._grad_scaler = trainer.accelerator.scaler

    def for_logging(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss as ``Trainer.training_step`` returns it (what the Trainer sums into its logged ``loss``)."""
        return loss if self.scaled_for_ga else loss / self.trainer.current_gradient_accumulation_steps

    def backward(self, loss: torch.Tensor) -> None:
        self.trainer.accelerator.backward(self.for_logging(loss))

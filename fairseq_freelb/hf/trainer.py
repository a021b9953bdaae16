"""``AdversarialTrainer``: transformers' ``Trainer`` whose training step is the core's adversarial step.

Each ``training_step`` hands the batch to the same
:class:`~fairseq_freelb.core.adversary.Adversary` that ``fairseq-train``
uses (FreeLB, Zhu et al., ICLR 2020, Algorithm 1; PGD, Madry et al.), with
the Trainer's pieces in the core's three roles: the model
(:class:`~fairseq_freelb.hf.core_view.ModelView`), the criterion (the
Trainer's ``compute_loss``) and the optimizer's ``backward`` (gradient
accumulation scaling and ``accelerator.backward``). So, as in fairseq:

* delta is added to the output of ``model.get_input_embeddings()``, drawn,
  normalised and projected per example over its real tokens (per question
  over all its choices for ``*ForMultipleChoice``);
* the K passes replay the first pass's dropout masks (unless ``adv_resample_dropout``);
* under DDP every pass but the update's last runs in ``no_sync``: the
  Trainer already wraps all but the last micro-batch of an update, and the
  core adds the first K-1 passes of the last one, so an update all-reduces once;
* fp16 and bf16 come from the Trainer (accelerate's autocast around the
  model's forward, its GradScaler in ``accelerator.backward``).
"""

from typing import Optional

import torch
from torch import nn
from transformers import Trainer
from transformers.trainer_pt_utils import nested_gather

from fairseq_freelb.core.adversary import Adversary
from fairseq_freelb.core.errors import AdversarialConfigError
from fairseq_freelb.hf.arguments import AdversarialArguments, to_settings
from fairseq_freelb.hf.core_view import ModelView, input_embedding
from fairseq_freelb.hf.criterion import TrainerBackward, TrainerCriterion, choices_of

ADV_LOG_KEYS = ("adv_loss_init", "adv_loss_last", "adv_delta_norm")


class AdversarialTrainer(Trainer):
    """``Trainer`` plus ``adversarial_args``; every other argument means what it means in transformers.

    Bad or inert adversarial settings, and set-ups the adversarial step cannot
    serve, are refused with one line (:class:`AdversarialConfigError`) before
    anything is built.
    """

    def __init__(self, *args, adversarial_args: Optional[AdversarialArguments] = None, **kwargs):
        adversarial_args = AdversarialArguments() if adversarial_args is None else adversarial_args
        settings = to_settings(adversarial_args)
        _refuse_training_args(kwargs.get("args", args[1] if len(args) > 1 else None))
        super().__init__(*args, **kwargs)
        _refuse_training_args(self.args)  # the Trainer's default arguments, when none were given
        self.adversarial_args = adversarial_args
        self.adversary = Adversary(settings)
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            raise AdversarialConfigError(
                "AdversarialTrainer runs under DDP (torchrun) or on one device; DeepSpeed and FSDP manage the "
                "backward passes themselves and would reduce gradients in each of the K passes"
            )
        if self.model is not None:
            input_embedding(self.model)  # a model without get_input_embeddings() is refused here
        self._adv_totals: Optional[torch.Tensor] = None  # [loss_init, loss_last, delta-norm sum, examples]
        self._adv_logged_step = 0

    # ------------------------------------------------------------------ the training step

    def training_step(self, model: nn.Module, inputs: dict, num_items_in_batch=None) -> torch.Tensor:
        model.train()
        if hasattr(self.optimizer, "train") and callable(self.optimizer.train):
            self.optimizer.train()
        inputs = self._prepare_inputs(inputs)
        if "inputs_embeds" in inputs and inputs.get("input_ids") is None:
            raise AdversarialConfigError(
                "the batch gives inputs_embeds, not input_ids: the model's input embedding is never called, so "
                "AdversarialTrainer has nothing to perturb; pass input_ids"
            )
        view = ModelView(model, self.accelerator, choices_of(inputs))
        criterion = TrainerCriterion(self, self.adversary, num_items_in_batch)
        backward = TrainerBackward(self, num_items_in_batch)
        try:
            loss, _, log = self.adversary.train_step(inputs, view, criterion, backward, self.state.global_step)
        except RuntimeError:
            if view.port.calls == 0:
                raise self._hook_never_fired(model) from None
            raise
        if view.port.calls == 0 and self._perturbs(log):
            raise self._hook_never_fired(model)
        self._record(log, backward)
        return backward.for_logging(loss.detach())

    def _perturbs(self, log: dict) -> bool:
        return "adv_loss_init" in log

    def _hook_never_fired(self, model) -> AdversarialConfigError:
        plain = model.module if isinstance(getattr(model, "module", None), nn.Module) else model
        embed = input_embedding(model)
        return AdversarialConfigError(
            f"{type(plain).__name__}: its forward never called get_input_embeddings() ({type(embed).__name__}), "
            "so the perturbation would never be applied; AdversarialTrainer needs a model that embeds input_ids "
            "through that module"
        )

    # ------------------------------------------------------------------ logging adv_* through the Trainer

    def _record(self, log: dict, backward: TrainerBackward) -> None:
        """Sum this micro-batch's adversarial figures, on the scale of the Trainer's own ``loss``."""
        if not self._perturbs(log):
            return
        device = self.args.device
        row = torch.stack([
            backward.for_logging(torch.as_tensor(log["adv_loss_init"]).float().to(device)),
            backward.for_logging(torch.as_tensor(log["adv_loss_last"]).float().to(device)),
            torch.as_tensor(log["adv_delta_norm"]).float().to(device),
            torch.tensor(float(log.get("nsentences", 1)), device=device),
        ])
        self._adv_totals = row if self._adv_totals is None else self._adv_totals + row

    def log(self, logs: dict, start_time: Optional[float] = None) -> None:
        """Training logs get ``adv_loss_init``/``adv_loss_last`` (averaged like ``loss``) and ``adv_delta_norm``
        (the mean per-example norm of the last pass's delta), so every ``report_to`` integration shows them."""
        if "loss" in logs and "learning_rate" in logs:
            self._add_adv_logs(logs)
        super().log(logs, start_time)

    def _add_adv_logs(self, logs: dict) -> None:
        steps = self.state.global_step - self._adv_logged_step
        self._adv_logged_step = self.state.global_step
        totals = self._adv_totals if self._adv_totals is not None else torch.zeros(4, device=self.args.device)
        self._adv_totals = None
        # Every process logs (the Trainer gathers its loss the same way), so the gather is collective.
        gathered = nested_gather(totals, self.args.parallel_mode).reshape(-1, 4)
        if float(gathered[:, 3].sum()) == 0 or steps <= 0:
            return  # no adversarial step since the last log (--adv-method none, or before --adv-begin-update)
        logs["adv_loss_init"] = round(float(gathered[:, 0].mean()) / steps, 4)
        logs["adv_loss_last"] = round(float(gathered[:, 1].mean()) / steps, 4)
        logs["adv_delta_norm"] = round(float(gathered[:, 2].sum() / gathered[:, 3].sum()), 4)


def _refuse_training_args(args) -> None:
    """Set-ups whose backward passes the core cannot sequence: refused before the Trainer is built."""
    if args is None:
        return
    if getattr(args, "n_gpu", 1) > 1:
        raise AdversarialConfigError(
            f"{args.n_gpu} GPUs in one process (torch DataParallel) split each batch across devices, but delta is "
            "per example of the whole batch; launch one process per GPU with torchrun (DDP) instead"
        )
    optim = getattr(args, "optim", "")
    optim = str(getattr(optim, "value", optim))  # an OptimizerNames enum, or a string
    if "lomo" in optim.lower():
        raise AdversarialConfigError(
            f"--optim {optim} updates the parameters inside every backward pass; FreeLB's K passes must "
            "accumulate into one update: use another optimizer"
        )

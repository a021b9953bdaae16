"""FreeLB and PGD for Hugging Face transformers models: a ``Trainer`` over the same core as the fairseq plugin.

    from fairseq_freelb.hf import AdversarialArguments, AdversarialTrainer

    trainer = AdversarialTrainer(model=model, args=TrainingArguments(...),
                                 adversarial_args=AdversarialArguments(adv_steps=3, adv_lr=0.1, adv_init_mag=0.1),
                                 train_dataset=train, ...)

transformers (with accelerate) is imported here and nowhere else in the
package. See docs/huggingface.md.
"""

from fairseq_freelb.core.errors import AdversarialConfigError
from fairseq_freelb.hf.arguments import AdversarialArguments, to_settings
from fairseq_freelb.hf.trainer import ADV_LOG_KEYS, AdversarialTrainer

__all__ = ["AdversarialArguments", "AdversarialTrainer", "AdversarialConfigError", "ADV_LOG_KEYS", "to_settings"]

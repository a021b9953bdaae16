"""``--task freelb_sentence_prediction``: fairseq's sentence_prediction with the adversarial step.

Equivalent to ``--task sentence_prediction`` with a ``freelb_*`` criterion
(which switches the stock task to the same mixin); registered so that the
plugin's task name can be used explicitly, e.g. in hydra configs.
"""

from dataclasses import dataclass

from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

from fairseq_freelb.adapters.task_mixin import AdversarialTrainingMixin


@dataclass
class FreeLBSentencePredictionTaskConfig(SentencePredictionConfig):
    pass


@register_task("freelb_sentence_prediction", dataclass=FreeLBSentencePredictionTaskConfig)
class FreeLBSentencePredictionTask(AdversarialTrainingMixin, SentencePredictionTask):
    pass

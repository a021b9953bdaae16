"""``--task freelb_sentence_prediction``: fairseq's sentence_prediction with the adversarial step.

Equivalent to ``--task sentence_prediction`` with a ``freelb_*`` criterion
(which switches the stock task to the same mixin); registered so that the
plugin's task name can be used explicitly, e.g. in hydra configs. Unlike the
stock task, a missing data folder is one line naming it
(:mod:`~fairseq_freelb.adapters.data_folder`).
"""

import os
from dataclasses import dataclass

from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

from fairseq_freelb.adapters import runtime
from fairseq_freelb.adapters.data_folder import require_data_folder
from fairseq_freelb.adapters.task_mixin import AdversarialTrainingMixin

MADE_BY = "give the <TASK>-bin folder that python -m fairseq_freelb.glue.preprocess writes (or fairseq-preprocess)"


@dataclass
class FreeLBSentencePredictionTaskConfig(SentencePredictionConfig):
    pass


@register_task("freelb_sentence_prediction", dataclass=FreeLBSentencePredictionTaskConfig)
class FreeLBSentencePredictionTask(AdversarialTrainingMixin, SentencePredictionTask):
    @classmethod
    def setup_task(cls, cfg, **kwargs):
        runtime.install()  # the refusal below is one line under fairseq-train
        needed = [os.path.join("input0", "dict.txt")]
        if not cfg.regression_target:
            needed.append(os.path.join("label", "dict.txt"))
        require_data_folder(cfg.data, "freelb_sentence_prediction", needed, MADE_BY)
        return super().setup_task(cfg, **kwargs)

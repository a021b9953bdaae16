"""``--task freelb_sentence_ranking``: fairseq's ``sentence_ranking`` task for ``--criterion freelb_sentence_ranking``.

fairseq's ``SentenceRankingTask.setup_task`` asserts ``--criterion
sentence_ranking``, so the stock task cannot be *built* by fairseq-train with
any other criterion. This subclass changes only that check (it accepts either
criterion) and mixes in the adversarial training step; data loading (the
``input0``, ``input1..C``, ``label`` layout of fairseq's RACE recipe), batching
and the ranking head are the stock task's. A stock task instance built in
code works with the criterion as is.
"""

import logging
import os

from fairseq.tasks import register_task
from fairseq.tasks.sentence_ranking import SentenceRankingTask

from fairseq_freelb.adapters import runtime
from fairseq_freelb.adapters.data_folder import require_data_folder
from fairseq_freelb.adapters.task_mixin import AdversarialTrainingMixin
from fairseq_freelb.core.errors import AdversarialConfigError

logger = logging.getLogger(__name__)

CRITERIA = ("freelb_sentence_ranking", "sentence_ranking")


@register_task("freelb_sentence_ranking")
class FreeLBSentenceRankingTask(AdversarialTrainingMixin, SentenceRankingTask):
    @classmethod
    def setup_task(cls, args, **kwargs):
        runtime.install()  # fairseq builds the task before the criterion: its refusal below is one line too
        if getattr(args, "criterion", None) not in CRITERIA:
            raise AdversarialConfigError(
                f"--task freelb_sentence_ranking needs --criterion {' or '.join(CRITERIA)}, got {args.criterion!r}"
            )
        require_data_folder(args.data, "freelb_sentence_ranking", [os.path.join("input0", "dict.txt")],
                            "give the folder of fairseq's RACE recipe (input0/ .. inputN/, label/)")
        dictionary = cls.load_dictionary(args, os.path.join(args.data, "input0", "dict.txt"), source=True)
        logger.info(f"[input] dictionary: {len(dictionary)} types")
        return cls(args, dictionary)

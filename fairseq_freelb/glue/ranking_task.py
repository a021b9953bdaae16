"""``--task qnli_ranking``: QNLI as pairwise ranking, on a ``QNLI-ranking-bin`` folder.

The data loading, batching and ranking head are those of fairseq's
``sentence_ranking`` task (``input0`` = the question, ``input1``/``input2`` = the two
candidate sentences, ``label`` = which one is entailed), through the plugin's
``freelb_sentence_ranking`` task, so ``--criterion freelb_sentence_ranking``
perturbs each pair as one group (Zhu et al. 2020, appendix A.1). This
subclass only ties checkpoints to their data: it refuses a folder that
``python -m fairseq_freelb.glue.preprocess --tasks QNLI-ranking`` did not
write, and each checkpoint records the formulation and the dictionary's
fingerprint, which prediction checks (:mod:`fairseq_freelb.glue.qnli_ranking`).
"""

import hashlib
import json
import os

from fairseq.tasks import register_task

from fairseq_freelb.core.errors import FreeLBError
from fairseq_freelb.adapters.config import AdversarialConfigError
from fairseq_freelb.mc.sentence_ranking_task import FreeLBSentenceRankingTask
from fairseq_freelb.glue.qnli_ranking_data import FORMULATION


class RankingCheckpointMismatch(FreeLBError, ValueError):
    """A checkpoint that was not trained on this QNLI-ranking-bin (another formulation or dictionary)."""


def dictionary_fingerprint(dictionary) -> dict:
    digest = hashlib.sha1("\n".join(dictionary.symbols).encode("utf-8")).hexdigest()
    return {"ranking_dictionary_size": len(dictionary), "ranking_dictionary_sha1": digest}


def folder_task(data: str) -> str:
    """The ``task`` recorded in ``<data>/meta.json`` ("" when there is none)."""
    meta = os.path.join(data, "meta.json")
    if not os.path.isfile(meta):
        return ""
    with open(meta, encoding="utf-8") as handle:
        return str(json.load(handle).get("task", ""))


@register_task("qnli_ranking")
class QNLIRankingTask(FreeLBSentenceRankingTask):
    @classmethod
    def setup_task(cls, args, **kwargs):
        if getattr(args, "criterion", None) != "freelb_sentence_ranking":
            raise AdversarialConfigError(f"--task qnli_ranking needs --criterion freelb_sentence_ranking (one ball per "
                                         f"pair), got {getattr(args, 'criterion', None)!r}")
        found = folder_task(args.data)
        if found != FORMULATION:
            what = f"a {found}-bin folder" if found else "not a folder written by fairseq_freelb.glue.preprocess"
            raise AdversarialConfigError(
                f"--task qnli_ranking: {args.data} is {what}; write QNLI-ranking-bin with "
                "python -m fairseq_freelb.glue.preprocess --tasks QNLI-ranking"
            )
        return super().setup_task(args, **kwargs)

    def state_dict(self):
        return {**super().state_dict(), "glue_formulation": FORMULATION, **dictionary_fingerprint(self.dictionary)}

    def load_state_dict(self, state_dict):
        theirs = state_dict.get("glue_formulation")
        if theirs is not None and theirs != FORMULATION:
            raise RankingCheckpointMismatch(f"trained as {theirs}, not {FORMULATION}")
        ours = dictionary_fingerprint(self.dictionary)
        if state_dict.get("ranking_dictionary_sha1") not in (None, ours["ranking_dictionary_sha1"]):
            raise RankingCheckpointMismatch(
                f"trained with another dictionary ({state_dict['ranking_dictionary_size']} types) than "
                f"{os.path.join(self.args.data, 'input0', 'dict.txt')} ({ours['ranking_dictionary_size']} types): "
                "this checkpoint does not match this data"
            )
        rest = {k: v for k, v in state_dict.items() if k != "glue_formulation" and not k.startswith("ranking_dictionary_")}
        super().load_state_dict(rest)

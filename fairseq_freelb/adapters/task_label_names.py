"""Label names and the data's record travel with each checkpoint, so class index i and token id j keep their meaning.

fairseq's trainer saves ``task.state_dict()`` in every checkpoint as
``task_state`` and hands it back to ``task.load_state_dict`` when the
checkpoint is loaded; :class:`LabelNamesInCheckpoints` adds the task's label
names and its data's record (task name, sentence pairs, dictionary
fingerprint: :mod:`~fairseq_freelb.adapters.data_record`) there, and refuses a
checkpoint whose classes mean other labels or whose dictionary is not this data's.
"""

from typing import List, Optional

from fairseq_freelb.adapters.data_record import check_sentence_prediction_record, sentence_prediction_record
from fairseq_freelb.core.errors import AdversarialConfigError


class LabelNamesInCheckpoints:
    """Task mixin: ``label_names`` in ``task_state``, checked when a checkpoint is loaded."""

    def label_names(self) -> Optional[List[str]]:
        """The class labels in head order, or None (regression, or a task without a label dictionary)."""
        cfg = getattr(self, "cfg", None)
        if getattr(cfg, "regression_target", False):
            return None  # regression: the "label dictionary" is the source dictionary
        labels, classes = getattr(self, "label_dictionary", None), getattr(cfg, "num_classes", None)
        if labels is None or not classes:
            return None
        # The first num_classes symbols: fairseq's sentence_prediction appends <mask> to every dictionary.
        return [labels[labels.nspecial + i] for i in range(int(classes))]

    def state_dict(self):
        state = dict(super().state_dict())
        names = self.label_names()
        if names is not None:
            state["label_names"] = names
        state.update(sentence_prediction_record(self))  # its data: task name, pairs, dictionary fingerprint
        return state

    def load_state_dict(self, state_dict):
        """Refuse a checkpoint whose head has this many classes but means other labels by them,
        or whose token dictionary is not this data's.

        (A head of another size is re-initialized by fairseq, so its labels do not matter.)
        """
        theirs, mine = state_dict.get("label_names"), self.label_names()
        if theirs is not None and mine is not None and len(theirs) == len(mine) and list(theirs) != mine:
            raise AdversarialConfigError(
                f"checkpoint's classes are labels {list(theirs)}, this data's label/dict.txt has {mine}: "
                "its predictions would mean other labels; re-preprocess or use a checkpoint trained on this label order"
            )
        check_sentence_prediction_record(state_dict, self)  # before fairseq loads weights of another vocabulary
        super().load_state_dict(state_dict)

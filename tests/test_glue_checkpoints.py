"""Label names travel with each checkpoint and are checked against the task."""

from types import SimpleNamespace

import pytest
import torch

from fairseq_freelb.glue.benchmark_tasks import get_task
from fairseq_freelb.glue.predict import CheckpointMismatch, class_order


def _data_bin(root, labels):
    """The dictionaries a sentence_prediction task reads at setup: input0/dict.txt and label/dict.txt."""
    (root / "input0").mkdir(parents=True)
    (root / "label").mkdir()
    (root / "input0" / "dict.txt").write_text("".join(f"{i} 1\n" for i in range(10)))
    (root / "label" / "dict.txt").write_text("".join(f"{lab} 1\n" for lab in labels))
    return root


def _adversarial_task(data, num_classes=2):
    from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

    from fairseq_freelb.adapters.task_mixin import AdversarialTrainingMixin, attach_criterion

    cfg = SentencePredictionConfig(data=str(data), num_classes=num_classes, regression_target=False,
                                   classification_head_name="sentence_classification_head", seed=1)
    task = SentencePredictionTask.setup_task(cfg)
    attach_criterion(task, SimpleNamespace(adversary=SimpleNamespace(method="freelb")))
    assert isinstance(task, AdversarialTrainingMixin)
    return task


def test_checkpoint_task_state_records_label_names_and_restore_refuses_another_order(tmp_path):
    task = _adversarial_task(_data_bin(tmp_path / "a", ["entailment", "not_entailment"]))
    state = task.state_dict()  # what fairseq's trainer saves as the checkpoint's task_state
    assert state["label_names"] == ["entailment", "not_entailment"]
    task.load_state_dict(state)  # the same order is accepted
    flipped = _adversarial_task(_data_bin(tmp_path / "b", ["not_entailment", "entailment"]))
    with pytest.raises(ValueError, match=r"checkpoint's classes are labels \['entailment', 'not_entailment'\]"):
        flipped.load_state_dict(state)
    mnli = {"label_names": ["entailment", "neutral", "contradiction"]}
    flipped.load_state_dict(mnli)  # another head size: fairseq re-initializes the head, nothing to protect


class _Model(torch.nn.Module):
    """What class_order reads of a RoBERTa model: its classification heads' output sizes."""

    def __init__(self, classes):
        super().__init__()
        self.classification_heads = torch.nn.ModuleDict(
            {"sentence_classification_head": torch.nn.Module()})
        self.classification_heads["sentence_classification_head"].out_proj = torch.nn.Linear(4, classes)


class _Task:
    def __init__(self, recorded, data_labels):
        from fairseq.data import Dictionary

        self._recorded = recorded
        self.label_dictionary = Dictionary()
        for lab in data_labels:
            self.label_dictionary.add_symbol(lab)

    def state_dict(self):
        return {} if self._recorded is None else {"label_names": self._recorded}


def test_prediction_refuses_a_checkpoint_of_another_task_or_without_label_names():
    rte, mnli, stsb = get_task("RTE"), get_task("MNLI"), get_task("STS-B")
    nli = ["entailment", "not_entailment"]
    # A 3-class MNLI checkpoint given as RTE's.
    with pytest.raises(CheckpointMismatch, match=r"mnli.pt: its head predicts 3 classes, RTE has 2 classes"):
        class_order("mnli.pt", _Model(3), _Task(list(mnli.labels), nli), rte, None, False)
    # Same class count, other labels (a binary 0/1 task's checkpoint).
    with pytest.raises(CheckpointMismatch, match=r"sst2.pt: trained on labels \['0', '1'\], RTE's are"):
        class_order("sst2.pt", _Model(2), _Task(["0", "1"], nli), rte, None, False)
    with pytest.raises(CheckpointMismatch, match="its head predicts 2 classes, STS-B has a regression score"):
        class_order("rte.pt", _Model(2), _Task(nli, nli), stsb, None, False)
    # Recorded names map the classes, whatever the data's label/dict.txt order.
    assert class_order("rte.pt", _Model(2), _Task(nli[::-1], nli), rte, None, False) == [1, 0]
    assert class_order("rte.pt", _Model(2), _Task(nli, nli[::-1]), rte, None, False) == [0, 1]
    # No names recorded (an older checkpoint): refused, unless the user vouches for the data's label/dict.txt.
    with pytest.raises(CheckpointMismatch, match="records no label names.*--trust-label-dict"):
        class_order("old.pt", _Model(2), _Task(None, nli[::-1]), rte, None, False)
    assert class_order("old.pt", _Model(2), _Task(None, nli[::-1]), rte, None, True) == [1, 0]
    assert class_order("stsb.pt", _Model(1), _Task(None, []), stsb, None, False) is None

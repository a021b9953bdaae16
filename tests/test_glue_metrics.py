"""GLUE metrics against scikit-learn and scipy, in numpy form and as the criterion logs them in validation."""

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from fairseq_freelb import metrics as M

rng = np.random.RandomState(0)
BINARY_CASES = [
    (rng.randint(0, 2, 200), rng.randint(0, 2, 200)),
    (np.array([1, 1, 0, 0, 1, 0, 1, 1]), np.array([1, 0, 0, 0, 1, 1, 1, 0])),
    (np.array([1, 1, 1, 1]), np.array([0, 1, 0, 1])),  # one predicted class: MCC 0
    (np.array([0, 0, 0]), np.array([0, 0, 0])),  # no positives at all: F1 0
]


@pytest.mark.parametrize("preds,labels", BINARY_CASES)
def test_binary_metrics_match_sklearn(preds, labels):
    assert M.accuracy(preds, labels) == pytest.approx(accuracy_score(labels, preds))
    assert M.f1(preds, labels, positive=1) == pytest.approx(f1_score(labels, preds, zero_division=0))
    assert M.mcc(preds, labels) == pytest.approx(matthews_corrcoef(labels, preds))
    confusion = M.binary_confusion(preds, labels, positive=1)
    assert M.mcc_from_confusion(**confusion) == pytest.approx(matthews_corrcoef(labels, preds))
    assert M.f1_from_confusion(**confusion) == pytest.approx(f1_score(labels, preds, zero_division=0))


def test_string_labels_and_positive_class():
    labels = np.array(["1", "0", "1", "1", "0", "0"], dtype=object)
    preds = np.array(["1", "1", "0", "1", "0", "1"], dtype=object)
    assert M.f1(preds, labels, positive="1") == pytest.approx(f1_score(labels, preds, pos_label="1"))
    assert M.f1(preds, labels, positive="0") == pytest.approx(f1_score(labels, preds, pos_label="0"))
    assert M.mcc(preds, labels) == pytest.approx(matthews_corrcoef(labels, preds))


def test_multiclass_mcc_matches_sklearn():
    labels = rng.choice(["entailment", "neutral", "contradiction"], 300)
    preds = np.where(rng.rand(300) < 0.6, labels, rng.choice(["entailment", "neutral", "contradiction"], 300))
    assert M.mcc(preds, labels) == pytest.approx(matthews_corrcoef(labels, preds))
    assert M.accuracy(preds, labels) == pytest.approx(accuracy_score(labels, preds))


def test_correlations_match_scipy_with_ties():
    labels = np.round(rng.uniform(0, 5, 150), 1)  # many ties, like STS-B's scores
    preds = labels + rng.normal(0, 1.0, 150)
    preds[:20] = 2.5  # ties in the predictions too
    assert M.pearson(preds, labels) == pytest.approx(pearsonr(preds, labels)[0])
    assert M.spearman(preds, labels) == pytest.approx(spearmanr(preds, labels)[0])
    assert M.pearson_from_moments(**M.moments(preds, labels)) == pytest.approx(pearsonr(preds, labels)[0])


def test_average_ranks_match_scipy():
    from scipy.stats import rankdata

    values = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0, 7.0])
    np.testing.assert_allclose(M.average_ranks(values), rankdata(values))


def test_glue_metrics_in_percent_and_unknown_name():
    out = M.glue_metrics(("mcc", "accuracy"), ["1", "0", "1"], ["1", "0", "0"])
    assert out["accuracy"] == pytest.approx(200 / 3)
    assert out["mcc"] == pytest.approx(100 * matthews_corrcoef(["1", "0", "0"], ["1", "0", "1"]))
    with pytest.raises(KeyError, match="unknown GLUE metric"):
        M.glue_metrics(("bleu",), [1], [1])


# ----------------------------------------------------------------- as logged by the criterion


def _validation_stats(logging_outputs_per_batch):
    """What fairseq's validate() sees: reduce_metrics per batch inside a fresh aggregation."""
    from fairseq.logging import metrics

    from fairseq_freelb.adapters.sentence_prediction_criterion import FreeLBSentencePredictionCriterion

    with metrics.aggregate(new_root=True) as agg:
        for batch in logging_outputs_per_batch:
            FreeLBSentencePredictionCriterion.reduce_metrics(batch)
        return agg.get_smoothed_values()


def test_criterion_confusion_metrics_over_batches_match_sklearn():
    preds = rng.randint(0, 2, 90)
    labels = rng.randint(0, 2, 90)
    batches = []
    for lo, hi in ((0, 32), (32, 64), (64, 90)):
        p, t = torch.tensor(preds[lo:hi]) == 1, torch.tensor(labels[lo:hi]) == 1
        batches.append([{
            "loss": torch.tensor(1.0), "ntokens": 10, "nsentences": hi - lo, "sample_size": hi - lo,
            "ncorrect": (p == t).sum(),
            "glue_tp": (p & t).sum(), "glue_fp": (p & ~t).sum(), "glue_fn": (~p & t).sum(), "glue_tn": (~p & ~t).sum(),
        }])
    stats = _validation_stats(batches)
    assert stats["mcc"] == pytest.approx(100 * matthews_corrcoef(labels, preds), abs=0.006)
    f1 = 100 * f1_score(labels, preds)
    acc = 100 * accuracy_score(labels, preds)
    assert stats["f1"] == pytest.approx(f1, abs=0.006)
    assert stats["acc_and_f1"] == pytest.approx((acc + f1) / 2, abs=0.006)
    assert not any(k.startswith("_") for k in stats)


def test_criterion_correlations_over_batches_match_scipy():
    labels = rng.uniform(0, 1, 70)
    preds = labels + rng.normal(0, 0.3, 70)
    batches = []
    for lo, hi in ((0, 30), (30, 70)):
        x, y = torch.tensor(preds[lo:hi]), torch.tensor(labels[lo:hi])
        batches.append([{
            "loss": torch.tensor(1.0), "ntokens": 10, "nsentences": hi - lo, "sample_size": hi - lo,
            "glue_n": hi - lo, "glue_x": x.sum(), "glue_y": y.sum(), "glue_xx": (x * x).sum(),
            "glue_yy": (y * y).sum(), "glue_xy": (x * y).sum(), "glue_pred": x, "glue_targ": y,
        }])
    stats = _validation_stats(batches)
    assert stats["pearson"] == pytest.approx(100 * pearsonr(preds, labels)[0], abs=0.006)
    assert stats["spearman"] == pytest.approx(100 * spearmanr(preds, labels)[0], abs=0.006)


# ----------------------------------------------------------------- the criterion's flags


def _build_criterion(tmp_path, *flags, regression=False):
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import fairseq_freelb  # noqa: F401

    # Building the task reads only the dictionaries; the label order is fairseq's (by frequency), not 0, 1.
    data = tmp_path / "data-bin"
    (data / "input0").mkdir(parents=True)
    (data / "label").mkdir()
    (data / "input0" / "dict.txt").write_text("w1 5\nw2 3\n")
    (data / "label" / "dict.txt").write_text("1 9\n0 4\n")
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(data), "--task", "sentence_prediction", "--criterion", "freelb_sentence_prediction",
        "--num-classes", "1" if regression else "2", "--arch", "roberta_base", "--cpu",
        *(["--regression-target"] if regression else []), *flags,
    ])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    return task.build_criterion(cfg.criterion)


def test_criterion_report_flags_are_checked(tmp_path):
    from fairseq_freelb.adapters.config import AdversarialConfigError

    criterion = _build_criterion(tmp_path / "a", "--report-mcc")
    labels = criterion.task.label_dictionary
    assert labels[criterion.positive_class + labels.nspecial] == "1"  # an index of label/dict.txt, not the label
    assert criterion.logging_outputs_can_be_summed()
    with pytest.raises(AdversarialConfigError, match="--positive-label 'yes' is not in label/dict.txt"):
        _build_criterion(tmp_path / "b", "--report-acc-and-f1", "--positive-label", "yes")
    with pytest.raises(AdversarialConfigError, match="--report-pearson-and-spearman needs --regression-target"):
        _build_criterion(tmp_path / "c", "--report-pearson-and-spearman")
    with pytest.raises(AdversarialConfigError, match="need a classification task"):
        _build_criterion(tmp_path / "d", "--report-mcc", regression=True)
    regression = _build_criterion(tmp_path / "e", "--report-pearson-and-spearman", regression=True)
    assert not regression.logging_outputs_can_be_summed()  # Spearman needs every prediction

"""Readers, encoding, batching and the predictions file of the multiple-choice pipeline (fast, no training)."""

import json
import random
from pathlib import Path

import pytest
import torch

from fairseq_freelb.mc.formats import (
    MultipleChoiceFormatError,
    attach_contexts,
    benchmark_group,
    read_contexts,
    read_question_jsonl,
    read_split,
)
from fairseq_freelb.mc.accuracy import accuracy_by_group
from fairseq_freelb.mc.prediction_files import validate_predictions, write_predictions

import mc_fixtures

ARC_LINE = {"id": "Mercury_1", "question": {"stem": "Which is a metal?", "choices": [
    {"text": "iron", "label": "1"}, {"text": "wood", "label": "2"}, {"text": "glass", "label": "3"}]}, "answerKey": "1"}


def _jsonl(path: Path, lines):
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
    return path


# --------------------------------------------------------------------------- bad input names file and line


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"id": "x", "question": {"stem": "s", "choices": [', "malformed JSON line"),
        ({**ARC_LINE, "answerKey": "4"}, "answerKey '4' is not among the choice labels 1, 2, 3"),
        ({**ARC_LINE, "question": {"stem": "s", "choices": []}}, "empty choice list"),
        ({**ARC_LINE, "question": {"stem": "s", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "A"}]},
          "answerKey": "A"}, "duplicate choice labels"),
    ],
)
def test_bad_line_is_reported_with_file_and_line(tmp_path, bad, message):
    path = _jsonl(tmp_path / "ARC-Easy-Dev.jsonl", [ARC_LINE, {**ARC_LINE, "id": "Mercury_2"}, bad])
    with pytest.raises(MultipleChoiceFormatError) as err:
        read_question_jsonl(str(path))
    assert str(err.value).startswith(f"{path}:3: ")
    assert message in str(err.value)


def test_race_errors_name_the_file(tmp_path):
    race = mc_fixtures.make_race(tmp_path)
    bad = race / "train" / "high" / "1000.txt"
    obj = json.loads(bad.read_text())
    obj["answers"][1] = "E"
    bad.write_text(json.dumps(obj))
    with pytest.raises(MultipleChoiceFormatError, match=rf"^{bad}:1 \(question 1\): answerKey 'E' is not among"):
        read_split(str(race / "train"))


def test_numeric_labels_and_variable_choice_counts(tmp_path):
    files = mc_fixtures.make_arc(tmp_path)
    questions = read_question_jsonl(str(files["ARC-Challenge-Dev"]))
    assert sorted({len(q.choices) for q in questions}) == [3, 4, 5]
    numeric = [q for q in questions if q.labels == ["1", "2", "3", "4"]]
    assert numeric and all(q.answer in q.labels and q.labels[q.target] == q.answer for q in numeric)
    assert {benchmark_group(q.source) for q in questions} == {"ARC-Challenge"}


def test_race_directory_layout_and_cloze(tmp_path):
    race = mc_fixtures.make_race(tmp_path, articles_per_level=2)
    questions = read_split(str(race / "dev"))
    assert len(questions) == 2 * 2 * 3
    assert {q.source for q in questions} == {"RACE-high", "RACE-middle"}
    assert all(len(q.choices) == 4 and q.context for q in questions)
    assert questions[0].id == "high2000.txt-0"


def test_context_file_attaches_and_rejects_unknown_ids(tmp_path):
    path = _jsonl(tmp_path / "q.jsonl", [ARC_LINE, {**ARC_LINE, "id": "Mercury_2"}])
    questions = read_question_jsonl(str(path))
    ctx = _jsonl(tmp_path / "ctx.jsonl", [{"id": "Mercury_1", "context": "Iron is a metal."},
                                          {"id": "Mercury_1", "label": "2", "context": "Wood is not."}])
    counts = attach_contexts(questions, read_contexts(str(ctx)), str(ctx))
    assert counts["questions_with_context"] == 1 and counts["questions_without_context"] == 1
    assert questions[0].context == "Iron is a metal." and questions[0].choices[1].context == "Wood is not."
    bad = _jsonl(tmp_path / "bad.jsonl", [{"id": "Mercury_1", "context": "a"}, {"id": "nope", "context": "b"}])
    with pytest.raises(MultipleChoiceFormatError, match=rf"^{bad}:2: context for unknown question id 'nope'"):
        attach_contexts(read_question_jsonl(str(path)), read_contexts(str(bad)), str(bad))


# --------------------------------------------------------------------------- encoding and batching


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    from fairseq_freelb.mc.encoding import GPT2Tokens
    from fairseq_freelb.resources import gpt2_bpe_files

    return GPT2Tokens(*map(str, gpt2_bpe_files(dest=tmp_path_factory.mktemp("bpe"))))


def _dictionary_for(bpe, texts):
    from fairseq.data import Dictionary

    d = Dictionary()
    for t in texts:
        d.encode_line(bpe.encode(t), add_if_not_exist=True)
    return d


def test_layouts_and_context_truncated_first(tmp_path, bpe):
    from fairseq_freelb.mc.encoding import CandidateEncoder

    path = _jsonl(tmp_path / "q.jsonl", [ARC_LINE])
    (q,) = read_question_jsonl(str(path))
    long_context = " ".join(["metals conduct heat"] * 40)
    d = _dictionary_for(bpe, ["Q: Which is a metal?", "A: iron A: wood A: glass", long_context,
                              "Which is a metal? iron wood glass"])
    ids = lambda text: d.encode_line(bpe.encode(text), append_eos=False).tolist()
    bos, eos = d.bos(), d.eos()

    plain = CandidateEncoder(d, bpe, max_positions=64).encode(q)
    assert plain[0].tolist() == [bos, *ids("Q: Which is a metal?"), eos, *ids("A: iron"), eos]

    q.context = long_context
    encoder = CandidateEncoder(d, bpe, max_positions=40)
    seqs = encoder.encode(q)
    qa = ids("Which is a metal? wood")
    assert len(seqs[1]) == 40 and seqs[1].tolist()[-len(qa) - 1:] == [*qa, eos]  # question+answer intact
    assert seqs[1].tolist()[: 1 + 10] == [bos, *ids(long_context)[:10]]  # context kept from its start
    assert encoder.stats.truncated_candidates == 3 and encoder.stats.truncated_questions == 1
    with pytest.raises(MultipleChoiceFormatError, match=rf"^{path}:1: question and choice 1 take"):
        CandidateEncoder(d, bpe, max_positions=8).encode(q)


def test_collater_masks_missing_choices():
    from fairseq_freelb.mc.dataset import MultipleChoiceDataset

    rng = random.Random(0)
    cands = [[torch.tensor([0, rng.randint(4, 9), 2]) for _ in range(n)] for n in (3, 5, 4)]
    ds = MultipleChoiceDataset(cands, [2, 4, 0], pad_idx=1, bos_idx=0, eos_idx=2)
    batch = ds.collater([ds[0], ds[1], ds[2]])
    assert batch["choice_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert batch["net_input5"]["src_tokens"][0].tolist() == [0, 2, 1]  # missing: <s> </s>, never all padding
    assert batch["ntokens"] == 3 * 12 and batch["target"].tolist() == [2, 4, 0]
    batch = ds.collater([ds[0]])
    assert "net_input4" not in batch  # C is the batch's largest number of choices


def test_missing_choices_get_no_perturbation_and_no_score(tmp_path):
    """delta_0 (init_mag > 0) is zero on missing-choice rows and scaled by the real tokens only."""
    import fairseq_freelb  # noqa: F401
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from fairseq_freelb.mc.scoring import choice_scores
    from fairseq_freelb.mc.dataset import MultipleChoiceDataset
    from utils import TINY_ROBERTA, write_dict

    write_dict(tmp_path / "dict.txt", [f"w{i}" for i in range(10)])
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(tmp_path), "--task", "multiple_choice", "--criterion", "freelb_sentence_ranking", *TINY_ROBERTA,
        "--adv-init-mag", "2.0", "--adv-steps", "2", "--adv-lr", "0.1", "--cpu"])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    cands = [[torch.tensor([0, 5, 6, 2]) for _ in range(n)] for n in (2, 4)]
    ds = MultipleChoiceDataset(cands, [1, 3], pad_idx=1, bos_idx=0, eos_idx=2)
    sample = ds.collater([ds[0], ds[1]])
    torch.manual_seed(0)
    _, _, masks, deltas = criterion.adversary.start(sample, model, criterion)
    assert all(float(d[0].abs().sum()) == 0 for d in deltas[2:])  # question 0 has only 2 choices
    for b, real_tokens in ((0, 2 * 4), (1, 4 * 4)):
        bound = 2.0 / (real_tokens * 32) ** 0.5  # M / sqrt(L d), L over the real choices only
        biggest = max(float(d[b].abs().max()) for d in deltas)
        assert bound * 0.9 < biggest <= bound
    scores = choice_scores(model, sample, "sentence_classification_head")
    assert torch.isinf(scores[0, 2:]).all() and torch.isfinite(scores[1]).all()


# --------------------------------------------------------------------------- accuracy and predictions file


def test_accuracy_groups_and_predictions_validator(tmp_path):
    files = mc_fixtures.make_arc(tmp_path, n_dev=4)
    questions = read_question_jsonl(str(files["ARC-Easy-Dev"])) + read_question_jsonl(str(files["ARC-Challenge-Dev"]))
    predictions = [q.answer if i % 2 == 0 else [l for l in q.labels if l != q.answer][0] for i, q in enumerate(questions)]
    results = accuracy_by_group(questions, predictions)
    assert list(results) == ["ARC-Challenge", "ARC-Easy", "all"]
    assert results["ARC-Easy"]["accuracy"] == 50.0 and results["all"]["total"] == 8

    out = tmp_path / "pred.csv"
    write_predictions(str(out), questions, predictions)
    assert out.read_text().splitlines()[1] == f"{questions[1].id},{predictions[1]}"
    assert validate_predictions(str(out), questions) == []
    lines = out.read_text().splitlines()
    out.write_text("\n".join([lines[1], lines[0], *lines[2:6], f"{questions[6].id},Z"]) + "\n")
    problems = validate_predictions(str(out), questions)
    assert problems[0].startswith(f"{out}:1: id {questions[1].id!r}, expected {questions[0].id!r}")
    assert any(p.startswith(f"{out}:7: answer 'Z' is not among the labels") for p in problems)
    assert problems[-1].startswith(f"{out}: 7 lines for 8 questions")


# --------------------------------------------------------------------------- one home for the scoring


def test_scoring_home_imports_neither_criterion_nor_task():
    """Scoring is shared by the criterion (mc.criterion) and inference without importing either or fairseq
    (the package-wide import rules: tests/test_layers.py)."""
    import ast

    import fairseq_freelb.mc as mc

    folder = Path(mc.__file__).parent
    imports = {}
    for path in folder.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        imports[path.stem] = names
    assert {m for m in imports["scoring"] if m.startswith("fairseq")} == set()
    assert "fairseq_freelb.mc.scoring" in imports["inference"] and "fairseq_freelb.mc.scoring" in imports["criterion"]


def test_predictions_file_is_replaced_only_by_a_valid_one(tmp_path):
    files = mc_fixtures.make_arc(tmp_path, n_dev=4)
    questions = read_question_jsonl(str(files["ARC-Easy-Dev"]))
    out = tmp_path / "pred.csv"
    write_predictions(str(out), questions, [q.answer for q in questions])
    good = out.read_text()
    with pytest.raises(ValueError, match=r"not written, the predictions fail validation: .*answer 'Z' is not among"):
        write_predictions(str(out), questions, ["Z"] + [q.answer for q in questions[1:]])
    assert out.read_text() == good and sorted(p.name for p in tmp_path.iterdir()) == ["ARC-Challenge", "ARC-Easy", "pred.csv"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_predictions(str(tmp_path / "missing" / "pred.csv"), questions, [q.answer for q in questions])

"""The paper's GLUE submission formulations, without training: QNLI as ranking, WNLI through WSC, MNLI initialisation.

Preprocessing runs on the official-format fixtures of tests/paper_fixtures.py;
every count it prints is checked against the counts the fixtures were written
to produce, and so are the prediction rules and every one-line refusal.
"""

import argparse
import contextlib
import io
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import paper_fixtures as F
from glue_fixtures import build_srcdict
from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.glue import formulations, init_from
from fairseq_freelb.glue import preprocess as P
from fairseq_freelb.glue.benchmark_tasks import get_task
from fairseq_freelb.glue.qnli_ranking_data import (
    ENTAILMENT, NOT_ENTAILMENT, PAIRED, THRESHOLD, choose_threshold, decide, question_groups,
)
from fairseq_freelb.resources import gpt2_bpe_files
from fairseq_freelb.wsc import wnli_mapping as W
from fairseq_freelb.wsc.formats import WSCFormatError, read_rows, substitute


@pytest.fixture(scope="module")
def bpe_files(tmp_path_factory):
    return gpt2_bpe_files(dest=tmp_path_factory.mktemp("bpe"))


@pytest.fixture(scope="module")
def paper(tmp_path_factory, bpe_files):
    """QNLI-ranking-bin and WNLI-wsc-bin from the fixtures, and what preprocessing printed."""
    root = tmp_path_factory.mktemp("paper")
    F.make_qnli(root / "glue_data")
    F.make_wnli(root / "glue_data")
    F.make_wsc(root / "WSC")
    srcdict = build_srcdict(root, *bpe_files, root / "dict.txt")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = P.main(["--glue-dir", str(root / "glue_data"), "--srcdict", str(srcdict), "--out", str(root / "bin"),
                     "--tasks", "QNLI-ranking,WNLI-wsc", "--wsc-dir", str(root / "WSC"), "--workers", "1",
                     "--encoder-json", str(bpe_files[0]), "--vocab-bpe", str(bpe_files[1])])
    assert rc == 0
    return root, out.getvalue()


def _meta(root, folder):
    return json.loads((root / "bin" / folder / "meta.json").read_text())


# --------------------------------------------------------------------------- QNLI as ranking: the counts


def test_qnli_ranking_records_every_count(paper):
    root, _ = paper
    meta = _meta(root, "QNLI-ranking-bin")
    for folder in ("QNLI-ranking-bin", "WNLI-wsc-bin"):  # the user's umask, not mkdtemp's 0700
        assert os.stat(root / "bin" / folder).st_mode & 0o777 == 0o777 & ~_umask()
    assert [p.name for p in (root / "bin").iterdir() if p.name.startswith(".")] == []  # nothing left aside
    for split, expected in F.EXPECTED_QNLI.items():
        assert {k: meta["splits"][split][k] for k in expected} == expected, split
    assert meta["train_pairs"] == 6 and meta["task"] == "QNLI-ranking" and meta["max_positions"] == 512


def test_qnli_ranking_prints_every_count(paper):
    _, printed = paper
    assert ("QNLI-ranking train: 14 rows, 6 questions; 6 pairs built (an entailment sentence with a not_entailment "
            "sentence of its question); 2 questions whose counts do not pair up: their 2 unpaired rows are dropped "
            "from training; 0 pairs truncated to 512 positions") in printed
    assert ("QNLI-ranking valid: 10 rows, 5 questions; 3 pairs built" in printed
            and "3 questions whose counts do not pair up: their 4 unpaired rows are left out of fairseq-train's "
            "validation pairs (they are scored per row in valid_rows)" in printed)
    for split in ("valid_rows", "test"):
        assert (f"QNLI-ranking {split}: 10 rows, 5 questions: 3 with two candidates (one entailment each at "
                "prediction), 1 with one, 1 with three or more; the 4 rows of the questions with one, or three or "
                "more, candidates are decided at prediction by their score against a threshold chosen on dev; "
                "0 rows truncated to 512 positions") in printed


def _decode(folder: Path, split: str, bpe_files):
    from fairseq.data import Dictionary, data_utils
    from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

    dictionary = Dictionary.load(str(folder / "dict.txt"))
    dataset = data_utils.load_indexed_dataset(str(folder / split), dictionary)
    encoder = get_encoder(str(bpe_files[0]), str(bpe_files[1]))
    return [encoder.decode([int(dictionary[t]) for t in dataset[i].tolist()[:-1]]) for i in range(len(dataset))]


def test_qnli_ranking_pairs_and_rows_hold_the_fixture_text(paper, bpe_files):
    root, _ = paper
    folder = root / "bin" / "QNLI-ranking-bin"
    train = [line.split("\t") for line in (root / "glue_data" / "QNLI" / "train.tsv").read_text().splitlines()[1:]]
    questions, sentences = _decode(folder / "input0", "train", bpe_files), [
        _decode(folder / f"input{c}", "train", bpe_files) for c in (1, 2)]
    labels = [int(y) for y in (folder / "label" / "train.label").read_text().split()]
    assert labels == [0, 1, 0, 1, 0, 1]  # the entailed sentence alternates between input1 and input2
    by_text = {(q, s): lab for _, q, s, lab in train}
    for question, first, second, y in zip(questions, sentences[0], sentences[1], labels):
        entailed, other = (first, second) if y == 0 else (second, first)
        assert by_text[(question, entailed)] == ENTAILMENT and by_text[(question, other)] == NOT_ENTAILMENT
    rows = (folder / "rows" / "test.tsv").read_text().splitlines()
    assert rows[0] == "index\tquestion\tlabel"
    assert [r.split("\t")[:2] for r in rows[1:]] == [[str(i), str(g)] for i, g in
                                                      enumerate(question_groups(F.QNLI_TEST))]
    assert (folder / "index" / "test.index").read_text().split() == [str(i) for i in range(10)]
    assert _decode(folder / "input1", "test", bpe_files) == [
        line.split("\t")[2] for line in (root / "glue_data" / "QNLI" / "test.tsv").read_text().splitlines()[1:]]


# --------------------------------------------------------------------------- QNLI as ranking: the rules


def test_each_pair_gets_one_entailment_and_the_rest_follow_the_dev_threshold():
    groups = question_groups(F.QNLI_TEST)
    scores = np.array([0.3, 2.0, -1.0, 0.9, 0.5, -2.0, 0.1, -3.0, 1.0, 1.0])
    decisions = decide(scores, groups, threshold=0.2)
    assert decisions.by_rule == {PAIRED: 6, THRESHOLD: 4}
    for a, b in F.QNLI_TEST_PAIRS:
        assert sorted([decisions.labels[a], decisions.labels[b]]) == [ENTAILMENT, NOT_ENTAILMENT]
    assert decisions.labels[3] == ENTAILMENT and decisions.labels[8] == ENTAILMENT  # higher score; a tie: first row
    assert [decisions.labels[k] for k in F.QNLI_TEST_THRESHOLD_ROWS] == [ENTAILMENT, NOT_ENTAILMENT, ENTAILMENT,
                                                                         NOT_ENTAILMENT]
    with pytest.raises(ValueError, match="needs the dev threshold"):
        decide(scores, groups, threshold=None)


def test_the_threshold_classifies_the_most_dev_rows_correctly():
    scores = np.array([-2.0, -1.0, 0.5, 1.0, 3.0])
    gold = [NOT_ENTAILMENT, NOT_ENTAILMENT, ENTAILMENT, NOT_ENTAILMENT, ENTAILMENT]
    t = choose_threshold(scores, gold)
    assert t == pytest.approx(-0.25)  # 4 of 5 right; the first best cut
    assert sum((s > t) == (g == ENTAILMENT) for s, g in zip(scores, gold)) == 4


# --------------------------------------------------------------------------- WNLI through WSC: the counts


def test_wnli_wsc_records_every_count(paper):
    root, _ = paper
    meta = _meta(root, "WNLI-wsc-bin")
    for split, expected in {**F.EXPECTED_WNLI, **F.EXPECTED_WSC}.items():
        assert {k: meta["splits"][split][k] for k in expected} == expected, split
    assert meta["fallback_label"] == F.WNLI_FALLBACK and meta["wnli_train_labels"] == {"1": 3, "0": 4}


def test_wnli_wsc_prints_every_count(paper):
    root, printed = paper
    assert ("WNLI-wsc WSC train: 11 rows in 6 candidate groups; 3 training examples (one per correct candidate, "
            "against its group's wrong ones); not trained on: 2 correct candidates without a wrong one in their group, "
            "1 groups without a correct candidate; 1 duplicate wrong candidates dropped; 1 pronoun indices moved by "
            f"one word ({root / 'WSC' / 'train.jsonl'})") in printed
    assert ("WNLI-wsc WSC val: 5 rows in 3 candidate groups (1 alone: predicted wrong in validation's per-row "
            "accuracy); 0 pronoun indices moved by one word") in printed
    assert ("WNLI-wsc wnli_valid: 6 WNLI rows: 5 mapped to 3 candidate groups (4 rows in groups of two or more, "
            "1 alone); 1 not mapped (no pronoun of the premise aligns with the hypothesis: 1); at prediction the 2 rows "
            "alone or not mapped get the fallback label 0 (WNLI train's majority label)") in printed
    assert ("WNLI-wsc test: 8 WNLI rows: 5 mapped to 3 candidate groups (4 rows in groups of two or more, 1 alone); "
            "3 not mapped (no pronoun of the premise aligns with the hypothesis: 1; the substituted phrase is not in "
            "the premise: 1; two pronouns of the premise align equally well: 1); at prediction the 4 rows alone or not "
            "mapped get the fallback label 0 (WNLI train's majority label)") in printed


def test_wnli_wsc_folder_keeps_every_row(paper):
    root, _ = paper
    folder = root / "bin" / "WNLI-wsc-bin"
    assert (folder / "train.jsonl").read_bytes() == (root / "WSC" / "train.jsonl").read_bytes()
    assert (folder / "valid.jsonl").read_bytes() == (root / "WSC" / "val.jsonl").read_bytes()
    rows = [line.split("\t") for line in (folder / "rows" / "test.tsv").read_text().splitlines()]
    assert rows[0] == ["index", "label", "group", "reason"] and [r[0] for r in rows[1:]] == [str(i) for i in range(8)]
    assert [r[2] for r in rows[1:]] == ["0", "1", "", "0", "", "", "2", "2"]
    mapped = read_rows(str(folder / "test.jsonl"))
    assert [r.extra["wnli_index"] for r in mapped] == ["0", "1", "3", "6", "7"]
    assert [r.candidate for r in mapped] == ["The police", "Tommy", "The gang members", "The carrot", "The pin"]
    assert (folder / "index" / "test.index").read_text().split() == [str(i) for i in range(8)]
    for name in ("dict.txt", "encoder.json", "vocab.bpe"):
        assert (folder / name).is_file()


# --------------------------------------------------------------------------- WNLI through WSC: the rules


def test_alignment_recovers_pronoun_and_candidate_or_says_why_not():
    a, reason = W.align(" ".join(F.TOMMY.split()), "Father gave Tommy a sympathetic look.")
    assert reason == "" and (a.pronoun, a.candidate, a.matched_words) == ("him", "Tommy", 5)
    assert W.align(F.CRIED, "Mary cried.") == (None, W.AMBIGUOUS)
    assert W.align(F.STEVE, "Steve influences Fred hugely.") == (None, W.NOT_IN_PREMISE)
    assert W.align(F.TROPHY, "The trophy is large.") == (None, W.NO_ALIGNMENT)
    text = " ".join(F.CARROT.split())
    a, _ = W.align(text, "The carrot had a hole.")
    assert substitute(text, a.pronoun_index, 1, a.candidate) == (
        "I stuck a pin through a carrot. When I pulled the pin out,", " the carrot", " had a hole.")


def test_the_best_candidate_of_each_group_gets_1_and_the_rest_the_fallback():
    mapped = W.map_rows([(str(i), p, h, None) for i, (p, h) in enumerate(F.WNLI_TEST)])
    assert mapped.counts() == F.EXPECTED_WNLI["test"]
    decisions = W.decide(mapped, {0: [-1.0, -0.5], 1: [-2.0], 2: [-0.1, -0.2]}, F.WNLI_FALLBACK)
    assert decisions.by_rule == {W.BY_GROUP: 4, W.ALONE: 1, W.UNMAPPED: 3}
    assert decisions.labels == ["0", "0", "0", "1", "0", "0", "1", "0"]
    for a, b in F.WNLI_TEST_GROUPS:
        assert sorted([decisions.labels[a], decisions.labels[b]]) == ["0", "1"]
    assert W.decide(mapped, {0: [0.0, 0.0], 1: [0.0], 2: [0.0, 0.0]}, "1").labels[:4] == ["1", "1", "1", "0"]


def test_substitution_keeps_punctuation_and_fits_the_case():
    text = 'He said: "It is mine." They left it.'
    assert substitute(text, 2, 1, "the ball") == ('He said: "', 'The ball', ' is mine." They left it.')
    assert substitute(text, 0, 1, "the man") == ("", "The man", " said: \"It is mine.\" They left it.")
    assert substitute(text, 7, 1, "The ball") == ('He said: "It is mine." They left', ' the ball', '.')


@pytest.mark.parametrize("change, message", [
    (lambda r: r["target"].update(span2_index=r["target"]["span2_index"] + 2), "is not word"),
    (lambda r: r.pop("label"), "no label, but every row of this file needs one"),
    (lambda r: r.update(label="yes"), "label must be true or false"),
    (lambda r: r["target"].update(span1_text=""), "span1_text is empty"),
    (lambda r: r.pop("target"), "missing 'target' object"),
])
def test_a_bad_wsc_row_is_one_line_naming_file_and_line(tmp_path, change, message):
    rows = [json.loads(json.dumps(r)) for r in F.WSC_TRAIN[:3]]
    change(rows[2])
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(WSCFormatError) as info:
        read_rows(str(path), labelled=True)
    assert str(info.value).startswith(f"{path}:3: ") and message in str(info.value) and "\n" not in str(info.value)


def test_malformed_json_names_its_line(tmp_path):
    path = tmp_path / "val.jsonl"
    path.write_text(json.dumps(F.WSC_VAL[0]) + "\n{\"text\": \n")
    with pytest.raises(WSCFormatError, match=rf"{path}:2: malformed JSON line"):
        read_rows(str(path))


# --------------------------------------------------------------------------- preprocessing refusals


def test_wnli_wsc_needs_the_wsc_folder_and_writes_nothing_without_it(tmp_path, bpe_files, capsys):
    F.make_wnli(tmp_path / "glue_data")
    F.make_wsc(tmp_path / "WSC")
    (tmp_path / "WSC" / "val.jsonl").unlink()
    common = ["--glue-dir", str(tmp_path / "glue_data"), "--srcdict", str(tmp_path / "dict.txt"), "--out",
              str(tmp_path / "bin"), "--workers", "1", "--encoder-json", str(bpe_files[0]), "--vocab-bpe", str(bpe_files[1])]
    (tmp_path / "dict.txt").write_text("13 1\n")
    for extra, message in (([], "--tasks WNLI-wsc needs --wsc-dir"),
                           (["--wsc-dir", str(tmp_path / "WSC")], f"{tmp_path / 'WSC' / 'val.jsonl'}: SuperGLUE WSC")):
        assert run_command(P.PROG, P.main, common + ["--tasks", "WNLI-wsc"] + extra) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "bin").exists()


# --------------------------------------------------------------------------- the masked-LM head


def _save(path, **state):
    torch.save(state, path)
    return str(path)


def test_a_model_without_a_trained_masked_lm_head_is_named(tmp_path):
    from fairseq_freelb.wsc.criterion import check_restore_file_head
    from fairseq_freelb.wsc.lm_head import lm_head_problem

    head = {"encoder.lm_head.dense.weight": torch.zeros(2, 2)}
    trained = _save(tmp_path / "roberta.pt", model=head, extra_state={})
    converted = _save(tmp_path / "bert.pt", model=head, extra_state={"converted_from": "hf/bert", "masked_lm_head": True})
    random_head = _save(tmp_path / "minilm.pt", model=head, extra_state={"converted_from": "hf/minilm", "masked_lm_head": False})
    older = _save(tmp_path / "old.pt", model=head, extra_state={"converted_from": "hf/minilm"})
    headless = _save(tmp_path / "headless.pt", model={"encoder.sentence_encoder.embed_tokens.weight": torch.zeros(2, 2)})
    assert lm_head_problem(trained) is None and lm_head_problem(converted) is None
    assert "converted from hf/minilm without a masked-LM head" in lm_head_problem(random_head)
    assert "convert it again" in lm_head_problem(older)
    assert lm_head_problem(headless) == "has no masked-LM head (no lm_head weights)"
    check_restore_file_head(SimpleNamespace(restore_file=trained))
    check_restore_file_head(SimpleNamespace(restore_file="checkpoint_last.pt"))  # fairseq's default: nothing to check
    from fairseq_freelb.adapters.config import AdversarialConfigError

    with pytest.raises(AdversarialConfigError, match=rf"--restore-file {random_head} was converted .* needs a model "
                                                     r"with a trained one"):
        check_restore_file_head(SimpleNamespace(restore_file=random_head))


# --------------------------------------------------------------------------- MNLI initialisation


def _classifier(path, labels, classes=3, vocab=12):
    model = {"encoder.sentence_encoder.embed_tokens.weight": torch.zeros(vocab, 4),
             "encoder.lm_head.dense.weight": torch.zeros(4, 4),
             "classification_heads.sentence_classification_head.dense.weight": torch.zeros(4, 4),
             "classification_heads.sentence_classification_head.out_proj.weight": torch.zeros(classes, 4)}
    task_state = {} if labels is None else {"label_names": labels}
    return _save(path, args=None, cfg={"task": {"_name": "sentence_prediction"}}, model=model, task_state=task_state,
                 optimizer_history=[{"num_updates": 123873}], extra_state={"train_iterator": {"epoch": 10}})


def _data_bin(root, symbols=11):
    (root / "input0").mkdir(parents=True)
    (root / "input0" / "dict.txt").write_text("".join(f"{100 + i} 1\n" for i in range(symbols - 4)))  # + 4 specials
    return root


def test_init_from_drops_every_head_and_the_training_state(tmp_path, capsys):
    mnli = _classifier(tmp_path / "mnli.pt", list(get_task("MNLI").labels))
    out = tmp_path / "rte" / "init_from_mnli.pt"
    rc = run_command(init_from.PROG, init_from.main, ["--checkpoint", mnli, "--task", "RTE",
                                                      "--data-bin", str(_data_bin(tmp_path / "RTE-bin")), "--out", str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and lines == [
        f"INIT_FROM={mnli}: RTE starts from this fine-tuned MNLI model; its 3-class head 'sentence_classification_head' "
        f"is dropped and RTE's 2-class head (entailment, not_entailment) starts from random initialisation ({out})"]
    state = torch.load(out, weights_only=False)
    assert sorted(state["model"]) == ["encoder.lm_head.dense.weight", "encoder.sentence_encoder.embed_tokens.weight"]
    assert state["task_state"] == {} and state["optimizer_history"][-1]["num_updates"] == 0
    assert state["last_optimizer_state"] is None and state["extra_state"]["init_from"] == mnli
    assert oct(os.stat(out).st_mode & 0o777) == oct(0o666 & ~_umask())
    assert [p.name for p in out.parent.iterdir()] == ["init_from_mnli.pt"]  # nothing left aside


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("labels, classes, vocab, task, message", [
    (["entailment", "not_entailment"], 2, 12, "RTE", "trained on labels ['entailment', 'not_entailment'], not MNLI's"),
    (None, 3, 12, "MRPC", "records no label names, so it cannot be told to be an MNLI model"),
    (["entailment", "neutral", "contradiction"], 3, 50, "STS-B", "its embeddings have 50 rows"),
    (["entailment", "neutral", "contradiction"], 3, 12, "MNLI", "MNLI itself starts from the pretrained model"),
])
def test_init_from_refuses_what_is_not_an_mnli_model_for_this_data(tmp_path, capsys, labels, classes, vocab, task,
                                                                     message):
    ckpt = _classifier(tmp_path / "ck.pt", labels, classes, vocab)
    rc = run_command(init_from.PROG, init_from.main, ["--checkpoint", ckpt, "--task", task, "--data-bin",
                                                      str(_data_bin(tmp_path / "bin")), "--out", str(tmp_path / "o.pt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o.pt").exists()


# --------------------------------------------------------------------------- which formulation a checkpoint is


def test_the_checkpoint_says_its_formulation_and_mixtures_or_misfits_are_refused(tmp_path):
    # A legacy (argparse) task's cfg.task is an argparse.Namespace, as fairseq saves it.
    ranking = _save(tmp_path / "ranking.pt", cfg={"task": argparse.Namespace(_name="qnli_ranking")}, model={})
    wsc = _save(tmp_path / "wsc.pt", cfg={"task": {"_name": "freelb_wsc"}}, model={})
    plain = _save(tmp_path / "plain.pt", cfg={"task": {"_name": "sentence_prediction"}}, model={})
    qnli, wnli, rte = get_task("QNLI"), get_task("WNLI"), get_task("RTE")
    assert formulations.formulation_of(qnli, [ranking, ranking]) == "QNLI-ranking"
    assert formulations.formulation_of(wnli, [wsc]) == "WNLI-wsc"
    assert formulations.formulation_of(qnli, [plain]) is None
    with pytest.raises(CommandError, match=r"--checkpoints QNLI: an ensemble needs one formulation, these are "
                                           rf"{ranking} \(QNLI-ranking\), {plain} \(classification\)"):
        formulations.formulation_of(qnli, [ranking, plain])
    with pytest.raises(CommandError, match=rf"--checkpoints QNLI: {wsc} is a WNLI-wsc model .* predicts WNLI, not QNLI"):
        formulations.formulation_of(qnli, [wsc])
    assert formulations.formulation_of(rte, [str(tmp_path / "never-opened.pt")]) is None  # RTE has one formulation
    # The test ids: the task's own folder first, the formulation's when only that one was preprocessed.
    glue_bin = tmp_path / "glue-bin"
    (glue_bin / "QNLI-ranking-bin" / "index").mkdir(parents=True)
    (glue_bin / "QNLI-ranking-bin" / "index" / "test.index").write_text("0\n1\n")
    assert formulations.index_file(glue_bin, qnli, "test") == glue_bin / "QNLI-ranking-bin" / "index" / "test.index"
    (glue_bin / "QNLI-bin" / "index").mkdir(parents=True)
    (glue_bin / "QNLI-bin" / "index" / "test.index").write_text("0\n1\n")
    assert formulations.index_file(glue_bin, qnli, "test") == glue_bin / "QNLI-bin" / "index" / "test.index"


# --------------------------------------------------------------------------- fairseq-train refusals


def test_the_ranking_task_refuses_a_folder_not_written_for_it_and_the_wsc_criterion_another_task(tmp_path):
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from fairseq_freelb.adapters.config import AdversarialConfigError
    from utils import TINY_ROBERTA

    data = tmp_path / "QNLI-bin"
    for sub in ("input0", "label"):
        (data / sub).mkdir(parents=True)
        (data / sub / "dict.txt").write_text("".join(f"{100 + i} 1\n" for i in range(8)))
    (data / "meta.json").write_text(json.dumps({"task": "QNLI"}))

    def cfg(*argv):
        args = options.parse_args_and_arch(options.get_training_parser(), [str(data), *argv, *TINY_ROBERTA, "--cpu"])
        return convert_namespace_to_omegaconf(args)

    c = cfg("--task", "qnli_ranking", "--criterion", "freelb_sentence_ranking", "--num-classes", "2")
    with pytest.raises(AdversarialConfigError, match=rf"^--task qnli_ranking: {data} is a QNLI-bin folder; write "
                                                     "QNLI-ranking-bin with python -m fairseq_freelb.glue.preprocess "
                                                     "--tasks QNLI-ranking$"):
        tasks.setup_task(c.task)
    (data / "meta.json").write_text(json.dumps({"task": "QNLI-ranking"}))
    c = cfg("--task", "qnli_ranking", "--criterion", "freelb_wsc", "--num-classes", "2")
    with pytest.raises(AdversarialConfigError, match=r"--task qnli_ranking needs --criterion freelb_sentence_ranking "
                                                     r"\(one ball per pair\), got 'freelb_wsc'"):
        tasks.setup_task(c.task)  # the ranking task names its criteria first
    c.task.criterion = "freelb_sentence_ranking"
    task = tasks.setup_task(c.task)
    with pytest.raises(AdversarialConfigError, match="--criterion freelb_wsc cannot serve --task qnli_ranking; "
                                                     "use --task freelb_wsc"):
        task.build_criterion(c.criterion)

"""Reference test: the multiple-choice FreeLB update equals a plain-PyTorch loop written from the paper.

The reference (:func:`reference_freelb_update`) follows Algorithm 1 of Zhu et
al. (ICLR 2020) with the per-question ball of appendix A.1, and calls only the
fairseq model: it runs every candidate of every question on its own (no
padding, no missing-choice rows) with ``token_embeddings = E(x) + delta``,
computes each question's gradient norm and delta norm over the concatenation
of its candidates itself, and averages the parameter gradients over the K
passes. The system under test is ``task.train_step`` (criterion
``freelb_sentence_ranking`` + the adversarial hook) followed by
``optimizer.step()``. Dropout is off, delta_0 = 0, and the step size is
larger than the radius so that the projection acts. The model runs in float64
so that padding cannot blur the 1e-5 comparison.
"""

import copy
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import fairseq_freelb  # noqa: F401  (registers the task and criterion)
from fairseq import optim, options, tasks
from fairseq.data import Dictionary, indexed_dataset
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.tasks.sentence_ranking import SentenceRankingTask

from utils import TINY_ROBERTA, WORDS, write_dict

HEAD = "sentence_classification_head"
K, ALPHA, EPSILON, LR = 3, 0.5, 0.3, 1.0
NO_DROPOUT = ["--dropout", "0", "--attention-dropout", "0", "--activation-dropout", "0", "--pooler-dropout", "0"]
ADV = ["--adv-method", "freelb", "--adv-steps", str(K), "--adv-lr", str(ALPHA), "--adv-init-mag", "0",
       "--adv-max-norm", str(EPSILON), "--adv-norm-type", "l2"]
RTOL = 1e-5


# --------------------------------------------------------------------------- reference (no fairseq_freelb code)


def _score(model, tokens, delta):
    """The model's ranking score of one candidate sequence with delta added to its word embeddings."""
    src = tokens.unsqueeze(0)
    embeddings = model.encoder.sentence_encoder.embed_tokens(src) + delta.unsqueeze(0)
    # RobertaEncoder.forward drops token_embeddings; its extract_features takes them.
    features, _ = model.encoder.extract_features(src, token_embeddings=embeddings)
    return model.classification_heads[HEAD](features).view(())


def reference_freelb_update(model, questions, targets, per_question_ball=True):
    """Parameter update of one FreeLB-K step (Algorithm 1) with plain SGD; also the final per-question ||delta||.

    ``questions[q]`` is the list of 1-D token tensors of question q's candidates.
    With ``per_question_ball=False`` each candidate is its own ball (the wrong
    grouping), to show that the test tells the two apart.
    """
    d = model.encoder.sentence_encoder.embed_tokens.embedding_dim
    dtype = next(model.parameters()).dtype
    deltas = [[torch.zeros(len(t), d, dtype=dtype) for t in cands] for cands in questions]
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    model.zero_grad()
    projected = 0
    for t in range(K):
        leaves = [[x.clone().requires_grad_(True) for x in qd] for qd in deltas]
        loss = 0.0
        for cands, qd, y in zip(questions, leaves, targets):
            scores = torch.stack([_score(model, tok, dl) for tok, dl in zip(cands, qd)])
            loss = loss + F.cross_entropy(scores.unsqueeze(0), torch.tensor([y]), reduction="sum")
        (loss / K).backward()  # parameter gradients: the average over the K passes
        if t == K - 1:
            break
        new = []
        for qd in leaves:
            groups = [[x] for x in qd] if not per_question_ball else [qd]
            out = []
            for group in groups:
                g_norm = torch.sqrt(sum((x.grad ** 2).sum() for x in group))
                stepped = [x.detach() + ALPHA * x.grad / g_norm for x in group]
                norm = torch.sqrt(sum((s ** 2).sum() for s in stepped))
                if norm > EPSILON:
                    projected += 1
                    stepped = [s * (EPSILON / norm) for s in stepped]
                out.extend(stepped)
            new.append(out)
        deltas = new
    assert projected > 0, "the projection never acted: the test would not check it"
    with torch.no_grad():
        for p in params:
            if p.grad is not None:  # e.g. the LM head takes no part in ranking
                p -= LR * p.grad
    updates = [p.detach() - b for p, b in zip(params, before)]
    final_norms = torch.stack([torch.sqrt(sum((x ** 2).sum() for x in qd)) for qd in deltas])
    return updates, final_norms


# --------------------------------------------------------------------------- system under test


def _setup(tmp_path: Path, task_args):
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_dict(tmp_path / "dict.txt", WORDS)
    args = options.parse_args_and_arch(
        options.get_training_parser(),
        [str(tmp_path), *task_args, "--criterion", "freelb_sentence_ranking", *TINY_ROBERTA, *NO_DROPOUT, *ADV,
         "--optimizer", "sgd", "--lr", str(LR), "--cpu", "--seed", "3"],
    )
    return args, convert_namespace_to_omegaconf(args)


def _system_update(task, model, criterion, cfg, sample):
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    optimizer = optim.build_optimizer(cfg.optimizer, params)
    optimizer.zero_grad()
    _, _, log = task.train_step(sample, model, criterion, optimizer, update_num=0)
    optimizer.step()
    return [p.detach() - b for p, b in zip(params, before)], log


def _relative_error(updates, reference):
    diff = torch.sqrt(sum(((u - r) ** 2).sum() for u, r in zip(updates, reference)))
    scale = torch.sqrt(sum((r ** 2).sum() for r in reference))
    return float(diff / scale)


def _random_questions(rng: random.Random, num_choices, dictionary):
    words = [dictionary.index(w) for w in WORDS]
    questions = []
    for n in num_choices:
        questions.append([
            torch.tensor([dictionary.bos(), *rng.choices(words, k=rng.randint(2, 9)), dictionary.eos()])
            for _ in range(n)
        ])
    targets = [rng.randrange(n) for n in num_choices]
    return questions, targets


def _check(model, reference_model, task, criterion, cfg, sample, questions, targets):
    updates, log = _system_update(task, model, criterion, cfg, sample)
    reference, ref_norms = reference_freelb_update(reference_model, questions, targets)
    error = _relative_error(updates, reference)
    assert error < RTOL, f"relative error {error:.2e} of the parameter update"
    # The logged ||delta|| is the sum of the per-question norms of the last delta.
    assert float(log["adv_delta_norm"]) == pytest.approx(float(ref_norms.sum()), rel=1e-5)
    # The check can fail: per-candidate balls give a clearly different update.
    wrong, _ = reference_freelb_update(copy.deepcopy(reference_model_init[0]), questions, targets, per_question_ball=False)
    assert _relative_error(updates, wrong) > 100 * RTOL


reference_model_init = [None]


def test_multiple_choice_task_matches_reference_with_different_numbers_of_choices(tmp_path):
    from fairseq_freelb.mc.dataset import MultipleChoiceDataset

    torch.manual_seed(0)
    args, cfg = _setup(tmp_path, ["--task", "multiple_choice"])
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model).double()
    criterion = task.build_criterion(cfg.criterion)
    reference_model_init[0] = copy.deepcopy(model)
    reference_model = copy.deepcopy(model)

    # ARC-like batch: 3, 5, 4 and 5 choices, so choices 4-5 are missing for some questions.
    questions, targets = _random_questions(random.Random(1), [3, 5, 4, 5, 2], task.source_dictionary)
    d = task.source_dictionary
    dataset = MultipleChoiceDataset(questions, targets, d.pad(), d.bos(), d.eos())
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    assert sample["choice_mask"].sum(1).tolist() == [3, 5, 4, 5, 2]
    _check(model, reference_model, task, criterion, cfg, sample, questions, targets)


def _write_indexed(path: Path, rows, vocab_size):
    path.parent.mkdir(parents=True, exist_ok=True)
    builder = indexed_dataset.make_builder(f"{path}.bin", impl="mmap", vocab_size=vocab_size)
    for row in rows:
        builder.add_item(torch.tensor(row, dtype=torch.int32))
    builder.finalize(f"{path}.idx")


def test_stock_sentence_ranking_task_matches_reference(tmp_path):
    """fairseq's own SentenceRankingTask (fixed C = 4), reading the input0/input1..4/label layout of its RACE recipe."""
    torch.manual_seed(0)
    rng = random.Random(2)
    args, cfg = _setup(
        tmp_path / "data",
        ["--task", "freelb_sentence_ranking", "--num-classes", "4", "--init-token", "0", "--separator-token", "2",
         "--no-shuffle"],
    )
    data = tmp_path / "data"
    dictionary = Dictionary.load(str(data / "dict.txt"))
    words = [dictionary.index(w) for w in WORDS]
    n = 3
    # Binarized like fairseq-preprocess: every line ends with </s>.
    contexts = [[*rng.choices(words, k=rng.randint(2, 6)), dictionary.eos()] for _ in range(n)]
    options_ = [[[*rng.choices(words, k=rng.randint(1, 5)), dictionary.eos()] for _ in range(n)] for _ in range(4)]
    labels = [rng.randrange(4) for _ in range(n)]
    (data / "input0").mkdir(parents=True)
    write_dict(data / "input0" / "dict.txt", WORDS)
    _write_indexed(data / "input0" / "train", contexts, len(dictionary))
    for c in range(4):
        _write_indexed(data / f"input{c + 1}" / "train", options_[c], len(dictionary))
    (data / "label").mkdir()
    (data / "label" / "train.label").write_text("".join(f"{y}\n" for y in labels))

    stock_dictionary = SentenceRankingTask.load_dictionary(args, str(data / "input0" / "dict.txt"))
    task = SentenceRankingTask(args, stock_dictionary)  # the stock class, built as fairseq would
    task.load_dataset("train")
    model = task.build_model(args).double()
    from fairseq_freelb.mc.criterion import FreeLBSentenceRankingCriterion

    criterion = FreeLBSentenceRankingCriterion(cfg.criterion, task)
    reference_model_init[0] = copy.deepcopy(model)
    reference_model = copy.deepcopy(model)
    dataset = task.datasets["train"]
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    assert "choice_mask" not in sample and "net_input4" in sample and "net_input5" not in sample

    # The reference's inputs, rebuilt from the raw rows with the stock layout: <s> option </s> </s> context </s>.
    order = sample["id"].tolist()
    questions = [
        [torch.tensor([0, *options_[c][i], 2, *contexts[i]]) for c in range(4)] for i in order
    ]
    targets = [labels[i] for i in order]
    for c in range(4):  # the stock loader built exactly those sequences
        src = sample[f"net_input{c + 1}"]["src_tokens"]
        for row, q in zip(src, questions):
            assert row[row.ne(stock_dictionary.pad())].tolist() == q[c].tolist()
    _check(model, reference_model, task, criterion, cfg, sample, questions, targets)

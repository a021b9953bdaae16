"""Reference tests: a FreeLB update on QNLI ranking pairs and on WSC candidate groups equals a plain-PyTorch loop.

The reference (:func:`reference_freelb_update`) follows Algorithm 1 of Zhu et
al. (ICLR 2020) with one perturbation ball per example (appendix A.1: the
concatenation of the embeddings of all the example's candidate sequences). It
calls only the fairseq model: each candidate runs on its own (no padding, no
missing-candidate rows) with ``token_embeddings = E(x) + delta``, and it
computes each group's gradient norm, step and projection itself. Scores are
the ranking head's for QNLI pairs and the masked-LM head's mean log-probability
of the candidate's tokens for WSC. The system under test is
``task.train_step`` (the plugin's criterion and adversarial hook) and
``optimizer.step()``, on batches collated from folders written by
``python -m fairseq_freelb.glue.preprocess``. Dropout is off, delta_0 = 0, the
step is larger than the radius so that the projection acts, and the model runs
in float64.
"""

import copy
import io
import contextlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import fairseq_freelb  # noqa: F401  (registers the tasks and criteria)
import paper_fixtures as PF
from fairseq import optim, options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from glue_fixtures import build_srcdict
from utils import TINY_ROBERTA

K, ALPHA, EPSILON, LR = 3, 0.5, 0.3, 1.0
NO_DROPOUT = ["--dropout", "0", "--attention-dropout", "0", "--activation-dropout", "0", "--pooler-dropout", "0"]
ADV = ["--adv-method", "freelb", "--adv-steps", str(K), "--adv-lr", str(ALPHA), "--adv-init-mag", "0",
       "--adv-max-norm", str(EPSILON), "--adv-norm-type", "l2"]
RTOL = 1e-5


# --------------------------------------------------------------------------- reference (no fairseq_freelb code)


def _features(model, tokens, delta):
    src = tokens.unsqueeze(0)
    embeddings = model.encoder.sentence_encoder.embed_tokens(src) + delta.unsqueeze(0)
    features, _ = model.encoder.extract_features(src, token_embeddings=embeddings)
    return features


def ranking_score(model, candidate, delta):
    """The ranking head's score of one ``<s> sentence </s> </s> question </s>`` sequence."""
    head = next(iter(model.classification_heads.values()))
    return head(_features(model, candidate, delta)).view(())


def masked_lm_score(model, candidate, delta):
    """Mean log-probability of the candidate's tokens at their masked positions (``candidate = (tokens, span, pad)``)."""
    tokens, span, pad = candidate
    mask = span.ne(pad)
    logits = model.encoder.lm_head(_features(model, tokens, delta), masked_tokens=mask.unsqueeze(0))
    return F.log_softmax(logits, dim=-1).gather(1, span[mask].unsqueeze(1)).mean()


def _length(candidate):
    return len(candidate[0] if isinstance(candidate, tuple) else candidate)


def reference_freelb_update(model, groups, targets, score, per_group_ball=True):
    """Parameter update of one FreeLB-K step with plain SGD, and the final per-group ||delta||.

    ``groups[g]`` lists group g's candidates; ``targets[g]`` is the correct one's
    position. With ``per_group_ball=False`` each candidate is its own ball (the
    wrong grouping), to show that the comparison tells the two apart.
    """
    d = model.encoder.sentence_encoder.embed_tokens.embedding_dim
    dtype = next(model.parameters()).dtype
    deltas = [[torch.zeros(_length(c), d, dtype=dtype) for c in group] for group in groups]
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    model.zero_grad()
    projected = 0
    for t in range(K):
        leaves = [[x.clone().requires_grad_(True) for x in gd] for gd in deltas]
        loss = 0.0
        for group, gd, y in zip(groups, leaves, targets):
            scores = torch.stack([score(model, c, dl) for c, dl in zip(group, gd)])
            loss = loss + F.cross_entropy(scores.unsqueeze(0), torch.tensor([y]), reduction="sum")
        (loss / K).backward()
        if t == K - 1:
            break
        new = []
        for gd in leaves:
            balls = [gd] if per_group_ball else [[x] for x in gd]
            out = []
            for ball in balls:
                g_norm = torch.sqrt(sum((x.grad ** 2).sum() for x in ball))
                stepped = [x.detach() + ALPHA * x.grad / g_norm for x in ball]
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
            if p.grad is not None:
                p -= LR * p.grad
    final = torch.stack([torch.sqrt(sum((x ** 2).sum() for x in gd)) for gd in deltas])
    return [p.detach() - b for p, b in zip(params, before)], final


# --------------------------------------------------------------------------- system under test


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """QNLI-ranking-bin and WNLI-wsc-bin written by the preprocessing command from the fixtures."""
    from fairseq_freelb.glue import preprocess as P
    from fairseq_freelb.resources import gpt2_bpe_files

    root = tmp_path_factory.mktemp("paper_reference")
    PF.make_qnli(root / "glue_data")
    PF.make_wnli(root / "glue_data")
    PF.make_wsc(root / "WSC")
    bpe = gpt2_bpe_files(dest=root / "bpe")
    srcdict = build_srcdict(root, *bpe, root / "dict.txt")
    with contextlib.redirect_stdout(io.StringIO()):
        assert P.main(["--glue-dir", str(root / "glue_data"), "--srcdict", str(srcdict), "--out", str(root / "bin"),
                       "--tasks", "QNLI-ranking,WNLI-wsc", "--wsc-dir", str(root / "WSC"), "--workers", "1",
                       "--encoder-json", str(bpe[0]), "--vocab-bpe", str(bpe[1])]) == 0
    return root / "bin"


def _setup(data: Path, task_args):
    args = options.parse_args_and_arch(
        options.get_training_parser(),
        [str(data), *task_args, *TINY_ROBERTA, *NO_DROPOUT, *ADV, "--optimizer", "sgd", "--lr", str(LR), "--cpu",
         "--seed", "3"],
    )
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    model = task.build_model(cfg.model).double()
    return cfg, task, model, task.build_criterion(cfg.criterion)


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
    return float(diff / torch.sqrt(sum((r ** 2).sum() for r in reference)))


def _compare(task, model, criterion, cfg, sample, groups, targets, score):
    initial = copy.deepcopy(model)
    updates, log = _system_update(task, model, criterion, cfg, sample)
    reference, norms = reference_freelb_update(copy.deepcopy(initial), groups, targets, score)
    error = _relative_error(updates, reference)
    assert error < RTOL, f"relative error {error:.2e} of the parameter update"
    assert float(log["adv_delta_norm"]) == pytest.approx(float(norms.sum()), rel=1e-5)
    wrong, _ = reference_freelb_update(copy.deepcopy(initial), groups, targets, score, per_group_ball=False)
    assert _relative_error(updates, wrong) > 100 * RTOL


def test_freelb_on_qnli_ranking_pairs_matches_reference(folders):
    from fairseq.data import data_utils

    data = folders / "QNLI-ranking-bin"
    cfg, task, model, criterion = _setup(data, ["--task", "qnli_ranking", "--criterion", "freelb_sentence_ranking",
                                                "--num-classes", "2", "--init-token", "0", "--separator-token", "2"])
    task.load_dataset("train")
    dataset = task.dataset("train")
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    d = task.source_dictionary
    raw = {name: data_utils.load_indexed_dataset(str(data / name / "train"), d) for name in ("input0", "input1", "input2")}
    labels = [int(y) for y in (data / "label" / "train.label").read_text().split()]
    order = sample["id"].tolist()
    # The reference's inputs, from the binarized rows: <s> sentence </s> </s> question </s>, one pair per question.
    groups = [[torch.cat([torch.tensor([d.bos()]), raw[f"input{c}"][i], torch.tensor([d.eos()]), raw["input0"][i]])
               for c in (1, 2)] for i in order]
    for c in (1, 2):  # the task batched exactly those sequences
        for row, group in zip(sample[f"net_input{c}"]["src_tokens"], groups):
            assert row[row.ne(d.pad())].tolist() == group[c - 1].tolist()
    assert len(groups) == PF.EXPECTED_QNLI["train"]["pairs"]
    _compare(task, model, criterion, cfg, sample, groups, [labels[i] for i in order], ranking_score)


def test_freelb_on_wsc_candidate_groups_matches_reference(folders):
    from fairseq_freelb.wsc.encoding import GPT2, load_dictionary
    from fairseq_freelb.wsc.formats import group_rows, read_rows, substitute, training_examples

    data = folders / "WNLI-wsc-bin"
    cfg, task, model, criterion = _setup(data, ["--task", "freelb_wsc", "--criterion", "freelb_wsc", "--no-shuffle"])
    task.load_dataset("train")
    dataset = task.dataset("train")
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    assert sample["choice_mask"].sum(dim=1).tolist() == [2, 3, 2]  # a missing slot in two of the three groups

    # The reference's inputs, rebuilt from the WSC rows: the candidate's BPE in place of the pronoun, masked.
    d = load_dictionary(str(data / "dict.txt"))
    bpe = GPT2(str(data / "encoder.json"), str(data / "vocab.bpe"))
    mask = d.index("<mask>")

    def ids(text):
        return d.encode_line(" ".join(map(str, bpe.ids(text))), append_eos=False, add_if_not_exist=False).long()

    groups = []
    for _, rows in training_examples(group_rows(read_rows(str(data / "train.jsonl")))).examples:
        group = []
        for row in rows:
            left, cand, right = (ids(piece) for piece in substitute(row.text, row.pronoun_index, row.pronoun_words,
                                                                    row.candidate))
            tokens = torch.cat([torch.tensor([d.bos()]), left, torch.full_like(cand, mask), right, torch.tensor([d.eos()])])
            span = torch.full_like(tokens, d.pad())
            span[1 + len(left): 1 + len(left) + len(cand)] = cand
            group.append((tokens, span, d.pad()))
        groups.append(group)
    for c, column in enumerate(range(1, 4)):
        for b, group in enumerate(groups):
            if c < len(group):
                row = sample[f"net_input{column}"]["src_tokens"][b]
                assert row[row.ne(d.pad())].tolist() == group[c][0].tolist()
    _compare(task, model, criterion, cfg, sample, groups, [0] * len(groups), masked_lm_score)

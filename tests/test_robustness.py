"""Tests of the robustness analysis (FreeLB section 4.3, eq. 5; Tables 5 and 8).

The fast tests run the attack in-process on a tiny RoBERTa (random weights)
and on a linear model over mean-pooled embeddings whose maximum loss increase
has a closed form; the slow ones train tiny vanilla and FreeLB checkpoints
with fairseq-train and run the command end to end.
"""

import csv
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fairseq_freelb  # noqa: F401
from fairseq_freelb.adapters.sentence_prediction_criterion import (
    FreeLBSentencePredictionConfig,
    FreeLBSentencePredictionCriterion,
)
from fairseq_freelb.robustness.arguments import AttackConfig
from fairseq_freelb.robustness.attack import EmbeddingAttack, search_eps, slice_sample
from fairseq_freelb.robustness.driver import main

sys.path.insert(0, str(Path(__file__).parent))
from utils import TINY_ROBERTA, fairseq_train_cmd, make_sentence_prediction_data, run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HEAD = "sentence_classification_head"
# fairseq drops a last batch that is not a multiple of --required-batch-size-multiple (default 8).
EVERY_EXAMPLE = ["--required-batch-size-multiple", "1"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory):
    """Tiny binarized 2-class data (fairseq's RoBERTa GLUE layout), shared by every test here."""
    return make_sentence_prediction_data(tmp_path_factory.mktemp("rob") / "cls", num_classes=2)


@pytest.fixture(scope="module")
def tiny(data_bin):
    """A sentence_prediction task on tiny binarized data and a tiny RoBERTa with random weights."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    torch.set_num_threads(1)
    data = data_bin
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(
        parser,
        input_args=[
            str(data), "--task", "sentence_prediction", "--criterion", "freelb_sentence_prediction",
            "--num-classes", "2", "--init-token", "0", "--separator-token", "2",
            *TINY_ROBERTA, "--adv-method", "none", "--cpu", "--seed", "3",
        ],
    )
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("valid")
    torch.manual_seed(3)
    model = task.build_model(cfg.model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    criterion = task.build_criterion(cfg.criterion)
    return task, model, criterion


def _batch(task, indices):
    dataset = task.dataset("valid")
    return dataset.collater([dataset[i] for i in indices])


def _attack(model, criterion, **kw):
    return EmbeddingAttack(model, criterion, AttackConfig(**kw))


def _x_norms_independent(model, sample):
    """||X||_F over non-pad tokens, computed without the code under test."""
    src = sample["net_input"]["src_tokens"]
    emb = model.encoder.sentence_encoder.embed_tokens
    x = emb(src) * src.ne(emb.padding_idx).unsqueeze(-1)
    return x.flatten(1).norm(dim=1).double()


# --------------------------------------------------------------------------- closed form


class MeanPoolLinear(nn.Module):
    """z = W mean_t(X_t + delta_t) + b over the non-pad tokens: logits are linear in delta.

    Speaks the model interface the freelb_sentence_prediction criterion uses.
    """

    def __init__(self, vocab: int, dim: int, n_out: int, padding_idx: int):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.embed_tokens = nn.Embedding(vocab, dim, padding_idx=padding_idx)
        self.classification_heads = nn.ModuleDict({HEAD: nn.Linear(dim, n_out)})

    def forward(self, src_tokens, src_lengths=None, features_only=True, classification_head_name=None, **unused):
        x = self.encoder.embed_tokens(src_tokens)
        mask = src_tokens.ne(self.encoder.embed_tokens.padding_idx).unsqueeze(-1).to(x.dtype)
        pooled = (x * mask).sum(dim=1) / mask.sum(dim=1)
        return self.classification_heads[classification_head_name](pooled), None

    def get_targets(self, sample, net_output):
        return sample["target"]


def _linear_model(task, n_out, seed=0):
    torch.manual_seed(seed)
    pad = task.source_dictionary.pad()
    model = MeanPoolLinear(len(task.source_dictionary), 8, n_out, pad)
    with torch.no_grad():
        # Weights bounded away from 0, so the linf maximiser eps*sign(w) is reached in few steps.
        w = model.classification_heads[HEAD].weight
        w.copy_(torch.sign(torch.randn_like(w)) * (0.5 + 0.5 * torch.rand_like(w)))
        if n_out == 2:
            w[1] = -w[0]  # so the margin weights W_y - W_other are bounded away from 0 as well
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _criterion(task, regression=False):
    return FreeLBSentencePredictionCriterion(
        FreeLBSentencePredictionConfig(adv_method="none", regression_target=regression), task
    )


def _lengths_and_pooled(model, sample):
    src = sample["net_input"]["src_tokens"]
    mask = src.ne(model.encoder.embed_tokens.padding_idx)
    x = model.encoder.embed_tokens(src) * mask.unsqueeze(-1)
    length = mask.sum(dim=1).double()
    return length, x.double().sum(dim=1) / length.unsqueeze(1)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_closed_form_binary_classification(tiny, norm):
    """Binary CE on logits linear in delta: the loss is softplus(-margin), and the margin
    m(delta) = m0 + <grad m, delta> is minimised over the ball at -eps * grad m / ||grad m||
    (l2: decrease eps * ||w|| / sqrt(L), with w = W_y - W_other spread over L tokens as w / L)
    or at -eps * sign(grad m) (linf: decrease eps * ||w||_1)."""
    task = tiny[0]
    model = _linear_model(task, n_out=2)
    sample = _batch(task, range(10))
    W = model.classification_heads[HEAD].weight.double()
    b = model.classification_heads[HEAD].bias.double()
    length, pooled = _lengths_and_pooled(model, sample)
    y = sample["target"].view(-1)
    logits = pooled @ W.T + b
    margin0 = logits.gather(1, y.view(-1, 1)).view(-1) - logits.gather(1, (1 - y).view(-1, 1)).view(-1)
    w = W[y] - W[1 - y]
    eps = torch.linspace(0.05, 0.5, len(y), dtype=torch.float64)
    if norm == "l2":
        decrease = eps * w.norm(dim=1) / length.sqrt()
    else:
        decrease = eps * w.abs().sum(dim=1)
    expected = F.softplus(-(margin0 - decrease)) - F.softplus(-margin0)

    attack = _attack(model, _criterion(task), steps=120, step_size=0.05 * float(eps.max()), restarts=3, norm=norm, seed=5)
    result = attack.attack(sample, eps)
    assert torch.allclose(result.natural_loss, F.softplus(-margin0), atol=1e-5)
    assert torch.allclose(result.max_increase, expected, atol=1e-3), (result.max_increase, expected)
    # Every restart, random ones included, reaches the same maximum.
    assert torch.allclose(result.restart_loss, (expected + F.softplus(-margin0)).unsqueeze(1).expand(-1, 3), atol=1e-3)
    assert float(result.restart_spread.max()) < 1e-3


def test_closed_form_regression(tiny):
    """Squared error (z - y)^2 with z linear in delta: the maximum over the l2 ball is
    (|z0 - y| + eps * ||w|| / sqrt(L))^2."""
    task = tiny[0]
    model = _linear_model(task, n_out=1, seed=1)
    sample = _batch(task, range(8))
    torch.manual_seed(0)
    sample["target"] = torch.rand(8, 1)  # what RawLabelDataset collates for --regression-target
    w = model.classification_heads[HEAD].weight.double().view(-1)
    b = model.classification_heads[HEAD].bias.double()
    length, pooled = _lengths_and_pooled(model, sample)
    z0 = pooled @ w + b
    err0 = (z0 - sample["target"].double().view(-1)).abs()
    eps = torch.full((8,), 0.2, dtype=torch.float64)
    expected = (err0 + eps * w.norm() / length.sqrt()) ** 2 - err0**2

    attack = _attack(model, _criterion(task, regression=True), steps=60, step_size=0.02, restarts=2, regression_tolerance=10.0)
    result = attack.attack(sample, eps)
    assert torch.allclose(result.max_increase, expected, atol=1e-3)
    assert bool(result.correct_after.all())  # tolerance 10 >> every error here
    strict = _attack(model, _criterion(task, regression=True), steps=1, step_size=0.02, regression_tolerance=1e-4)
    _, correct = strict.evaluate(sample)
    assert not bool(correct.any())  # errors are read from the squared-error loss: sqrt(loss) >= 1e-4


def test_embedding_norms_match_independent_computation(tiny):
    task, model, criterion = tiny
    sample = _batch(task, range(12))
    norms = _attack(model, criterion).embedding_norms(sample)
    assert torch.allclose(norms, _x_norms_independent(model, sample), rtol=1e-5)


# --------------------------------------------------------------------------- tiny RoBERTa


def _reference_pgd(model, src, target, eps, steps, step_size):
    """Eq. 2 and 5 from the paper, in plain PyTorch, for one unpadded example:
    delta <- Pi_eps(delta + alpha g / ||g||_F), then L(X + delta) - L(X)."""
    emb = model.encoder.sentence_encoder.embed_tokens
    delta = torch.zeros(1, src.size(1), emb.embedding_dim)
    holder = {}
    handle = emb.register_forward_hook(lambda m, i, o: o + holder["delta"])

    def loss_at(d):
        holder["delta"] = d
        logits, _ = model(src, features_only=True, classification_head_name=HEAD)
        return F.cross_entropy(logits.float(), target, reduction="sum")

    try:
        with torch.no_grad():
            natural = loss_at(torch.zeros_like(delta))
        for _ in range(steps):
            d = delta.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(loss_at(d), d)
            delta = delta + step_size * g / g.norm()
            if delta.norm() > eps:
                delta = delta * (eps / delta.norm())
        with torch.no_grad():
            final = loss_at(delta)
    finally:
        handle.remove()
    return float(final - natural)


def test_matches_reference_pgd_loop(tiny):
    task, model, criterion = tiny
    dataset = task.dataset("valid")
    attack = _attack(model, criterion, steps=25, step_size=0.004)
    for i in (0, 3, 7):
        sample = dataset.collater([dataset[i]])
        eps = 0.05 * _x_norms_independent(model, sample)
        expected = _reference_pgd(model, sample["net_input"]["src_tokens"], sample["target"].view(-1), float(eps), 25, 0.004)
        got = float(attack.attack(sample, eps).max_increase[0])
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-7)
        assert got > 0


def test_monotone_in_eps_and_exact_to_first_order(tiny):
    """DeltaL_max is 0 at eps = 0, positive and growing with eps, and for small eps equals
    eps * ||dL/d delta||_F (the maximiser of the linearised loss is eps * g / ||g||)."""
    task, model, criterion = tiny
    sample = _batch(task, range(8))
    x_norm = _x_norms_independent(model, sample)
    increases = []
    for r in (0.0, 0.002, 0.01, 0.03, 0.1):
        eps = r * x_norm
        step = max(r, 1e-6) * float(x_norm.median()) / 8
        attack = _attack(model, criterion, steps=40, step_size=step, restarts=1)
        increases.append(attack.attack(sample, eps).max_increase)
    increases = torch.stack(increases)  # (radii, samples)
    assert bool((increases[0] == 0).all())
    assert bool((increases[1:] > 0).all())
    assert bool((increases[1:] > increases[:-1]).all()), increases

    # First order: gradient at delta = 0, from plain autograd on the model.
    emb = model.encoder.sentence_encoder.embed_tokens
    small = 1e-4
    for b in range(3):
        one = slice_sample(sample, [b])
        src = one["net_input"]["src_tokens"]
        src = src[:, src.ne(emb.padding_idx)[0]]
        d = torch.zeros(1, src.size(1), emb.embedding_dim, requires_grad=True)
        handle = emb.register_forward_hook(lambda m, i, o: o + d)
        try:
            logits, _ = model(src, features_only=True, classification_head_name=HEAD)
            (g,) = torch.autograd.grad(F.cross_entropy(logits, one["target"].view(-1), reduction="sum"), d)
        finally:
            handle.remove()
        eps = small * x_norm[b : b + 1]
        attack = _attack(model, criterion, steps=5, step_size=float(eps) / 2)
        got = float(attack.attack(one, eps).max_increase[0])
        assert got == pytest.approx(float(eps) * float(g.norm()), rel=2e-2)


def test_batching_leaves_per_sample_results_unchanged(tiny):
    task, model, criterion = tiny
    indices = list(range(9))
    batch = _batch(task, indices)
    eps = 0.05 * _x_norms_independent(model, batch)
    attack = _attack(model, criterion, steps=12, step_size=0.01, restarts=3, seed=11)
    together = attack.attack(batch, eps)
    for j, i in enumerate(indices):
        alone = attack.attack(_batch(task, [i]), eps[j : j + 1])
        assert torch.allclose(alone.restart_loss[0], together.restart_loss[j], atol=2e-6, rtol=1e-5)
        assert bool((alone.restart_correct[0] == together.restart_correct[j]).all())
    # Random restarts really differ from the zero start (else the check above is weaker than it looks).
    assert float(together.restart_loss.std(dim=1).max()) > 0

    # The per-sample eps search too.
    start = float(eps.max()) * 40
    eps_batch, res_batch = search_eps(attack, batch, start, 4)
    for j, i in enumerate(indices):
        eps_one, res_one = search_eps(attack, _batch(task, [i]), start, 4)
        assert float(eps_one[0]) == float(eps_batch[j])
        assert torch.allclose(res_one.restart_loss[0], res_batch.restart_loss[j], atol=2e-6, rtol=1e-5)


def test_search_stops_at_the_largest_eps_the_reference_survives(tiny):
    """Footnote 12: eps = start * (1 - k / levels); the sample keeps the first (largest) level at
    which the reference model is still correct after the attack, and the level above flips it."""
    task, model, criterion = tiny
    batch = _batch(task, range(6))
    attack = _attack(model, criterion, steps=20, step_size=0.005, restarts=1)
    _, natural_ok = attack.evaluate(batch)
    start, levels = 0.03, 8
    eps, result = search_eps(attack, batch, start, levels)
    grid = [start * (1 - k / levels) for k in range(levels + 1)]
    interior = 0
    for j in range(6):
        if not natural_ok[j]:
            continue
        assert any(abs(float(eps[j]) - g) < 1e-12 for g in grid)
        one = slice_sample(batch, [j])
        assert bool(attack.attack(one, eps[j : j + 1]).correct_after[0])
        assert float(result.restart_loss[j, 0]) == pytest.approx(float(attack.attack(one, eps[j : j + 1]).max_loss[0]), abs=1e-6)
        if float(eps[j]) < start:
            above = torch.tensor([float(eps[j]) + start / levels], dtype=torch.float64)
            assert not bool(attack.attack(one, above).correct_after[0])
        interior += 0 < float(eps[j]) < start
    assert interior >= 2  # the search stopped strictly inside the grid, where both checks bite


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_zero_eps_examples_stay_unperturbed_beside_attacked_ones(tiny, norm):
    """eps = 0 is the ball {0} (project_to_ball reads radius 0 as unbounded, so the attack holds
    those examples at zero itself): their loss and correctness are the natural ones, while the
    other examples of the same batch are attacked as if alone."""
    task, model, criterion = tiny
    batch = _batch(task, range(6))
    eps = 0.05 * _x_norms_independent(model, batch)
    eps[[1, 4]] = 0.0
    # A step larger than the ball: without the hold, the eps = 0 examples would run off unbounded.
    attack = _attack(model, criterion, steps=6, step_size=float(eps.max()) * 2, restarts=2, norm=norm, seed=3)
    natural_loss, natural_ok = attack.evaluate(batch)
    result = attack.attack(batch, eps)
    masks = attack._masks(batch)
    hidden = attack.embed.embedding_dim
    zero = [torch.zeros(*m.shape, hidden) for m in masks]
    deltas = attack._pgd(batch, masks, zero, eps)
    assert float(deltas[0][[1, 4]].abs().max()) == 0
    assert float(deltas[0][[0, 2, 3, 5]].abs().max()) > 0
    for j in (1, 4):
        assert float(result.max_increase[j]) == 0
        assert bool((result.restart_correct[j] == natural_ok[j]).all())
    for j in (0, 2, 3, 5):
        alone = attack.attack(_batch(task, [j]), eps[j : j + 1])
        assert torch.allclose(alone.restart_loss[0], result.restart_loss[j], atol=2e-6, rtol=1e-5)
        assert float(result.max_increase[j]) > 0


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--steps", "0"], "--steps must be >= 1, got 0"),
        (["--step-size", "inf"], "--step-size must be a finite number, got inf"),
        (["--eps-ratio", "nan"], "--eps-ratio must be a finite number, got nan"),
        (["--eps-mode", "search"], "--reference is required with --eps-mode search, got ''"),
        (["--names", "a", "b"], "--names needs one name per checkpoint (1), got ['a', 'b']"),
    ],
)
def test_bad_flags_get_one_line(tmp_path, capsys, flags, message):
    code = main(["--checkpoints", str(tmp_path / "missing.pt"), "--data", str(tmp_path), *flags])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines()[-1] == f"fairseq_freelb.robustness: error: {message}"


def test_missing_checkpoint_and_file_as_output_dir_get_one_line_and_write_nothing(tmp_path, capsys):
    ckpt = tmp_path / "missing.pt"
    out = tmp_path / "out"
    assert main(["--checkpoints", str(ckpt), "--data", str(tmp_path), "--output-dir", str(out)]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"--checkpoints: {ckpt} is not a file")
    assert not out.exists()
    out.write_text("not a folder")
    assert main(["--checkpoints", str(ckpt), "--data", str(tmp_path), "--output-dir", str(out)]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"--output-dir: {out} exists and is not a folder")


def test_the_plugins_tasks_count_as_the_stock_task_they_extend():
    """Checkpoints of --task freelb_sentence_prediction and --task sentence_prediction can be compared."""
    from fairseq.tasks.sentence_prediction import SentencePredictionTask
    from fairseq.tasks.sentence_ranking import SentenceRankingTask

    from fairseq_freelb.robustness.checkpoints import _task_family

    assert _task_family("freelb_sentence_prediction") is _task_family("sentence_prediction") is SentencePredictionTask
    assert _task_family("freelb_sentence_ranking") is SentenceRankingTask


def test_unreadable_checkpoints_get_one_line_naming_the_file(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    torch.save({"model": {"w": torch.ones(1000)}}, tmp_path / "full.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((tmp_path / "full.pt").read_bytes()[:2000])
    for path in (text, truncated):
        assert main(["--checkpoints", str(path), "--data", str(tmp_path)]) == 1
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last.startswith(f"fairseq_freelb.robustness: error: {path}: not a readable PyTorch checkpoint")
        assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in last


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_bin):
    """Tiny vanilla and FreeLB checkpoints trained with fairseq-train."""
    root = tmp_path_factory.mktemp("rob_e2e")
    data = data_bin
    vanilla, freelb = root / "vanilla", root / "freelb"
    run(fairseq_train_cmd(data, vanilla, extra=["--adv-method", "none", "--max-epoch", "3", *EVERY_EXAMPLE]))
    run(
        fairseq_train_cmd(
            data, freelb,
            extra=["--adv-method", "freelb", "--adv-steps", "2", "--adv-lr", "0.05", "--adv-init-mag", "0.02",
                   "--adv-max-norm", "0.05", "--max-epoch", "3", *EVERY_EXAMPLE],
        )
    )
    return root, data, vanilla / "checkpoint_best.pt", freelb / "checkpoint_best.pt"


def _read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_end_to_end_summary_table_and_plot(trained):
    root, data, vanilla, freelb = trained
    out = root / "out"
    cmd = [
        sys.executable, "-m", "fairseq_freelb.robustness",
        "--checkpoints", str(vanilla), str(freelb), "--names", "vanilla", "FreeLB",
        "--data", str(data), "--split", "valid",
        "--steps", "10", "--step-size", "0.002", "--restarts", "2",
        "--eps-mode", "both", "--reference", "FreeLB", "--search-levels", "3",
        "--batch-size", "8", "--max-samples", "12", "--seed", "2", "--output-dir", str(out),
    ]
    proc = run(cmd, cwd=REPO)
    assert "attack" in proc.stderr  # the tqdm bar over samples
    summary = (out / "summary.md").read_text()
    assert proc.stdout.startswith(summary)
    rows = _read_csv(out / "samples.csv")
    n = len(rows) // 2
    assert n == 12 and len(rows) == 2 * n
    assert f"Samples classified correctly by all 2 models: {n} of the" in summary
    for name in ("vanilla", "FreeLB"):
        mine = [r for r in rows if r["model"] == name]
        max_inc = torch.tensor([float(r["max_inc"]) for r in mine], dtype=torch.float64)
        n_loss = torch.tensor([float(r["n_loss"]) for r in mine], dtype=torch.float64)
        assert bool((max_inc > 0).all())
        # Table 5 (median) and Table 8 (std) rows: Max Inc | Max Inc (R) | N-Loss.
        table5 = summary.split("### Median")[1].split("###")[0]
        table8 = summary.split("### Standard deviation")[1].split("###")[0]
        line5 = next(line for line in table5.splitlines() if line.startswith(f"| {name} |"))
        cells = [c.strip() for c in line5.strip("|").split("|")]
        # np.median of an even count is the mean of the middle two; torch.median takes the lower one.
        sorted_inc = max_inc.sort().values
        assert float(cells[1]) == pytest.approx(float((sorted_inc[n // 2 - 1] + sorted_inc[n // 2]) / 2), rel=1e-3)
        sorted_nl = n_loss.sort().values
        assert float(cells[3]) == pytest.approx(float((sorted_nl[n // 2 - 1] + sorted_nl[n // 2]) / 2), rel=1e-3)
        line8 = next(line for line in table8.splitlines() if line.startswith(f"| {name} |"))
        std = float([c.strip() for c in line8.strip("|").split("|")][1])
        assert std == pytest.approx(float(max_inc.std(unbiased=False)), rel=1e-3)
    # The reference decides eps; the other model is attacked with the same per-sample eps.
    by_id = {}
    for r in rows:
        by_id.setdefault(r["sample_id"], set()).add(r["eps_r"])
    assert all(len(v) == 1 for v in by_id.values())
    assert all(r["correct_after_attack_r"] == "True" for r in rows if r["model"] == "FreeLB")
    assert "Convergence of the restarts" in summary
    png = (out / "delta_loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(str(out / "delta_loss.png")).shape[0] > 100


@pytest.mark.slow
def test_end_to_end_batch_size_does_not_change_results(trained, capsys):
    root, data, vanilla, freelb = trained
    tables = []
    for bs in (1, 5):
        out = root / f"bs{bs}"
        code = main([
            "--checkpoints", str(vanilla), str(freelb), "--data", str(data),
            "--steps", "6", "--step-size", "0.003", "--restarts", "2", "--max-samples", "7",
            "--batch-size", str(bs), "--output-dir", str(out), "--no-progress-bar",
        ])
        assert code == 0
        tables.append(_read_csv(out / "samples.csv"))
    assert [(r["model"], r["sample_id"]) for r in tables[0]] == [(r["model"], r["sample_id"]) for r in tables[1]]
    for a, b in zip(*tables):
        assert float(a["max_inc"]) == pytest.approx(float(b["max_inc"]), abs=2e-6)
        assert float(a["n_loss"]) == pytest.approx(float(b["n_loss"]), abs=2e-6)


def _error_of(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1  # fairseq_freelb.commands.run_command's exit code for an expected failure
    line = [ln for ln in err.splitlines() if ln.startswith("fairseq_freelb.robustness: error:")]
    assert len(line) == 1, err
    return line[0]


@pytest.mark.slow
def test_refuses_models_without_a_shared_task_or_dictionary(trained, capsys):
    root, data, vanilla, freelb = trained
    from fairseq_freelb.checkpoint import load_checkpoint

    base = ["--data", str(data), "--steps", "2", "--output-dir", str(root / "refused")]

    # Another task setting: a 3-class model.
    state = load_checkpoint(str(freelb))
    state["cfg"]["task"]["num_classes"] = 3
    three = root / "three_classes.pt"
    torch.save(state, three)
    msg = _error_of(["--checkpoints", str(vanilla), str(three), *base], capsys)
    assert "three_classes.pt" in msg and "num_classes" in msg and "share a task" in msg

    # Another task altogether.
    state = load_checkpoint(str(freelb))
    state["cfg"]["task"]["_name"] = "masked_lm"
    other = root / "masked_lm.pt"
    torch.save(state, other)
    msg = _error_of(["--checkpoints", str(vanilla), str(other), *base], capsys)
    assert "masked_lm" in msg and "share a task" in msg

    # A dictionary with the same symbols in another order (same size: only a symbol check sees it).
    shuffled = root / "shuffled-bin"
    shutil.copytree(data, shuffled)
    dict_txt = shuffled / "input0" / "dict.txt"
    dict_txt.write_text("".join(reversed(dict_txt.read_text().splitlines(keepends=True))))
    msg = _error_of(["--checkpoints", str(vanilla), str(freelb), "--data", str(shuffled), "--steps", "2"], capsys)
    assert "dictionary" in msg and str(shuffled) in msg

    # A dictionary of another size.
    bigger = root / "bigger-bin"
    shutil.copytree(data, bigger)
    with open(bigger / "input0" / "dict.txt", "a") as handle:
        handle.write("extra1 1\nextra2 1\n")
    msg = _error_of(["--checkpoints", str(vanilla), "--data", str(bigger), "--steps", "2"], capsys)
    assert "dictionary" in msg and "vanilla" in msg

    # A checkpoint trained with a criterion that has no adversarial_inputs(): needs --criterion.
    state = load_checkpoint(str(vanilla))
    crit = state["cfg"]["criterion"]
    state["cfg"]["criterion"] = {
        "_name": "sentence_prediction",
        "classification_head_name": crit["classification_head_name"],
        "regression_target": False,
    }
    stock = root / "stock" / "checkpoint_best.pt"
    stock.parent.mkdir()
    torch.save(state, stock)
    msg = _error_of(["--checkpoints", str(stock), *base], capsys)
    assert "--criterion" in msg
    code = main([
        "--checkpoints", str(stock), "--criterion", "freelb_sentence_prediction", "--data", str(data),
        "--steps", "2", "--step-size", "0.001", "--max-samples", "3", "--no-progress-bar",
        "--output-dir", str(root / "stock_out"),
    ])
    assert code == 0
    assert len(_read_csv(root / "stock_out" / "samples.csv")) == 3


@pytest.mark.slow
def test_regression_checkpoint_end_to_end(tmp_path):
    data = make_sentence_prediction_data(tmp_path / "data", num_classes=1, regression=True)
    save = tmp_path / "reg"
    cmd = fairseq_train_cmd(data, save, extra=["--adv-method", "none", "--regression-target", "--best-checkpoint-metric", "loss", *EVERY_EXAMPLE], num_classes=1)
    run(cmd)
    out = tmp_path / "out"
    code = main([
        "--checkpoints", str(save / "checkpoint_best.pt"), "--data", str(data),
        "--steps", "5", "--step-size", "0.002", "--regression-tolerance", "0.3",
        "--output-dir", str(out), "--no-progress-bar",
    ])
    assert code == 0
    rows = _read_csv(out / "samples.csv")
    assert rows
    # Selected samples are those predicted within the tolerance: sqrt(squared error) < 0.3.
    assert all(math.sqrt(float(r["n_loss"])) < 0.3 for r in rows)
    assert all(float(r["max_inc"]) > 0 for r in rows)


# --------------------------------------------------------------------------- ranking


def test_ranking_criterion_questions_with_missing_choices(tmp_path):
    """freelb_sentence_ranking through adversarial_inputs(): one ball per question over its C
    candidates, placeholder rows of missing choices left out, results independent of batching."""
    import random

    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from fairseq_freelb.mc.dataset import MultipleChoiceDataset
    from utils import WORDS, write_dict

    write_dict(tmp_path / "dict.txt", WORDS)
    args = options.parse_args_and_arch(
        options.get_training_parser(),
        [str(tmp_path), "--task", "multiple_choice", "--criterion", "freelb_sentence_ranking", *TINY_ROBERTA,
         "--adv-method", "none", "--cpu", "--seed", "3"],
    )
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    model = task.build_model(cfg.model).double().eval()
    criterion = task.build_criterion(cfg.criterion)
    d = task.source_dictionary
    rng = random.Random(1)
    words = [d.index(w) for w in WORDS]
    questions = [
        [torch.tensor([d.bos(), *rng.choices(words, k=rng.randint(2, 7)), d.eos()]) for _ in range(n)] for n in (3, 5, 4)
    ]
    targets = [0, 4, 2]
    dataset = MultipleChoiceDataset(questions, targets, d.pad(), d.bos(), d.eos())
    batch = dataset.collater([dataset[i] for i in range(3)])
    attack = _attack(model, criterion, steps=8, step_size=0.02, restarts=2, seed=4)

    # ||X||_F over the question's real candidates only.
    emb = model.encoder.sentence_encoder.embed_tokens
    expected_norms = torch.stack([torch.sqrt(sum(emb(t).pow(2).sum() for t in q)) for q in questions])
    assert torch.allclose(attack.embedding_norms(batch), expected_norms.double(), rtol=1e-6)

    eps = torch.tensor([0.05, 0.1, 0.2], dtype=torch.float64)
    together = attack.attack(batch, eps)
    assert bool((together.max_increase > 0).all())
    for i in range(3):
        alone = attack.attack(dataset.collater([dataset[i]]), eps[i : i + 1])
        assert torch.allclose(alone.restart_loss[0], together.restart_loss[i], rtol=1e-9, atol=1e-12)
        assert torch.allclose(alone.natural_loss, together.natural_loss[i : i + 1], rtol=1e-9)

"""Multi-worker training: the hook inside DDP.

Fast (in-process): a fake DDP wrapper with a real ``no_sync`` counts the
synchronising passes of each update for every method and ``--update-freq``
1 and 2; a per-pass all-reduce fails it within ``make test-fast``.

Slow (2 CPU processes, gloo): one spawn of 2 worker processes (``tests/distributed_workers.py``) runs every
scenario; the tests below check what the workers recorded:

* all-reduce count: a DDP communication hook records each bucket it reduces
  and in which forward pass of the update it fired. Every bucket fires after
  the update's last pass, and the buckets together cover every trainable
  parameter exactly once: one all-reduce round per update (per update-freq
  group with ``--update-freq 2``), and nothing else (no delta) is reduced.
* equivalence: the parameters after the update equal those of a
  single-process run of the same hook on the concatenated batch (dropout off,
  delta_0 = 0), to 1e-5 relative.
* per-example delta: the workers hold different data and end with different
  deltas, whose per-example norms add up to the single-process run's.
"""

import contextlib
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))
import distributed_workers as workers  # noqa: E402
from utils import make_sentence_prediction_data  # noqa: E402

WORLD_SIZE = 2
RTOL = 1e-5

@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    data_bin = make_sentence_prediction_data(root, n_train=32, n_valid=8)
    out_dir = root / "out"
    out_dir.mkdir()
    store = Path(tempfile.mkdtemp(dir=root)) / "store"
    names = list(workers.SCENARIOS)
    mp.spawn(
        workers.worker,
        args=(WORLD_SIZE, str(data_bin), str(store), str(out_dir), names),
        nprocs=WORLD_SIZE,
        join=True,
    )
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]


def _ok(results, name):
    for rank, per_rank in enumerate(results):
        assert "error" not in per_rank[name], f"rank {rank}, scenario {name}: {per_rank[name]['error']}"
    return [per_rank[name] for per_rank in results]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


C10D = [name for name, s in workers.SCENARIOS.items() if s["backend"] == "c10d"]


@pytest.mark.slow
@pytest.mark.parametrize("name", C10D)
def test_one_all_reduce_round_per_update_in_the_last_pass(results, name):
    scenario = workers.SCENARIOS[name]
    passes = workers.expected_passes(scenario)
    for rank, r in enumerate(_ok(results, name)):
        for update in range(scenario["updates"]):
            fired = [(p, n) for u, p, n in r["records"] if u == update]
            assert fired, f"rank {rank}: no all-reduce in update {update}"
            assert {p for p, _ in fired} == {passes}, (
                f"rank {rank}, update {update}: all-reduce fired after passes {sorted({p for p, _ in fired})}, "
                f"expected only after the last pass ({passes})"
            )
            # The buckets of one round hold every trainable parameter once, and nothing else:
            # a second round, or a reduced delta, would change the total.
            assert sum(n for _, n in fired) == r["trainable_elems"]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(workers.SCENARIOS))
def test_two_workers_equal_one_process_on_the_concatenated_batch(results, name):
    rank0, rank1 = _ok(results, name)
    assert torch.equal(rank0["before"], rank1["before"])
    # DDP keeps the replicas identical after the update.
    assert torch.allclose(rank0["after"], rank1["after"], rtol=0, atol=0)
    update = rank0["after"] - rank0["before"]
    reference_update = rank0["reference_after"] - rank0["before"]
    assert reference_update.norm() > 0
    assert _rel(update, reference_update) <= RTOL
    torch.testing.assert_close(rank0["after"], rank0["reference_after"], rtol=RTOL, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, s in workers.SCENARIOS.items() if s["adv"]["adv_method"] != "none"])
def test_each_worker_keeps_its_own_per_example_delta(results, name):
    rank0, rank1 = _ok(results, name)
    checked = 0
    for update, reference in enumerate(rank0["reference_delta_norms"]):
        local = [rank0["delta_norms"][update], rank1["delta_norms"][update]]
        if reference == 0:  # FreeAT's first replay runs at delta_0 = 0
            assert local == [0.0, 0.0]
            continue
        checked += 1
        assert min(local) > 0
        # The per-example norms add up to the single-process run's.
        assert sum(local) == pytest.approx(reference, rel=RTOL)
    assert checked > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, s in workers.SCENARIOS.items() if s["adv"]["adv_method"] != "none"])
def test_each_workers_delta_is_its_own_examples_delta(results, name):
    """Every model call's delta on worker r equals the single-process delta of r's examples.

    Worker r's micro-batch j holds examples ((j*W + r)*B ...); with update-freq F
    the worker makes F times as many calls as the single-process run on all
    examples at once, micro-batch after micro-batch.
    """
    scenario = workers.SCENARIOS[name]
    per_rank = _ok(results, name)
    reference = per_rank[0]["reference_deltas"]
    freq, batch = scenario["update_freq"], workers.BATCH
    calls_per_micro_batch = len(reference) // scenario["updates"]
    moved = 0
    for rank, r in enumerate(per_rank):
        assert len(r["deltas"]) == len(reference) * freq
        for i, delta in enumerate(r["deltas"]):
            update, rest = divmod(i, calls_per_micro_batch * freq)
            micro_batch, call = divmod(rest, calls_per_micro_batch)
            ref = reference[update * calls_per_micro_batch + call]
            start = (micro_batch * WORLD_SIZE + rank) * batch
            rows = ref[start:start + batch]
            length = delta.size(1)
            # The reference batch may be padded further; its extra columns are pads and never move.
            assert rows.size(1) >= length
            assert rows[:, length:].abs().sum() == 0
            torch.testing.assert_close(delta, rows[:, :length], rtol=RTOL, atol=1e-6)
            moved += int(delta.abs().max() > 0)
    assert moved > 0
    # Different data, different deltas: nothing averaged them across workers.
    last0, last1 = per_rank[0]["deltas"][-1], per_rank[1]["deltas"][-1]
    assert last0.shape != last1.shape or not torch.allclose(last0, last1)


# --------------------------------------------------------------------------- fast: synchronising passes per update


class FakeDDP(torch.nn.Module):
    """DDP's synchronisation contract in one process.

    As in ``DistributedDataParallel``, a forward pass outside ``no_sync()``
    (with grad enabled) arms one gradient all-reduce, which fires when the
    backward pass runs through it; passes inside ``no_sync()`` (nested or not)
    only accumulate. ``passes`` records, per forward, whether it synchronises;
    ``all_reduces`` counts the all-reduces that fired.
    """

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module
        self.require_backward_grad_sync = True
        self.passes = []
        self.all_reduces = 0

    @contextlib.contextmanager
    def no_sync(self):
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def forward(self, *args, **kwargs):
        out = self.module(*args, **kwargs)
        sync = self.require_backward_grad_sync and torch.is_grad_enabled()
        self.passes.append(sync)
        first = out[0] if isinstance(out, tuple) else out
        if sync and first.requires_grad:
            first.register_hook(self._all_reduce)
        return out

    def _all_reduce(self, grad):
        self.all_reduces += 1


SYNC_METHODS = {
    "none": ["--adv-method", "none"],
    "freelb": ["--adv-method", "freelb", "--adv-steps", "3"],
    "pgd": ["--adv-method", "pgd", "--adv-steps", "2"],
    "freeat": ["--adv-method", "freeat", "--adv-steps", "2"],
    "yopo": ["--adv-method", "yopo", "--adv-steps", "2", "--yopo-inner-steps", "2"],
}


@pytest.mark.parametrize("update_freq", [1, 2])
@pytest.mark.parametrize("method", list(SYNC_METHODS))
def test_every_update_all_reduces_once_after_its_last_pass(sp_data, method, update_freq):
    """Each update synchronises in exactly one pass, its last one, whatever the method and --update-freq.

    The update is driven as ``Trainer.train_step`` drives it: every micro-batch
    but the last inside the wrapper's ``no_sync()``, each through
    ``task.train_step``. Two updates each (FreeAT: its two replays of the
    minibatch, each a full update).
    """
    from fairseq.distributed import ModuleProxyWrapper
    from inprocess_fairseq import build

    adv_args = SYNC_METHODS[method]
    setup = build(sp_data(), [*adv_args, "--adv-lr", "0.1", "--adv-init-mag", "0.1", "--adv-max-norm", "0.5"])
    ddp = FakeDDP(setup.model)
    wrapped = ModuleProxyWrapper(ddp)
    micro_batches = [setup.batch(size=4, start=4 * i) for i in range(update_freq)]
    args = dict(zip(adv_args[::2], adv_args[1::2]))
    passes_per_micro_batch = workers.PASSES[method]({"adv_steps": int(args.get("--adv-steps", 1))})
    for update in range(2):
        ddp.passes, ddp.all_reduces = [], 0
        setup.optimizer.zero_grad()
        for i, sample in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            with contextlib.nullcontext() if last else wrapped.no_sync():
                setup.task.train_step(sample, wrapped, setup.criterion, setup.optimizer, update)
        expected = [False] * (passes_per_micro_batch * update_freq - 1) + [True]
        assert ddp.passes == expected, f"update {update}: synchronising passes {ddp.passes}, expected {expected}"
        assert ddp.all_reduces == 1, f"update {update}: {ddp.all_reduces} all-reduces"
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in setup.model.parameters())


# --------------------------------------------------------------------------- the real fairseq-train path

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_logs(text: str):
    return [line for line in text.splitlines() if "| train_inner |" in line]


@pytest.mark.slow
def test_fairseq_train_two_cpu_workers_legacy_ddp_equals_one_worker_update_freq_2(tmp_path):
    """``fairseq-train`` itself, 2 CPU processes: ``--ddp-backend legacy_ddp`` over gloo with a tcp init.

    fairseq shards batch b_{2i+r} of the epoch to worker r, so each 2-worker
    update sees the same two batches as one worker with ``--update-freq 2``;
    with dropout off and delta_0 = 0 the trained weights must agree.
    """
    import subprocess

    from utils import fairseq_train_cmd, run, without_teardown_abort

    data_bin = make_sentence_prediction_data(tmp_path, n_train=64, n_valid=8)
    common = [
        "--max-update", "3", "--adv-steps", "3", "--adv-lr", "0.1", "--adv-init-mag", "0",
        "--dropout", "0", "--attention-dropout", "0", "--pooler-dropout", "0",
        "--no-save-optimizer-state", "--disable-validation",
        "--required-batch-size-multiple", "1",  # fairseq would drop a last partial batch
    ]
    port = _free_port()
    workers_ = []
    for rank in range(WORLD_SIZE):
        cmd = fairseq_train_cmd(data_bin, tmp_path / f"two_workers_rank{rank}", common + [
            "--distributed-world-size", str(WORLD_SIZE), "--distributed-rank", str(rank),
            "--distributed-init-method", f"tcp://127.0.0.1:{port}", "--distributed-no-spawn",
            "--distributed-backend", "gloo", "--ddp-backend", "legacy_ddp",
        ])
        workers_.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for rank, proc in enumerate(workers_):
        try:
            out, _ = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        out, aborted_at_exit = without_teardown_abort(out)
        # An abort in torch's teardown after a complete run (SIGABRT, -6) is not a failure of the run.
        assert proc.returncode == 0 or (aborted_at_exit and proc.returncode == -6), f"rank {rank} failed:\n{out[-3000:]}"
        outputs.append(out)
    single = run(fairseq_train_cmd(data_bin, tmp_path / "one_worker", common + ["--update-freq", "2"]))

    two_logs, one_logs = _train_logs(outputs[0]), _train_logs(single.stdout + single.stderr)
    assert len(two_logs) == len(one_logs) == 3
    assert all("bsz=32" in line for line in two_logs + one_logs)  # 2 x 16 sentences per update in both
    # The logged training figures (rank 0 logs the sums over both workers) agree update by update ...
    for key in ("loss", "adv_loss_last", "adv_delta_norm", "gnorm"):
        two_values, one_values = _logged(two_logs, key), _logged(one_logs, key)
        assert two_values == pytest.approx(one_values, rel=1e-3), key
    assert len(set(_logged(one_logs, "loss"))) > 1  # ... and training moved

    # ... and so do the trained weights.
    from fairseq_freelb.checkpoint import load_checkpoint

    two = load_checkpoint(tmp_path / "two_workers_rank0" / "checkpoint_last.pt")["model"]
    one = load_checkpoint(tmp_path / "one_worker" / "checkpoint_last.pt")["model"]
    assert two.keys() == one.keys()
    for name, value in one.items():
        torch.testing.assert_close(two[name].float(), value.float(), rtol=RTOL, atol=1e-6, msg=name)


def _logged(lines, key):
    import re

    return [float(re.search(rf"\b{key}=([-0-9.e]+)", line).group(1)) for line in lines]

"""Worker side of ``tests/test_distributed.py``: the adversarial hook under DDP on 2 CPU processes.

fairseq's own multi-process launch needs CUDA, so each
worker builds the pieces exactly as ``fairseq-train`` does (argument parser,
``tasks.setup_task``, ``task.build_model``, ``task.build_criterion``,
``optim.build_optimizer``), wraps the model the way fairseq's c10d backend
does (``ModuleProxyWrapper(DistributedDataParallel(model))``) or its
``legacy_ddp`` backend does (``ModuleProxyWrapper(LegacyDistributedDataParallel)``),
and runs ``bench.harness.fairseq_update``, which repeats the gradient arithmetic of
``fairseq.trainer.Trainer.train_step`` (the benchmark measures the same update).

What the workers observe is written to ``<out_dir>/rank<r>.pt``; the test
process reads both files and makes the assertions, so a failure shows up as an
ordinary pytest assertion rather than a crashed child process.
"""

import copy
import datetime
import os
import sys
from pathlib import Path
from typing import Dict, List

import torch
import torch.distributed as dist

# The repository root, for the builders the benchmark and these tests share (bench/harness.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import build_criterion, fairseq_update  # noqa: E402
from inprocess_fairseq import NO_DROPOUT  # noqa: E402
from utils import TINY_ROBERTA  # noqa: E402

# The tiny RoBERTa of tests/utils.py with every dropout off, so that the
# 2-process run and the single-process run on the concatenated batch compute
# the same function.
MODEL_ARGS = [*TINY_ROBERTA, *NO_DROPOUT]

# Examples per worker per micro-batch.
BATCH = 4

# name -> (--adv-* overrides, micro-batches per update (update-freq), updates, backend)
# delta_0 = 0 (--adv-init-mag 0) everywhere, as the equivalence needs.
SCENARIOS: Dict[str, dict] = {
    "none": dict(adv=dict(adv_method="none"), update_freq=1, updates=1, backend="c10d"),
    "freelb_k3": dict(adv=dict(adv_method="freelb", adv_steps=3), update_freq=1, updates=1, backend="c10d"),
    "pgd_k2": dict(adv=dict(adv_method="pgd", adv_steps=2), update_freq=1, updates=1, backend="c10d"),
    "yopo_m2_n2": dict(adv=dict(adv_method="yopo", adv_steps=2, yopo_inner_steps=2), update_freq=1, updates=1, backend="c10d"),
    # Two consecutive replays of one minibatch: each replay is a full update.
    "freeat_k2": dict(adv=dict(adv_method="freeat", adv_steps=2), update_freq=1, updates=2, backend="c10d"),
    "freelb_k3_update_freq2": dict(adv=dict(adv_method="freelb", adv_steps=3), update_freq=2, updates=1, backend="c10d"),
    "pgd_k2_update_freq2": dict(adv=dict(adv_method="pgd", adv_steps=2), update_freq=2, updates=1, backend="c10d"),
    "freelb_k3_legacy_ddp": dict(adv=dict(adv_method="freelb", adv_steps=3), update_freq=1, updates=1, backend="legacy_ddp"),
}

# DDP forward passes per micro-batch (YOPO's cheap inner steps run the
# unwrapped model up to the first block and never go through DDP).
PASSES = {"none": lambda a: 1, "freelb": lambda a: a["adv_steps"], "pgd": lambda a: a["adv_steps"] + 1,
          "yopo": lambda a: a["adv_steps"], "freeat": lambda a: 1}


def expected_passes(scenario: dict) -> int:
    adv = scenario["adv"]
    return PASSES[adv["adv_method"]](adv) * scenario["update_freq"]


def parse_cfg(data_bin: str):
    import fairseq_freelb  # noqa: F401  (registers the criterion)
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(
        parser,
        [
            data_bin,
            "--task", "sentence_prediction", "--criterion", "freelb_sentence_prediction",
            "--num-classes", "2", "--init-token", "0", "--separator-token", "2",
            *MODEL_ARGS,
            "--optimizer", "sgd", "--lr", "1.0", "--cpu", "--seed", "1",
            "--adv-lr", "0.1", "--adv-init-mag", "0", "--adv-max-norm", "0",
        ],
    )
    return convert_namespace_to_omegaconf(args)


class AllReduceRecorder:
    """A DDP communication hook that all-reduces like DDP's default and records each bucket.

    Each record is ``(update, passes seen so far in this update, bucket elements)``;
    a forward pre-hook on the DDP module counts the passes, so the record says in
    which pass the all-reduce fired.
    """

    def __init__(self, ddp: torch.nn.Module, world_size: int):
        self.world_size = world_size
        self.update = 0
        self.passes = 0
        self.records: List[tuple] = []
        ddp.register_forward_pre_hook(self._count_pass)
        ddp.register_comm_hook(None, self._hook)

    def start_update(self, update: int) -> None:
        self.update, self.passes = update, 0

    def _count_pass(self, module, inputs):
        self.passes += 1

    def _hook(self, state, bucket):
        tensor = bucket.buffer()
        self.records.append((self.update, self.passes, tensor.numel()))
        tensor.div_(self.world_size)
        future = dist.all_reduce(tensor, async_op=True).get_future()
        return future.then(lambda fut: fut.value()[0])


class DeltaRecorder:
    """Records the perturbation each model call adds to the token embeddings.

    A forward pre-hook on the (unwrapped) model registers, at the start of each
    call, a one-shot forward hook on the token embedding. Registered after the
    plugin's own perturbation hook, it sees the perturbed output; the clean
    embedding is recomputed from the same tokens, and the difference is delta.
    """

    def __init__(self, model: torch.nn.Module):
        from fairseq_freelb.core.model_access import token_embedding_module

        self.embed = token_embedding_module(model)
        self.deltas: List[torch.Tensor] = []
        model.register_forward_pre_hook(self._arm)

    def _arm(self, module, inputs):
        handle = []

        def record(embed, embed_inputs, output):
            handle[0].remove()
            clean = torch.nn.functional.embedding(embed_inputs[0], embed.weight, embed.padding_idx)
            self.deltas.append((output - clean).detach().clone())

        handle.append(self.embed.register_forward_hook(record))


def _flat_params(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])


def _delta_norm(logs: List[dict]) -> float:
    return float(sum(float(log["adv_delta_norm"]) for log in logs if "adv_delta_norm" in log))


def run_scenario(rank: int, world_size: int, cfg, name: str, scenario: dict) -> dict:
    from fairseq import optim, tasks
    from fairseq.distributed import LegacyDistributedDataParallel, ModuleProxyWrapper
    from torch.nn.parallel import DistributedDataParallel

    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    dataset = task.dataset("train")
    torch.manual_seed(1)  # the same initial weights on every rank and for the reference
    model = task.build_model(cfg.model)
    initial_state = copy.deepcopy(model.state_dict())
    criterion = build_criterion(task, cfg, scenario["adv"])

    # Worker r's micro-batch j holds examples [(j*world + r)*B, (j*world + r + 1)*B):
    # the workers see different data.
    def micro_batch(j: int, r: int) -> dict:
        start = (j * world_size + r) * BATCH
        return dataset.collater([dataset[i] for i in range(start, start + BATCH)])

    samples = [micro_batch(j, rank) for j in range(scenario["update_freq"])]

    if scenario["backend"] == "c10d":
        # fairseq's RoBERTa GLUE recipe uses --find-unused-parameters: the LM head is unused.
        ddp = DistributedDataParallel(model, find_unused_parameters=True)
        recorder = AllReduceRecorder(ddp, world_size)
    else:
        ddp = LegacyDistributedDataParallel(model, process_group=dist.group.WORLD)
        recorder = None
    wrapped = ModuleProxyWrapper(ddp)
    optimizer = optim.build_optimizer(cfg.optimizer, [p for p in model.parameters() if p.requires_grad])
    delta_recorder = DeltaRecorder(model)

    before = _flat_params(model)
    logs = []
    for update in range(scenario["updates"]):
        if recorder is not None:
            recorder.start_update(update)
        logs.append(fairseq_update(task, wrapped, criterion, optimizer, samples, update, world_size))
    after = _flat_params(model)

    result = {
        "name": name,
        "records": recorder.records if recorder is not None else None,
        "trainable_elems": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "before": before,
        "after": after,
        "delta_norms": [_delta_norm(update_logs) for update_logs in logs],
        "deltas": delta_recorder.deltas,
    }

    if rank == 0:
        # Single-process reference: the same hook, no DDP, on all workers' examples at once.
        reference_model = task.build_model(cfg.model)
        reference_model.load_state_dict(initial_state)
        reference_deltas = DeltaRecorder(reference_model)
        reference_criterion = build_criterion(task, cfg, scenario["adv"])
        reference_optimizer = optim.build_optimizer(
            cfg.optimizer, [p for p in reference_model.parameters() if p.requires_grad]
        )
        total = scenario["update_freq"] * world_size * BATCH
        concatenated = dataset.collater([dataset[i] for i in range(total)])
        reference_logs = [
            fairseq_update(task, reference_model, reference_criterion, reference_optimizer, [concatenated], update, 1)
            for update in range(scenario["updates"])
        ]
        result["reference_after"] = _flat_params(reference_model)
        result["reference_deltas"] = reference_deltas.deltas
        result["reference_delta_norms"] = [_delta_norm(update_logs) for update_logs in reference_logs]
    return result


def worker(rank: int, world_size: int, data_bin: str, store: str, out_dir: str, names: List[str]) -> None:
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    dist.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=world_size,
        timeout=datetime.timedelta(seconds=120),
    )
    try:
        cfg = parse_cfg(data_bin)
        results = {}
        for name in names:
            try:
                results[name] = run_scenario(rank, world_size, cfg, name, SCENARIOS[name])
            except Exception as exc:  # reported by the test, per scenario
                results[name] = {"name": name, "error": f"{type(exc).__name__}: {exc}"}
            dist.barrier()
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()

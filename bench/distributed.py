"""The 2-process part of the benchmark: DDP on the gloo backend, one CPU thread per worker.

Each worker wraps the model as fairseq's c10d backend does
(``ModuleProxyWrapper(DistributedDataParallel(model))``) and installs a DDP
communication hook that all-reduces like DDP's default and counts what it
reduces. From the counts the benchmark reports, per update, the number of
gradient all-reduce rounds (elements reduced / trainable elements: 1.0 means
every gradient was all-reduced exactly once) and the number of bucket calls.
Methods are interleaved in every round, and each one's time is compared with
vanilla's at the same world size.
"""

import datetime
import os
import statistics
import tempfile
from typing import Dict, List

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bench import harness


class AllReduceCounter:
    def __init__(self, ddp, world_size: int):
        self.world_size = world_size
        self.calls = 0
        self.elements = 0
        ddp.register_comm_hook(None, self._hook)

    def reset(self) -> None:
        self.calls = self.elements = 0

    def _hook(self, state, bucket):
        tensor = bucket.buffer()
        self.calls += 1
        self.elements += tensor.numel()
        tensor.div_(self.world_size)
        return dist.all_reduce(tensor, async_op=True).get_future().then(lambda fut: fut.value()[0])


def _worker(rank: int, world_size: int, opts: dict, store: str, out: str) -> None:
    import time

    from fairseq.distributed import ModuleProxyWrapper
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=world_size,
        timeout=datetime.timedelta(seconds=600),
    )
    try:
        k, inner = opts["k"], opts["yopo_inner"]
        methods = [harness.VANILLA] + harness.methods_for(k, inner)
        setup = harness.build_setup(opts["size"], [opts["seq_len"]], methods, "fp32", "cpu")
        # fairseq's RoBERTa GLUE recipe uses --find-unused-parameters: the LM head is unused.
        ddp = DistributedDataParallel(setup.model, find_unused_parameters=True)
        counter = AllReduceCounter(ddp, world_size)
        model = ModuleProxyWrapper(ddp)
        batch = opts["batch"]
        # each worker its own examples
        sample = harness.make_batch(setup.task, batch, opts["seq_len"], seed=100 + rank, device=setup.device,
                                    first_id=rank * batch)
        updates = harness.UpdateCounter()
        times: Dict[str, List[float]] = {m.name: [] for m in methods}
        rounds: Dict[str, List[float]] = {m.name: [] for m in methods}
        calls: Dict[str, List[int]] = {m.name: [] for m in methods}

        for r in range(opts["warmup"] + opts["repeats"]):
            order = methods[1:][r % (len(methods) - 1):] + methods[1:][: r % (len(methods) - 1)]
            for method in [harness.VANILLA] + order:
                counter.reset()
                dist.barrier()
                start = time.perf_counter()
                harness.run_method(setup, method, sample, updates, model=model, world_size=world_size)
                elapsed = time.perf_counter() - start
                if r >= opts["warmup"]:
                    times[method.name].append(elapsed / method.updates)
                    trainable = sum(p.numel() for p in setup.model.parameters() if p.requires_grad)
                    rounds[method.name].append(counter.elements / trainable / method.updates)
                    calls[method.name].append(counter.calls / method.updates)
            if rank == 0:
                print(f"[bench] world size {world_size}: round {r + 1}/{opts['warmup'] + opts['repeats']}", flush=True)
        if rank == 0:
            vanilla = statistics.median(times["none"])
            result = {}
            for m in methods:
                per_update = statistics.median(times[m.name])
                result[m.name] = {
                    "family": m.family,
                    "k": m.k,
                    "passes_per_update": m.passes / m.updates,
                    "time_per_update_s": per_update,
                    "time_ratio_vs_vanilla": per_update / vanilla,
                    "allreduce_rounds_per_update": sorted(set(rounds[m.name])),
                    "allreduce_bucket_calls_per_update": sorted(set(calls[m.name])),
                }
            torch.save(result, out)
    finally:
        dist.destroy_process_group()


def run_distributed(size: str, seq_len: int, batch: int, k: int, yopo_inner: int, warmup: int, repeats: int,
                    world_size: int = 2) -> dict:
    opts = dict(size=size, seq_len=seq_len, batch=batch, k=k, yopo_inner=yopo_inner, warmup=warmup, repeats=repeats)
    with tempfile.TemporaryDirectory(prefix="fairseq_freelb_bench_dist_") as tmp:
        out = os.path.join(tmp, "result.pt")
        mp.spawn(_worker, args=(world_size, opts, os.path.join(tmp, "store"), out), nprocs=world_size, join=True)
        return torch.load(out, weights_only=False)

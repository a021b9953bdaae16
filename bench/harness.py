"""What every benchmark measurement shares: the fairseq pieces, the batch, the update.

The model, task, criterion and optimizer are built the way ``fairseq-train``
builds them (its argument parser, ``tasks.setup_task``, ``task.build_model``,
``task.build_criterion``, ``optim.build_optimizer`` or the fp16 wrappers), and
:func:`fairseq_update` repeats the arithmetic of ``Trainer.train_step``
(zero grads, the task's ``train_step`` per micro-batch, all-reduce of
``sample_size``, gradient all-reduce, ``multiply_grads``, gradient norm,
``step``), so a measured update is what a real training update costs, minus
data loading and logging.
"""

import contextlib
import copy
import os
import tempfile
from dataclasses import dataclass
from typing import Dict, List

import torch
import torch.distributed as dist

import fairseq_freelb  # noqa: F401  (registers the plugin's criteria with fairseq before any config is parsed)

# Model sizes. "small" runs on 2 CPU cores in a few minutes; "roberta_base" is
# fairseq's roberta_base (12 x 768, 50k vocabulary) for a GPU.
MODEL_SIZES: Dict[str, dict] = {
    "tiny": dict(layers=2, dim=64, ffn=128, heads=2, vocab=200, batch=4),  # --quick
    "small": dict(layers=4, dim=128, ffn=512, heads=4, vocab=1000, batch=8),
    "roberta_base": dict(layers=12, dim=768, ffn=3072, heads=12, vocab=50261, batch=32),
}

# The four special symbols a fairseq Dictionary adds in front (<s>, <pad>, </s>, <unk>).
NUM_SPECIAL = 4


@dataclass
class Method:
    """One benchmarked configuration of the adversarial hook.

    ``passes`` is the floor in vanilla updates: K for FreeLB-K (K forward/backward
    passes), K+1 for PGD-K, m for YOPO-m-n, K for one FreeAT-K minibatch (K full
    updates). ``updates`` is how many optimizer updates one measurement makes
    (K for a FreeAT minibatch, 1 otherwise). ``micro_batches`` > 1 is vanilla
    fairseq ``--update-freq``: the same minibatch accumulated that many times
    before one optimizer step, the reference for what accumulating K passes
    costs without any adversary.
    """

    name: str
    adv: dict
    passes: int
    updates: int = 1
    family: str = ""
    k: int = 1
    micro_batches: int = 1


def methods_for(k: int, yopo_inner: int) -> List[Method]:
    """FreeLB-K, PGD-K, FreeAT-K (one minibatch = K replays) and YOPO-K-n."""
    return [
        Method(f"freelb-{k}", dict(adv_method="freelb", adv_steps=k), passes=k, family="freelb", k=k),
        Method(f"pgd-{k}", dict(adv_method="pgd", adv_steps=k), passes=k + 1, family="pgd", k=k),
        Method(f"freeat-{k}", dict(adv_method="freeat", adv_steps=k), passes=k, updates=k, family="freeat", k=k),
        Method(
            f"yopo-{k}-{yopo_inner}",
            dict(adv_method="yopo", adv_steps=k, yopo_inner_steps=yopo_inner),
            passes=k,
            family="yopo",
            k=k,
        ),
    ]


VANILLA = Method("none", dict(adv_method="none"), passes=1, family="none", k=1)


def vanilla_update_freq(k: int) -> Method:
    return Method(f"none --update-freq {k}", dict(adv_method="none"), passes=k, family="none-update-freq", k=k,
                  micro_batches=k)


def write_dictionaries(root: str, vocab: int) -> str:
    """``input0/dict.txt`` and ``label/dict.txt`` as fairseq-preprocess writes them."""
    for sub, symbols in (("input0", [f"w{i}" for i in range(vocab)]), ("label", ["0", "1"])):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        with open(os.path.join(root, sub, "dict.txt"), "w") as f:
            f.writelines(f"{s} 1\n" for s in symbols)
    return root


def parse_cfg(data_dir: str, size: dict, max_positions: int, precision: str, device: str):
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    precision_flags = {"fp32": [], "fp16": ["--fp16"], "bf16": ["--bf16"]}[precision]
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(
        parser,
        [
            data_dir,
            "--task", "sentence_prediction", "--criterion", "freelb_sentence_prediction",
            "--num-classes", "2", "--init-token", "0", "--separator-token", "2",
            "--arch", "roberta_base",
            "--encoder-layers", str(size["layers"]), "--encoder-embed-dim", str(size["dim"]),
            "--encoder-ffn-embed-dim", str(size["ffn"]), "--encoder-attention-heads", str(size["heads"]),
            "--max-positions", str(max_positions),
            # fine-tuning settings of the paper's GLUE runs; dropout stays on
            "--dropout", "0.1", "--attention-dropout", "0.1",
            "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--adam-eps", "1e-6", "--weight-decay", "0.1",
            "--lr", "1e-5", "--seed", "1",
            "--adv-lr", "0.1", "--adv-init-mag", "0.1", "--adv-max-norm", "0.5",
            *(["--cpu"] if device == "cpu" else []),
            *precision_flags,
        ],
    )
    return convert_namespace_to_omegaconf(args)


def build_criterion(task, cfg, adv: dict):
    """The criterion of ``cfg`` with the ``--adv-*`` settings of ``adv`` (e.g. ``{"adv_method": "pgd"}``) swapped in.

    Shared by the benchmark and the DDP tests (tests/distributed_workers.py).
    """
    from omegaconf import open_dict

    from fairseq_freelb.adapters.config import AdversarialConfig, inert_flags

    criterion_cfg = copy.deepcopy(cfg.criterion)
    with open_dict(criterion_cfg):
        for key, value in adv.items():
            setattr(criterion_cfg, key, value)
        # The sweep shares one --adv-* set; flags that cannot act at this method and K
        # (e.g. --adv-lr at FreeLB-1) would be refused, and their defaults time the same.
        for item in inert_flags(criterion_cfg):
            setattr(criterion_cfg, item.field, getattr(AdversarialConfig, item.field))
    return task.build_criterion(criterion_cfg)


def build_optimizer(cfg, params):
    """The optimizer ``Trainer._build_optimizer`` would build for these flags."""
    from fairseq import optim

    if cfg.common.fp16 or cfg.common.bf16:
        if cfg.common.memory_efficient_fp16 or cfg.common.memory_efficient_bf16:
            return optim.MemoryEfficientFP16Optimizer.build_optimizer(cfg, params)
        return optim.FP16Optimizer.build_optimizer(cfg, params)
    return optim.build_optimizer(cfg.optimizer, params)


@dataclass
class Setup:
    cfg: object
    task: object
    model: torch.nn.Module
    optimizer: object
    criteria: Dict[str, object]
    device: torch.device
    dtype: torch.dtype
    tmp: object


def build_setup(size_name: str, seq_lens: List[int], methods: List[Method], precision: str, device: str) -> Setup:
    from fairseq import tasks

    size = MODEL_SIZES[size_name]
    tmp = tempfile.TemporaryDirectory(prefix="fairseq_freelb_bench_")
    data_dir = write_dictionaries(tmp.name, size["vocab"])
    cfg = parse_cfg(data_dir, size, max_positions=max(512, max(seq_lens)), precision=precision, device=device)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(1)
    model = task.build_model(cfg.model)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    model = model.to(device=device, dtype=dtype)
    criteria = {m.name: build_criterion(task, cfg, m.adv) for m in methods}
    optimizer = build_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    return Setup(cfg, task, model, optimizer, criteria, torch.device(device), dtype, tmp)


def make_batch(task, batch: int, seq_len: int, seed: int, device: torch.device, first_id: int = 0) -> dict:
    """A collated sentence-prediction batch: ``<s> w ... w </s>``, every sentence ``seq_len`` tokens."""
    generator = torch.Generator().manual_seed(seed)
    vocab = len(task.source_dictionary)
    words = torch.randint(NUM_SPECIAL, vocab, (batch, seq_len - 2), generator=generator)
    bos = torch.full((batch, 1), task.source_dictionary.bos())
    eos = torch.full((batch, 1), task.source_dictionary.eos())
    tokens = torch.cat([bos, words, eos], dim=1)
    target = torch.randint(0, 2, (batch,), generator=generator)
    sample = {
        "id": torch.arange(first_id, first_id + batch),
        "nsentences": batch,
        "ntokens": batch * seq_len,
        "net_input": {"src_tokens": tokens, "src_lengths": torch.full((batch,), seq_len)},
        "target": target,
    }
    return move_sample(sample, device)


def move_sample(sample, device):
    from fairseq import utils

    return utils.move_to_cuda(sample, device=device) if device.type == "cuda" else sample


def fairseq_update(task, model, criterion, optimizer, samples: List[dict], update_num: int, world_size: int = 1):
    """One optimizer update with the arithmetic of ``fairseq.trainer.Trainer.train_step`` (fairseq 0.12).

    Every micro-batch but the last runs inside ``model.no_sync()``; losses are
    sums, so gradients are all-reduced (averaged by DDP, summed by
    ``legacy_ddp`` after dividing by the world size), then multiplied by
    ``world_size / total sample_size``. Returns the micro-batches' logging outputs.
    Shared by the benchmark and the DDP tests (tests/distributed_workers.py).
    """
    optimizer.zero_grad()
    sample_size, logs = 0.0, []
    for i, sample in enumerate(samples):
        last = i == len(samples) - 1
        no_sync = world_size > 1 and not last and hasattr(model, "no_sync")
        with model.no_sync() if no_sync else contextlib.nullcontext():
            _, sample_size_i, log = task.train_step(sample, model, criterion, optimizer, update_num)
        sample_size += float(sample_size_i)
        logs.append(log)
    if world_size > 1:
        # Trainer._aggregate_logging_outputs sums sample_size over workers.
        total = torch.tensor([sample_size], dtype=torch.float64)
        dist.all_reduce(total)
        sample_size = float(total.item())
    optimizer.all_reduce_grads(model)  # a no-op for c10d DDP, the whole reduction for legacy_ddp
    optimizer.multiply_grads(world_size / sample_size)
    optimizer.clip_grad_norm(0.0)  # the trainer always computes the norm (for logging)
    optimizer.step()
    return logs


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class UpdateCounter:
    """Update numbers must grow (FreeAT refuses a replay at the same update twice)."""

    def __init__(self):
        self.value = 0

    def next(self) -> int:
        self.value += 1
        return self.value


def run_method(setup: Setup, method: Method, sample: dict, counter: UpdateCounter, model=None, world_size: int = 1):
    """One measurement unit: one update, or a FreeAT minibatch (K replays = K updates)."""
    model = setup.model if model is None else model
    criterion = setup.criteria[method.name]
    for _ in range(method.updates):
        samples = [sample] * method.micro_batches
        fairseq_update(setup.task, model, criterion, setup.optimizer, samples, counter.next(), world_size)


def persistent_bytes(setup: Setup) -> int:
    """Bytes of what lives across updates: parameters, buffers, optimizer state (and fp32 master copies)."""
    seen, total = set(), 0

    def add(t):
        nonlocal total
        if torch.is_tensor(t) and t.untyped_storage().data_ptr() not in seen:
            seen.add(t.untyped_storage().data_ptr())
            total += t.untyped_storage().nbytes()

    for t in list(setup.model.parameters()) + list(setup.model.buffers()):
        add(t)
    inner = getattr(setup.optimizer, "optimizer", None)
    for state in getattr(inner, "state", {}).values():
        for t in state.values():
            add(t)
    for group in getattr(inner, "param_groups", []):
        for t in group["params"]:
            add(t)
    return total

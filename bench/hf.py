"""The Hugging Face part of the benchmark: ``AdversarialTrainer``'s step, and a plain loop as the official code does it.

Model: ``RobertaForSequenceClassification`` with the dimensions of the
fairseq rows' model (bench/harness.py ``MODEL_SIZES``), dropout 0.1, the same
batch shape (every sentence ``seq_len`` tokens) and AdamW. Four units, each one
optimizer update (forward/backward passes, ``optimizer.step()``, zero grads):

* ``hf trainer: none`` and ``hf trainer: freelb-K``: ``AdversarialTrainer.training_step``
  (the core's adversary inside the Trainer's step), then the optimizer step;
* ``hf plain loop: none`` and ``hf official-style loop: freelb-K``: a hand-written
  loop, the latter written as the official FreeLB Hugging Face code
  (github.com/zhuchen03/FreeLB, huggingface-transformers/examples/run_glue_freelb.py):
  ``inputs_embeds = word_embeddings(input_ids) + delta``, loss / K backward,
  per-example normalised ascent, embeddings recomputed after each pass. Stock
  transformers models take no dropout masks, so unlike the official ALBERT
  patch it draws fresh masks in each pass (the cost is the same).

Each path's FreeLB-K time is divided by K x its own vanilla time, measured in
the same round (the mean of one vanilla update before and one after), so the
Trainer's own per-step overhead is in both numerator and floor.
"""

import statistics
import tempfile
import time
from typing import Callable, Dict, List

import torch

from bench import harness
from bench.memory import peak_memory

ADV = dict(adv_lr=0.1, adv_init_mag=0.1, adv_max_norm=0.5)  # the fairseq rows' --adv-* values


def build_model(size_name: str, seq_len: int, device: str):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    size = harness.MODEL_SIZES[size_name]
    config = RobertaConfig(
        vocab_size=size["vocab"], hidden_size=size["dim"], num_hidden_layers=size["layers"],
        num_attention_heads=size["heads"], intermediate_size=size["ffn"], max_position_embeddings=max(512, seq_len) + 2,
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, num_labels=2, pad_token_id=1,
        attn_implementation="eager",
    )
    torch.manual_seed(1)
    return RobertaForSequenceClassification(config).to(device)


def make_batch(batch: int, seq_len: int, vocab: int, device: str, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(harness.NUM_SPECIAL, vocab, (batch, seq_len), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "labels": torch.randint(0, 2, (batch,), generator=g).to(device)}


def build_trainer(model, optimizer, method: str, k: int, out_dir: str, device: str):
    from transformers import TrainingArguments

    from fairseq_freelb.hf import AdversarialArguments, AdversarialTrainer

    adversarial = AdversarialArguments(adv_method="none") if method == "none" else \
        AdversarialArguments(adv_method="freelb", adv_steps=k, **ADV)
    args = TrainingArguments(output_dir=out_dir, use_cpu=device == "cpu", report_to=[], disable_tqdm=True,
                             save_strategy="no", max_grad_norm=0.0)
    trainer = AdversarialTrainer(model=model, args=args, adversarial_args=adversarial, optimizers=(optimizer, None))
    trainer.current_gradient_accumulation_steps = 1
    return trainer


def trainer_update(trainer, model, optimizer, batch) -> Callable[[], None]:
    def run():
        trainer.training_step(model, dict(batch))
        optimizer.step()
        model.zero_grad(set_to_none=True)

    return run


def plain_update(model, optimizer, batch) -> Callable[[], None]:
    def run():
        model.train()
        model(**batch).loss.backward()
        optimizer.step()
        model.zero_grad(set_to_none=True)

    return run


def official_style_update(model, optimizer, batch, k: int) -> Callable[[], None]:
    """FreeLB-K as run_glue_freelb.py writes it (l2 ball), around a stock transformers model."""
    alpha, mag, eps = ADV["adv_lr"], ADV["adv_init_mag"], ADV["adv_max_norm"]

    def run():
        model.train()
        word = model.get_input_embeddings()
        rest = {key: v for key, v in batch.items() if key != "input_ids"}
        embeds_init = word(batch["input_ids"])
        mask = batch["attention_mask"].to(embeds_init)
        dims = mask.sum(1) * embeds_init.size(-1)
        delta = torch.zeros_like(embeds_init).uniform_(-1, 1) * mask.unsqueeze(2)
        delta = (delta * (mag / torch.sqrt(dims)).view(-1, 1, 1)).detach()
        for step in range(k):
            delta.requires_grad_()
            loss = model(inputs_embeds=delta + embeds_init, **rest).loss / k
            loss.backward()
            if step == k - 1:
                break
            grad = delta.grad.clone().detach()
            denorm = torch.norm(grad.view(grad.size(0), -1), dim=1).view(-1, 1, 1).clamp(min=1e-8)
            delta = (delta + alpha * grad / denorm).detach()
            norm = torch.norm(delta.view(delta.size(0), -1).float(), p=2, dim=1).detach()
            exceed = (norm > eps).to(embeds_init)
            delta = (delta * (eps / norm * exceed + (1 - exceed)).view(-1, 1, 1)).detach()
            embeds_init = word(batch["input_ids"])
        optimizer.step()
        model.zero_grad(set_to_none=True)

    return run


def _persistent_bytes(model, optimizer) -> int:
    seen, total = set(), 0
    tensors = list(model.parameters()) + list(model.buffers())
    tensors += [t for state in optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
    for t in tensors:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
    return total


def measure(args, ks: List[int], log=print) -> List[dict]:
    """Rows for bench/run.py's table: the Trainer path and the official-style loop at ``args.seq_len``."""
    device = args.device
    model = build_model(args.model_size, args.seq_len, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
    batch = make_batch(args.batch_size, args.seq_len, harness.MODEL_SIZES[args.model_size]["vocab"], device, args.seq_len)
    out_dir = tempfile.mkdtemp(prefix="fairseq_freelb_bench_hf_")
    units: Dict[str, dict] = {
        "hf trainer: none": dict(family="hf-none", k=1, run=trainer_update(
            build_trainer(model, optimizer, "none", 1, out_dir, device), model, optimizer, batch)),
        "hf plain loop: none": dict(family="hf-plain-none", k=1, run=plain_update(model, optimizer, batch)),
    }
    for k in ks:
        units[f"hf trainer: freelb-{k}"] = dict(family="hf-freelb", k=k, vanilla="hf trainer: none", run=trainer_update(
            build_trainer(model, optimizer, "freelb", k, out_dir, device), model, optimizer, batch))
        units[f"hf official-style loop: freelb-{k}"] = dict(
            family="hf-official-freelb", k=k, vanilla="hf plain loop: none",
            run=official_style_update(model, optimizer, batch, k))
    vanillas = ["hf trainer: none", "hf plain loop: none"]
    methods = [name for name in units if name not in vanillas]

    def timed(name):
        harness.synchronize(torch.device(device))
        wall, cpu = time.perf_counter(), time.process_time()
        units[name]["run"]()
        harness.synchronize(torch.device(device))
        wall = time.perf_counter() - wall
        return (time.process_time() - cpu if args.clock == "cpu" else wall), wall

    times = {name: [] for name in units}
    walls = {name: [] for name in units}
    ratios = {name: [] for name in methods}
    for r in range(args.warmup + args.repeats):
        before = {v: timed(v) for v in vanillas}
        order = methods[r % len(methods):] + methods[:r % len(methods)]
        measured = {name: timed(name) for name in order}
        after = {v: timed(v) for v in vanillas}
        if r < args.warmup:
            continue
        for v in vanillas:
            times[v] += [before[v][0], after[v][0]]
            walls[v] += [before[v][1], after[v][1]]
        for name, (t, wall) in measured.items():
            times[name].append(t)
            walls[name].append(wall)
            vanilla = (before[units[name]["vanilla"]][0] + after[units[name]["vanilla"]][0]) / 2
            ratios[name].append(t / (units[name]["k"] * vanilla))
    log(f"hf: {args.warmup + args.repeats} rounds done; peak memory, one update per unit")
    memory = {name: peak_memory(unit["run"], torch.device(device), prepare=optimizer.zero_grad)
              for name, unit in units.items()}
    persistent = _persistent_bytes(model, optimizer)

    rows = []
    for name, unit in units.items():
        vanilla_name = unit.get("vanilla", name)
        t = statistics.median(times[name])
        mem, vanilla_mem = memory[name], memory[vanilla_name]
        row = {
            "precision": "fp32", "seq_len": args.seq_len, "method": name, "family": unit["family"], "k": unit["k"],
            "unit": "update", "floor_vanilla_updates": unit["k"], "time_s": t, "clock": args.clock,
            "wall_time_s": statistics.median(walls[name]), "sentences_per_s": args.batch_size / t,
            "time_over_floor": statistics.median(ratios[name]) if name in ratios else 1.0,
            "time_over_vanilla": t / statistics.median(times[vanilla_name]),
            "persistent_bytes": persistent, "peak_tensor_bytes": mem["peak_tensor_bytes"],
            "update_peak_over_vanilla": mem["peak_tensor_bytes"] / vanilla_mem["peak_tensor_bytes"],
            "peak_memory_over_vanilla": (persistent + mem["peak_tensor_bytes"])
            / (persistent + vanilla_mem["peak_tensor_bytes"]),
        }
        if mem.get("peak_rss_growth_bytes") is not None and vanilla_mem.get("peak_rss_growth_bytes"):
            row["peak_rss_growth_bytes"] = mem["peak_rss_growth_bytes"]
            row["peak_rss_growth_over_vanilla"] = mem["peak_rss_growth_bytes"] / vanilla_mem["peak_rss_growth_bytes"]
        rows.append(row)
    order = {"hf-none": 0, "hf-freelb": 1, "hf-plain-none": 2, "hf-official-freelb": 3}
    return sorted(rows, key=lambda row: (order[row["family"]], row["k"]))

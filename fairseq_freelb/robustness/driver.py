"""The robustness analysis end to end: select the samples every model gets right, attack them, report.

Section 4.3 of the paper compares models by DeltaL_max (eq. 5) over the dev
samples that every model classifies correctly, with two choices of eps:

* **Max Inc**: ``eps = r * ||X||_F`` per sample (r = 0.01 in the paper);
* **Max Inc (R)**: footnote 12's per-sample search. eps starts slightly above
  the training norm bound and decreases linearly until the *reference* model
  classifies the sample correctly after the full attack; every model is then
  attacked with that eps.

:func:`main` is ``python -m fairseq_freelb.robustness``; its expected failures
are one line on stderr (:func:`fairseq_freelb.commands.run_command`).
"""

import logging
import os
import sys
from typing import Dict, List, Optional, Sequence

import torch

from fairseq_freelb.checkpoint import allow_fairseq_checkpoints
from fairseq_freelb.commands import run_command
from fairseq_freelb.robustness.arguments import COMMAND, RobustnessConfig, RobustnessError, attack_config, parse_config
from fairseq_freelb.robustness.attack import EmbeddingAttack, search_eps
from fairseq_freelb.robustness.checkpoints import LoadedModel, default_names, load_models, training_norm_bound
from fairseq_freelb.robustness.report import SampleRecord, check_output_dir, write_outputs

logger = logging.getLogger("fairseq_freelb.robustness")


def _move(sample, device: torch.device):
    from fairseq import utils

    return utils.move_to_cuda(sample, device=device) if device.type == "cuda" else sample


def select_samples(dataset, attacks: Sequence[EmbeddingAttack], batch_size: int, max_samples: int, device, progress: bool):
    """Dataset indices that every model classifies correctly, in dataset order.

    Returns ``(selected indices, natural losses {index: [loss per model]}, number evaluated)``.
    With ``max_samples`` the scan stops once that many are found.
    """
    from tqdm import tqdm

    selected, natural = [], {}
    total = len(dataset)
    bar = tqdm(total=total, desc="natural pass", unit="sample", disable=not progress, file=sys.stderr)
    evaluated = 0
    for start in range(0, total, batch_size):
        indices = list(range(start, min(start + batch_size, total)))
        sample = _move(dataset.collater([dataset[i] for i in indices]), device)
        per_model = [a.evaluate(sample) for a in attacks]
        for j, i in enumerate(indices):
            evaluated = i + 1
            if all(bool(ok[j]) for _, ok in per_model):
                selected.append(i)
                natural[i] = [float(loss[j]) for loss, _ in per_model]
                if max_samples and len(selected) >= max_samples:
                    break
        bar.update(len(indices))
        if max_samples and len(selected) >= max_samples:
            break
    bar.close()
    return selected, natural, evaluated


def analyse(cfg: RobustnessConfig, task, loaded: Sequence[LoadedModel], criterion) -> Dict:
    """Run the attacks; returns ``{"records": [...], "n_evaluated", "n_selected", "search_start"}``."""
    from tqdm import tqdm

    device = torch.device("cuda" if torch.cuda.is_available() and not cfg.cpu else "cpu")
    attack_cfg = attack_config(cfg)
    attacks = []
    for item in loaded:
        item.model.to(device)
        attacks.append(EmbeddingAttack(item.model, criterion, attack_cfg))
    names = [item.name for item in loaded]
    ref_index = None
    search_start = None
    if cfg.eps_mode in ("search", "both"):
        matches = [k for k, item in enumerate(loaded) if cfg.reference in (item.name, item.path)]
        if len(matches) != 1:
            raise RobustnessError(f"--reference {cfg.reference!r} matches none of --names {names} or the checkpoint paths")
        ref_index = matches[0]
        search_start = cfg.search_start
        if search_start == 0:
            bound = training_norm_bound(loaded)
            if bound <= 0:
                raise RobustnessError(
                    "--search-start 0 takes the training norm bound from the checkpoints' --adv-max-norm, "
                    "but none has one: pass --search-start"
                )
            search_start = cfg.search_start_factor * bound
        logger.info("eps search from %.6g in %d linear levels, reference model %s", search_start, cfg.search_levels, names[ref_index])

    task.load_dataset(cfg.split)
    dataset = task.dataset(cfg.split)
    progress = not cfg.no_progress_bar
    selected, natural, evaluated = select_samples(dataset, attacks, cfg.batch_size, cfg.max_samples, device, progress)
    logger.info(
        "%d of the %d samples evaluated in split %s are classified correctly by all %d models",
        len(selected), evaluated, cfg.split, len(attacks),
    )
    records: List[SampleRecord] = []
    bar = tqdm(total=len(selected), desc="attack", unit="sample", disable=not progress, file=sys.stderr)
    # Batches of similar length waste less compute on padding; results do not depend on the grouping.
    order = sorted(selected, key=lambda i: (int(dataset.num_tokens(i)), i))
    for start in range(0, len(order), cfg.batch_size):
        indices = order[start : start + cfg.batch_size]
        sample = _move(dataset.collater([dataset[i] for i in indices]), device)
        ids = [int(i) for i in sample["id"].tolist()]
        batch_records = []
        for k, attack in enumerate(attacks):
            nat = torch.tensor([natural[i][k] for i in ids], dtype=torch.float64)
            # ||X||_F of this model's own (fine-tuned) embeddings: the ball is the model's own.
            norms = attack.embedding_norms(sample)
            rows = [SampleRecord(names[k], i, float(nat[j]), float(norms[j])) for j, i in enumerate(ids)]
            if cfg.eps_mode in ("ratio", "both"):
                result = attack.attack(sample, cfg.eps_ratio * norms, nat)
                for j, row in enumerate(rows):
                    row.eps = float(result.eps[j])
                    row.max_inc = float(result.max_increase[j])
                    row.restart_spread = float(result.restart_spread[j])
                    row.correct_after_attack = bool(result.correct_after[j])
            batch_records.append(rows)
        if ref_index is not None:
            ref_nat = torch.tensor([batch_records[ref_index][j].n_loss for j in range(len(ids))], dtype=torch.float64)
            eps_r, ref_result = search_eps(attacks[ref_index], sample, search_start, cfg.search_levels, ref_nat)
            for k, attack in enumerate(attacks):
                if k == ref_index:
                    result = ref_result
                else:
                    nat = torch.tensor([row.n_loss for row in batch_records[k]], dtype=torch.float64)
                    result = attack.attack(sample, eps_r, nat)
                for j, row in enumerate(batch_records[k]):
                    row.eps_r = float(result.eps[j])
                    row.max_inc_r = float(result.max_increase[j])
                    row.restart_spread_r = float(result.restart_spread[j])
                    row.correct_after_attack_r = bool(result.correct_after[j])
        for rows in batch_records:
            records.extend(rows)
        bar.update(len(indices))
    bar.close()
    records.sort(key=lambda r: (names.index(r.model), r.sample_id))
    return {
        "records": records,
        "names": names,
        "n_evaluated": evaluated,
        "n_selected": len(selected),
        "search_start": search_start,
        "reference": names[ref_index] if ref_index is not None else None,
    }


def run(argv: Optional[Sequence[str]] = None) -> int:
    """The command without its error handling: parse, load, analyse, write; raises :class:`RobustnessError`."""
    logging.basicConfig(
        format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
        level=os.environ.get("LOGLEVEL", "INFO").upper(),
        stream=sys.stderr,
        force=True,  # an import may already have configured the root logger
    )
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    cfg = parse_config(argv)
    check_output_dir(cfg.output_dir)
    # Explicitly, not as a side effect of importing the package: fairseq checkpoints
    # hold types that torch.load's weights_only default refuses.
    allow_fairseq_checkpoints()
    cfg.names = list(cfg.names or default_names(cfg.checkpoints))
    task, criterion, loaded = load_models(cfg.checkpoints, cfg.names, cfg.data, cfg.criterion)
    torch.manual_seed(cfg.seed)
    result = analyse(cfg, task, loaded, criterion)
    if not result["records"]:
        raise RobustnessError(f"no sample of split {cfg.split} is classified correctly by all models: nothing to attack")
    paths = write_outputs(result, cfg)
    print(paths["summary"].read_text())
    print(f"per-sample results: {paths['csv']}\nsummary: {paths['summary']}\nplot: {paths['plot']}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m fairseq_freelb.robustness``: 0 on success; 1 and one line on stderr for a bad input."""
    return run_command(COMMAND, run, argv)

"""The protocol on a preprocessed GLUE or multiple-choice folder (``--data DIR-bin``).

1. :mod:`.folder` reads the task, metrics and class count from the folder;
2. :mod:`.grouping` and :mod:`.splitting` cut the selection and held-out sides
   by group (``--selection-from``, ``--selection-fraction``, ``--group-by``)
   and write ``WORKDIR/splits.json``;
3. :mod:`.model` resolves ``--restore-file`` (or random initialisation) and
   checks it against the data's dictionary and length (before the splits);
4. :mod:`.materialize` writes the sides as fairseq data (``WORKDIR/data-<digest>``);
5. the schedule defaults to fairseq's recipe for the task
   (:data:`.paper.RECIPE`; multiple choice: :data:`.paper.MC_RECIPE`), the grid
   to the task's row of Table 7 and its neighbours (:mod:`.grids`).

A run's fingerprint holds the task, the splits digest (source data and every
side's indices), the model (weights digest and architecture flags), the
setting's flags, the fairseq flags after ``--``, the schedule and the precision.
"""

import logging
from pathlib import Path
from typing import Sequence

from fairseq_freelb.commands import CommandError
from fairseq_freelb.experiment import grids, grouping, model as models, paper, splitting
from fairseq_freelb.experiment.folder import read_folder
from fairseq_freelb.experiment.folder_command import train_command
from fairseq_freelb.experiment.materialize import materialize
from fairseq_freelb.experiment.protocol import Plan
from fairseq_freelb.experiment.runs import VANILLA, Schedule
from fairseq_freelb.multiseed.store import write_json_atomic

logger = logging.getLogger("fairseq_freelb.experiment")


def build(args, extra: Sequence[str], seeds, families, device: str, parallel: int) -> Plan:
    folder = read_folder(Path(args.data))
    if not 0.0 < args.selection_fraction < 1.0:
        raise CommandError(f"--selection-fraction {args.selection_fraction:g}: must be between 0 and 1")
    selection_from = args.selection_from or "train"
    model = models.resolve(args.restore_file, folder, extra)  # refused before anything is written
    kind, group_label = grouping.resolve(folder, args.group_by or "auto")
    keys = {split: grouping.keys(folder, split, kind) for split in folder.counts}
    sides = splitting.make_sides(keys, folder.dev_splits, selection_from, args.selection_fraction, args.split_seed)
    digest = splitting.splits_digest(folder.digest, sides)
    out: Path = args.workdir
    out.mkdir(parents=True, exist_ok=True)
    by_name = {side.name: side for side in sides}
    shared = ""
    if selection_from == "train" and kind != "none":
        common = grouping.shared_between(keys["train"], keys[folder.dev_splits[0]])
        if common:
            shared = (f" The official split itself puts {len(common)} {group_label} group(s) ({sum(common.values())} "
                      f"dev examples) in both train and dev; no choice made here can change that.")
            logger.info(shared.strip())
    write_json_atomic(out / "splits.json", splitting.record(
        sides, keys, data=str(folder.path.resolve()), task=folder.task, kind=folder.kind, data_digest=folder.digest,
        digest=digest, selection_from=selection_from,
        selection_fraction=args.selection_fraction if selection_from == "train" else 0.5,
        group_by=group_label, group_key=kind, split_seed=args.split_seed, unused_splits=folder.unused,
        counts=folder.counts), inline_lists=True)
    data_dir = materialize(folder, sides, digest, out)

    recipe = paper.RECIPE.get(folder.task, paper.MC_RECIPE) if folder.kind == "glue" else paper.MC_RECIPE
    pick = lambda value, default: default if value is None else value  # noqa: E731
    schedule = Schedule(pick(args.epochs, recipe.epochs), pick(args.batch_size, recipe.batch_size), pick(args.lr, recipe.lr))
    task_key = folder.task if folder.kind == "glue" else None
    grid = grids.grid(args.grid, task_key, folder.kind)
    settings = [VANILLA, *grid, *grids.baselines(families, grid[0], demo=False)]
    train_size = len(by_name["train"].indices)
    subsets = [splitting.SUBSET_OF_SIDE[side.name] for side in sides if side.name != "train"]
    amp = "bf16" if args.bf16 else "fp16"
    precision = amp if device == "cuda" else "fp32"

    def make_cmd(setting, seed, save_dir=None):
        return train_command(folder, data_dir, train_size, subsets, model.flags, setting, seed, schedule, device, amp,
                             extra, save_dir or out / "checkpoints" / setting.name)

    def fingerprint(setting):
        return {"task": folder.task, "data": digest, "model": model.fingerprint, "setting": list(setting.flags),
                "fairseq_flags": list(extra), "precision": precision, "metrics": list(folder.metrics),
                "schedule": {"epochs": schedule.epochs, "batch_size": schedule.batch_size, "lr": schedule.lr,
                             "warmup_fraction": schedule.warmup_fraction}}

    sizes = {side.name: len(side.indices) for side in sides}
    where = ("carved from train" if selection_from == "train"
             else f"half of {folder.dev_splits[0]}")
    heldout = (f"the whole dev set, {folder.dev_splits[0]}" if selection_from == "train"
               else f"the other half of {folder.dev_splits[0]}")
    mismatched = (f", plus {sizes['heldout_mismatched']} of {folder.dev_splits[1]} held out whole"
                  if "heldout_mismatched" in sizes else "")
    header = (
        f"{model.description} on {folder.task} ({folder.path}): {sizes['train']} training examples; selection side "
        f"{sizes['selection']} ({where}"
        + (f", {args.selection_fraction:g} of train" if selection_from == "train" else "")
        + f"), held-out side {sizes['heldout']} ({heldout}){mismatched}; grouped by {group_label} (split seed "
        f"{args.split_seed}; splits.json digest {digest}). {schedule.epochs} epochs, batch {schedule.batch_size}, "
        f"lr {schedule.lr}, {precision}, seeds {','.join(map(str, seeds))}"
        + (f", fairseq flags `{' '.join(extra)}`" if extra else "")
        + f"; {folder.metrics[0]} after the last epoch.{shared}"
    )
    reference = paper.table1_line(folder.task) if folder.kind == "glue" and selection_from == "train" else None
    return Plan(
        workdir=out, settings=settings, grid=[s.name for s in grid], seeds=seeds, metrics=folder.metrics,
        make_cmd=make_cmd, timing_cmd=make_cmd(VANILLA, 1, out / "timing"), fingerprint=fingerprint,
        train_size=train_size, valid_examples=sum(n for name, n in sizes.items() if name != "train"),
        schedule=schedule, device=device, parallel=parallel, header=header,
        plot_title=f"{folder.task}: {sizes['train']} train, {schedule.epochs} epochs, {len(seeds)} seeds",
        reference=reference,
    )

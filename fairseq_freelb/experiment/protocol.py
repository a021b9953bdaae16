"""The held-out protocol, whatever the task: run the grid over seeds (resuming), choose on selection, report held-out.

A :class:`Plan` says what to run (settings, seeds, the command of one run, the
fingerprint that identifies its result) and how to describe it; the demo's
task (:mod:`.rt_plan`) and any preprocessed folder (:mod:`.folder_plan`) each
build one. :func:`run_plan` then

1. reads ``WORKDIR/results.json`` (:class:`fairseq_freelb.multiseed.store.RunStore`)
   and keeps the runs whose fingerprint matches exactly; says in one line how
   many stored runs differ and in what (data, model, flags, ...);
2. times a few vanilla updates on the device and prints the estimated total;
3. runs the rest, ``--parallel`` at a time, storing each as it finishes;
4. applies the rule (:mod:`.selection`) and writes ``table.md`` and
   ``accuracy.png`` (the headline metric per epoch).
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from fairseq_freelb.experiment import execute, report, selection
from fairseq_freelb.experiment.runs import RunResult, Schedule, Setting, batches_per_epoch
from fairseq_freelb.multiseed.store import RunStore, write_text_atomic

logger = logging.getLogger("fairseq_freelb.experiment")


@dataclass
class Plan:
    workdir: Path
    settings: List[Setting]  # vanilla first, then the FreeLB grid, then baselines
    grid: List[str]  # the FreeLB settings the rule chooses among
    seeds: List[int]
    metrics: Tuple[str, ...]  # as logged by the criterion; the first is the headline
    make_cmd: Callable[[Setting, int], List[str]]
    timing_cmd: List[str]  # a vanilla run; a few updates of it are timed
    fingerprint: Callable[[Setting], dict]
    train_size: int
    valid_examples: int  # scored after every epoch (all validation sides)
    schedule: Schedule
    device: str
    parallel: int
    header: str  # what was run, for table.md
    plot_title: str
    reference: Optional[str] = None  # the paper's figures, marked as theirs
    flags_text: Dict[str, str] = field(default_factory=dict)


class _Store:
    """Adapts :class:`RunStore` to :func:`execute.run_all`'s ``add(result)``."""

    def __init__(self, store: RunStore, plan: Plan):
        self.store, self.plan = store, plan
        self.by_name = {s.name: s for s in plan.settings}

    def add(self, result: RunResult) -> None:
        self.store.add(result.setting, result.seed, self.plan.fingerprint(self.by_name[result.setting]),
                       result.to_json())


def estimate(plan: Plan, pending: Sequence[Tuple[Setting, int]], threads: int) -> None:
    """Print the estimated total from a few timed vanilla updates on this device, before any run starts."""
    per_update, startup = execute.time_command(plan.timing_cmd, plan.workdir / "logs" / "timing.log", threads)
    info = {"sizes": {"train": plan.train_size}}
    seconds = execute.estimate_seconds(pending, info, plan.schedule, per_update, startup, plan.parallel,
                                       plan.valid_examples)
    serial = execute.estimate_seconds(pending, info, plan.schedule, per_update, startup, 1, plan.valid_examples)
    note = ""
    if plan.device == "cuda" and plan.parallel > 1 and len(pending) > 1:
        note = (f"; the {min(plan.parallel, len(pending))} processes share the GPU, so expect between this and "
                f"{serial / 60:.1f} min, the serial total")
    updates = sum(plan.schedule.epochs * batches_per_epoch(plan.train_size, plan.schedule.batch_size)
                  * s.updates_per_batch for s, _ in pending)
    print(f"estimated total: {seconds / 60:.1f} min for {len(pending)} runs ({updates} updates; timed on "
          f"{plan.device}: {per_update:.3f} s per vanilla update, {startup:.0f} s start-up per process, on this "
          f"machine now{note})", flush=True)


def run_plan(plan: Plan, command: str) -> str:
    """Run, choose, report; returns the table (also written to ``table.md``)."""
    store = RunStore(plan.workdir / "results.json")
    wanted = [(s.name, seed, plan.fingerprint(s)) for s in plan.settings for seed in plan.seeds]
    stale = store.explain_stale(wanted)
    if stale:
        print(stale, flush=True)
    pending = [(s, seed) for seed in plan.seeds for s in plan.settings
               if store.find(s.name, seed, plan.fingerprint(s)) is None]
    threads = execute.threads_per_process(plan.device, plan.parallel)
    logger.info(f"{len(wanted) - len(pending)} runs already in {store.path}; {len(pending)} to go on {plan.device} "
                f"({plan.parallel} at a time, {threads} torch threads each)")
    hardware_at_start = report.hardware(plan.device)
    if pending:
        estimate(plan, pending, threads)
        execute.run_all(pending, _Store(store, plan), plan.make_cmd, plan.workdir / "logs", plan.parallel, threads,
                        metrics=plan.metrics)

    runs = [RunResult(**store.find(name, seed, fp)) for name, seed, fp in wanted]
    summary = selection.summarise(runs, [s.name for s in plan.settings])
    chosen = selection.select_freelb(summary, plan.grid)
    paired = selection.paired_difference(summary[chosen], summary["vanilla"])
    timing = {name: sum(r.seconds_per_update for r in runs if r.setting == name) / len(summary[name].seeds)
              for name in summary}
    header = (f"{plan.header}\n\nCommand: `{command}`.\n\nHardware: {hardware_at_start} at the start; "
              f"{report.hardware(plan.device).rsplit(', ', 1)[-1]} at the end. fairseq-train processes at a time: "
              f"{plan.parallel}, with {threads} torch thread(s) each.\n\nVersions: {report.versions()}.")
    flags = plan.flags_text or {s.name: " ".join(s.flags) for s in plan.settings}
    table = report.markdown(header, summary, flags, chosen, paired, timing, plan.metrics[0], plan.reference)
    write_text_atomic(plan.workdir / "table.md", table)
    report.plot(runs, chosen, plan.workdir / "accuracy.png", plan.plot_title, plan.metrics[0])
    print("\n" + table)
    print(f"wrote {plan.workdir / 'table.md'}, {plan.workdir / 'accuracy.png'}, {store.path}, "
          f"{plan.workdir / 'splits.json'}")
    return table

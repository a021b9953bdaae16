"""What the experiment writes for a reader: ``table.md`` (with command, hardware, versions, rule) and the PNG."""

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

from fairseq_freelb.experiment.selection import RULE, PairedDifference, SettingSummary, mean_std, per_epoch_band


def hardware(device: str) -> str:
    """The CPU (or GPU), core count and load: the timings depend on all of them."""
    if device == "cuda":
        import torch

        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}), {os.cpu_count()} CPU cores"
    model = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{model}, {os.cpu_count()} cores{load}"


def versions() -> str:
    import fairseq
    import torch

    commit = "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip() or commit
    except (OSError, subprocess.SubprocessError):
        pass
    return (f"python {platform.python_version()}, torch {torch.__version__}, fairseq {fairseq.__version__}, "
            f"fairseq_freelb at commit {commit}")


def _pm(pair: tuple) -> str:
    return f"{pair[0]:.2f} ± {pair[1]:.2f}"


SIDE_LABEL = {"heldout": "held-out", "heldout_mismatched": "held-out mismatched", "selection": "selection"}


def markdown(header: str, summary: Dict[str, SettingSummary], flags: Dict[str, str], chosen: str,
             paired: PairedDifference, timing: Dict[str, float], metric: str = "accuracy",
             reference: Optional[str] = None) -> str:
    """``table.md``: the header, the rule, one row per setting, the selected setting and the paired difference."""
    # Every other (side, metric) the runs logged, as extra held-out columns (MNLI mismatched, F1, Spearman, ...).
    extra = [key for key in next(iter(summary.values())).other
             if key[0] != "selection" and key != ("heldout", metric)]
    head = (["setting", "flags", "seeds", f"selection {metric} (mean ± std)", f"held-out {metric} (mean ± std)",
             "held-out per seed"] + [f"{SIDE_LABEL.get(side, side)} {m} (mean ± std)" for side, m in extra]
            + ["s / update"])
    lines = [header, "", RULE, "", "| " + " | ".join(head) + " |",
             "| --- | --- | --- | ---: | ---: | --- |" + " ---: |" * (len(extra) + 1)]
    for name, s in summary.items():
        mark = " **(selected)**" if name == chosen else ""
        cells = [f"{name}{mark}", f"`{flags[name]}`", ",".join(map(str, s.seeds)), _pm(s.selection_mean_std),
                 _pm(s.heldout_mean_std), ", ".join(f"{a:.2f}" for a in s.heldout)]
        cells += [_pm(mean_std(s.other[key])) if key in s.other else "" for key in extra]
        cells.append(f"{timing[name]:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    vanilla = summary["vanilla"]
    lines += [
        "",
        f"Selected FreeLB setting (by selection-side mean {metric}): **{chosen}**.",
        f"Held-out {metric}: vanilla {_pm(vanilla.heldout_mean_std)}, {chosen} {_pm(summary[chosen].heldout_mean_std)} "
        f"(mean ± std over seeds {','.join(map(str, vanilla.seeds))}).",
        "Paired held-out difference FreeLB − vanilla per seed: "
        + ", ".join(f"seed {s}: {d:+.2f}" for s, d in zip(paired.seeds, paired.differences))
        + f"; mean {paired.mean:+.2f}, std {paired.std:.2f}, 95 % interval {paired.interval_text} points; "
        f"FreeLB wins on {paired.wins} of {len(paired.seeds)} seeds"
        + (f" ({paired.ties} tied)" if paired.ties else "") + ".",
    ]
    if reference:
        lines += ["", reference]
    return "\n".join(lines) + "\n"


def plot(runs: Sequence, chosen: str, path: Path, title: str, metric: str = "accuracy") -> None:
    """The headline metric per epoch, mean over seeds with a ±std band: vanilla against the selected FreeLB, both sides."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), sharey=True)
    for ax, split, label in zip(axes, ("selection", "heldout"), ("selection side", "held-out side")):
        for setting, color in (("vanilla", "tab:blue"), (chosen, "tab:red")):
            epochs, means, stds = per_epoch_band(runs, setting, split)
            ax.plot(epochs, means, marker="o", color=color, label=setting)
            ax.fill_between(epochs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                            color=color, alpha=0.2)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{metric} (%), mean ± std over seeds")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def command_line(argv: Optional[Sequence[str]]) -> str:
    return "python -m fairseq_freelb.experiment " + " ".join(argv if argv is not None else sys.argv[1:])

"""What the experiment writes for a reader: ``table.md`` (with command, hardware, versions, rule) and the PNG."""

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

from fairseq_freelb.experiment.selection import RULE, PairedDifference, SettingSummary, per_epoch_band


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


def markdown(header: str, summary: Dict[str, SettingSummary], flags: Dict[str, str], chosen: str,
             paired: PairedDifference, timing: Dict[str, float]) -> str:
    lines = [header, "", RULE, "",
             "| setting | flags | seeds | selection (mean ± std) | held-out (mean ± std) | held-out per seed | s / update |",
             "| --- | --- | --- | ---: | ---: | --- | ---: |"]
    for name, s in summary.items():
        mark = " **(selected)**" if name == chosen else ""
        lines.append(f"| {name}{mark} | `{flags[name]}` | {','.join(map(str, s.seeds))} | {_pm(s.selection_mean_std)} "
                     f"| {_pm(s.heldout_mean_std)} | {', '.join(f'{a:.2f}' for a in s.heldout)} | {timing[name]:.3f} |")
    vanilla = summary["vanilla"]
    lines += [
        "",
        f"Selected FreeLB setting (by selection-half mean): **{chosen}**.",
        f"Held-out accuracy: vanilla {_pm(vanilla.heldout_mean_std)}, {chosen} {_pm(summary[chosen].heldout_mean_std)} "
        f"(mean ± std over seeds {','.join(map(str, vanilla.seeds))}).",
        "Paired held-out difference FreeLB − vanilla per seed: "
        + ", ".join(f"seed {s}: {d:+.2f}" for s, d in zip(paired.seeds, paired.differences))
        + f"; mean {paired.mean:+.2f}, std {paired.std:.2f} points.",
    ]
    return "\n".join(lines) + "\n"


def plot(runs: Sequence, chosen: str, path: Path, title: str) -> None:
    """Accuracy per epoch, mean over seeds with a ±std band: vanilla against the selected FreeLB, both splits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), sharey=True)
    for ax, split, label in zip(axes, ("selection", "heldout"), ("selection half", "held-out half")):
        for setting, color in (("vanilla", "tab:blue"), (chosen, "tab:red")):
            epochs, means, stds = per_epoch_band(runs, setting, split)
            ax.plot(epochs, means, marker="o", color=color, label=setting)
            ax.fill_between(epochs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                            color=color, alpha=0.2)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%), mean ± std over seeds")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    """Write aside, then move into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def command_line(argv: Optional[Sequence[str]]) -> str:
    return "python -m fairseq_freelb.experiment " + " ".join(argv if argv is not None else sys.argv[1:])

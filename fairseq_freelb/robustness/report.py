"""The robustness command's outputs: samples.csv (one row per model and sample), summary.md (Tables 5 and 8
of the paper), delta_loss.png (the distribution of DeltaL_max per model).

The three files are written under temporary names in --output-dir and moved
into place together only once all three are complete, so a failed run never
leaves a mix of new and old outputs.
"""

import csv
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from fairseq_freelb.robustness.arguments import RobustnessConfig, RobustnessError


@dataclass
class SampleRecord:
    model: str
    sample_id: int
    n_loss: float
    x_norm: float
    eps: Optional[float] = None
    max_inc: Optional[float] = None
    restart_spread: Optional[float] = None
    correct_after_attack: Optional[bool] = None
    eps_r: Optional[float] = None
    max_inc_r: Optional[float] = None
    restart_spread_r: Optional[float] = None
    correct_after_attack_r: Optional[bool] = None


CSV_COLUMNS = [f.name for f in dataclasses.fields(SampleRecord)]


def write_csv(records: Sequence[SampleRecord], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for r in records:
            row = dataclasses.asdict(r)
            writer.writerow({k: ("" if v is None else (repr(v) if isinstance(v, float) else v)) for k, v in row.items()})


def _values(records, name, column) -> np.ndarray:
    return np.array([getattr(r, column) for r in records if r.model == name and getattr(r, column) is not None], dtype=float)


def _fmt(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.4g}"


def summary_markdown(result: Dict, cfg: RobustnessConfig) -> str:
    """Tables 5 and 8 of the paper: median and standard deviation of DeltaL_max per model, with N-Loss."""
    records, names = result["records"], result["names"]
    columns = []
    if cfg.eps_mode in ("ratio", "both"):
        columns.append(("Max Inc", "max_inc"))
    if cfg.eps_mode in ("search", "both"):
        columns.append(("Max Inc (R)", "max_inc_r"))
    columns.append(("N-Loss", "n_loss"))
    lines = [
        f"Samples classified correctly by all {len(names)} models: {result['n_selected']} "
        f"of the {result['n_evaluated']} evaluated in split `{cfg.split}`.",
        "",
        f"Attack: {cfg.steps} PGD steps of size {cfg.step_size:g} ({cfg.norm} ball), {cfg.restarts} restart(s), seed {cfg.seed}.",
    ]
    if cfg.eps_mode in ("ratio", "both"):
        lines.append(f"Max Inc: eps = {cfg.eps_ratio:g} * ||X||_F per sample.")
    if result.get("reference"):
        lines.append(
            f"Max Inc (R): eps searched per sample from {result['search_start']:.4g} down in {cfg.search_levels} "
            f"linear levels until {result['reference']} classifies the sample correctly after the attack."
        )
    lines.append("Losses in nats (the criterion's per-sample loss).")
    for title, stat in (("Median (Table 5)", np.median), ("Standard deviation (Table 8)", np.std)):
        lines += ["", f"### {title}", "", "| Model | " + " | ".join(c for c, _ in columns) + " |"]
        lines.append("|---|" + "---:|" * len(columns))
        for name in names:
            cells = []
            for _, col in columns:
                v = _values(records, name, col)
                cells.append(_fmt(float(stat(v))) if v.size else "n/a")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    spread_cols = [(c, s) for c, s in (("Max Inc", "restart_spread"), ("Max Inc (R)", "restart_spread_r")) if any(c == x for x, _ in columns)]
    lines += ["", f"### Convergence of the restarts (max - min over {cfg.restarts} restart(s) of the attacked loss)", ""]
    lines.append("| Model | " + " | ".join(f"{c}: median spread | {c}: max spread | {c}: flipped" for c, _ in spread_cols) + " |")
    lines.append("|---|" + "---:|---:|---:|" * len(spread_cols))
    for name in names:
        cells = []
        for c, col in spread_cols:
            v = _values(records, name, col)
            flip_col = "correct_after_attack" if col == "restart_spread" else "correct_after_attack_r"
            flips = sum(1 for r in records if r.model == name and getattr(r, flip_col) is False)
            if cfg.restarts < 2:
                cells += ["n/a (1 restart)", "n/a (1 restart)"]
            else:
                cells += [_fmt(float(np.median(v))) if v.size else "n/a", _fmt(float(v.max())) if v.size else "n/a"]
            cells.append(str(flips))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_distribution(result: Dict, cfg: RobustnessConfig, path: Path) -> None:
    """Box plot (with the samples as points) of DeltaL_max per model, one panel per eps choice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records, names = result["records"], result["names"]
    panels = []
    if cfg.eps_mode in ("ratio", "both"):
        panels.append((f"Max Inc (eps = {cfg.eps_ratio:g}·||X||_F)", "max_inc"))
    if cfg.eps_mode in ("search", "both"):
        panels.append((f"Max Inc (R) (reference {result.get('reference')})", "max_inc_r"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 + 2 * len(names) * len(panels), 4), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, (title, col) in zip(axes[0], panels):
        data = [_values(records, name, col) for name in names]
        ax.boxplot([d if d.size else np.array([np.nan]) for d in data], showfliers=False)
        ax.set_xticks(range(1, len(names) + 1), names)
        for k, d in enumerate(data):
            ax.scatter(1 + k + rng.uniform(-0.15, 0.15, d.size), d, s=6, alpha=0.5)
        ax.set_title(title)
        ax.set_ylabel("DeltaL_max (nats)")
    fig.suptitle(f"{result['n_selected']} samples of split {cfg.split}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


OUTPUT_FILES = {"csv": "samples.csv", "summary": "summary.md", "plot": "delta_loss.png"}


def check_output_dir(path: str) -> None:
    """Refuse an --output-dir that cannot hold the outputs, before any work is done."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise RobustnessError(f"--output-dir: {path} exists and is not a folder")


def write_outputs(result: Dict, cfg: RobustnessConfig) -> Dict[str, Path]:
    """Write the three outputs aside (temporary names in --output-dir), then move them into place together."""
    check_output_dir(cfg.output_dir)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / name for key, name in OUTPUT_FILES.items()}
    # The temporary names keep the extension: matplotlib picks the image format from it.
    aside = {key: out / f".{path.stem}.{os.getpid()}.tmp{path.suffix}" for key, path in paths.items()}
    try:
        write_csv(result["records"], aside["csv"])
        aside["summary"].write_text(summary_markdown(result, cfg))
        plot_distribution(result, cfg, aside["plot"])
        for key, path in paths.items():
            os.replace(aside[key], path)
    finally:
        for tmp in aside.values():
            if tmp.exists():
                tmp.unlink()
    return paths

"""The benchmark: its --quick run works end to end, and its memory meter measures what it claims.

Nothing here asserts anything about timing: the machine is shared.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench import run as bench_run  # noqa: E402
from bench.memory import peak_memory  # noqa: E402


def test_quick_run_never_writes_the_recorded_results_and_the_table_says_what_no_means():
    assert bench_run.parse_args([]).out == os.path.join("bench", "results")
    assert bench_run.parse_args(["--quick"]).out == os.path.join("out", "bench-quick")
    assert bench_run.parse_args(["--quick", "--out", "x"]).out == "x"
    checks = [dict(met=True), dict(met=False)]
    quick, full = bench_run.targets_note(checks, quick=True), bench_run.targets_note(checks, quick=False)
    for note in (quick, full):
        assert "`NO` when it is above it" in note and "not a failed run" in note
    assert "--quick smoke run (1 NO)" in quick and "say nothing about the method" in quick
    assert "Missed targets and their cause" in full
    assert bench_run.targets_note([dict(met=True)], quick=False).endswith("Every target was met.")


def test_peak_tensor_memory_is_the_high_water_mark_of_live_tensors():
    mib = 2**20

    def update():
        a = torch.ones(mib // 4)  # 1 MiB of float32
        b = torch.ones(2 * mib // 4)  # live together with a: 3 MiB
        del a, b
        c = torch.ones(2 * mib // 4)  # 2 MiB alone: below the mark
        del c

    peak = peak_memory(update, torch.device("cpu"))["peak_tensor_bytes"]
    assert 3 * mib <= peak < 3 * mib + 64 * 1024


@pytest.mark.slow
def test_quick_benchmark_writes_table_json_and_plot(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())

    methods = {row["method"] for row in result["rows"]}
    assert methods == {"none", "none --update-freq 2", "freelb-2", "pgd-2", "freeat-2 per minibatch",
                       "freeat-2 per replay", "yopo-2-2", "hf trainer: none", "hf trainer: freelb-2",
                       "hf plain loop: none", "hf official-style loop: freelb-2"}
    floors = {row["method"]: row["floor_vanilla_updates"] for row in result["rows"]}
    assert floors["hf trainer: freelb-2"] == floors["hf official-style loop: freelb-2"] == 2
    assert floors["freelb-2"] == 2 and floors["pgd-2"] == 3 and floors["freeat-2 per replay"] == 1
    for row in result["rows"]:
        assert row["time_s"] > 0 and row["sentences_per_s"] > 0
        assert row["peak_tensor_bytes"] > 0 and row["persistent_bytes"] > 0

    # The 2-process gloo run: every gradient all-reduced exactly once per update, for every method.
    dist = result["distributed"]
    assert set(dist) == {"none", "freelb-2", "pgd-2", "freeat-2", "yopo-2-2"}
    for name, d in dist.items():
        assert d["allreduce_rounds_per_update"] == [1.0], name

    table = (out / "results.md").read_text()
    assert "| fp32 | 32 | freelb-2 | 2 |" in table and "## Targets" in table
    assert "| fp32 | 32 | hf trainer: freelb-2 | 2 |" in table and "| fp32 | 32 | hf official-style loop: freelb-2 | 2 |" in table
    assert "met: `yes` when the measured value is within the target" in table
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

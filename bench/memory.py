"""Peak memory of one measured update, on CPU and on CUDA.

CPU has no allocator peak counter, so two figures are taken:

* ``peak_tensor_bytes``: the high-water mark of live tensor memory during
  the update, above what was live when it started (parameters, optimizer
  state). It replays the allocation and free events that
  ``torch.profiler`` records with ``profile_memory=True``. It is exact and
  deterministic, and it is what the "peak memory" columns report: the
  activations kept for backward, the gradients, delta, and whatever the hook
  keeps alive between passes.
* ``peak_rss_growth_bytes``: the process's resident-set high-water mark
  (``VmHWM``, reset through ``/proc/self/clear_refs``) above the resident set
  at the start, after ``malloc_trim`` has handed cached free memory back to the
  OS, measured in a second run of the update without the profiler. It
  includes what the allocator wastes, but it is noisy (glibc caching, page
  granularity), so it is reported beside the first figure, not instead of it.

On CUDA ``torch.cuda.max_memory_allocated`` gives the first figure directly.
"""

import ctypes
import os
from typing import Callable, Optional

import torch


def _profiled_peak(fn: Callable[[], None], device: torch.device) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    wanted = torch._C._autograd.DeviceType.CPU
    events = [
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == wanted
    ]
    events.sort()
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def _read_status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _trim_malloc() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_growth(fn: Callable[[], None]) -> Optional[int]:
    _trim_malloc()
    if not _reset_hwm():
        return None
    start = _read_status_kib("VmRSS")
    fn()
    peak = _read_status_kib("VmHWM")
    if start is None or peak is None:
        return None
    return max(0, peak - start) * 1024


def peak_memory(fn: Callable[[], None], device: torch.device, prepare: Optional[Callable[[], None]] = None) -> dict:
    """Run ``fn`` (one update) and return its peak memory figures in bytes.

    ``prepare`` runs before each measurement starts; the benchmark passes the
    optimizer's ``zero_grad``, so the previous update's gradients are freed
    outside the measured window. (The profiler reports the free of a block it
    saw allocated in an earlier profiling session but not of one allocated
    while it was off, so leaving them to the update's own ``zero_grad`` would
    make the figure depend on what ran before.)
    """
    prepare = prepare or (lambda: None)
    prepare()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return {"peak_tensor_bytes": torch.cuda.max_memory_allocated(device) - start, "start_bytes": start}
    out = {"peak_tensor_bytes": _profiled_peak(fn, device)}
    if os.path.exists("/proc/self/clear_refs"):
        prepare()
        out["peak_rss_growth_bytes"] = rss_growth(fn)
    return out

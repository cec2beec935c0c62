"""Peak memory of a block of work (a training run), measured without importing anything heavy."""

from __future__ import annotations

import gc
import re
import sys
import threading
from pathlib import Path
from typing import Any


def _rss_kb(key: str) -> int | None:
    try:
        m = re.search(rf"^{key}:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _torch_if_loaded() -> Any:
    """torch when something already imported it (measuring memory should not import it)."""
    return sys.modules.get("torch")


class PeakMemory:
    """Peak resident memory of this process over a block (and peak CUDA memory when on a GPU).

    Linux: the kernel's high-water mark (VmHWM) is reset on entry by writing 5 to
    /proc/self/clear_refs, so the figure is this block's own peak, not the process's lifetime
    peak. Where that is refused, a thread samples VmRSS every 20 ms instead (can miss short spikes).
    """

    def __init__(self) -> None:
        self.before_mb: float | None = None
        self.peak_mb: float | None = None
        self.cuda_peak_mb: float | None = None
        self.method = "none"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampled = 0

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        rss = _rss_kb("VmRSS")
        self.before_mb = rss / 1024 if rss is not None else None
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.method = "VmHWM"
        except OSError:
            if rss is not None:
                self.method = "sampled"
                self._thread = threading.Thread(target=self._sample, daemon=True)
                self._thread.start()
        torch = _torch_if_loaded()
        if torch is not None and torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._sampled = max(self._sampled, _rss_kb("VmRSS") or 0)

    def __exit__(self, *exc: Any) -> None:
        if self.method == "VmHWM":
            hwm = _rss_kb("VmHWM")
            self.peak_mb = hwm / 1024 if hwm is not None else None
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self._sampled, _rss_kb("VmRSS") or 0) / 1024
        torch = _torch_if_loaded()  # imported inside the block: its CUDA peak is the block's
        if torch is not None and torch.cuda.is_available():
            self.cuda_peak_mb = torch.cuda.max_memory_allocated() / 2**20

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"peak_rss_mb": round(self.peak_mb, 1) if self.peak_mb is not None else None,
                               "rss_before_mb": round(self.before_mb, 1) if self.before_mb is not None else None,
                               "peak_rss_method": self.method}
        if self.peak_mb is not None and self.before_mb is not None:
            out["peak_rss_delta_mb"] = round(self.peak_mb - self.before_mb, 1)
        if self.cuda_peak_mb is not None:
            out["peak_cuda_mb"] = round(self.cuda_peak_mb, 1)
        return out

"""System metrics of a trial, sampled by the driver-side callback at each reported result.

MLflow's own system-metrics logging samples the process that holds a *fluent* run; our runs
are written by the driver for trials that live in Ray worker processes, so it would
measure the driver. Instead, at every result the callback samples:

* the trial's own worker process — Ray puts its ``pid`` and ``hostname`` in every result;
  when the trial runs on the driver's host: resident memory, CPU use since the previous
  result (CPU-seconds / wall-seconds, 100 = one core busy), threads
  (``system/trial_*``);
* the node it runs on — CPU and memory use, under MLflow's own system-metric names
  (``system/cpu_utilization_percentage``, ``system/system_memory_usage_megabytes``,
  ``system/system_memory_usage_percentage``) so the UI groups them the same way;
* GPUs, when NVML is importable (``pynvml`` / ``nvidia-ml-py``) and finds devices:
  ``system/gpu_<i>_utilization_percentage``, ``system/gpu_<i>_memory_usage_megabytes`` and
  the trial process's own ``system/trial_gpu_memory_megabytes``.

A trial on another node gets none of these (the driver cannot see its processes); the Ray
dashboard shows that node's usage.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from typing import Any

import psutil

__all__ = ["SystemSampler"]


class SystemSampler:
    """Per-trial process and node metrics, from the driver; never raises."""

    def __init__(self, hostname: str | None = None) -> None:
        self.hostname = hostname or socket.gethostname()
        self._last: dict[int, tuple[float, float]] = {}  # pid -> (cpu seconds, wall time)
        self._procs: dict[int, psutil.Process] = {}
        self._nvml: Any = None
        self._nvml_tried = False
        psutil.cpu_percent(interval=None)  # prime: the next call measures from here

    def is_local(self, result: Mapping[str, Any]) -> bool:
        host = result.get("hostname")
        return host is None or str(host) == self.hostname

    def sample(self, result: Mapping[str, Any]) -> dict[str, float]:
        if not self.is_local(result):
            return {}
        out: dict[str, float] = {}
        try:
            vm = psutil.virtual_memory()
            out["system/cpu_utilization_percentage"] = float(psutil.cpu_percent(interval=None))
            out["system/system_memory_usage_megabytes"] = (vm.total - vm.available) / 1e6
            out["system/system_memory_usage_percentage"] = float(vm.percent)
        except Exception:  # a sampling failure must never cost a metric of the trial itself
            pass
        pid = result.get("pid")
        if isinstance(pid, int) and pid > 0:
            out.update(self._process(pid))
        out.update(self._gpus(pid if isinstance(pid, int) else None))
        return out

    def _process(self, pid: int) -> dict[str, float]:
        try:
            proc = self._procs.get(pid)
            if proc is None or not proc.is_running():
                proc = self._procs[pid] = psutil.Process(pid)
            with proc.oneshot():
                mem = proc.memory_info()
                cpu = proc.cpu_times()
                threads = proc.num_threads()
        except (psutil.Error, OSError):
            self._procs.pop(pid, None)
            self._last.pop(pid, None)
            return {}
        out = {"system/trial_process_rss_megabytes": mem.rss / 1e6, "system/trial_process_threads": float(threads)}
        used, now = cpu.user + cpu.system, time.monotonic()
        last = self._last.get(pid)
        self._last[pid] = (used, now)
        if last is not None and now > last[1]:
            out["system/trial_process_cpu_percentage"] = 100.0 * max(0.0, used - last[0]) / (now - last[1])
        return out

    def _gpus(self, pid: int | None) -> dict[str, float]:
        if not self._nvml_tried:
            self._nvml_tried = True
            try:
                import pynvml  # type: ignore[import-not-found]

                pynvml.nvmlInit()
                self._nvml = pynvml
            except Exception:
                self._nvml = None
        nv = self._nvml
        if nv is None:
            return {}
        out: dict[str, float] = {}
        try:
            own = 0.0
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                out[f"system/gpu_{i}_utilization_percentage"] = float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
                out[f"system/gpu_{i}_memory_usage_megabytes"] = nv.nvmlDeviceGetMemoryInfo(h).used / 1e6
                for p in nv.nvmlDeviceGetComputeRunningProcesses(h):
                    if pid is not None and p.pid == pid and p.usedGpuMemory:
                        own += p.usedGpuMemory / 1e6
            if pid is not None:
                out["system/trial_gpu_memory_megabytes"] = own
        except Exception:
            return out
        return out

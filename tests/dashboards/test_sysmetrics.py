"""System metrics sampled by the driver: the trial's process, its node, GPUs through NVML."""

from __future__ import annotations

import os
import socket
import sys
import time
import types
from typing import Any

import pytest

from xstilts.dashboards.sysmetrics import SystemSampler


def test_samples_the_trial_process_and_node_on_this_host() -> None:
    s = SystemSampler()
    result = {"pid": os.getpid(), "hostname": socket.gethostname()}
    first = s.sample(result)
    assert first["system/trial_process_rss_megabytes"] > 10
    assert first["system/trial_process_threads"] >= 1
    assert "system/trial_process_cpu_percentage" not in first  # needs two samples
    assert 0 < first["system/system_memory_usage_percentage"] <= 100
    t0 = time.process_time()
    while time.process_time() - t0 < 0.3:  # keep one core busy
        pass
    second = s.sample(result)
    assert 40 <= second["system/trial_process_cpu_percentage"] <= 100 * (os.cpu_count() or 1)
    assert 0 <= second["system/cpu_utilization_percentage"] <= 100


def test_trials_on_other_hosts_and_gone_processes() -> None:
    s = SystemSampler()
    assert s.sample({"pid": os.getpid(), "hostname": "some-other-node"}) == {}
    gone = s.sample({"pid": 2**22 + 12345, "hostname": socket.gethostname()})
    assert "system/trial_process_rss_megabytes" not in gone and "system/system_memory_usage_megabytes" in gone


def test_gpu_metrics_through_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    pid = os.getpid()
    ns = types.SimpleNamespace
    fake: Any = types.ModuleType("pynvml")
    fake.nvmlInit = lambda: None
    fake.nvmlDeviceGetCount = lambda: 2
    fake.nvmlDeviceGetHandleByIndex = lambda i: i
    fake.nvmlDeviceGetUtilizationRates = lambda h: ns(gpu=[55, 0][h])
    fake.nvmlDeviceGetMemoryInfo = lambda h: ns(used=[8e9, 1e9][h])
    fake.nvmlDeviceGetComputeRunningProcesses = lambda h: [ns(pid=pid, usedGpuMemory=3e9), ns(pid=1, usedGpuMemory=5e9)] \
        if h == 0 else []
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    m = SystemSampler().sample({"pid": pid, "hostname": socket.gethostname()})
    assert m["system/gpu_0_utilization_percentage"] == 55 and m["system/gpu_1_utilization_percentage"] == 0
    assert m["system/gpu_0_memory_usage_megabytes"] == pytest.approx(8000)
    assert m["system/trial_gpu_memory_megabytes"] == pytest.approx(3000)

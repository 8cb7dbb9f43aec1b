"""``xstilts status`` while a search runs: the tracking store plus Ray's State API (a real
local Ray cluster, in a subprocess so its workers and environment stay out of pytest)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


_LIVE_SCRIPT = r'''
import io, os, sys
import ray
from xstilts.dashboards.mlflow_logging import start_search_run
from xstilts.dashboards.status import print_status
from xstilts.trainer.ports import free_port

uri = sys.argv[1]
start_search_run(uri, "live", "live-1", {"trials": 4})  # a search still running
ctx = ray.init(num_cpus=1, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=free_port(),
               log_to_driver=False)
try:
    @ray.remote(num_cpus=0)
    class xstilts_trial:  # Tune names a function trainable's actor class after the function
        def pid(self):
            return os.getpid()

    actors = [xstilts_trial.remote() for _ in range(2)]
    pids = sorted(ray.get([a.pid.remote() for a in actors]))
    os.environ["RAY_ADDRESS"] = ctx.address_info["gcs_address"]  # this cluster, not another one on the host
    buf = io.StringIO()
    code = print_status("live-1", tracking_uri=uri, out=buf)
    print("PIDS", *pids)
    print(buf.getvalue())
    sys.exit(code)
finally:
    ray.shutdown()
'''


def test_status_adds_what_rays_state_api_sees_while_a_search_runs(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", _LIVE_SCRIPT, f"sqlite:///{tmp_path / 'live.db'}"],
                       capture_output=True, text=True, timeout=180, cwd=tmp_path,
                       env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    pids = next(x for x in r.stdout.splitlines() if x.startswith("PIDS")).split()[1:]
    assert "search live-1 (experiment 'live'): running" in r.stdout
    assert "trials: 0 running, 0 completed, 0 pruned, 0 failed (0 of 4 planned)" in r.stdout
    assert f"2 trial actor(s) alive (pids {', '.join(pids)})" in r.stdout

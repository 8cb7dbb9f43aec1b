"""A real two-node Ray cluster on this machine (``ray start --head`` + ``ray start --address``,
token auth): ``ray job submit --working-dir . -- xstilts search ...`` runs a search whose trials
land on both nodes, while only the driver writes the local SQLite tracking store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.search.helpers import children, result_lines, trial_states, write_space
from xstilts.search.cluster import LocalCluster

pytestmark = pytest.mark.slow


@pytest.mark.heavy
def test_job_submit_runs_trials_on_both_nodes(tiny_home: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"  # what a user submits: a folder with their space file
    project.mkdir()
    write_space(project, "cluster", search={"max_concurrent": 2, "cpus_per_trial": 1})
    storage = tmp_path / "ray_results"
    uri = f"sqlite:///{tmp_path / 'track.db'}"
    with LocalCluster(nodes=2, cpus_per_node=1) as cluster:
        nodes = {n["node_id"] for n in cluster.alive_nodes()}
        assert len(nodes) == 2
        r = cluster.job_submit(project, ["xstilts", "search", "cluster.yaml", "--trials", "2", "--tracking-uri", uri,
                                         "--storage", str(storage)],
                               runtime_env={"env_vars": {"XSTILTS_HOME": str(tiny_home)}})
        assert r.returncode == 0, (r.stdout[-4000:], r.stderr[-3000:])
        assert "succeeded" in r.stdout.lower(), r.stdout[-3000:]
        assert "only this driver writes MLflow" in r.stdout  # the multi-node tracking policy, announced

    run_dir = next(storage.glob("cluster-*"))
    states = trial_states(run_dir)
    assert len(states) == 2 and all(s["status"] == "TERMINATED" for s in states.values())
    used = set()
    for s in states.values():
        lines = result_lines(run_dir, s["dirname"])
        assert lines, s
        used |= {line["ray/node_id"] for line in lines}
    assert used == nodes  # one trial on each node

    parent, kids = children(uri, "cluster")  # the driver alone wrote every trial into SQLite
    assert parent.info.status == "FINISHED" and parent.data.params["ray_nodes"] == "2"
    assert parent.data.tags["ray.nodes_used"] == "2"
    assert len(kids) == 2 and all(k.data.tags["xstilts.status"] in {"completed", "pruned"} for k in kids)
    assert all("zero_shot/avg" in k.data.metrics for k in kids)
    assert json.loads((run_dir / "xstilts_search.json").read_text())["tracking_uri"] == uri

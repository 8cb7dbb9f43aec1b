"""The PBT winner's lineage as a replayable ``stages`` schedule, written beside the search's results.

    pbt_policy_<trial>.txt ─pbt_lineage─► (initial config, [(iteration, new config), ...])
        ─lineage_stages─► stages over the intermediate steps ─stages_yaml─► pbt_best_schedule.yaml

``xstilts train pbt_best_schedule.yaml`` replays the mixture the winning trial actually trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xstilts.spaces import SearchSpec, to_trial_config
from xstilts.trainer.config import TrialConfig

from .schedulers import lineage_stages, pbt_lineage, stages_yaml

__all__ = ["export_pbt_schedule", "PBT_SCHEDULE_FILE"]

PBT_SCHEDULE_FILE = "pbt_best_schedule.yaml"  # in the Ray run folder


def export_pbt_schedule(spec: SearchSpec, overrides: dict[str, Any], run_dir: Path, trial_id: str,
                        final_config: dict[str, Any]) -> Path | None:
    """Write trial ``trial_id``'s lineage (its initial config and PBT's changes to it) as a stages
    schedule in ``run_dir``; the file, or None when there is no config to write."""
    initial, changes = pbt_lineage(run_dir / f"pbt_policy_{trial_id}.txt")
    if initial is None:  # never exploited: its schedule is its own, constant mixture (one stage)
        initial, changes = final_config, []
    if not initial:
        return None
    tc = to_trial_config(spec, initial, **overrides)
    # PBT iteration k is the k-th report: the k-th phase-1 probe, at step k * probe_every (later
    # reports are in the target phase, where the mixture no longer acts)
    stages = lineage_stages(spec, initial, changes, tc.probe_every or tc.intermediate_steps, tc.intermediate_steps)
    fixed = {k: v for k, v in tc.model_dump(mode="json").items()
             if k in TrialConfig.model_fields
             and k not in ("intermediate", "schedule", "probe_every", "probe_steps")}
    path = run_dir / PBT_SCHEDULE_FILE
    path.write_text(stages_yaml(fixed, stages, f"PBT winning lineage of trial {trial_id} in {run_dir.name}\n"
                                                f"Replay:  xstilts train {path}"))
    return path

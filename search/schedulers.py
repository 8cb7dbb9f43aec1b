"""Schedulers: ASHA (default), none (FIFO), and PBT over the mixture rates.

* ``asha``: ``ASHAScheduler`` on Ray's ``training_iteration`` — one rung per zero-shot
  evaluation (every ``eval_every`` target steps), ``max_t`` = the number of evaluations.
  With several objectives it stops on the first.
* ``none``: every trial runs to its end (``FIFOScheduler``).
* ``pbt``: ``PopulationBasedTraining`` whose mutations are the mixture — the simplex rates
  (``ratio.<task>`` of the chosen tasks, renormalised after every perturbation; tasks not in
  the subset stay at 0) and any float/int parameter named in ``search.pbt.mutate``. A trial's
  lineage (the configurations it inherited at each exploit) is a time-varying schedule;
  ``pbt_lineage`` reads it back from Ray's ``pbt_policy_<trial>.txt`` and ``stages_yaml``
  writes it as an explicit ``stages`` schedule for ``xstilts train``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from xstilts.spaces import FloatParam, IntParam, SearchSpec, to_trial_config
from xstilts.trainer.codec import RATIO, renormalised
from xstilts.trainer.schedule import phase1_mixture

__all__ = ["make_scheduler", "n_reports", "renormalise_ratios", "pbt_lineage", "lineage_stages", "stages_yaml"]

MIN_RATE = 0.02  # PBT never drives a chosen task's rate to 0 (it would leave the subset)


def n_reports(target_steps: int, eval_every: int, intermediate_steps: int = 0, probe_every: int | None = None) -> int:
    """How many results a trial reports: one per phase-1 probe (if any), then one per evaluation,
    the last at ``target_steps``."""
    probes = (intermediate_steps - 1) // probe_every if probe_every and intermediate_steps > 0 else 0
    return probes + math.ceil(target_steps / eval_every)


def make_scheduler(spec: SearchSpec, reports: int) -> Any:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    s = spec.search
    if s.scheduler == "asha" and reports > 1:
        return ASHAScheduler(time_attr="training_iteration", metric=s.metric, mode=s.mode, max_t=reports,
                             grace_period=min(s.asha.grace_period, reports),
                             reduction_factor=s.asha.reduction_factor)
    if s.scheduler == "pbt":
        mutations: dict[str, Any] = {}
        sub = spec.subset()
        for name in s.pbt.mutate:
            if name == "ratios":
                assert sub is not None
                for m in sub[1].members:
                    mutations[f"{RATIO}{m}"] = tune.uniform(MIN_RATE, 1.0)
            else:
                p = spec.parameters[name]
                assert isinstance(p, FloatParam | IntParam)
                mutations[name] = (tune.loguniform(p.low, p.high) if p.log else tune.uniform(p.low, p.high))
        return PopulationBasedTraining(
            time_attr="training_iteration", metric=s.metric, mode=s.mode,
            perturbation_interval=s.pbt.perturbation_interval, hyperparam_mutations=mutations,
            quantile_fraction=s.pbt.quantile_fraction, resample_probability=s.pbt.resample_probability,
            custom_explore_fn=_Explore(spec), log_config=True, synch=False)
    return FIFOScheduler()


class _Explore:
    """PBT's ``custom_explore_fn``: keep the perturbed point inside the space (picklable)."""

    def __init__(self, spec: SearchSpec) -> None:
        self.spec = spec

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        out = renormalise_ratios(config)
        for name, p in self.spec.parameters.items():
            if isinstance(p, FloatParam | IntParam) and name in out:
                v = min(max(out[name], p.low), p.high)
                out[name] = int(round(v)) if isinstance(p, IntParam) else float(v)
        return out  # an inactive parameter (multilingual_share under sequential) stays ignored


def renormalise_ratios(config: dict[str, Any]) -> dict[str, Any]:
    """Chosen tasks' ``ratio.*`` clipped to ≥ ``MIN_RATE`` and summing to 1; the others 0."""
    return renormalised(config, MIN_RATE)


def pbt_lineage(policy_file: Path) -> tuple[dict[str, Any] | None, list[tuple[int, dict[str, Any]]]]:
    """(initial config, [(iteration, config from then on), ...]) of one trial's PBT lineage.

    Reads Ray's ``pbt_policy_<trial_id>.txt`` (one JSON line per exploit: target tag, clone tag,
    target iteration, clone iteration, clone's config, new config) the way Ray's
    ``PopulationBasedTrainingReplay`` does: walk back while each change continues the chain of
    the one after it; the earliest clone config is where the lineage started."""
    if not policy_file.exists():
        return None, []
    rows = [json.loads(line) for line in policy_file.read_text().splitlines() if line.strip()]
    changes: list[tuple[int, dict[str, Any]]] = []
    last_new_tag = None
    initial: dict[str, Any] | None = None
    for old_tag, new_tag, _old_step, new_step, old_conf, new_conf in reversed(rows):
        if last_new_tag is not None and old_tag != last_new_tag:
            break
        last_new_tag = new_tag
        initial = old_conf
        changes.append((int(new_step), new_conf))
    return initial, list(reversed(changes))


def lineage_stages(spec: SearchSpec, initial: dict[str, Any], changes: list[tuple[int, dict[str, Any]]],
                   steps_per_iteration: int, total_steps: int) -> list[dict[str, Any]]:
    """The lineage as the trainer's explicit stages, ``[{steps, mixture: {task: rate, mlm: share}}, ...]``,
    whose steps add up to ``total_steps``; consecutive identical stages are merged."""

    def mixture(cfg: dict[str, Any]) -> dict[str, float]:
        """The phase-1 mixture the trainer runs for ``cfg`` (its last stage: PBT's schedules are constant)."""
        tc = to_trial_config(spec, cfg)
        return {t: round(r, 6) for t, r in phase1_mixture(tc).rates.items()}

    bounds = [0] + [min(total_steps, it * steps_per_iteration) for it, _ in changes] + [total_steps]
    configs = [initial] + [c for _, c in changes]
    stages: list[dict[str, Any]] = []
    for (a, b), cfg in zip(zip(bounds, bounds[1:], strict=False), configs, strict=False):
        if b <= a:
            continue
        mix = mixture(cfg)
        if stages and stages[-1]["mixture"] == mix:
            stages[-1]["steps"] += b - a
        else:
            stages.append({"steps": b - a, "mixture": mix})
    return stages


def stages_yaml(fixed: dict[str, Any], stages: list[dict[str, Any]], header: str) -> str:
    """A ``TrialConfig`` YAML replaying ``stages`` (``schedule: stages``) with ``xstilts train``."""
    import yaml

    tasks = sorted({t for st in stages for t in st["mixture"] if t != "mlm"})
    body = {**fixed, "schedule": "stages", "intermediate": {t: 1.0 for t in tasks},
            "intermediate_steps": sum(st["steps"] for st in stages), "stages": stages}
    body.pop("multilingual_share", None)
    return "".join(f"# {line}\n" for line in header.splitlines()) + yaml.safe_dump(body, sort_keys=False)

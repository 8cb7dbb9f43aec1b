"""A study read back from the tracking store, the scores it compares, and its statistics.

    parent run (xstilts.kind=study, xstilts.study=<run name>) ─► StudyRecord: params reference,
        seeds, arms, target_tasks, statistics.*, arm.<name>.from_search / .search_trial
    its children, one per arm x seed (tags xstilts.arm, xstilts.seed) ─► TrialRecords
    a trial's final metrics ─study_cells─► {cell: score}, cells <task>/<lang>, <task>/avg, avg
    arm → seed → cells ─study_statistics (paired_stats)─► StudyStatistics: means, comparisons, verdict
    the searches behind ``from_search`` arms ─evp_curves─► expected best score per schedule family

The study's driver computes the same ``StudyStatistics`` from the scores Ray handed it; the parent's
metrics and ``xstilts report`` therefore agree whenever the store holds every child's scores.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from .paired_stats import (
    ArmSummary,
    Comparison,
    VerdictRow,
    compare_to_reference,
    evp_curve,
    method_text,
    summarise_arms,
    verdict,
)
from .store import (
    SearchNotFound,
    SearchRecord,
    TrialRecord,
    best_trial,
    load_search,
    objective_value,
    resolve_tracking_uri,
    trial_records,
)

__all__ = ["StudyRecord", "StudyStatistics", "EvpCurves", "study_cells", "cell_metric", "study_statistics",
           "evp_curves", "searches_evp", "find_study_run", "load_study_record", "params_match", "pick_search_trial",
           "logged_trial_config", "ARM_TAG", "SEED_TAG", "AVG"]

ARM_TAG = "xstilts.arm"  # a study child's arm
SEED_TAG = "xstilts.seed"  # a study child's seed
AVG = "avg"  # the cell of a mean: <task>/avg over a target's zero-shot languages, avg over the targets
Values = dict[str, dict[int, dict[str, float]]]  # arm -> seed -> cell -> score


def _prefix(split: str) -> str:
    return "test/" if split == "test" else ""


def study_cells(metrics: Mapping[str, Any], split: str, tasks: Sequence[str],
                averages_only: bool = False) -> dict[str, float]:
    """A trial's scores as cells: ``<task>/<lang>`` (every zero-shot language it reported, unless
    ``averages_only``), ``<task>/avg`` (the trainer's mean over the objective languages) and, with
    several targets, ``avg`` (the objective)."""
    out: dict[str, float] = {}
    for t in tasks:
        head = f"{_prefix(split)}zero_shot/{t}"
        if not averages_only:
            langs = sorted(k[len(head) + 1:] for k in metrics if k.startswith(head + "/") and k.count("/") ==
                           head.count("/") + 1)
            out.update({f"{t}/{lang}": float(metrics[f"{head}/{lang}"]) for lang in langs})
        if head in metrics:
            out[f"{t}/{AVG}"] = float(metrics[head])
    overall = f"{_prefix(split)}zero_shot/{AVG}"
    if len(tasks) > 1 and overall in metrics:
        out[AVG] = float(metrics[overall])
    return out


def cell_metric(cell: str, split: str) -> str:
    """The trial metric a cell reads: ``xnli/xa`` → ``test/zero_shot/xnli/xa``, ``xnli/avg`` →
    ``test/zero_shot/xnli``, ``avg`` → ``test/zero_shot/avg``."""
    if cell == AVG:
        return f"{_prefix(split)}zero_shot/{AVG}"
    task, lang = cell.split("/", 1)
    return f"{_prefix(split)}zero_shot/{task}" + ("" if lang == AVG else f"/{lang}")


def _cell_order(cells: Iterable[str], tasks: Sequence[str]) -> list[str]:
    """Per target: its languages (sorted), then its mean; the overall mean last."""
    have = set(cells)
    out = []
    for t in tasks:
        out += sorted(c for c in have if c.startswith(f"{t}/") and c != f"{t}/{AVG}")
        out += [f"{t}/{AVG}"] if f"{t}/{AVG}" in have else []
    return out + ([AVG] if AVG in have else [])


@dataclass
class StudyStatistics:
    """Everything a study concludes: each arm's means, its paired comparisons with the reference
    (Holm across all of them), the verdict per target, and the method in words."""

    reference: str
    split: str
    confidence: float
    cells: list[str]
    seeds: int  # distinct seeds with scores
    means: list[ArmSummary]
    comparisons: list[Comparison]
    verdict: list[VerdictRow]
    method: str

    def as_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "split": self.split, "confidence": self.confidence,
                "cells": self.cells, "seeds": self.seeds, "method": self.method,
                "means": [m.as_dict() for m in self.means], "comparisons": [c.as_dict() for c in self.comparisons],
                "verdict": [v.as_dict() for v in self.verdict]}

    def parent_metrics(self) -> dict[str, float]:
        """The parent run's metrics: ``mean/<arm>/<cell>``, and per comparison ``diff/``, ``ci_low/``,
        ``ci_high/``, ``p/`` and ``p_holm/<arm>/<cell>`` (e.g. ``diff/interleaved/xnli/xa``)."""
        out = {f"mean/{m.arm}/{m.cell}": m.mean for m in self.means}
        for c in self.comparisons:
            for key, v in (("diff", c.diff), ("ci_low", c.ci_low), ("ci_high", c.ci_high), ("p", c.p_value),
                           ("p_holm", c.p_holm)):
                out[f"{key}/{c.arm}/{c.cell}"] = v
        return {k: v for k, v in out.items() if math.isfinite(v)}


def study_statistics(values: Values, reference: str, tasks: Sequence[str], confidence: float = 0.95,
                     resamples: int = 10_000, seed: int = 0, split: str = "test") -> StudyStatistics:
    """The statistics of ``values`` (arm → seed → cell → score) against ``reference``."""
    cells = _cell_order((c for by_seed in values.values() for s in by_seed.values() for c in s), tasks)
    comparisons = compare_to_reference(values, reference, cells, confidence, resamples, seed)
    means = summarise_arms(values, cells)
    rows = [(t, f"{t}/{AVG}") for t in tasks] + ([(AVG, AVG)] if AVG in cells else [])
    seeds = len({s for by_seed in values.values() for s in by_seed})
    counted = sum(1 for c in comparisons if math.isfinite(c.p_value))
    return StudyStatistics(reference, split, confidence, cells, seeds, means, comparisons,
                           verdict(comparisons, means, reference, rows), method_text(counted, confidence, resamples, seeds))


@dataclass
class EvpCurves:
    """Expected validation performance of one search, per schedule family: the expected best
    objective after n = 1, 2, ... trials drawn from that family's completed trials."""

    search: str  # the search run
    metric: str
    mode: str
    curves: dict[str, list[float]]  # schedule family -> expected best at n = 1 .. len
    counts: dict[str, int]  # completed trials per family (the curve goes on past them, with replacement)

    def as_dict(self) -> dict[str, Any]:
        return {"search": self.search, "metric": self.metric, "mode": self.mode, "curves": self.curves,
                "counts": self.counts}


def evp_curves(tracking_uri: str, search: str) -> EvpCurves:
    """EVP curves of search ``search`` (run name) from its completed trials (ASHA-pruned trials
    stopped at a lower fidelity and are left out)."""
    rec = load_search(tracking_uri, search)
    sign = 1.0 if rec.mode == "max" else -1.0
    scores: dict[str, list[float]] = {}
    for t in rec.trials:
        v = objective_value(t, rec.metric)
        if t.status == "completed" and v is not None:
            scores.setdefault(t.params.get("schedule", "?"), []).append(sign * v)
    n_max = max((len(v) for v in scores.values()), default=0)
    curves = {fam: [sign * e for e in evp_curve(v, n_max)] for fam, v in sorted(scores.items())}
    return EvpCurves(rec.run_name, rec.metric, rec.mode, curves, {f: len(v) for f, v in sorted(scores.items())})


def searches_evp(tracking_uri: str, searches: Iterable[str]) -> list[EvpCurves]:
    """EVP curves of each search (once each); a search no longer in the store is skipped, said why."""
    out = []
    for search in dict.fromkeys(searches):
        try:
            out.append(evp_curves(tracking_uri, search))
        except Exception as e:  # its runs were deleted, or the store moved: the study stands without it
            print(f"[xstilts] warning: EVP curves of search {search} not computed: {e}", flush=True)
    return out


@dataclass
class StudyRecord:
    """A study's parent run and its children, as the driver wrote them."""

    run_id: str
    run_name: str
    experiment: str
    status: str  # tag xstilts.status (running / finished / interrupted)
    mlflow_status: str
    params: dict[str, str]
    tags: dict[str, str]
    trials: list[TrialRecord] = field(default_factory=list)
    start_ms: int = 0
    end_ms: int | None = None
    tracking_uri: str = ""

    def _list(self, key: str) -> list[str]:
        return [x for x in self.params.get(key, "").split(",") if x]

    @property
    def reference(self) -> str:
        return self.params.get("reference", "")

    @property
    def arms(self) -> list[str]:
        return self._list("arms")

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self._list("seeds")]

    @property
    def target_tasks(self) -> list[str]:
        return self._list("target_tasks")

    def setting(self, key: str, default: str) -> str:
        """A ``statistics.<key>`` param of the study."""
        return self.params.get(f"statistics.{key}", default)

    def arm_sources(self) -> dict[str, str]:
        """Arm -> the search run it was taken from (``from_search`` arms only)."""
        return {a: self.params[f"arm.{a}.from_search"] for a in self.arms if f"arm.{a}.from_search" in self.params}

    def values(self) -> Values:
        """Arm → seed → cell → score, from the completed children (arms in the study's order)."""
        out: Values = {a: {} for a in self.arms}
        split, averages = self.setting("split", "test"), self.setting("cells", "all") == "averages"
        for t in self.trials:
            if t.status == "completed" and "arm" in t.params and "seed" in t.params:
                cells = study_cells(t.metrics, split, self.target_tasks, averages)
                out.setdefault(t.params["arm"], {})[int(t.params["seed"])] = cells
        return out

    def statistics(self) -> StudyStatistics:
        return study_statistics(self.values(), self.reference, self.target_tasks,
                                float(self.setting("confidence", "0.95")), int(self.setting("resamples", "10000")),
                                int(self.setting("seed", "0")), self.setting("split", "test"))


def _latest(client: MlflowClient, experiment_ids: list[str], filter_string: str) -> Run | None:
    runs = client.search_runs(experiment_ids, filter_string=filter_string, order_by=["attributes.start_time DESC"],
                              max_results=1)
    return runs[0] if runs else None


def find_study_run(client: MlflowClient, name: str) -> Run | None:
    """The parent run of study ``name`` (its run name, tag ``xstilts.study``), else the latest run of
    the experiment called ``name`` when that is a study's (not a search's); None if neither."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return None
    esc = name.replace("'", "\\'")
    run = _latest(client, experiments, f"tags.`xstilts.kind` = 'study' and tags.`xstilts.study` = '{esc}'")
    if run is not None:
        return run
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return None
    study = _latest(client, [exp.experiment_id], "tags.`xstilts.kind` = 'study'")
    search = _latest(client, [exp.experiment_id], "tags.`xstilts.kind` = 'search'")
    if study is None or (search is not None and (search.info.start_time or 0) > (study.info.start_time or 0)):
        return None
    return study


def load_study_record(tracking_uri: str | None, name: str) -> StudyRecord:
    """Study ``name`` (see ``find_study_run``) with its children; ``SearchNotFound`` if there is none."""
    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(uri)
    parent = find_study_run(client, name)
    if parent is None:
        raise SearchNotFound(f"no study run or study experiment named {name!r} in the tracking store")
    exp = client.get_experiment(parent.info.experiment_id)
    tags = dict(parent.data.tags)
    return StudyRecord(
        run_id=parent.info.run_id, run_name=tags.get("xstilts.study", parent.info.run_name or ""),
        experiment=exp.name, status=tags.get("xstilts.status", parent.info.status.lower()),
        mlflow_status=parent.info.status, params=dict(parent.data.params), tags=tags,
        trials=trial_records(client, exp.experiment_id, parent.info.run_id), start_ms=int(parent.info.start_time or 0),
        end_ms=int(parent.info.end_time) if parent.info.end_time else None, tracking_uri=uri)


def _same(logged: str, wanted: Any) -> bool:
    """An MLflow param string against a YAML value: equal as text, or as numbers."""
    if str(logged) == str(wanted):
        return True
    try:
        return float(logged) == float(wanted)
    except (TypeError, ValueError):
        return False


def params_match(params: Mapping[str, str], where: Mapping[str, Any]) -> bool:
    """Whether a trial's params have every ``where`` value (a value, or a list of allowed values)."""
    for key, wanted in where.items():
        if key not in params:
            return False
        if not any(_same(params[key], w) for w in (wanted if isinstance(wanted, list) else [wanted])):
            return False
    return True


def pick_search_trial(rec: SearchRecord, where: Mapping[str, Any]) -> TrialRecord | None:
    """The completed trial of ``rec`` with the best objective (the search's metric and mode) among
    those whose params match ``where``; None if none does."""
    return best_trial([t for t in rec.trials if params_match(t.params, where)], rec.metric, rec.mode)


def logged_trial_config(tracking_uri: str, trial: TrialRecord) -> dict[str, Any]:
    """The full trial config a search's child ran: its ``config/trial_config.yaml`` artifact (the
    resolved config, nested settings such as ``tiny`` included), else rebuilt from its params."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = MlflowClient(tracking_uri).download_artifacts(trial.run_id, "config/trial_config.yaml", tmp)
            doc = yaml.safe_load(Path(path).read_text())
        if isinstance(doc, dict) and isinstance(doc.get("trial_config"), dict):
            return dict(doc["trial_config"])
    except Exception:  # no artifact (an older search, artifacts off): the params say the same, flattened
        pass
    from .plots import trial_config_of

    return trial_config_of(trial.params).model_dump(mode="json")

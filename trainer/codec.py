"""The one conversion between flat parameters and a trial's typed mixture.

A searcher, Ray Tune and MLflow see a trial as a flat mapping of scalars; a ``TrialConfig``
holds the intermediate mixture as one mapping ``intermediate: {task: rate}``. This module is
the only place that reads or writes the flat keys of that mixture::

    tasks.<task>    1 if the task takes part, else 0        (one per candidate task; the searcher
                    suggests it, a categorical over FLAG_CHOICES, for each task not always in)
    ratio.<task>    its rate, normalised over the chosen tasks (0 when not chosen)
    _u.<simplex>.<task>   a raw simplex coordinate u ~ U(0, 1) as the searcher samples it
    trial_number    the Optuna trial number (names the trial; stable across resumes)

The simplex is the Dirichlet construction of the Optuna FAQ: ``w_i = -log u_i`` and rates
``w_i / Σ w`` (uniform on the simplex when every ``u_i`` is uniform); a rate vector ``r`` is
encoded back as ``u_i = exp(-r_i / Σ r)``, which decodes to exactly ``r / Σ r``.

Values may arrive typed (from a config) or as the strings MLflow stores; the decoders take both.
A subset is written ``"a+b"`` (``"none"``: no task) in points, trial names and MLflow alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "TASK_FLAG", "RATIO", "RAW", "NUMBER", "NO_TASK", "subset_value", "subset_members", "normalised",
    "encode_mixture", "decode_mixture", "chosen_tasks", "candidate_tasks", "rates_from_uniforms",
    "uniforms_from_rates", "flag_key", "FLAG_CHOICES", "raw_key", "is_bookkeeping", "without_raw", "renormalised",
    "trial_fields", "mixture_text",
]

TASK_FLAG = "tasks."
RATIO = "ratio."
RAW = "_u."
NUMBER = "trial_number"
NO_TASK = "none"
_FALSE = ("0", "0.0", "false", "False", "")
FLAG_CHOICES = (0, 1)  # a task flag as the searcher suggests it (a categorical: out / in)


def subset_value(tasks: Iterable[str]) -> str:
    """A subset as the searcher and the logs write it: ``"mnli+sst2"``, or ``"none"``."""
    return "+".join(tasks) or NO_TASK


def subset_members(value: str) -> list[str]:
    """``"mnli+sst2"`` → ``["mnli", "sst2"]``; ``"none"`` → ``[]``."""
    return [] if value in (NO_TASK, "") else str(value).split("+")


def _number(v: Any, default: float = 0.0) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) else default


def normalised(rates: Mapping[str, Any]) -> dict[str, float]:
    """The positive rates, summing to 1 (``{}`` when none is positive)."""
    pos = {k: _number(v) for k, v in rates.items() if _number(v) > 0}
    z = sum(pos.values())
    return {k: v / z for k, v in pos.items()} if z > 0 else {}


def encode_mixture(candidates: Sequence[str], rates: Mapping[str, float], digits: int = 6) -> dict[str, Any]:
    """Flat keys for a mixture over ``candidates``: ``tasks.<t>`` (0/1) and ``ratio.<t>``, normalised
    over the chosen tasks (the tasks with a positive rate); every candidate gets both keys."""
    rates = normalised(rates)
    extra = [t for t in rates if t not in candidates]
    if extra:
        raise ValueError(f"{extra} are not candidate tasks ({list(candidates)})")
    out: dict[str, Any] = {}
    for t in candidates:
        out[f"{TASK_FLAG}{t}"] = int(t in rates)
        out[f"{RATIO}{t}"] = round(rates.get(t, 0.0), digits)
    return out


def candidate_tasks(flat: Mapping[str, Any]) -> list[str]:
    """Every task with a ``ratio.<t>`` key, chosen or not, in key order."""
    return [k[len(RATIO):] for k in flat if k.startswith(RATIO)]


def decode_mixture(flat: Mapping[str, Any]) -> dict[str, float]:
    """The chosen tasks and their normalised rates: from a resolved config's ``intermediate``
    mapping, else from ``ratio.<t>`` keys (a task whose ``tasks.<t>`` flag is 0 is left out)."""
    inter = flat.get("intermediate")
    if isinstance(inter, Mapping) and inter:
        return normalised(inter)
    return normalised(_flagged_rates(flat))


def _flagged_rates(flat: Mapping[str, Any]) -> dict[str, float]:
    """``ratio.<t>`` of every task whose ``tasks.<t>`` flag is not 0, as given (not normalised)."""
    return {t: _number(flat[f"{RATIO}{t}"]) for t in candidate_tasks(flat)
            if str(flat.get(f"{TASK_FLAG}{t}", 1)) not in _FALSE}


def chosen_tasks(flat: Mapping[str, Any]) -> list[str]:
    """The tasks flagged ``tasks.<t>`` = 1, in key order."""
    return [k[len(TASK_FLAG):] for k, v in flat.items() if k.startswith(TASK_FLAG) and str(v) not in _FALSE]


def flag_key(task: str) -> str:
    """``tasks.<task>``: whether the task takes part (the searcher's own dimension for it)."""
    return f"{TASK_FLAG}{task}"


def raw_key(simplex: str, task: str) -> str:
    return f"{RAW}{simplex}.{task}"


def rates_from_uniforms(u: Mapping[str, float]) -> dict[str, float]:
    """The Dirichlet construction: ``w = -log u``, rates ``w / Σ w`` (one task: rate 1)."""
    if len(u) == 1:
        return {next(iter(u)): 1.0}
    w = {t: -math.log(max(float(x), 1e-12)) for t, x in u.items()}
    z = sum(w.values()) or 1.0
    return {t: v / z for t, v in w.items()}


def uniforms_from_rates(rates: Mapping[str, float]) -> dict[str, float]:
    """The raw coordinates that decode to ``rates / Σ rates`` exactly: ``u = exp(-r / Σ r)``."""
    z = float(sum(rates.values()))
    if z <= 0:
        raise ValueError(f"rates must have a positive sum (got {dict(rates)})")
    return {t: math.exp(-float(r) / z) for t, r in rates.items()}


def is_bookkeeping(key: str) -> bool:
    """Flat keys that are not dimensions a person compares: membership flags (``ratio.*`` says it:
    0 = not chosen), raw simplex coordinates and the trial's number."""
    return key.startswith((TASK_FLAG, RAW)) or key == NUMBER


def without_raw(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``flat`` without the raw simplex coordinates (what a person, MLflow or PBT should see)."""
    return {k: v for k, v in flat.items() if not k.startswith(RAW)}


def renormalised(flat: Mapping[str, Any], min_rate: float = 0.0) -> dict[str, Any]:
    """``flat`` with the chosen tasks' rates clipped to at least ``min_rate`` and summing to 1;
    the other candidates keep rate 0 (what PBT does after perturbing the rates)."""
    chosen = chosen_tasks(flat)
    if not chosen:
        return dict(flat)
    rates = {t: max(_number(flat.get(f"{RATIO}{t}")), min_rate) for t in chosen}
    return {**flat, **encode_mixture(candidate_tasks(flat), rates)}


def trial_fields(flat: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """The entries of ``flat`` that are ``TrialConfig`` fields (``fields``), with the mixture
    decoded into ``intermediate`` when ``flat`` carries it as ``ratio.*`` keys."""
    names = set(fields)
    out = {k: v for k, v in flat.items() if k in names}
    if "intermediate" not in out and candidate_tasks(flat):
        # the rates as sampled (the trainer normalises them): no second rounding of the floats
        out["intermediate"] = _flagged_rates(flat)
    return out


def mixture_text(rates: Mapping[str, float], digits: int = 2) -> str:
    """A mixture for people: ``mnli 0.80 / sst2 0.20`` (``none`` when empty)."""
    r = normalised(rates)
    return " / ".join(f"{t} {v:.{digits}f}" for t, v in r.items()) or NO_TASK

"""Optuna records others can read: user attributes on each trial of a search's Optuna study.

The study holds what the searcher sees (``_u.*`` simplex coordinates, ``intermediate_tasks``); a
person opening it in optuna-dashboard, or a script reading the journal, also needs what the trial
*was*. The driver's ``OptunaRecordsCallback`` sets, on the Optuna trial of the same number::

    trial_name      the Ray trial's name (``t0002-interleaved-m0.56-T1.2-mnli+sst2``), as in MLflow
    mixture         the decoded intermediate mixture, e.g. {"mnli": 0.8, "sst2": 0.2}
    mlflow_run_id   the trial's MLflow child run (created by the MLflow callback's writer thread)

Optuna takes attributes only while a trial runs: the name and mixture are set when the trial
starts, the run id at the first result after the MLflow callback knows it. A trial whose tracking
store did not answer before its end has no ``mlflow_run_id``; the search goes on regardless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ray.tune import Callback

from xstilts.trainer.codec import NUMBER, decode_mixture

from .searchers import journal_storage

__all__ = ["OptunaRecordsCallback", "trial_records", "TRIAL_NAME", "MIXTURE", "MLFLOW_RUN_ID"]

TRIAL_NAME = "trial_name"
MIXTURE = "mixture"
MLFLOW_RUN_ID = "mlflow_run_id"

log = logging.getLogger(__name__)


def trial_records(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes a trial gets when it starts: its name and its decoded mixture (rates to 4 places)."""
    return {TRIAL_NAME: name, MIXTURE: {t: round(r, 4) for t, r in decode_mixture(config).items()}}


class OptunaRecordsCallback(Callback):
    """Ray Tune callback (driver side) writing ``trial_records`` and the MLflow run id into the
    study ``study_name`` of ``journal``; ``run_id_of``: trial name -> its MLflow run id, once known."""

    def __init__(self, journal: Path, study_name: str, run_id_of: Callable[[str], str | None]) -> None:
        self.journal = journal
        self.study_name = study_name
        self.run_id_of = run_id_of
        self._reset()

    def _reset(self) -> None:
        self._storage: Any = None
        self._study_id: int | None = None
        self._with_run_id: set[str] = set()  # trials whose run id is in the study
        self._refused: set[str] = set()  # trials the study refused (warned once)

    def __getstate__(self) -> dict[str, Any]:
        return {k: self.__dict__[k] for k in ("journal", "study_name", "run_id_of")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._record(trial, trial_records(str(trial), trial.config or {}))

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        self._record(trial, {})

    def _record(self, trial: Any, attrs: dict[str, Any]) -> None:
        name, number = str(trial), (trial.config or {}).get(NUMBER)
        if number is None or name in self._refused:
            return
        run_id = None if name in self._with_run_id else self.run_id_of(name)
        if run_id:
            attrs = {**attrs, MLFLOW_RUN_ID: run_id}
        if not attrs:
            return
        try:
            storage = self._open()
            trial_id = storage.get_trial_id_from_study_id_trial_number(self._study_id, int(number))
            if storage.get_trial(trial_id).state.is_finished():  # the journal would keep and ignore them
                self._refused.add(name)
                log.info("trial %s ended before its MLflow run id was known: the study has no %s for it",
                         name, MLFLOW_RUN_ID)
                return
            for key, value in attrs.items():
                storage.set_trial_user_attr(trial_id, key, value)
        except Exception as e:  # a record must never stop the search
            self._refused.add(name)
            log.warning("the Optuna study %s did not take the attributes of trial %s (number %s): %s",
                        self.study_name, name, number, e)
            return
        if run_id:
            self._with_run_id.add(name)

    def _open(self) -> Any:
        if self._storage is None:
            storage = journal_storage(self.journal)
            self._study_id = storage.get_study_id_from_name(self.study_name)
            self._storage = storage
        return self._storage

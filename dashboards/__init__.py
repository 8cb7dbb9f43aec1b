"""xstilts.dashboards: what a person looks at.

* ``mlflow_logging`` — the Ray Tune callback writing one nested MLflow child run per trial
  under the search's parent run (re-attaching on resume), secrets redacted;
* ``sysmetrics`` — per-trial process / node / GPU metrics sampled by that callback;
* ``plots`` — mixture schedule, per-language scores, best-so-far, task × language heatmap;
* ``summary`` — the parent run's leaderboard and search-level plots (Optuna's importances and
  parallel coordinates over a study rebuilt from the child runs);
* ``store`` — a search read back from the tracking store;
* ``recommendation`` — the confirm phase's candidates on fresh seeds, mean ± SE, the recommendation;
* ``report`` / ``status`` / ``ui`` — ``xstilts report``, ``xstilts status``, ``xstilts ui``.
"""

"""Names both sides of the trial boundary use: the metrics a trial reports and what a search calls it.

The trainer writes these keys into every report; the search (schedulers, the summary, the
benchmarks) and the dashboards read them back. One definition, imported by both.
"""

from __future__ import annotations

__all__ = ["OBJECTIVE", "WORST", "TEST_OBJECTIVE", "TRIAL_DONE", "TRIAL_PARTIAL", "TRIAL_FUNCTION", "REPLAYED"]

OBJECTIVE = "zero_shot/avg"  # mean over target tasks of the mean over non-English, non-control languages (dev)
WORST = "zero_shot/worst"  # the lowest of those per-language scores
TEST_OBJECTIVE = "test/zero_shot/avg"  # the objective on the test split, reported once, at the end
TRIAL_DONE = "trial_done"  # 1 in a trial's final report, absent before: a trial that has it ran to its end
# 1 in the last report of a trial whose test phase failed: its dev scores are all it measured (it then raises)
TRIAL_PARTIAL = "trial/partial"
# the name under which a search runs a trial (the Tune trainable's function name): Ray's actor
# lists show it, and ``xstilts status`` recognises trial actors by it
TRIAL_FUNCTION = "xstilts_trial"
# 1 in a result a resumed trial hands Tune again (what it reported before its checkpoint), so that
# Tune's iteration count and the scheduler's rungs line up; the ledger and MLflow already hold it
REPLAYED = "replayed"

"""A trial's zero-shot evaluation: every target task in every evaluation language on a split.

    ZeroShotEvaluator.evaluate(net, split) ─► {en/<task>, zero_shot/<task>/<lang>, zero_shot/<task>,
                                              zero_shot/avg, zero_shot/worst} (``test/`` before each on
                                              the test split, plus ``test_clean/...`` with ``eval_clean``)

The objective languages are neither English nor a control language (``data.control_languages``).
An evaluation draws no random number (the model in eval mode, no sampling), so evaluating more or
less often changes no score of a trial.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from .config import TrialConfig
from .families import Encoded, evaluate
from .model import MultiTaskModel
from .tasks import task_info

__all__ = ["ZeroShotEvaluator", "objective_languages"]

Encode = Callable[[str, str, str, int | None], Encoded]  # (task, split, language, cap) -> encoded rows


def objective_languages(langs: list[str], controls: list[str]) -> list[str]:
    return [lang for lang in langs if lang != "en" and lang not in controls]


class ZeroShotEvaluator:
    """Scores a trial's model on its target tasks; keeps the encoded evaluation rows and the time spent."""

    def __init__(self, cfg: TrialConfig, pad_id: int, controls: list[str] | tuple[str, ...], encode: Encode) -> None:
        self.cfg, self.pad_id, self.controls, self.encode = cfg, pad_id, controls, encode
        self.eval_s = 0.0  # seconds spent in evaluations
        self.cache: dict[tuple[str, str, str], Encoded] = {}  # (task, split, lang) -> encoded rows
        self.state: dict[tuple[str, str], dict[str, Any]] = {}  # (task, lang) -> families.evaluate's cache

    def evaluate(self, net: MultiTaskModel, split: str) -> dict[str, float]:
        """Every target task in every evaluation language on ``split`` (``dev`` or ``test``), with the
        zero-shot mean per task, their mean (the objective) and the worst objective language."""
        te = time.perf_counter()
        net.eval()
        out: dict[str, float] = {}
        prefix = "test/" if split == "test" else ""
        per_task = []
        worst = math.inf
        with torch.no_grad():
            for t in self.cfg.target_tasks:
                scores = self._score_task(net, t, split)
                out.update({f"{prefix}en/{t}" if lang == "en" else f"{prefix}zero_shot/{t}/{lang}": s
                            for lang, s in scores.items()})
                worst = min([worst, *self._objective_scores(scores)])
                out[f"{prefix}zero_shot/{t}"] = self._objective_mean(scores)
                per_task.append(out[f"{prefix}zero_shot/{t}"])
            out[f"{prefix}zero_shot/avg"] = statistics.fmean(per_task)
            out[f"{prefix}zero_shot/worst"] = worst if worst < math.inf else float("nan")
            if split == "test" and self.cfg.eval_clean:
                out.update(self._evaluate_clean(net))
        net.train()
        self.eval_s += time.perf_counter() - te
        return out

    def _score_task(self, net: MultiTaskModel, task: str, split: str) -> dict[str, float]:
        """Scores of ``task`` on ``split`` per evaluation language (``TrialConfig.languages``: by default
        every language the task has in that split; retrieval pairs each with English, so not English)."""
        info = task_info(task)
        scores: dict[str, float] = {}
        for lang in self.cfg.languages(task, split):
            state = self.state.setdefault((task, lang), {})
            if split == "test" and info.metric == "bucc_f1" and "bucc_threshold" not in state:
                # no dev evaluation came first (``eval_dev`` off): BUCC's threshold is still chosen on
                # dev, never on test itself
                state["split"] = "dev"
                evaluate(net, info, self._data(task, "dev", lang), self.pad_id, layer=self.cfg.retrieval_layer,
                         state=state)
            state["split"] = split
            scores[lang] = evaluate(net, info, self._data(task, split, lang), self.pad_id,
                                    layer=self.cfg.retrieval_layer, state=state)
        return scores

    def _data(self, task: str, split: str, lang: str) -> Encoded:
        key = (task, split, lang)
        if key not in self.cache:
            self.cache[key] = self.encode(task, split, lang, self.cfg.eval_max_examples)
        return self.cache[key]

    def _objective_scores(self, scores: dict[str, float]) -> list[float]:
        """The scores of the objective languages: neither English nor a control."""
        return [scores[lang] for lang in objective_languages(list(scores), list(self.controls))]

    def _objective_mean(self, scores: dict[str, float]) -> float:
        """The mean of ``scores`` over the objective languages (nan without any)."""
        values = self._objective_scores(scores)
        return statistics.fmean(values) if values else float("nan")

    def _evaluate_clean(self, net: MultiTaskModel) -> dict[str, float]:
        """Scores on ``test_clean`` (items whose deciding words are not English), where a task has it."""
        out: dict[str, float] = {}
        for t in self.cfg.target_tasks:
            info = task_info(t)
            if "test_clean" not in info.splits:
                continue
            scores = {lang: evaluate(net, info, self._data(t, "test_clean", lang), self.pad_id,
                                     layer=self.cfg.retrieval_layer)
                      for lang in self.cfg.languages(t, "test_clean") if lang != "en"}
            out.update({f"test_clean/zero_shot/{t}/{lang}": s for lang, s in scores.items()})
            out[f"test_clean/zero_shot/{t}"] = self._objective_mean(scores)
        return out

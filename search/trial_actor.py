"""The Tune trainable class of a search's (and a study's) trials: actors the Ray dashboard names.

Ray's Actors page lists an actor by its class name and, when the class defines ``__repr__``, by
the repr it takes of the actor once it is created. Tune wraps a function trainable into a class
whose repr is the function's name, the same for every trial; this class's repr is the trial's name
(``t0003-interleaved-m0.30-T3.2-mnli+sst2``), which Tune hands the actor before it is created.

With ``reuse_actors`` (a search's default outside PBT) one actor runs several trials in turn and
keeps the name of the first it ran: Ray takes the repr once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["named_trainable"]


def named_trainable(fn: Callable[[dict[str, Any]], None], resources: dict[str, float]) -> type:
    """Tune's class for function trainable ``fn`` reserving ``resources``, its actors' repr the trial
    name; the class is named after ``fn`` (what ``dashboards.status.is_trial_actor`` looks for)."""
    from ray import tune
    from ray.tune.trainable.function_trainable import wrap_function

    base: Any = wrap_function(tune.with_resources(fn, resources))

    class NamedTrial(base):  # type: ignore[misc, valid-type]
        def __repr__(self) -> str:
            return str(self.trial_name)  # set from Tune's trial info before Ray takes the repr

    NamedTrial.__name__ = NamedTrial.__qualname__ = fn.__name__
    return NamedTrial

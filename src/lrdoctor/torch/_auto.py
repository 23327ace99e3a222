"""``auto_lr``: what LR and schedule to run for ``total_steps`` steps, in one call.

It runs :func:`~lrdoctor.torch.find_lr` sized to spend at most ``cost`` of the run (default
10%) on the range test, then writes the recipe of :mod:`lrdoctor.finder._recipe`: a linear
warm-up over 5% of the run to ``peak = suggestion * PEAK_FACTOR``, then the decay the benchmark
picked (``AUTO_SCHEDULE``), ending at exactly ``total_steps``. State is restored exactly as
``find_lr`` restores it.

Sizing: with ``repeats`` ramps of ``n`` steps and the zoomed pass of ``n // 2``, the test costs
``1.5 * repeats * n`` steps, so ``n = cost * total_steps / (1.5 * repeats)``, at most 100 (the
finder's default) and at least ``MIN_RAMP`` (30); below that, fewer repeats. A first ramp that
shows no descent adds one more pass (``find_lr``'s adaptation); ``settings["steps_run"]`` and
:attr:`AutoResult.cost` count every step. The budget probe is not run: it costs a quarter of a
run and tests a constant LR held for the whole run, which the recipe does not do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from lrdoctor.errors import FinderError
from lrdoctor.finder import FinderResult
from lrdoctor.finder._recipe import AUTO_SCHEDULE, PEAK_FACTOR, RECIPES, recipe_spec
from lrdoctor.torch._finder import find_lr

__all__ = ["MIN_RAMP", "AutoResult", "auto_lr", "finder_size"]

#: the shortest first ramp ``auto_lr`` sizes (steps)
MIN_RAMP = 30


def finder_size(total_steps: int, cost: float, repeats: int = 3) -> tuple[int, int]:
    """``(num_steps, repeats)`` of a range test that costs at most ``cost * total_steps``.

    >>> finder_size(2000, 0.1)
    (44, 3)
    >>> finder_size(20000, 0.1)
    (100, 3)
    >>> finder_size(500, 0.1)
    (33, 1)
    """
    budget = cost * total_steps
    n = min(100, math.floor(budget / (1.5 * repeats)))
    while n < MIN_RAMP and repeats > 1:
        repeats -= 1
        n = min(100, math.floor(budget / (1.5 * repeats)))
    return max(MIN_RAMP, n), repeats


@dataclass(frozen=True)
class AutoResult:
    """``auto_lr``'s answer: the finder's result (every field of it, e.g. ``.suggestion``,
    ``.interval``, ``.grade``, ``.reason``, ``.plot()``) plus the schedule to run.

    ``spec`` is a :func:`lrdoctor.schedules.parse` string lasting exactly ``total_steps``;
    ``schedule`` its kind, ``peak_lr`` its highest LR, ``cost`` the range test's optimizer
    steps over ``total_steps``.
    """

    finder: FinderResult
    spec: str
    schedule: str
    peak_lr: float
    total_steps: int

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "finder":
            raise AttributeError(name)
        return getattr(self.finder, name)

    @property
    def cost(self) -> float:
        return float(self.finder.settings.get("steps_run", 0)) / self.total_steps

    def scheduler(self, optimizer: torch.optim.Optimizer, **kwargs: Any) -> Any:
        """A :class:`~lrdoctor.torch.ScheduledLR` running :attr:`spec` on ``optimizer``
        (step it once per optimizer step)."""
        from lrdoctor.torch._scheduled import ScheduledLR

        return ScheduledLR(optimizer, self.spec, **kwargs)

    def summary(self) -> str:
        return (f"{self.finder.summary()}; run {self.spec} "
                f"(finder cost {100 * self.cost:.1f}% of the run)")

    def to_dict(self) -> dict[str, Any]:
        return {**self.finder.to_dict(), "spec": self.spec, "schedule": self.schedule,
                "peak_lr": self.peak_lr, "total_steps": self.total_steps, "cost": self.cost}


def auto_lr(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            train_loader: Iterable[Any], loss_fn: Callable[..., Any] | None = None, *,
            total_steps: int, schedule: str = AUTO_SCHEDULE, peak_factor: float = PEAK_FACTOR,
            cost: float = 0.1, repeats: int = 3, num_steps: int | None = None,
            **find_kwargs: Any) -> AutoResult:
    """The LR and schedule to train ``total_steps`` optimizer steps, from a sized range test.

    ``schedule`` (default :data:`~lrdoctor.finder._recipe.AUTO_SCHEDULE`) is one of
    ``cosine``, ``one_cycle``, ``wsd``, ``linear``; the peak is ``suggestion * peak_factor``
    (the fallback LR itself when the finder fell back). ``cost`` caps the range test's steps
    as a share of the run (see the module doc); ``num_steps``/``repeats`` override the sizing.
    Other keyword arguments go to :func:`~lrdoctor.torch.find_lr` (``step_fn``, ``start_lr``,
    ``end_lr``, ``amp``, ``accumulation_steps``, ...), except ``budget_steps``/``epochs``.

    Raises :class:`~lrdoctor.errors.FinderError` on bad input and when the finder has no
    suggestion (the loss neither descends nor diverges: the model does not train).
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 20:
        raise FinderError(f"total_steps must be an integer >= 20 (the optimizer steps of the "
                          f"run), got {total_steps!r}")
    if schedule not in RECIPES:
        raise FinderError(f"schedule must be one of {', '.join(RECIPES)}, got {schedule!r}")
    if not (isinstance(cost, (int, float)) and 0 < cost <= 1):
        raise FinderError(f"cost must be in (0, 1] (the share of the run the range test may "
                          f"take), got {cost!r}")
    if not (isinstance(peak_factor, (int, float)) and peak_factor > 0):
        raise FinderError(f"peak_factor must be > 0, got {peak_factor!r}")
    for name in ("budget_steps", "epochs"):
        if name in find_kwargs:
            raise FinderError(f"auto_lr takes no {name}=: total_steps is the run's length "
                              "(the budget probe tests a constant LR; use find_lr for that)")
    if num_steps is None:
        num_steps, repeats = finder_size(total_steps, cost, repeats)
    result = find_lr(model, optimizer, train_loader, loss_fn, num_steps=num_steps,
                     repeats=repeats, **find_kwargs)
    if result.suggestion is None:
        raise FinderError("auto_lr found no learning rate: " + result.reason)
    peak = result.suggestion * (1.0 if result.grade == "fallback" else float(peak_factor))
    spec = recipe_spec(schedule, peak, total_steps)
    return AutoResult(result, spec, schedule, peak, total_steps)

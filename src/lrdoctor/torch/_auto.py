"""``auto_lr``: what LR and schedule to run for ``total_steps`` steps, in one call.

It runs :func:`~lrdoctor.torch.find_lr` sized to spend at most ``cost`` of the run (default
10%) on the range test, then writes the recipe of :mod:`lrdoctor.finder._recipe`: a linear
warm-up over 5% of the run to ``peak = suggestion * PEAK_FACTORS[grade]``, kept within
``D / DIVERGENCE_FLOOR .. D / DIVERGENCE_CAP`` when the range test diverged at ``D``
(:func:`~lrdoctor.finder._recipe.auto_peak`), then the decay the benchmark picked
(``AUTO_SCHEDULE``), ending at exactly ``total_steps``. State is restored exactly as
``find_lr`` restores it.

Sizing: ``REPEATS`` (1) ramp of ``n`` steps, sized for ``SIZED_PASSES`` (2.5) passes - the
first, one adaptive pass when it shows no descent (``find_lr``'s adaptation) and the zoom of
``n // 2`` - so ``n = cost * total_steps / (2.5 * repeats)``, at most ``MAX_RAMP`` (100) and at
least ``MIN_RAMP`` (30). ``settings["steps_run"]`` and :attr:`AutoResult.cost` count every
step (a ramp stops where the loss diverges, so most tests cost less than the sizing). The budget probe is not run: it costs a quarter of a
run and tests a constant LR held for the whole run, which the recipe does not do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from lrdoctor.errors import FinderError
from lrdoctor.finder import FinderResult
from lrdoctor.finder._recipe import AUTO_SCHEDULE, RECIPES, auto_peak, recipe_spec
from lrdoctor.torch._finder import find_lr

__all__ = ["MAX_RAMP", "MIN_RAMP", "REPEATS", "SIZED_PASSES", "AutoResult", "auto_lr",
           "finder_size"]

#: the shortest and the longest first ramp ``auto_lr`` sizes (steps)
MIN_RAMP, MAX_RAMP = 30, 100
#: one ramp, sized so that 2.5 passes (first + one adaptive pass + zoom) fit in ``cost``:
#: chosen by ``bench_auto.py tune`` on the tuning families (RESULTS.md "auto recipe choice,
#: step 1"): against 3 ramps sized for 1.5 passes (44 steps at N=2000; fallback on 8 of 21
#: tuning runs, cost up to 0.17) it fell back on 3 and never cost more than 0.089
REPEATS, SIZED_PASSES = 1, 2.5


def finder_size(total_steps: int, cost: float, repeats: int = REPEATS,
                passes: float = SIZED_PASSES) -> tuple[int, int]:
    """``(num_steps, repeats)`` of a range test of ``passes`` passes that costs at most
    ``cost * total_steps``: ``n = floor(cost * total_steps / (passes * repeats))``, at most
    :data:`MAX_RAMP`, fewer repeats while ``n`` is under :data:`MIN_RAMP`, and never under it
    (a run under ``MIN_RAMP * passes / cost`` steps pays more than ``cost``).

    >>> finder_size(2000, 0.1)
    (80, 1)
    >>> finder_size(2000, 0.1, repeats=3, passes=1.5)
    (44, 3)
    >>> finder_size(500, 0.1)
    (30, 1)
    """
    budget = cost * total_steps
    n = min(MAX_RAMP, math.floor(budget / (passes * repeats)))
    while n < MIN_RAMP and repeats > 1:
        repeats -= 1
        n = min(MAX_RAMP, math.floor(budget / (passes * repeats)))
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
            total_steps: int, schedule: str = AUTO_SCHEDULE,
            peak_factor: float | Mapping[str, float] | None = None,
            cost: float = 0.1, repeats: int = REPEATS, num_steps: int | None = None,
            **find_kwargs: Any) -> AutoResult:
    """The LR and schedule to train ``total_steps`` optimizer steps, from a sized range test.

    ``schedule`` (default :data:`~lrdoctor.finder._recipe.AUTO_SCHEDULE`) is one of
    ``cosine``, ``one_cycle``, ``wsd``, ``linear``; the peak is ``suggestion * factor`` with
    the factor by the finder's grade (:data:`~lrdoctor.finder._recipe.PEAK_FACTORS`), kept
    within ``D / DIVERGENCE_FLOOR .. D / DIVERGENCE_CAP`` of the divergence ``D`` where the
    answer is graded and the loss diverged (:func:`~lrdoctor.finder._recipe.auto_peak`).
    ``peak_factor`` (a number or a ``{grade: factor}`` mapping) overrides the factor and then
    the peak is exactly ``suggestion * factor`` (no divergence bounds). ``cost`` caps the range test's steps
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
    if peak_factor is not None:
        for f in (peak_factor.values() if isinstance(peak_factor, Mapping) else [peak_factor]):
            if isinstance(f, bool) or not (isinstance(f, (int, float)) and f > 0):
                raise FinderError(f"peak_factor must be > 0 (a number, or one per grade), got "
                                  f"{peak_factor!r}")
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
    # the spec writes 3 significant digits: the peak is the LR the schedule actually reaches
    bounds = {} if peak_factor is None else {"floor": None, "cap": None}
    peak = float(f"{auto_peak(result.suggestion, result.grade, result.divergence_lr, factor=peak_factor, **bounds):.3g}")
    spec = recipe_spec(schedule, peak, total_steps)
    return AutoResult(result, spec, schedule, peak, total_steps)

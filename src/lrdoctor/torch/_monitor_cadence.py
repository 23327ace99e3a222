"""When the Monitor's sampled statistics run: a time budget, measured as training goes.

Two kinds of sampled work, each with its own measured cost (wall seconds of its work, an
exponential moving average over the times it ran; step 0, cold, is not counted):

- a *sampled step*: the global gradient norm (one fused ``_foreach_norm``), plus the batch
  statistics while ``step < inspect_batches``;
- a *heavy step*: per-layer gradient norms, update ratios, parameter norm, activation
  statistics (the hooks on its forward), non-finite parameter/gradient counts and the noise-scale
  window that follows it.

With ``T`` the measured time of one training step (wall time between two ``Monitor.step``
calls without the Monitor's own work, the least of the last 8 measurements; an interval that
spans an evaluation is not counted) and ``b`` the budget (a share of ``T``, half
of it for each kind), the next one of each kind comes after

    n_sample = clamp(ceil(cost_sample / (b/2 · T)), 1, every)
    n_heavy  = max(every, ceil(cost_heavy / (b/2 · T)))

steps, so the sampled work takes about ``b`` of the training time (``b = 0.01`` by default):
on a 0.5 ms CPU step, where the gradient norm costs 15-40 µs, it comes every 6-16 steps; on a
30 ms step, every step. Costs and the step time are wall time (``time.perf_counter``). The first
``FIRST_STEPS`` steps and the first step after each evaluation are always sampled steps; step 0
is always a heavy step. ``budget=None`` turns the sampling off: a gradient norm every step and a
heavy step every ``every`` steps.
"""

from __future__ import annotations

import math
import time

__all__ = ["FIRST_STEPS", "Cadence", "clock"]

#: steps at the start that are always sampled (their gradient norms and batch statistics)
FIRST_STEPS = 5
#: weight of a new measurement in the moving averages of the costs
_ALPHA = 0.3
#: the step time is the least of the last this many measured intervals (a busy machine only
#: ever lengthens an interval: the least is the training's own time)
_WINDOW = 8

clock = time.perf_counter


def _ema(old: float | None, new: float) -> float:
    return new if old is None else old + _ALPHA * (new - old)


class Cadence:
    """The steps at which the next sampled step (``sample_at``) and heavy step (``heavy_at``)
    run; the Monitor reports what each cost and when steps started."""

    def __init__(self, budget: float | None, every: int):
        self.budget, self.every = budget, every
        self.sample_at = 0
        self.heavy_at = 0
        self.step_s: float | None = None      # measured seconds of one training step
        self.sample_s: float | None = None    # measured seconds of a sampled step's work
        self.heavy_s: float | None = None     # ... of a heavy step's, window included
        self._ref: tuple[int, float] | None = None
        self._intervals: list[float] = []

    def started(self, k: int, t: float) -> None:
        """A long-path ``Monitor.step`` for step ``k`` began at ``t``: one more interval."""
        ref = self._ref
        if ref is not None and k > ref[0]:
            recent = self._intervals
            recent.append((t - ref[1]) / (k - ref[0]))
            if len(recent) > _WINDOW:
                del recent[0]
            self.step_s = min(recent)

    def ended(self, k: int, t: float) -> None:
        """It ended at ``t`` (the next interval starts here, without the Monitor's own work)."""
        self._ref = (k, t)

    def interrupt(self, k: int) -> None:
        """An evaluation: the interval up to the next step is not a training step's time, and
        the next step is a sampled one."""
        self._ref = None
        self.sample_at = min(self.sample_at, k)

    def sampled(self, k: int, cost: float) -> None:
        """A sampled step ``k`` took ``cost`` seconds of Monitor work: schedule the next one."""
        if self.budget is None or k + 1 < FIRST_STEPS:
            self.sample_at = k + 1
            return
        self.sample_s = _ema(self.sample_s, cost)
        self.sample_at = k + self._interval(self.sample_s, 1, self.every)

    def sampled_alone(self, k: int, t0: float, t1: float) -> None:
        """A sampled step ``k`` whose only Monitor work ran from ``t0`` to ``t1``: one call for
        :meth:`started`, :meth:`sampled` and :meth:`ended`."""
        if self.budget is None:
            self.sample_at = k + 1
            return
        self.started(k, t0)
        self.sampled(k, t1 - t0)
        self._ref = (k, t1)

    def heavy_done(self, k: int, cost: float, now: int) -> None:
        """The heavy step ``k`` (with its window, ending before step ``now``) cost ``cost``.
        Step 0's cost (first calls, cold caches: several times the usual) is not counted."""
        if self.budget is None or k == 0:
            self.heavy_at = max((k // self.every + 1) * self.every, now + 1)
            return
        self.heavy_s = _ema(self.heavy_s, cost)
        self.heavy_at = max(k + self._interval(self.heavy_s, self.every, None), now + 1)

    def _interval(self, cost: float, low: int, high: int | None) -> int:
        if self.step_s is None or self.step_s <= 0 or self.budget is None:
            return low
        n = math.ceil(cost / (0.5 * self.budget * self.step_s))
        n = max(low, n)
        return n if high is None else min(n, high)

"""The budget probe: is the range test's minimum still safe a quarter of the way into the run?

A range test runs from the model's starting point, so its loss minimum ``m`` (the LR where a
step starts to overshoot) is the edge of stability *early* in training. How close to ``m`` a
constant LR can be held depends on how that edge moves as training goes on, which a test from
the start cannot see. Given the run's length (``budget_steps``), the probe looks:

1. **warm**: train ``round(PROBE_FRACTION * budget_steps)`` steps at the suggestion ``s``;
2. **ramp**: then, from there, ramp the LR geometrically from ``s`` to ``PROBE_TOP * m`` in
   ``PROBE_STEPS`` steps (stopping early on NaN/Inf or a loss above ``PROBE_BLOWUP`` times the
   lowest so far);
3. **edge**: the first LR of the ramp (after ``PROBE_WINDOW - 1`` steps) where the trailing
   median of ``PROBE_WINDOW`` losses exceeds both ``PROBE_RISE`` times its own running minimum
   and ``reference``, the mean of the last 10 warm losses; the last LR reached when none does.

If ``edge >= m`` - raising the LR toward the range test's minimum after a quarter of the run
does not yet hurt - the loss is still limited by progress, not by the step's noise and
overshoot, and the suggestion moves up to ``m / NEAR_MARGIN``. Otherwise (the usual case for a
classifier whose loss has fallen near its floor: a higher LR lifts it at once) the suggestion
stays. It stays too when the warm phase has **converged**: ``reference < PROBE_CONVERGED *
start``, ``start`` the median of the first ``PROBE_WINDOW`` warm losses (the loss fell by more
than 99%). Then a loss near zero "holds" under LRs that a run from the start could not stand
(a gradient near zero moves nothing), so the edge says nothing about the run; and a run that
converges in a quarter of its steps is not limited by progress, which is what a move is for.
That gate was added 2026-12-07 after a GRU (benchmarks/_p1_cells.py ``gru-recall`` + Adam,
warm loss 0.0013 of a start of 1.8) moved 2.8x up to an LR that fails from the start; its
constant was chosen on P1's tuning cells (docs/finder.md). Chosen on benchmark P1's eight main cells (``docs/finder.md``, 2026-12-03): the edge was
at 0.32-0.72 ``m`` on every classification cell and 2.3-5.6 ``m`` on both charlm cells; on the
held-out cells, 0.32-0.74 ``m`` on the classifiers and 3.5-6.7 ``m`` on a one-layer charlm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrdoctor.errors import FinderError

__all__ = ["NEAR_MARGIN", "PROBE_CONVERGED", "PROBE_FRACTION", "PROBE_STEPS", "BudgetProbe",
           "ProbeReport", "probe_edge"]

#: the warm phase is this fraction of the run's optimizer steps
PROBE_FRACTION = 0.25
#: steps of the probe's ramp, from the suggestion to ``PROBE_TOP`` times the min-loss LR
PROBE_STEPS = 60
PROBE_TOP = 8.0
#: the edge: the trailing median of ``PROBE_WINDOW`` losses above ``PROBE_RISE`` x its minimum
PROBE_RISE = 1.3
PROBE_WINDOW = 5
#: the ramp stops once a loss exceeds this many times the lowest of the ramp
PROBE_BLOWUP = 4.0
#: the suggestion when the edge holds: the min-loss LR divided by this
NEAR_MARGIN = math.sqrt(2.0)
#: converged: the warm phase's last losses (``reference``) below this fraction of its first
PROBE_CONVERGED = 0.01


def probe_edge(lrs: np.ndarray, losses: np.ndarray, reference: float) -> float | None:
    """The LR where the probe ramp's loss starts to rise (see the module doc); ``None`` if empty.

    >>> lrs = np.geomspace(0.1, 10, 8)
    >>> bool(probe_edge(lrs, [1.0, 0.9, 0.9, 0.9, 0.9, 2.0, 2.0, 2.0], 1.0) == lrs[7])
    True
    >>> bool(probe_edge(lrs[:3], [1.0, 0.9, 0.8], 1.0) == lrs[2])  # never rose: the last LR
    True
    """
    lrs = np.asarray(lrs, float)
    values = np.asarray(losses, float)
    n = min(len(lrs), len(values))
    if n == 0:
        return None
    low = math.inf
    for i in range(n):
        window = values[max(0, i - PROBE_WINDOW + 1): i + 1]
        if not np.isfinite(window).all():
            return float(lrs[i])
        med = float(np.median(window))
        low = min(low, med)
        if i >= PROBE_WINDOW - 1 and med > PROBE_RISE * low and med > reference:
            return float(lrs[i])
    return float(lrs[n - 1])


@dataclass(frozen=True)
class ProbeReport:
    """What the budget probe saw: the warm phase, the ramp, the edge and whether it moved."""

    warm_lr: float
    warm_steps: int
    reference: float
    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    min_loss_lr: float
    edge_lr: float | None
    moved: bool
    stop: str
    #: the median of the first ``PROBE_WINDOW`` warm losses (NaN when none was recorded)
    warm_start: float = math.nan

    @property
    def converged(self) -> bool:
        """The warm phase's loss fell below ``PROBE_CONVERGED`` times where it started."""
        return bool(math.isfinite(self.reference) and math.isfinite(self.warm_start)
                    and self.reference < PROBE_CONVERGED * self.warm_start)

    def to_dict(self) -> dict[str, Any]:
        return {"warm_lr": self.warm_lr, "warm_steps": self.warm_steps,
                "reference": self.reference, "lrs": list(self.lrs), "losses": list(self.losses),
                "min_loss_lr": self.min_loss_lr, "edge_lr": self.edge_lr, "moved": self.moved,
                "stop": self.stop, "warm_start": self.warm_start, "converged": self.converged}

    def sentence(self) -> str:
        """One sentence for the result's notes."""
        if self.edge_lr is None:
            why = {"nonfinite": "a NaN/Inf loss", "data": "the loader running out"}.get(
                self.stop, self.stop)
            return (f"budget probe: stopped by {why} after {self.warm_steps} warm steps at lr "
                    f"{self.warm_lr:.3g} and {len(self.losses)} ramp steps, too early to tell; "
                    "the suggestion keeps its margin")
        head = (f"budget probe: after {self.warm_steps} steps at lr {self.warm_lr:.3g}, a ramp "
                f"toward {PROBE_TOP:g} x the min-loss lr {self.min_loss_lr:.3g}: the loss held "
                f"until lr {self.edge_lr:.3g}")
        if self.converged and self.edge_lr >= self.min_loss_lr:
            return (head + f", but the warm loss had fallen to {self.reference:.3g} from "
                    f"{self.warm_start:.3g} (below {PROBE_CONVERGED:g} of it: converged, so the "
                    "ramp's tolerance says nothing about the run), so the suggestion keeps "
                    "its margin")
        if self.moved:
            return (head + f", at or past the minimum, so the loss is still limited by progress "
                    f"and the suggestion moves up to min-loss lr / {NEAR_MARGIN:.2f}")
        return head + ", below the minimum, so the suggestion keeps its margin"


@dataclass
class BudgetProbe:
    """The probe as a state machine, like :class:`~lrdoctor.finder.RangeTest`: ask :meth:`lr`,
    train one step, :meth:`record` its loss; then :meth:`report`.

    >>> p = BudgetProbe(0.1, 0.4, warm_steps=3)
    >>> while p.running:
    ...     _ = p.record(1.0 if p.lr() < 0.8 else 5.0)
    >>> r = p.report()
    >>> r.moved, round(r.edge_lr, 2)
    (True, 0.83)
    """

    warm_lr: float
    min_loss_lr: float
    warm_steps: int
    ramp_steps: int = PROBE_STEPS
    step: int = 0
    stop: str | None = None
    _warm: list[float] = field(default_factory=list)
    _lrs: list[float] = field(default_factory=list)
    _losses: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("warm_lr", "min_loss_lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise FinderError(f"{name} must be a positive finite number, got {value!r}")
        if int(self.warm_steps) != self.warm_steps or self.warm_steps < 1:
            raise FinderError(f"warm_steps must be an integer >= 1, got {self.warm_steps!r}")
        if int(self.ramp_steps) != self.ramp_steps or self.ramp_steps < PROBE_WINDOW + 1:
            raise FinderError(f"ramp_steps must be an integer >= {PROBE_WINDOW + 1}, "
                              f"got {self.ramp_steps!r}")
        self.top = max(PROBE_TOP * self.min_loss_lr, self.warm_lr)

    @property
    def running(self) -> bool:
        return self.stop is None

    @property
    def recorded(self) -> int:
        return len(self._warm) + len(self._losses)

    def lr(self) -> float:
        """The LR of the next step: ``warm_lr`` for the warm phase, then the geometric ramp."""
        k = self.step - self.warm_steps
        if k < 0:
            return float(self.warm_lr)
        return float(self.warm_lr * (self.top / self.warm_lr) ** (k / (self.ramp_steps - 1)))

    def record(self, loss: float) -> bool:
        """Record the loss of the step just taken at :meth:`lr`, then advance; returns go on."""
        if self.stop is not None:
            raise FinderError("record() after the probe stopped")
        loss = float(loss)
        if self.step < self.warm_steps:
            self._warm.append(loss)
            if not math.isfinite(loss):
                self.stop = "nonfinite"
        else:
            self._lrs.append(self.lr())
            self._losses.append(loss)
            finite = [v for v in self._losses if math.isfinite(v)]
            if not math.isfinite(loss):
                self.stop = "nonfinite"
            elif len(finite) > PROBE_WINDOW and loss > PROBE_BLOWUP * min(finite):
                self.stop = "diverged"
        self.step += 1
        if self.stop is None and self.step >= self.warm_steps + self.ramp_steps:
            self.stop = "end"
        return self.stop is None

    def end_of_data(self) -> None:
        if self.stop is None:
            self.stop = "data"

    def report(self) -> ProbeReport:
        """The edge and the verdict: ``moved`` when the ramp held up to the min-loss LR and the
        warm phase had not converged (``reference >= PROBE_CONVERGED * warm_start``)."""
        warm = np.asarray(self._warm, float)
        reference = float(np.mean(warm[-10:])) if len(warm) else math.nan
        complete = len(warm) == self.warm_steps and math.isfinite(reference) and \
            len(self._losses) >= PROBE_WINDOW
        edge = probe_edge(np.asarray(self._lrs), np.asarray(self._losses), reference) \
            if complete else None
        start = float(np.median(warm[:PROBE_WINDOW])) if len(warm) else math.nan
        converged = math.isfinite(start) and reference < PROBE_CONVERGED * start
        moved = bool(complete and edge is not None and edge >= self.min_loss_lr
                     and self.min_loss_lr / NEAR_MARGIN > self.warm_lr and not converged)
        return ProbeReport(float(self.warm_lr), len(warm), reference, tuple(self._lrs),
                           tuple(self._losses), float(self.min_loss_lr), edge, moved,
                           self.stop or "interrupted", start)

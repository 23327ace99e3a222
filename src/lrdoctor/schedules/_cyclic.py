"""Shapes that rise and fall: cyclical LR, one-cycle, and cosine with warm restarts (SGDR).

Cyclic and one-cycle also carry a momentum (beta1) curve that moves against the learning rate,
as in Smith (2018) and torch's ``cycle_momentum``; adapters apply it where the optimizer has
``momentum`` or ``betas``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import KW_ONLY, dataclass

from lrdoctor.schedules._base import LR_MAX, Mark, Schedule, finite_lr, param
from lrdoctor.schedules._decay import held

__all__ = ["SGDR", "Cyclic", "OneCycle"]


@dataclass(frozen=True)
class Cyclic(Schedule):
    """Cyclical learning rate between ``low_lr`` and ``high_lr`` (torch ``CyclicLR``).

    With ``up = half_period`` and ``down`` steps (default ``up``), ``T = up + down``:
    ``c = floor(1 + k / T)``, ``x = 1 + k / T - c``, ``s = x / r`` if ``x <= r`` else
    ``(x - 1) / (r - 1)`` where ``r = up / T``; then
    ``lr(k) = low + (high - low) * s * g`` with ``g = 1`` (triangular), ``0.5 ** (c - 1)``
    (triangular2) or ``gamma ** k`` (exp_range). Momentum moves the other way, from
    ``max_momentum`` down to ``min_momentum`` and back.

    >>> Cyclic(1.0, 3.0, half_period=2)(2)
    3.0
    """

    low_lr: float = param(kind="lr")
    high_lr: float = param(kind="lr")
    _: KW_ONLY
    half_period: int = param(2000, kind="steps")
    down_steps: int | None = param(None, kind="opt_steps", spec="down")
    mode: str = param("triangular", kind="choice", choices=("triangular", "triangular2", "exp_range"))
    gamma: float = param(1.0, kind="positive")
    cycle_momentum: bool = param(True, kind="bool")
    min_momentum: float = param(0.8, kind="lr")
    max_momentum: float = param(0.9, kind="lr")
    steps: int | None = param(None, kind="opt_steps")
    name = "cyclic"

    def _validate(self) -> None:
        if self.high_lr < self.low_lr:
            raise self._error(f"the high lr {self.high_lr!r} is below the low lr {self.low_lr!r}")
        if self.gamma > 1:
            raise self._error(f"gamma must be in (0, 1] for exp_range, got {self.gamma!r}")

    def _phase(self, step: int) -> tuple[float, float]:
        """(scale in [0, 1] within the cycle, amplitude factor g)."""
        step = held(step, self.steps)
        up = float(self.half_period)
        total = up + float(self.down_steps if self.down_steps is not None else self.half_period)
        ratio = up / total
        cycle = math.floor(1 + step / total)
        x = 1.0 + step / total - cycle
        scale = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        if self.mode == "triangular":
            g = 1.0
        elif self.mode == "triangular2":
            g = 0.5 ** (cycle - 1)  # = 1 / 2 ** (c - 1), without overflow after 1024 cycles
        else:
            g = self.gamma**step
        return scale, g

    def __call__(self, step: int) -> float:
        scale, g = self._phase(step)
        return self.low_lr + (self.high_lr - self.low_lr) * scale * g

    def momentum(self, step: int) -> float | None:
        if not self.cycle_momentum:
            return None
        scale, g = self._phase(step)
        return self.max_momentum - (self.max_momentum - self.min_momentum) * scale * g

    @property
    def duration(self) -> int | None:
        return self.steps

    def marks(self, horizon: int) -> list[Mark]:
        horizon = held(horizon, self.steps)
        up = self.half_period
        total = up + (self.down_steps or up)
        return [Mark(k, "peak") for k in range(up, horizon, total)[:50]]


@dataclass(frozen=True)
class OneCycle(Schedule):
    """Smith's one-cycle policy (torch ``OneCycleLR``, same defaults).

    Start at ``max_lr / div``, rise to ``max_lr`` by step ``peak_at * steps - 1``, then anneal
    (``cos`` or ``linear``) to ``max_lr / div / final_div`` at step ``steps - 1``. With
    ``three_phase`` the fall first returns to the start value at ``2 * peak_at * steps - 2``,
    then anneals to the minimum. Cosine annealing between values a and b at progress p is
    ``b + (a - b) * (1 + cos(pi p)) / 2``. Momentum mirrors the LR between ``max_momentum``
    and ``min_momentum``.

    >>> s = OneCycle(0.1, steps=100)
    >>> [round(s(k), 12) for k in (0, 29, 99)]
    [0.004, 0.1, 4e-07]
    """

    max_lr: float = param(kind="lr")
    _: KW_ONLY
    steps: int = param(kind="steps")
    peak_at: float = param(0.3, kind="positive")
    div: float = param(25.0, kind="positive")
    final_div: float = param(1e4, kind="positive")
    three_phase: bool = param(False, kind="bool")
    anneal: str = param("cos", kind="choice", choices=("cos", "linear"))
    cycle_momentum: bool = param(True, kind="bool")
    min_momentum: float = param(0.85, kind="lr")
    max_momentum: float = param(0.95, kind="lr")
    name = "one_cycle"

    _segments: tuple[tuple[float, float, float, float, float, float], ...] = dataclasses.field(
        init=False, repr=False, compare=False
    )

    def _validate(self) -> None:
        if not 0 < self.peak_at < (0.5 if self.three_phase else 1):
            limit = "0.5 with three_phase" if self.three_phase else "1"
            raise self._error(f"peak_at must be in (0, {limit}), got {self.peak_at!r}")
        first = self.peak_at * self.steps - 1
        if first <= 0:
            raise self._error(
                f"the rise ends at step {first:g}: with steps={self.steps} and "
                f"peak_at={self.peak_at!r} there is no room for it; raise steps or peak_at"
            )

        # (start step, end step, lr from, lr to, momentum from, momentum to) per phase; the
        # momentum is high where the lr is low.
        initial = self.max_lr / self.div
        lr = {"initial": initial, "max": self.max_lr, "min": initial / self.final_div}
        if not math.isfinite(initial):
            raise self._error(f"div is too small: the starting lr (the peak divided by div={self.div!r}) "
                              "overflows; use div >= 1 (torch's default is 25)")
        if not math.isfinite(lr["min"]):
            raise self._error(f"final_div is too small: the final lr (the starting lr divided by "
                              f"final_div={self.final_div!r}) overflows; use final_div >= 1 "
                              "(torch's default is 1e4)")
        mom = {"initial": self.max_momentum, "max": self.min_momentum, "min": self.max_momentum}
        first = float(self.peak_at * self.steps) - 1
        last = float(self.steps - 1)
        if self.three_phase:
            second = float(2 * self.peak_at * self.steps) - 2
            phases = [(first, "initial", "max"), (second, "max", "initial"), (last, "initial", "min")]
        else:
            phases = [(first, "initial", "max"), (last, "max", "min")]
        segments, start = [], 0.0
        for end, a, b in phases:
            segments.append((start, end, lr[a], lr[b], mom[a], mom[b]))
            start = end
        object.__setattr__(self, "_segments", tuple(segments))

    def _locate(self, step: int) -> tuple[tuple[float, ...], float]:
        """(the phase's segment, progress within it) for ``step``, holding after ``steps``."""
        step = min(step, self.steps - 1)
        for seg in self._segments[:-1]:
            if step <= seg[1]:
                break
        else:
            seg = self._segments[-1]
        return seg, (step - seg[0]) / (seg[1] - seg[0])

    def _anneal(self, a: float, b: float, p: float) -> float:
        if self.anneal == "cos":
            return b + (a - b) / 2.0 * (math.cos(math.pi * p) + 1)
        return (b - a) * p + a

    def __call__(self, step: int) -> float:
        seg, p = self._locate(step)
        return self._anneal(seg[2], seg[3], p)

    def momentum(self, step: int) -> float | None:
        if not self.cycle_momentum:
            return None
        seg, p = self._locate(step)
        return self._anneal(seg[4], seg[5], p)

    @property
    def duration(self) -> int:
        return self.steps

    def bound(self) -> float:
        return max(max(seg[2], seg[3]) for seg in self._segments)

    def marks(self, horizon: int) -> list[Mark]:
        ends = [math.ceil(seg[1]) for seg in self._segments[:-1]]
        labels = ["peak", "back to start"]
        return [Mark(e, label) for e, label in zip(ends, labels) if 0 < e < horizon]


@dataclass(frozen=True)
class SGDR(Schedule):
    """Cosine annealing with warm restarts (torch ``CosineAnnealingWarmRestarts``, Keras
    ``CosineDecayRestarts``), with a real-valued period multiplier and peak decay.

    Cycle ``i`` lasts ``T_i = period * mult ** i`` steps and starts at
    ``S_i = period * (mult ** i - 1) / (mult - 1)`` (``i * period`` when ``mult = 1``); within
    it, at ``t = k - S_i``: ``lr(k) = end + (base - end) * decay ** i * (1 + cos(pi t / T_i)) / 2``.
    After ``cycles`` cycles (if given) it holds ``end``. ``decay > 1`` grows the peak (Keras'
    ``m_mul`` allows it); a peak beyond the float range is held at the largest float.

    >>> s = SGDR(1.0, end_lr=0.0, period=10, mult=2)
    >>> s(0), s(10), s(30)
    (1.0, 1.0, 1.0)
    """

    base_lr: float = param(kind="lr")
    _: KW_ONLY
    end_lr: float = param(0.0, kind="lr", spec="end")
    period: float = param(kind="positive")
    mult: float = param(1.0, kind="positive")
    decay: float = param(1.0, kind="positive")
    cycles: int | None = param(None, kind="opt_steps")
    steps: int | None = param(None, kind="opt_steps")
    _log_mult: float = dataclasses.field(init=False, repr=False, compare=False)
    name = "sgdr"

    def _validate(self) -> None:
        if self.period < 1:
            raise self._error(f"period must be >= 1 step (a cycle shorter than a step restarts "
                              f"within it), got {self.period!r}")
        if self.mult < 1:
            raise self._error(f"mult must be >= 1 (periods never shrink), got {self.mult!r}")
        if self.decay > 1 and self.end_lr > self.base_lr:
            raise self._error(f"decay={self.decay!r} grows the peak above base, which needs end <= base "
                              f"(the lr would fall below 0), got end={self.end_lr!r}")
        object.__setattr__(self, "_log_mult", math.log(self.mult))

    def _start(self, i: int) -> float:
        """The first step of cycle ``i`` (``inf`` once it is beyond the float range)."""
        if self.mult == 1:
            return i * self.period
        return self.period * (_pow(self.mult, i) - 1) / (self.mult - 1)

    def _cycle(self, step: int) -> tuple[int, float, float]:
        """(cycle index, step within it, its length)."""
        period, mult = self.period, self.mult
        if mult == 1:
            i = int(step // period)
            while i > 0 and step < i * period:  # settle float rounding on exact comparisons
                i -= 1
            while step >= (i + 1) * period:
                i += 1
            return i, step - i * period, period
        x = step / period * (mult - 1)
        lg = math.log(x + 1) if x < 1e300 else math.log(step / period) + math.log(mult - 1)
        i = int(lg / self._log_mult)
        while i > 0 and step < self._start(i):
            i -= 1
        while step >= self._start(i + 1):
            i += 1
        return i, step - self._start(i), period * _pow(mult, i)

    def __call__(self, step: int) -> float:
        i, t, length = self._cycle(held(step, self.steps))
        if self.cycles is not None and i >= self.cycles:
            return self.end_lr
        cos = (1 + math.cos(math.pi * t / length)) / 2
        peak = _pow(self.decay, i)  # decay > 1 grows the peak: held at the float range's end
        if math.isinf(peak):
            return self.end_lr if cos == 0 or self.base_lr == self.end_lr else LR_MAX
        return finite_lr(self.end_lr + (self.base_lr - self.end_lr) * peak * cos)

    @property
    def duration(self) -> int | None:
        ends = [] if self.steps is None else [self.steps]
        if self.cycles is not None:
            ends.append(min(math.ceil(self._start(self.cycles)), 2**63))
        return min(ends) if ends else None

    def bound(self) -> float:
        if self.decay <= 1:
            return max(self.base_lr, self.end_lr)
        last = None if self.cycles is None else self.cycles - 1
        if self.steps is not None:
            last_by_steps = self._cycle(self.steps)[0]
            last = last_by_steps if last is None else min(last, last_by_steps)
        if last is None:
            return math.inf  # grows without end, by request
        return max(self.base_lr, self.end_lr + (self.base_lr - self.end_lr) * _pow(self.decay, last))

    def marks(self, horizon: int) -> list[Mark]:
        horizon = held(horizon, self.steps)
        out, i = [], 1
        while (s := self._start(i)) < horizon and len(out) < 50:
            if self.cycles is not None and i >= self.cycles:
                out.append(Mark(math.ceil(s), "end"))
                break
            out.append(Mark(math.ceil(s), "restart"))
            i += 1
        return out


def _pow(x: float, n: int) -> float:
    """``x ** n``, ``inf`` where Python would raise OverflowError."""
    try:
        return x**n
    except OverflowError:
        return math.inf

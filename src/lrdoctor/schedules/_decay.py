"""Monotone decay shapes: constant, step, multistep, piecewise, exponential, inverse-time,
inverse-sqrt, polynomial, linear and cosine. Each is a closed form in the step ``k``.

The open-ended ones (step, multistep, piecewise, exponential, inverse_time, inverse_sqrt, and
cyclic and sgdr in :mod:`._cyclic`) take an optional ``steps=N``: then ``lr(k) = lr(min(k, N))``,
the shape ends at step N and a part may follow it with ``>>``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import KW_ONLY, dataclass

from lrdoctor.schedules._base import Mark, Schedule, param

__all__ = [
    "Constant",
    "Cosine",
    "Exponential",
    "InverseSqrt",
    "InverseTime",
    "Linear",
    "MultiStep",
    "Piecewise",
    "Polynomial",
    "Step",
]


def _check_decay_factor(s: Step | MultiStep | Exponential) -> None:
    """A decay factor is in (0, 1]: growth would overflow; ramps are ``warmup(...)``'s job."""
    if s.gamma > 1:
        raise s._error(
            f"gamma must be in (0, 1] (a decay), got {s.gamma!r}; "
            "for a rising ramp use warmup(steps, start=..., shape=exponential)"
        )


def held(step: int, steps: int | None) -> int:
    """``min(step, steps)``: an open-ended shape given ``steps=`` ends there and holds.

    That gives it a duration, so a part can follow it with ``>>`` (torch's ``SequentialLR``
    with an ``ExponentialLR`` first is ``exponential(lr, gamma=g, steps=m) >> ...``).
    """
    return step if steps is None or step < steps else steps


def _periods(step: int, every: int, staircase: bool) -> float:
    """``step / every``, floored when ``staircase`` (Keras' decay-steps convention)."""
    return math.floor(step / every) if staircase else step / every


@dataclass(frozen=True)
class Constant(Schedule):
    """A constant learning rate: ``lr(k) = lr``.

    With ``steps`` it has a duration, so it can be followed in a sequence
    (``constant(1e-3, steps=100) >> cosine(1e-3, steps=900)``).

    >>> Constant(1e-3)(12345)
    0.001
    """

    lr: float = param(kind="lr")
    _: KW_ONLY
    steps: int | None = param(None, kind="opt_steps")
    name = "constant"

    def __call__(self, step: int) -> float:
        return self.lr

    @property
    def duration(self) -> int | None:
        return self.steps


@dataclass(frozen=True)
class Step(Schedule):
    """Decay by ``gamma`` every ``every`` steps (torch ``StepLR``).

    ``lr(k) = base_lr * gamma ** floor(k / every)``

    >>> Step(0.1, every_steps=30, gamma=0.1)(60)
    0.0010000000000000002
    """

    base_lr: float = param(kind="lr")
    _: KW_ONLY
    every_steps: int = param(kind="steps", spec="every")
    gamma: float = param(0.1, kind="positive")
    steps: int | None = param(None, kind="opt_steps")
    name = "step"

    def _validate(self) -> None:
        _check_decay_factor(self)

    def __call__(self, step: int) -> float:
        return self.base_lr * self.gamma ** (held(step, self.steps) // self.every_steps)

    @property
    def duration(self) -> int | None:
        return self.steps

    def marks(self, horizon: int) -> list[Mark]:
        horizon = held(horizon, self.steps)
        return [Mark(k, "decay") for k in range(self.every_steps, horizon, self.every_steps)[:50]]


@dataclass(frozen=True)
class MultiStep(Schedule):
    """Decay by ``gamma`` at each milestone (torch ``MultiStepLR``).

    ``lr(k) = base_lr * gamma ** #{m in milestones : m <= k}``

    >>> MultiStep(0.1, milestones=(30, 80), gamma=0.1)(80)
    0.0010000000000000002
    """

    base_lr: float = param(kind="lr")
    _: KW_ONLY
    milestones: tuple[int, ...] = param(kind="steps_list")
    gamma: float = param(0.1, kind="positive")
    steps: int | None = param(None, kind="opt_steps")
    name = "multistep"

    def _validate(self) -> None:
        _check_decay_factor(self)

    def __call__(self, step: int) -> float:
        return self.base_lr * self.gamma ** bisect_right(self.milestones, held(step, self.steps))

    @property
    def duration(self) -> int | None:
        return self.steps

    def marks(self, horizon: int) -> list[Mark]:
        return [Mark(m, "decay") for m in self.milestones if m < held(horizon, self.steps)]


@dataclass(frozen=True)
class Piecewise(Schedule):
    """Piecewise-constant values (Keras ``PiecewiseConstantDecay``, shifted by one step).

    Spelt ``piecewise(values=[...], boundaries=[...])`` in specs (``values_lr`` in Python, as
    ``values()`` is the evaluation method).

    ``lr(k) = values[i]`` where ``i = #{b in boundaries : b <= k}``; a boundary is the first step
    of the next value. Keras' boundary ``b`` (value changes *after* step b) is ours ``b + 1``.

    >>> Piecewise(values_lr=(1.0, 0.5), boundaries=(10,))(10)
    0.5
    """

    _: KW_ONLY
    values_lr: tuple[float, ...] = param(kind="lr_list", spec="values")
    boundaries: tuple[int, ...] = param(kind="steps_list")
    steps: int | None = param(None, kind="opt_steps")
    name = "piecewise"

    def _validate(self) -> None:
        if len(self.values_lr) != len(self.boundaries) + 1:
            raise self._error(
                f"needs one more value than boundaries, got {len(self.values_lr)} values and "
                f"{len(self.boundaries)} boundaries"
            )

    def __call__(self, step: int) -> float:
        return self.values_lr[bisect_right(self.boundaries, held(step, self.steps))]

    @property
    def duration(self) -> int | None:
        return self.steps

    def marks(self, horizon: int) -> list[Mark]:
        return [Mark(b, "change") for b in self.boundaries if b < held(horizon, self.steps)]


@dataclass(frozen=True)
class Exponential(Schedule):
    """Exponential decay (torch ``ExponentialLR``, Keras ``ExponentialDecay``).

    ``lr(k) = base_lr * gamma ** (k / every)``, with ``floor(k / every)`` when ``staircase``.

    >>> Exponential(0.1, gamma=0.5, every_steps=10)(20)
    0.025
    """

    base_lr: float = param(kind="lr")
    _: KW_ONLY
    gamma: float = param(kind="positive")
    every_steps: int = param(1, kind="steps", spec="every")
    staircase: bool = param(False, kind="bool")
    steps: int | None = param(None, kind="opt_steps")
    name = "exponential"

    def __call__(self, step: int) -> float:
        return self.base_lr * self.gamma ** _periods(held(step, self.steps), self.every_steps, self.staircase)

    @property
    def duration(self) -> int | None:
        return self.steps

    def _validate(self) -> None:
        _check_decay_factor(self)


@dataclass(frozen=True)
class InverseTime(Schedule):
    """Inverse-time decay (Keras ``InverseTimeDecay``).

    ``lr(k) = base_lr / (1 + rate * k / every)``, with ``floor(k / every)`` when ``staircase``.

    >>> InverseTime(0.1, rate=0.5, every_steps=100)(200)
    0.05
    """

    base_lr: float = param(kind="lr")
    _: KW_ONLY
    rate: float = param(kind="lr")
    every_steps: int = param(1, kind="steps", spec="every")
    staircase: bool = param(False, kind="bool")
    steps: int | None = param(None, kind="opt_steps")
    name = "inverse_time"

    def __call__(self, step: int) -> float:
        periods = _periods(held(step, self.steps), self.every_steps, self.staircase)
        return self.base_lr / (1 + self.rate * periods)

    @property
    def duration(self) -> int | None:
        return self.steps


@dataclass(frozen=True)
class InverseSqrt(Schedule):
    """Linear warm-up then inverse-square-root decay (transformers ``inverse_sqrt``).

    ``lr(k) = base_lr * k / warmup`` for ``k < warmup``, then
    ``lr(k) = base_lr / sqrt((k - warmup + timescale) / timescale)``;
    ``timescale`` defaults to ``warmup`` (or 10,000 without warm-up), giving
    ``base_lr * sqrt(warmup / k)``.

    >>> InverseSqrt(1e-3, warmup_steps=4)(16)
    0.0005
    """

    base_lr: float = param(kind="lr")
    _: KW_ONLY
    warmup_steps: int = param(0, kind="steps0", spec="warmup")
    timescale: int | None = param(None, kind="opt_steps")
    steps: int | None = param(None, kind="opt_steps")
    name = "inverse_sqrt"

    def __call__(self, step: int) -> float:
        step = held(step, self.steps)
        w = self.warmup_steps
        if step < w:
            return self.base_lr * (step / w)
        ts = self.timescale or w or 10_000
        return self.base_lr * (1.0 / math.sqrt((step + (ts - w)) / ts))

    @property
    def duration(self) -> int | None:
        return self.steps

    def marks(self, horizon: int) -> list[Mark]:
        horizon = held(horizon, self.steps)
        return [Mark(self.warmup_steps, "warm-up end")] if 0 < self.warmup_steps < horizon else []


@dataclass(frozen=True)
class Polynomial(Schedule):
    """Polynomial decay (Keras ``PolynomialDecay``, torch ``PolynomialLR`` with ``end=0``).

    ``lr(k) = (base_lr - end_lr) * (1 - min(k, steps) / steps) ** power + end_lr``; with
    ``cycle`` the horizon grows to the next multiple of ``steps`` instead of holding.

    >>> Polynomial(0.1, end_lr=0.0, steps=10, power=2)(5)
    0.025
    """

    base_lr: float = param(kind="lr")
    _: KW_ONLY
    end_lr: float = param(0.0, kind="lr", spec="end")
    steps: int = param(kind="steps")
    power: float = param(1.0, kind="positive")
    cycle: bool = param(False, kind="bool")
    name = "polynomial"

    def __call__(self, step: int) -> float:
        horizon = self.steps
        if self.cycle:
            horizon = self.steps * max(1, math.ceil(step / self.steps))
        else:
            step = min(step, horizon)
        return (self.base_lr - self.end_lr) * (1 - step / horizon) ** self.power + self.end_lr

    @property
    def duration(self) -> int | None:
        return None if self.cycle else self.steps


@dataclass(frozen=True)
class Linear(Schedule):
    """Linear interpolation from ``base_lr`` to ``end_lr`` over ``steps`` (torch ``LinearLR``).

    ``lr(k) = base_lr + (end_lr - base_lr) * min(k, steps) / steps``

    >>> Linear(1e-3, end_lr=0.0, steps=10)(5)
    0.0005
    """

    base_lr: float = param(kind="lr")
    _: KW_ONLY
    end_lr: float = param(0.0, kind="lr", spec="end")
    steps: int = param(kind="steps")
    name = "linear"

    def __call__(self, step: int) -> float:
        if step >= self.steps:  # exactly end_lr: base + (end - base) * 1 can round below 0
            return self.end_lr
        return self.base_lr + (self.end_lr - self.base_lr) * step / self.steps

    @property
    def duration(self) -> int:
        return self.steps


@dataclass(frozen=True)
class Cosine(Schedule):
    """Half-cosine annealing (torch ``CosineAnnealingLR`` closed form, Keras ``CosineDecay``).

    ``lr(k) = end_lr + (base_lr - end_lr) * (1 + cos(pi * min(k, steps) / steps)) / 2``

    >>> Cosine(0.1, end_lr=0.0, steps=100)(50)
    0.05
    """

    base_lr: float = param(kind="lr")
    _: KW_ONLY
    end_lr: float = param(0.0, kind="lr", spec="end")
    steps: int = param(kind="steps")
    name = "cosine"

    def __call__(self, step: int) -> float:
        k = min(step, self.steps)
        return self.end_lr + (self.base_lr - self.end_lr) * (1 + math.cos(math.pi * k / self.steps)) / 2

    @property
    def duration(self) -> int:
        return self.steps

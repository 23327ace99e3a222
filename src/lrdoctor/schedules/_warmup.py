"""Warm-up ramps and warmup-stable-decay (WSD).

All ramps share :func:`ramp`, the fraction ``f(p)`` of the way from a start to a target value
reached at progress ``p`` in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass

from lrdoctor.schedules._base import Mark, Schedule, param

__all__ = ["WSD", "Ramp", "Warmup", "WarmupUntuned", "ramp"]

RAMP_SHAPES = ("linear", "cosine", "sqrt", "exponential")
DECAY_SHAPES = ("linear", "cosine", "sqrt")


def ramp(start: float, end: float, p: float, shape: str) -> float:
    """The value a fraction ``p`` of the way from ``start`` to ``end`` along ``shape``.

    ``linear``: ``start + (end - start) * p``; ``cosine``: ``f = (1 - cos(pi p)) / 2``;
    ``sqrt``: ``f = 1 - sqrt(1 - p)`` (fast start); ``exponential``:
    ``start * (end / start) ** p`` (geometric, needs ``start > 0``).
    """
    if shape == "linear":
        f = p
    elif shape == "cosine":
        f = 0.5 * (1.0 - math.cos(math.pi * p))
    elif shape == "sqrt":
        f = 1.0 - math.sqrt(1.0 - p)
    else:  # exponential; callers guarantee start > 0 and end > 0
        ratio = end / start
        if math.isinf(ratio):  # e.g. start=1e-320: the same curve in logs, without overflow
            return min(math.exp(math.log(start) + p * (math.log(end) - math.log(start))), end)
        return start * ratio**p
    return start + (end - start) * f


def _decay(peak: float, end: float, p: float, shape: str) -> float:
    """Decay from ``peak`` to ``end`` as ``p`` goes 0 -> 1 (WSD's last phase)."""
    if shape == "linear":
        f = 1.0 - p
    elif shape == "cosine":
        f = 0.5 * (1.0 + math.cos(math.pi * p))
    else:  # sqrt: the "1-sqrt" cool-down of Hägele et al. (2024)
        f = 1.0 - math.sqrt(p)
    return end + (peak - end) * f


class Ramp(Schedule):
    """A warm-up: rises towards a target, which a sequence takes from the part that follows."""

    target_lr: float | None

    @property
    def steps(self) -> int:
        raise NotImplementedError

    def towards(self, step: int, target: float) -> float:
        """The ramp's value at ``step`` when its target is ``target``."""
        raise NotImplementedError

    def __call__(self, step: int) -> float:
        if self.target_lr is None:
            raise self._error(
                "has no target: follow it with a schedule (warmup(500) >> cosine(...)) "
                "or give target=<lr>"
            )
        return self.towards(step, self.target_lr)

    @property
    def duration(self) -> int:
        return self.steps

    def bound(self) -> float:
        return max(getattr(self, "start_lr", 0.0), self.target_lr or 0.0)

    def marks(self, horizon: int) -> list[Mark]:
        return [Mark(self.steps, "warm-up end")] if self.steps < horizon else []


@dataclass(frozen=True)
class Warmup(Ramp):
    """Ramp from ``start_lr`` to a target over ``steps`` steps, then hold the target.

    ``lr(k) = ramp(start_lr, target, k / steps, shape)`` for ``k < steps``. In a sequence
    (``warmup(500) >> cosine(3e-4, steps=9500)``) the target is the next part's first value;
    on its own it needs ``target``.

    >>> (Warmup(4) >> Cosine(1.0, steps=10))(2)
    0.5
    """

    warmup_steps: int = param(kind="steps", spec="steps")
    _: KW_ONLY
    start_lr: float = param(0.0, kind="lr", spec="start")
    shape: str = param("linear", kind="choice", choices=RAMP_SHAPES)
    target_lr: float | None = param(None, kind="opt_real", spec="target")
    name = "warmup"

    def _validate(self) -> None:
        if self.shape == "exponential" and self.start_lr <= 0:
            raise self._error(
                "shape=exponential needs start > 0 (a geometric ramp cannot start at 0), "
                f"got start={self.start_lr!r}; try start=1e-7"
            )

    @property
    def steps(self) -> int:
        return self.warmup_steps

    def towards(self, step: int, target: float) -> float:
        if step >= self.warmup_steps:
            return target
        return ramp(self.start_lr, target, step / self.warmup_steps, self.shape)


@dataclass(frozen=True)
class WarmupUntuned(Ramp):
    """Ma & Yarats' untuned linear warm-up for Adam: ``round(2 / (1 - beta2))`` steps.

    ``lr(k) = target * min(1, (k + 1) / steps)`` — the first step already moves, as in the
    paper (``omega_t = min(1, t (1 - beta2) / 2)`` with ``t`` counted from 1).

    >>> WarmupUntuned(beta2=0.999).steps
    2000
    """

    _: KW_ONLY
    beta2: float = param(0.999, kind="positive")
    target_lr: float | None = param(None, kind="opt_real", spec="target")
    name = "warmup_untuned"

    def _validate(self) -> None:
        if not self.beta2 < 1:
            raise self._error(f"beta2 must be in (0, 1), got {self.beta2!r}")

    @property
    def steps(self) -> int:
        return max(1, round(2.0 / (1.0 - self.beta2)))

    def towards(self, step: int, target: float) -> float:
        return target * min(1.0, (step + 1) / self.steps)


@dataclass(frozen=True)
class WSD(Schedule):
    """Warmup-stable-decay ("trapezoidal") schedule.

    Ramp from ``start_lr`` to ``peak_lr`` over ``warmup`` steps (``warmup_shape``), hold the peak
    for ``stable`` steps, then decay to ``end_lr`` over ``decay`` steps along ``shape``
    (``linear``, ``cosine``, or ``sqrt`` = 1 - sqrt(p)), then hold ``end_lr``.
    Matches transformers' ``get_wsd_schedule`` with ``start = end = min_lr_ratio * peak``.

    >>> s = WSD(1.0, warmup_steps=2, stable_steps=3, decay_steps=4, end_lr=0.0, shape="linear")
    >>> [s(k) for k in range(10)]
    [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    """

    peak_lr: float = param(kind="lr")
    _: KW_ONLY
    warmup_steps: int = param(kind="steps0", spec="warmup")
    stable_steps: int = param(kind="steps0", spec="stable")
    decay_steps: int = param(kind="steps", spec="decay")
    end_lr: float = param(0.0, kind="lr", spec="end")
    shape: str = param("linear", kind="choice", choices=DECAY_SHAPES)
    warmup_shape: str = param("linear", kind="choice", choices=RAMP_SHAPES)
    start_lr: float = param(0.0, kind="lr", spec="start")
    name = "wsd"

    def _validate(self) -> None:
        if self.warmup_shape == "exponential" and self.start_lr <= 0:
            raise self._error("warmup_shape=exponential needs start > 0")

    def __call__(self, step: int) -> float:
        w, s, d = self.warmup_steps, self.stable_steps, self.decay_steps
        if step < w:
            return ramp(self.start_lr, self.peak_lr, step / w, self.warmup_shape)
        if step < w + s:
            return self.peak_lr
        if step < w + s + d:
            return _decay(self.peak_lr, self.end_lr, (step - w - s) / d, self.shape)
        return self.end_lr

    @property
    def duration(self) -> int:
        return self.warmup_steps + self.stable_steps + self.decay_steps

    def marks(self, horizon: int) -> list[Mark]:
        w, s = self.warmup_steps, self.stable_steps
        out = [Mark(w, "warm-up end"), Mark(w + s, "decay start"), Mark(self.duration, "end")]
        return [m for m in out if 0 < m.step < horizon]

"""Composition: ``a >> b`` (play in sequence, each part on its own local step) and ``*``.

As in optax's ``join_schedules``, a part never sees the global step: part ``i`` is evaluated at
``k - offset_i``. A warm-up part ramps to the first value of the part after it.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from dataclasses import dataclass

from lrdoctor.schedules._base import Mark, Schedule, param
from lrdoctor.schedules._warmup import Ramp

__all__ = ["Product", "Scaled", "Sequence"]


@dataclass(frozen=True)
class Sequence(Schedule):
    """Parts played one after another: ``lr(k) = part_i(k - offset_i)``.

    ``offset_i`` is the sum of the durations of the parts before ``i``; every part but the last
    must have a duration. A warm-up (or any :class:`Ramp`) without an explicit target ramps to
    the next part's value at its local step 0, so the hand-over is continuous.

    >>> s = Warmup(2) >> Constant(1.0)
    >>> [s(k) for k in range(4)]
    [0.0, 0.5, 1.0, 1.0]
    """

    parts: tuple[Schedule, ...] = param(kind="schedules")
    _offsets: tuple[int, ...] = dataclasses.field(init=False, repr=False, compare=False)
    _targets: tuple[float | None, ...] = dataclasses.field(init=False, repr=False, compare=False)
    name = "sequence"

    def _validate(self) -> None:
        if len(self.parts) < 2:
            raise self._error("needs at least two parts joined with '>>'")
        offsets, total = [], 0
        for part in self.parts[:-1]:
            if part.duration is None:
                raise self._error(
                    f"{part.to_spec()} never ends, so nothing can follow it with '>>'; "
                    "give it a length (e.g. steps=...) or put it last"
                )
            offsets.append(total)
            total += part.duration
        offsets.append(total)
        last = self.parts[-1]
        if isinstance(last, Ramp) and last.target_lr is None:
            raise self._error(f"{last.to_spec()} is last, so it has nothing to ramp to")
        targets: list[float | None] = []
        for i, part in enumerate(self.parts):
            if isinstance(part, Ramp) and part.target_lr is None:
                target = self.parts[i + 1](0)
                if getattr(part, "shape", None) == "exponential" and target <= 0:
                    raise self._error(
                        f"{part.to_spec()} ramps geometrically, but the next part starts at "
                        f"{target!r}; use shape=linear, or a next part that starts above 0"
                    )
                targets.append(target)
            else:
                targets.append(None)
        object.__setattr__(self, "_offsets", tuple(offsets))
        object.__setattr__(self, "_targets", tuple(targets))

    def _locate(self, step: int) -> tuple[int, int]:
        i = bisect_right(self._offsets, step) - 1
        return i, step - self._offsets[i]

    def __call__(self, step: int) -> float:
        i, local = self._locate(step)
        target = self._targets[i]
        if target is not None:
            return self.parts[i].towards(local, target)  # type: ignore[attr-defined]
        return self.parts[i](local)

    def momentum(self, step: int) -> float | None:
        i, local = self._locate(step)
        return self.parts[i].momentum(local)

    @property
    def duration(self) -> int | None:
        last = self.parts[-1].duration
        return None if last is None else self._offsets[-1] + last

    def marks(self, horizon: int) -> list[Mark]:
        out: list[Mark] = []
        for part, offset in zip(self.parts, self._offsets):
            if offset >= horizon:
                break
            if offset > 0 and not any(m.step == offset for m in out):
                out.append(Mark(offset, f"{part.name} starts"))
            out += [Mark(offset + m.step, m.label) for m in part.marks(horizon - offset)]
        return sorted(out, key=lambda m: m.step)

    def to_spec(self) -> str:
        return " >> ".join(_operand(p, ">>") for p in self.parts)

    def to_dict(self) -> dict[str, object]:
        return {"type": self.name, "parts": [p.to_dict() for p in self.parts]}


@dataclass(frozen=True)
class Scaled(Schedule):
    """A schedule times a constant: ``lr(k) = factor * schedule(k)``.

    >>> (Cosine(0.1, steps=10) * 0.5)(0)
    0.05
    """

    schedule: Schedule = param(kind="schedule")
    factor: float = param(kind="lr")
    name = "scaled"

    def __call__(self, step: int) -> float:
        return self.schedule(step) * self.factor

    def momentum(self, step: int) -> float | None:
        return self.schedule.momentum(step)

    @property
    def duration(self) -> int | None:
        return self.schedule.duration

    def marks(self, horizon: int) -> list[Mark]:
        return self.schedule.marks(horizon)

    def to_spec(self) -> str:
        return f"{_operand(self.schedule, '*')} * {self.factor!r}"


@dataclass(frozen=True)
class Product(Schedule):
    """Two schedules multiplied: ``lr(k) = left(k) * right(k)`` (e.g. a shape times a ramp).

    The duration is the longer of the two, or None if either never ends.
    """

    left: Schedule = param(kind="schedule")
    right: Schedule = param(kind="schedule")
    name = "product"

    def __call__(self, step: int) -> float:
        return self.left(step) * self.right(step)

    def momentum(self, step: int) -> float | None:
        m = self.left.momentum(step)
        return m if m is not None else self.right.momentum(step)

    @property
    def duration(self) -> int | None:
        a, b = self.left.duration, self.right.duration
        return None if a is None or b is None else max(a, b)

    def marks(self, horizon: int) -> list[Mark]:
        return sorted(self.left.marks(horizon) + self.right.marks(horizon), key=lambda m: m.step)

    def to_spec(self) -> str:
        return f"{_operand(self.left, '*')} * {_operand(self.right, '*')}"


def _operand(s: Schedule, op: str) -> str:
    """Spec text of an operand, parenthesised when it binds looser than ``op``."""
    text = s.to_spec()
    if isinstance(s, Sequence) and op == "*":
        return f"({text})"
    if isinstance(s, Sequence) and op == ">>":
        return f"({text})"
    return text

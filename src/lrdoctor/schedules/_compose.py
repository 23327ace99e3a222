"""Composition: ``a >> b`` (play in sequence, each part on its own local step) and ``*``.

As in optax's ``join_schedules``, a part never sees the global step: part ``i`` is evaluated at
``k - offset_i``. A warm-up part ramps to the first value of the part after it.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from dataclasses import dataclass

from lrdoctor.errors import ScheduleError
from lrdoctor.schedules._base import (
    MAX_DEPTH,
    MAX_STEPS,
    Mark,
    Schedule,
    check_bound,
    finite_lr,
    param,
)
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
    _depth: int = dataclasses.field(init=False, repr=False, compare=False)
    name = "sequence"

    def _validate(self) -> None:
        parts: list[Schedule] = []
        for part in self.parts:  # a sequence inside a sequence is the same as its parts joined
            parts.extend(part.parts if isinstance(part, Sequence) else (part,))
        object.__setattr__(self, "parts", tuple(parts))
        if len(parts) < 2:
            raise self._error("needs at least two parts joined with '>>'")
        offsets, total = [], 0
        for i, part in enumerate(parts[:-1]):
            if part.duration is None:
                raise self._part_error(i, (
                    f"{part.to_spec()} never ends, so nothing can follow it with '>>'; "
                    "give it a length (steps=...) or put it last"
                ))
            offsets.append(total)
            total += part.duration
            if total > MAX_STEPS:
                raise self._part_error(i, f"the parts up to here last {total} steps, more than 2**53 = {MAX_STEPS}")
        offsets.append(total)
        last = parts[-1]
        if isinstance(last, Ramp) and last.target_lr is None:
            raise self._part_error(len(parts) - 2, f"{last.to_spec()} is last, so it has nothing to ramp to")
        targets: list[float | None] = []
        for i, part in enumerate(parts):
            if isinstance(part, Ramp) and part.target_lr is None:
                try:
                    target = parts[i + 1](0)
                except ScheduleError as err:
                    raise self._part_error(i, err.reason) from None
                if getattr(part, "shape", None) == "exponential" and target <= 0:
                    raise self._part_error(i, (
                        f"{part.to_spec()} ramps geometrically, but the next part starts at "
                        f"{target!r}; use shape=linear, or a next part that starts above 0"
                    ))
                targets.append(target)
            else:
                targets.append(None)
        depth = 1 + max(p.depth for p in parts)
        if depth > MAX_DEPTH:
            raise self._error(f"nests {depth} schedules deep, more than {MAX_DEPTH}")
        object.__setattr__(self, "_offsets", tuple(offsets))
        object.__setattr__(self, "_targets", tuple(targets))
        object.__setattr__(self, "_depth", depth)

    def _part_error(self, i: int, message: str) -> ScheduleError:
        """An error about the join after part ``i`` (the parser points at that '>>')."""
        err = self._error(message)
        err.join = i  # type: ignore[attr-defined]
        return err

    @property
    def depth(self) -> int:
        return self._depth

    def bound(self) -> float:
        return max(p.bound() if t is None else max(p.bound(), t) for p, t in zip(self.parts, self._targets))

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
        seen: set[int] = set()
        for part, offset in zip(self.parts, self._offsets):
            if offset >= horizon:
                break
            if offset > 0 and offset not in seen:
                out.append(Mark(offset, f"{part.name} starts"))
            inner = [Mark(offset + m.step, m.label) for m in part.marks(horizon - offset)]
            seen.update(m.step for m in inner)
            seen.add(offset)
            out += inner
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

    def _validate(self) -> None:
        _check_depth(self, self.schedule.depth)
        b = self.schedule.bound()
        check_bound(self, (b,), self.bound(), f"the factor {self.factor!r} times the largest lr {b!r}")

    @property
    def depth(self) -> int:
        return 1 + self.schedule.depth

    def bound(self) -> float:
        return self.schedule.bound() * self.factor if self.factor else 0.0

    def __call__(self, step: int) -> float:
        return finite_lr(self.schedule(step) * self.factor)

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

    def _validate(self) -> None:
        _check_depth(self, max(self.left.depth, self.right.depth))
        a, b = self.left.bound(), self.right.bound()
        check_bound(self, (a, b), self.bound(), f"the largest lrs {a!r} and {b!r} multiplied")

    @property
    def depth(self) -> int:
        return 1 + max(self.left.depth, self.right.depth)

    def bound(self) -> float:
        a, b = self.left.bound(), self.right.bound()
        return a * b if a and b else 0.0

    def __call__(self, step: int) -> float:
        return finite_lr(self.left(step) * self.right(step))

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
        return f"{_operand(self.left, '*')} * {_operand(self.right, '*', right=True)}"


def _check_depth(s: Schedule, inner: int) -> None:
    if inner + 1 > MAX_DEPTH:
        raise s._error(f"nests {inner + 1} schedules deep, more than {MAX_DEPTH}; "
                       "multiply fewer schedules, or fold the numbers into one factor")


def _operand(s: Schedule, op: str, *, right: bool = False) -> str:
    """Spec text of an operand, parenthesised when it binds looser than ``op``, or when it is
    a product on the right of ``*`` (``*`` groups to the left: ``a * (b * c)`` is not
    ``a * b * c`` bit for bit)."""
    text = s.to_spec()
    if isinstance(s, Sequence):
        return f"({text})"
    if right and isinstance(s, (Product, Scaled)):
        return f"({text})"
    return text

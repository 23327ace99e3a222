"""The ``Schedule`` base class and the declarative parameter machinery every shape shares.

A schedule is a frozen dataclass whose fields are declared with :func:`param`. The field's
metadata says how the value is validated (``kind``), how it is spelt in the spec language
(``spec``) and which values are allowed (``choices``). From that one declaration the base class
derives validation, ``to_spec``, ``to_dict`` and ``from_dict``, so a shape only writes its
formula.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from lrdoctor.errors import ScheduleError

__all__ = ["LR_MAX", "MAX_DEPTH", "MAX_STEPS", "Mark", "Schedule", "finite_lr", "param", "registry"]

_MISSING: Any = dataclasses.MISSING

#: The largest step count a parameter may hold: every count up to it is an exact float.
MAX_STEPS = 2**53
#: How deeply schedules may nest (``a * (b * (c * ...))``, parentheses, lists): evaluation,
#: ``to_spec`` and equality recurse once per level, and must stay far from Python's limit.
MAX_DEPTH = 100
#: The largest finite float: a learning rate is never larger (see :func:`finite_lr`).
LR_MAX = sys.float_info.max

#: Spec name -> schedule class, filled by ``Schedule.__init_subclass__``.
registry: dict[str, type[Schedule]] = {}


@dataclasses.dataclass(frozen=True)
class Mark:
    """A notable step of a schedule, for previews: warm-up end, a restart, a phase change."""

    step: int
    label: str


def param(
    default: Any = _MISSING,
    *,
    kind: str,
    spec: str | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """Declare a schedule parameter.

    ``kind`` is one of ``lr`` (finite float >= 0), ``positive`` (finite float > 0), ``real``
    (finite float), ``steps`` (int >= 1), ``steps0`` (int >= 0), ``opt_steps`` (None or int >= 1),
    ``opt_real`` (None or finite float > 0), ``bool``, ``choice``, ``steps_list`` (non-decreasing
    ints >= 0), ``lr_list`` (floats >= 0), ``schedule`` (a nested Schedule), ``schedules``.
    ``spec`` is the keyword used in spec strings when it differs from the field name.
    """
    metadata = {"kind": kind, "spec": spec, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


def _spec_name(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("spec") or f.name


class Schedule(ABC):
    """A learning rate as a pure function of the optimizer step.

    ``schedule(k)`` is the learning rate used by the k-th optimizer step, k = 0, 1, 2, …; it is
    defined in closed form for every k >= 0 and holds its final value after ``duration``.
    Schedules compose: ``a >> b`` plays ``a`` then ``b`` (each sees its own local step) and
    ``a * 0.5`` or ``a * b`` scales.
    """

    #: The function name of this shape in the spec language.
    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            registry[cls.name] = cls

    # -- the formula -----------------------------------------------------------------------
    @abstractmethod
    def __call__(self, step: int) -> float:
        """The learning rate of optimizer step ``step``."""

    @property
    def duration(self) -> int | None:
        """Steps until the schedule reaches its final value, or None if it never ends."""
        return None

    def momentum(self, step: int) -> float | None:
        """The momentum (beta1) that goes with ``step``, or None if the schedule sets none."""
        return None

    def marks(self, horizon: int) -> list[Mark]:
        """Notable steps before ``horizon`` (phase changes, restarts), for previews."""
        return []

    def bound(self) -> float:
        """An upper bound on ``self(k)`` over every k (``inf`` where the lr grows without end).

        By default the largest learning-rate parameter; shapes whose formula can exceed its
        parameters (a division, a growth factor) say so themselves.
        """
        out = 0.0
        for f in spec_fields(self):
            value = getattr(self, f.name)
            if f.metadata["kind"] == "lr":
                out = max(out, value)
            elif f.metadata["kind"] == "lr_list":
                out = max(out, *value)
        return out

    @property
    def depth(self) -> int:
        """How many schedules deep this one nests (1 for a shape)."""
        return 1

    def values(self, steps: int | Iterable[int]) -> np.ndarray:
        """Evaluate at ``range(steps)`` or at the given steps, as a float64 array."""
        ks = range(steps) if isinstance(steps, int) else steps
        return np.fromiter((self(int(k)) for k in ks), dtype=np.float64)

    # -- composition -----------------------------------------------------------------------
    def __rshift__(self, other: Schedule) -> Schedule:
        from lrdoctor.schedules._compose import Sequence

        if not isinstance(other, Schedule):
            return NotImplemented
        left = self.parts if isinstance(self, Sequence) else (self,)
        right = other.parts if isinstance(other, Sequence) else (other,)
        return Sequence(parts=left + right)

    def __mul__(self, other: Schedule | float) -> Schedule:
        from lrdoctor.schedules._compose import Product, Scaled

        if isinstance(other, Schedule):
            return Product(left=self, right=other)
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return Scaled(schedule=self, factor=float(other))
        return NotImplemented

    __rmul__ = __mul__

    # -- validation ------------------------------------------------------------------------
    def __post_init__(self) -> None:
        for f in _spec_fields(type(self)):
            value = _coerce(self.name, f, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        self._validate()

    def _validate(self) -> None:
        """Checks that involve several parameters; raise :func:`self._error`."""

    def _error(self, message: str) -> ScheduleError:
        return ScheduleError(f"{self.name}: {message}")

    # -- serialisation ---------------------------------------------------------------------
    def to_spec(self) -> str:
        """The spec string; ``parse(s.to_spec()) == s``."""
        args: list[str] = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if "kind" not in f.metadata:
                continue
            value = getattr(self, f.name)
            if not f.kw_only:
                args.append(format_value(value))
            elif f.default is _MISSING or value != f.default:
                args.append(f"{_spec_name(f)}={format_value(value)}")
        return f"{self.name}({', '.join(args)})"

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready dict: ``{"type": name, <spec keyword>: value, ...}``."""
        out: dict[str, Any] = {"type": self.name}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if "kind" not in f.metadata:
                continue
            value = getattr(self, f.name)
            if isinstance(value, Schedule):
                value = value.to_dict()
            elif isinstance(value, tuple) and value and isinstance(value[0], Schedule):
                value = [v.to_dict() for v in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[_spec_name(f)] = value
        return out

    @classmethod
    def build(cls, **spec_kwargs: Any) -> Schedule:
        """Construct from spec keywords (``end=`` rather than ``end_lr=``), checking names."""
        by_spec = {_spec_name(f): f.name for f in spec_fields(cls)}
        kwargs = {}
        for key, value in spec_kwargs.items():
            if key not in by_spec:
                expected = ", ".join(by_spec)  # Python callers may name positionals too
                raise ScheduleError(
                    f"unknown argument {key!r} for {cls.name}; expected one of {expected}"
                )
            kwargs[by_spec[key]] = value
        missing = [
            _spec_name(f)
            for f in spec_fields(cls)
            if f.default is _MISSING and f.name not in kwargs
        ]
        if missing:
            raise ScheduleError(f"{cls.name} needs {', '.join(missing)}")
        return cls(**kwargs)


def spec_fields(cls: type[Schedule] | Schedule) -> list[dataclasses.Field[Any]]:
    """The declared parameters of a schedule class, in order."""
    return list(_spec_fields(cls if isinstance(cls, type) else type(cls)))


@functools.cache
def _spec_fields(cls: type[Schedule]) -> tuple[dataclasses.Field[Any], ...]:
    return tuple(f for f in dataclasses.fields(cls) if "kind" in f.metadata)  # type: ignore[arg-type]


def from_dict(data: dict[str, Any], _depth: int = 1) -> Schedule:
    """Inverse of :meth:`Schedule.to_dict`."""
    if _depth > MAX_DEPTH:
        raise ScheduleError(f"the schedule dict nests more than {MAX_DEPTH} levels deep")
    if not isinstance(data, dict) or "type" not in data:
        raise ScheduleError(f"a schedule dict needs a 'type' key, got {data!r}")
    kind = data["type"]
    if kind not in registry:
        raise ScheduleError(f"unknown schedule type {kind!r}; expected one of {', '.join(sorted(registry))}")
    cls = registry[kind]
    kinds = {_spec_name(f): f.metadata["kind"] for f in spec_fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "type":
            continue
        if kinds.get(key) == "schedule":
            value = from_dict(value, _depth + 1)
        elif kinds.get(key) == "schedules":
            if not isinstance(value, (list, tuple)):
                raise ScheduleError(f"{kind}: {key} must be a list of schedule dicts, got {value!r}")
            value = tuple(from_dict(v, _depth + 1) for v in value)
        kwargs[key] = value
    return cls.build(**kwargs)


def finite_lr(value: float) -> float:
    """``value`` held within the float range: an lr that would overflow is ``LR_MAX``.

    Only shapes that grow without bound by request (``sgdr(..., decay>1)``) and products of
    them reach it; every other overflow is refused when the schedule is built.
    """
    return min(value, LR_MAX)


def check_bound(owner: Schedule, bounds: tuple[float, ...], value: float, what: str) -> None:
    """Refuse a schedule whose largest lr is finite in its parts (``bounds``) but overflows in
    ``value``; a part that grows without end by request is held at ``LR_MAX`` instead."""
    if all(math.isfinite(b) for b in bounds) and math.isinf(value):
        raise owner._error(f"{what} overflows: the learning rate would be infinite")


def _short_int(v: int) -> str:
    text = str(v)
    return text if len(text) <= 30 else f"an integer of {len(text.lstrip('-'))} digits"


def format_value(value: Any) -> str:
    """Format a parameter value in spec syntax (floats round-trip exactly)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Schedule):
        return value.to_spec()
    return str(value)


def _coerce(owner: str, f: dataclasses.Field[Any], value: Any) -> Any:
    """Validate and normalise one parameter value according to its declared kind."""
    kind = f.metadata["kind"]
    label = f"{owner}: {_spec_name(f)}"

    def number(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ScheduleError(f"{label} must be a number, got {v!r}")
        try:
            x = float(v)
        except OverflowError:  # an int beyond the float range
            raise ScheduleError(
                f"{label} must be a finite number, got an integer of {len(str(abs(int(v))))} digits"
            ) from None
        if not math.isfinite(x):
            raise ScheduleError(f"{label} must be finite, got {x!r}")
        return x + 0.0  # -0.0 -> 0.0

    def integer(v: Any, low: int) -> int:
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and abs(int(v)) > MAX_STEPS:
            raise ScheduleError(
                f"{label} must be at most 2**53 = {MAX_STEPS} steps, got {_short_int(int(v))}"
            )
        x = number(v)
        if not x.is_integer():
            raise ScheduleError(f"{label} must be a whole number of steps, got {v!r}")
        if x < low:
            raise ScheduleError(f"{label} must be >= {low}, got {int(x)}")
        if x > MAX_STEPS:
            raise ScheduleError(f"{label} must be at most 2**53 = {MAX_STEPS} steps, got {x!r}")
        return int(x)

    if kind == "lr":
        v = number(value)
        if v < 0:
            raise ScheduleError(f"{label} must be >= 0 (a learning rate), got {v!r}")
        return v
    if kind == "positive":
        v = number(value)
        if v <= 0:
            raise ScheduleError(f"{label} must be > 0, got {v!r}")
        return v
    if kind == "real":
        return number(value)
    if kind == "steps":
        return integer(value, 1)
    if kind == "steps0":
        return integer(value, 0)
    if kind == "opt_steps":
        return None if value is None else integer(value, 1)
    if kind == "opt_real":
        if value is None:
            return None
        v = number(value)
        if v <= 0:
            raise ScheduleError(f"{label} must be > 0, got {v!r}")
        return v
    if kind == "bool":
        if not isinstance(value, bool):
            raise ScheduleError(f"{label} must be true or false, got {value!r}")
        return value
    if kind == "choice":
        choices = f.metadata["choices"]
        if value not in choices:
            raise ScheduleError(f"{label} must be one of {', '.join(choices)}, got {value!r}")
        return value
    if kind == "steps_list":
        if not isinstance(value, (list, tuple)):
            raise ScheduleError(f"{label} must be a list of steps like [30, 80], got {value!r}")
        steps = tuple(integer(v, 0) for v in value)
        if any(b < a for a, b in itertools.pairwise(steps)):
            raise ScheduleError(f"{label} must be in increasing order, got {list(steps)}")
        return steps
    if kind == "lr_list":
        if not isinstance(value, (list, tuple)) or not value:
            raise ScheduleError(f"{label} must be a non-empty list of learning rates, got {value!r}")
        out = tuple(number(v) for v in value)
        if any(v < 0 for v in out):
            raise ScheduleError(f"{label} must hold learning rates >= 0, got {list(out)}")
        return out
    if kind == "schedule":
        if not isinstance(value, Schedule):
            raise ScheduleError(f"{label} must be a schedule, got {value!r}")
        return value
    if kind == "schedules":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, Schedule) for v in value):
            raise ScheduleError(f"{label} must be a list of schedules, got {value!r}")
        return tuple(value)
    raise AssertionError(f"unknown parameter kind {kind!r}")  # a programming error, not input

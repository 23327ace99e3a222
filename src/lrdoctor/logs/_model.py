"""The log model: a columnar ``TrainingLog`` of numeric ``Series`` keyed by canonical names.

Canonical names (DESIGN.md): ``train/loss``, ``val/loss``, ``train/<metric>``, ``val/<metric>``,
``test/<metric>``, ``lr`` or ``lr/<group>``, ``grad_norm``, ``grad_norm/<layer>``,
``update_ratio/<layer>``, ``dead_frac/<layer>``, ``saturation/<layer>``, ``param_norm``.
Monitor logs add ``input/mean``, ``input/std``, ``input/absmax``, ``batch/label_purity`` and
``nonfinite/<what>``.

Every series has ``steps`` (the x axis; optimizer steps, or epochs when the source only knows
epochs — then ``TrainingLog.step_unit == "epoch"``), ``values`` and, where known, ``epochs``.
Steps are finite, sorted ascending and unique within a series; readers warn (``logging`` and
``TrainingLog.warnings``) when they had to sort, drop duplicated steps (the last value for a
step wins) or drop points whose step is not a finite number (NaN, Inf, a number too large).
A step beyond 2**53 counts as not finite (no run is that long; it is a corrupted number).
Steps are integers (``int64``) when every one is a whole number, floats otherwise. Epochs are
finite or NaN (unknown).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Event", "LogBuilder", "Series", "TrainingLog"]

logger = logging.getLogger("lrdoctor.logs")

#: The largest step a series may hold: every whole number up to it is exact as a float, and no
#: run takes more steps (a larger one is a corrupted number).
_MAX_STEP = 2.0**53


@dataclass(frozen=True, eq=False)
class Series:
    """One metric over time: ``values[i]`` was measured at ``steps[i]`` (and ``epochs[i]``)."""

    steps: np.ndarray
    values: np.ndarray
    epochs: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def finite(self) -> Series:
        """The same series without NaN/Inf points."""
        keep = np.isfinite(self.values)
        if keep.all():
            return self
        return Series(self.steps[keep], self.values[keep],
                      None if self.epochs is None else self.epochs[keep])

    def window(self, start: float | None = None, stop: float | None = None) -> Series:
        """Points with ``start <= step < stop``."""
        keep = np.ones(len(self), dtype=bool)
        if start is not None:
            keep &= self.steps >= start
        if stop is not None:
            keep &= self.steps < stop
        return Series(self.steps[keep], self.values[keep],
                      None if self.epochs is None else self.epochs[keep])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Series):
            return NotImplemented
        same_epochs = (self.epochs is None and other.epochs is None) or (
            self.epochs is not None and other.epochs is not None
            and np.array_equal(self.epochs, other.epochs, equal_nan=True))
        return (np.array_equal(self.steps, other.steps)
                and np.array_equal(self.values, other.values, equal_nan=True) and same_epochs)

    def __repr__(self) -> str:
        if len(self) == 0:
            return "Series(empty)"
        return (f"Series({len(self)} points, steps {self.steps[0]:g}..{self.steps[-1]:g}, "
                f"last value {self.values[-1]:.4g})")


@dataclass(frozen=True)
class Event:
    """Something a monitor saw that is not a number over time (a setup mistake, a note)."""

    code: str
    message: str
    step: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


class TrainingLog:
    """A training run's metrics: canonical name -> :class:`Series`, plus events and metadata.

    >>> log = TrainingLog({"train/loss": Series(np.arange(3), np.array([3.0, 2.0, 1.0]))})
    >>> log.names(), log.has("val/loss"), float(log.get("train/loss").values[-1])
    (['train/loss'], False, 1.0)
    """

    def __init__(self, series: Mapping[str, Series], *, source: str | None = None,
                 format: str = "unknown", step_unit: str = "step",
                 events: Iterable[Event] = (), meta: Mapping[str, Any] | None = None,
                 warnings: Iterable[str] = ()):
        self._series = dict(series)
        self.source = source
        self.format = format
        self.step_unit = step_unit
        self.events = list(events)
        self.meta = dict(meta or {})
        self.warnings = list(warnings)

    def names(self, prefix: str | None = None) -> list[str]:
        """Sorted series names, optionally only those starting with ``prefix``."""
        names = sorted(self._series)
        return names if prefix is None else [n for n in names if n.startswith(prefix)]

    def has(self, name: str) -> bool:
        """True if the log holds a non-empty series ``name``."""
        s = self._series.get(name)
        return s is not None and len(s) > 0

    def get(self, name: str) -> Series:
        """The series ``name``; KeyError listing what the log does hold."""
        try:
            return self._series[name]
        except KeyError:
            raise KeyError(f"no series {name!r} in this log; it holds: "
                           f"{', '.join(self.names()) or 'nothing'}") from None

    def group(self, prefix: str) -> dict[str, Series]:
        """Per-layer series under ``prefix/``: ``{"fc1": Series, ...}``."""
        p = prefix.rstrip("/") + "/"
        return {n[len(p):]: self._series[n] for n in self.names(p)}

    def lr(self) -> Series | None:
        """The learning rate (``lr``, else the first ``lr/<group>``), or None."""
        if self.has("lr"):
            return self._series["lr"]
        groups = self.names("lr/")
        return self._series[groups[0]] if groups else None

    @property
    def last_step(self) -> float:
        """The largest step of any series (0 for an empty log)."""
        ends = [float(s.steps[-1]) for s in self._series.values() if len(s)]
        return max(ends) if ends else 0.0

    @property
    def first_step(self) -> float:
        starts = [float(s.steps[0]) for s in self._series.values() if len(s)]
        return min(starts) if starts else 0.0

    def until(self, step: float) -> TrainingLog:
        """The log as it stood at ``step``: every series and event up to and including it."""
        series = {n: s.window(None, step + 1e-9) for n, s in self._series.items()}
        events = [e for e in self.events if e.step is None or e.step <= step]
        return TrainingLog({n: s for n, s in series.items() if len(s)}, source=self.source,
                           format=self.format, step_unit=self.step_unit, events=events,
                           meta=self.meta, warnings=self.warnings)

    def __contains__(self, name: object) -> bool:
        return name in self._series

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._series)

    def __repr__(self) -> str:
        return (f"TrainingLog(format={self.format!r}, {len(self)} series, "
                f"{self.step_unit}s {self.first_step:g}..{self.last_step:g})")


class LogBuilder:
    """Collects ``(name, step, value, epoch)`` points and builds a clean :class:`TrainingLog`."""

    def __init__(self) -> None:
        self._points: dict[str, tuple[list[float], list[float], list[float]]] = {}
        self._arrays: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self.events: list[Event] = []
        self.warnings: list[str] = []

    def add(self, name: str, step: Any, value: Any, epoch: Any = None) -> None:
        """One point; a value, step or epoch that is not a number is left out (a step that is
        not finite is counted and reported by :meth:`build`)."""
        try:
            v, k = float(value), float(step)
            e = np.nan if epoch is None else float(epoch)
        except (TypeError, ValueError, OverflowError):
            return
        steps, values, epochs = self._points.setdefault(name, ([], [], []))
        steps.append(k)
        values.append(v)
        epochs.append(e)

    def extend(self, name: str, steps: Any, values: Any, epochs: Any) -> None:
        """Add many points of one series at once (array-likes of floats; NaN epoch = unknown).
        They count as coming after the points :meth:`add` gives the series. Float64 arrays are
        kept, not copied: do not change them afterwards."""
        arrays = tuple(np.asarray(a, dtype=np.float64) for a in (steps, values, epochs))
        if len({len(a) for a in arrays}) != 1:
            raise ValueError(f"extend({name!r}): steps, values and epochs differ in length")
        self._arrays.setdefault(name, []).append(arrays)  # type: ignore[arg-type]

    def warn(self, message: str) -> None:
        logger.warning(message)
        self.warnings.append(message)

    def build(self, **kwargs: Any) -> TrainingLog:
        series: dict[str, Series] = {}
        fixed_order, dupes, unplaced = [], [], 0
        for name in dict.fromkeys([*self._points, *self._arrays]):
            parts = [self._points[name]] if name in self._points else []
            parts += self._arrays.get(name, [])
            if len(parts) == 1 and name not in self._points:  # one extend: its arrays as they are
                s, v, e = parts[0]
            else:
                s, v, e = (np.concatenate(cols).astype(np.float64, copy=False)
                           for cols in zip(*parts))
            placed = np.abs(s) <= _MAX_STEP  # NaN and Inf fail this too
            if not placed.all():
                unplaced += int(np.count_nonzero(~placed))
                s, v, e = s[placed], v[placed], e[placed]
            if not len(s):
                continue
            if np.isinf(e).any():
                e = np.where(np.isinf(e), np.nan, e)  # an infinite epoch is an unknown one
            if len(s) > 1 and np.any(np.diff(s) < 0):
                order = np.argsort(s, kind="stable")
                s, v, e = s[order], v[order], e[order]
                fixed_order.append(name)
            if len(s) > 1 and np.any(np.diff(s) == 0):
                last = np.r_[s[1:] != s[:-1], True]  # keep the last value of each step
                s, v, e = s[last], v[last], e[last]
                dupes.append(name)
            if np.all(s == np.round(s)):
                s = s.astype(np.int64)
            series[name] = Series(s, v, None if np.all(np.isnan(e)) else e)
        where = f"{kwargs['source']}: " if kwargs.get("source") else ""
        if unplaced:
            self.warn(f"{where}{unplaced} points had a step that is not a finite number (NaN, Inf or "
                      "beyond 2**53); left them out")
        if fixed_order:
            self.warn(f"{where}steps were not in order for {_few(fixed_order)}; sorted them by step")
        if dupes:
            self.warn(f"{where}duplicated steps in {_few(dupes)}; kept the last value of each step")
        warnings = self.warnings + list(kwargs.pop("warnings", []))
        return TrainingLog(series, events=self.events + list(kwargs.pop("events", [])),
                           warnings=warnings, **kwargs)


def _few(names: list[str], n: int = 4) -> str:
    shown = ", ".join(names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")

"""The Guard's decisions, free of any framework: the spike test, the snapshot cadence, which
snapshot a rewind restores, the lowered LR after it, and when to stop.

:class:`lrdoctor.torch.Guard` and :class:`lrdoctor.keras.Guard` hold the framework objects
(the model, the optimizer, their copies); this core only sees numbers and batch indices. A
batch index ``k`` counts the batches the guard has judged, from 0; a snapshot labelled ``k``
holds the state the ``k``-th batch's update starts from.

The spike test, in log space (a minibatch loss varies by a factor, not by an amount): with
``m`` the median of log(x) over the last 20 accepted batches (the current level) and
``s = 1.4826 * median|Δ log(x)| / sqrt(2)`` over the last ``window`` accepted batches (the
batch-to-batch noise, blind to the downward trend a plain MAD would count as noise), ``x`` is a
spike when ``z = (log(x) - m) / max(s, 0.05) > z_limit`` and ``x > ratio * exp(m)``, after
``min_history`` accepted batches.

The exact test (two medians) runs only when a value crosses a cached limit, so an ordinary
batch costs a logarithm, an append and a comparison. The limit, ``m + max(z_limit * s,
log(ratio))`` in log space, is recomputed exactly every 25 accepted batches (two medians in
plain Python, 4x faster than numpy's on 100 values) and in between follows the level with an
exponential average of log(x) (weight 0.1, about the 20 batches of ``m``): ``limit_k = limit_r +
ema_k - ema_r``, so a falling loss lowers it between refreshes. A value just above it only costs
one exact test; a borderline spike can hide behind it while the noise estimate moves, one with
z and the ratio 1.5x past their limits cannot (tests/test_guard_core.py).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Generic, TypeVar

from lrdoctor.errors import GuardError, LRDoctorError
from lrdoctor.journal import Entry

__all__ = ["GuardCore", "GuardEvent", "GuardReport", "GuardSettings", "SpikeTest"]

MIN_SCALE = 0.05  # floor of the robust scale of log(x): a 5% wobble is never a spike
MARGIN = 2        # a snapshot restored is from >= 2 batches before the first bad one
LEVEL = 20        # accepted batches whose median log(x) is the current level
REFRESH = 25      # accepted batches between exact recomputations of the limit
EMA = 0.1         # weight of the exponential average that moves the limit between refreshes
KEEP = 3          # snapshots kept

P = TypeVar("P")


@dataclass(frozen=True)
class GuardEvent:
    """One action: ``action`` is 'skip', 'rewind' or 'stop'; ``reason`` 'nonfinite-loss',
    'nonfinite-grad', 'spike' or 'grad-spike'; ``step`` the batch (0-based count of judged
    batches)."""

    step: int
    action: str
    reason: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GuardSettings:
    """The Guard's knobs, validated (each error names the parameter and the value)."""

    snapshot_every: int = 25
    window: int = 100
    min_history: int = 20
    z: float = 10.0
    ratio: float = 3.0
    patience: int = 5
    lr_factor: float = 0.5
    cooldown_steps: int = 50
    max_rewinds: int = 3
    rewind_window: int = 1000

    def __post_init__(self) -> None:
        for name, lo in (("snapshot_every", 1), ("window", 2), ("min_history", 2),
                         ("patience", 1), ("cooldown_steps", 0), ("max_rewinds", 0),
                         ("rewind_window", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise LRDoctorError(f"Guard {name} must be an int >= {lo}, got {v!r}")
        if self.min_history > self.window:
            raise LRDoctorError(f"Guard min_history ({self.min_history}) must be <= window "
                                f"({self.window})")
        if not self.z > 0 or not self.ratio >= 1:
            raise LRDoctorError(f"Guard needs z > 0 and ratio >= 1, got z={self.z}, "
                                f"ratio={self.ratio}")
        if not 0 < self.lr_factor <= 1:
            raise LRDoctorError(f"Guard lr_factor must be in (0, 1], got {self.lr_factor}")


def _median(values: list[float]) -> float:
    values.sort()
    n, m = len(values), len(values) // 2
    return values[m] if n % 2 else (values[m - 1] + values[m]) / 2


class SpikeTest:
    """The spike test on one series (the loss, or the gradient norm) of accepted batches."""

    def __init__(self, settings: GuardSettings) -> None:
        self.z, self.ratio, self.min_history = settings.z, settings.ratio, settings.min_history
        self.history: deque[float] = deque(maxlen=settings.window)   # log(x), accepted batches
        self.limit = math.inf   # x below this is no spike; inf until min_history
        self._refresh_every = REFRESH
        self._since = 0
        self._ema = 0.0         # exponential average of log(x)
        self._offset = math.inf  # log(limit) - ema at the last refresh

    def add(self, value: float) -> None:
        """Count an accepted batch's value (> 0; others carry no level)."""
        if value > 0:
            x = math.log(value)
            self.history.append(x)
            self._ema += EMA * (x - self._ema)
            self._since += 1
            if self._since >= self._refresh_every or (
                    self.limit == math.inf and len(self.history) >= self.min_history):
                self._refresh()
            elif self._offset < math.inf:
                self.limit = math.exp(min(self._ema + self._offset, 700.0))

    def _refresh(self) -> None:
        self._since = 0
        if len(self.history) < self.min_history:
            self.limit = math.inf
            return
        level, scale = self.level_scale()
        if level >= 700:
            self.limit, self._offset = math.inf, math.inf
            return
        log_limit = level + max(self.z * scale, math.log(self.ratio))
        self._ema = level if self._offset == math.inf else self._ema
        self._offset = log_limit - self._ema
        self.limit = math.exp(min(log_limit, 700.0))

    def level_scale(self) -> tuple[float, float]:
        """``(m, max(s, MIN_SCALE))`` of the module doc (plain Python: 4x faster than numpy's
        median on 100 values, the same numbers)."""
        h = list(self.history)
        level = _median(h[-LEVEL:])
        noise = 1.4826 * _median([abs(b - a) for a, b in pairwise(h)]) / math.sqrt(2)
        return level, max(noise, MIN_SCALE)

    def spike(self, value: float) -> dict[str, float] | None:
        """The evidence when ``value`` (finite, above ``limit``) is a spike, else None."""
        if len(self.history) < self.min_history or not value > 0:
            return None
        level, scale = self.level_scale()
        stats = {"z": (math.log(value) - level) / scale, "median": math.exp(level),
                 "scale": scale, "window": float(len(self.history))}
        if stats["z"] > self.z and value > self.ratio * stats["median"]:
            return stats
        return None


class GuardCore(Generic[P]):
    """What both Guards decide. An adapter calls :meth:`judge` on every batch, then
    :meth:`accept` (which says when to take a snapshot, stored with :meth:`keep`) or
    :meth:`reject` (which says 'skip', 'rewind' or raises :class:`GuardError`); on a rewind it
    restores :meth:`restore_point`'s payload and calls :meth:`rewound`. :meth:`lr_scale` is
    the factor of the next optimizer step's LR, and :meth:`stepped` counts that step.

    A snapshot's payload (type ``P``) is whatever the adapter copies; the core keeps the last
    ``KEEP`` with their labels.
    """

    def __init__(self, settings: GuardSettings, *, check_grads: bool = True) -> None:
        self.settings = settings
        self.check_grads = check_grads
        self.loss = SpikeTest(settings)
        self.grad = SpikeTest(settings)
        self.snapshots: deque[tuple[int, P]] = deque(maxlen=KEEP)
        self.bad: list[tuple[int, str, float]] = []   # the current run of rejected batches
        self.rewinds: list[int] = []
        self.cool_left = 0          # optimizer steps of lowered LR still to go
        self.events: list[GuardEvent] = []

    # ---- per batch ---------------------------------------------------------------------------
    def judge(self, value: float, gnorm: float | None = None) -> tuple[str | None, dict[str, float]]:
        """The reason to reject this batch (None: accept it) and the spike evidence."""
        if -math.inf < value < self.loss.limit and (gnorm is None or gnorm < self.grad.limit):
            return None, {}   # the fast path: finite, below both limits
        if not math.isfinite(value):
            return "nonfinite-loss", {}
        if gnorm is not None and not math.isfinite(gnorm):
            return "nonfinite-grad", {}
        if value >= self.loss.limit:
            stats = self.loss.spike(value)
            if stats is not None:
                return "spike", stats
        if gnorm is not None and gnorm >= self.grad.limit:
            stats = self.grad.spike(gnorm)
            if stats is not None:
                return "grad-spike", stats
        return None, {}

    def accept(self, k: int, value: float, gnorm: float | None = None,
               label: int | None = None) -> bool:
        """Count an accepted batch; True when a snapshot labelled ``label`` (default ``k``)
        is due (the first one, then every ``snapshot_every`` batches)."""
        if self.bad:
            self.bad.clear()
        self.loss.add(value)
        if gnorm is not None:
            self.grad.add(gnorm)
        label = k if label is None else label
        return not self.snapshots or label - self.snapshots[-1][0] >= self.settings.snapshot_every

    def keep(self, label: int, payload: P) -> None:
        """Store a snapshot taken now, labelled ``label``."""
        self.snapshots.append((label, payload))

    def reject(self, k: int, reason: str, value: float) -> str:
        """Count a rejected batch: 'skip' while the run of bad batches is shorter than
        ``patience`` (or no snapshot exists yet), else 'rewind' (before rewinding, ask
        :meth:`too_many` whether to :meth:`stop` instead)."""
        self.bad.append((k, reason, value))
        if len(self.bad) < self.settings.patience or not self.snapshots:
            return "skip"
        return "rewind"

    def too_many(self, k: int) -> list[int] | None:
        """The recent rewinds when one more at batch ``k`` would exceed ``max_rewinds``."""
        recent = [r for r in self.rewinds if k - r < self.settings.rewind_window]
        return recent if len(recent) >= self.settings.max_rewinds else None

    def restore_point(self) -> tuple[int, P]:
        """The snapshot to restore: the newest taken at least ``MARGIN`` batches before the
        first bad batch of the current run (the update just before the trouble may be the one
        that did the damage), else the oldest kept. Newer snapshots are dropped."""
        first = self.bad[0][0] if self.bad else math.inf
        good = [s for s in self.snapshots if s[0] <= first - MARGIN]
        snap = good[-1] if good else self.snapshots[0]
        while self.snapshots and self.snapshots[-1][0] > snap[0]:
            self.snapshots.pop()   # a newer snapshot may hold the damage
        return snap

    def rewound(self, k: int, *, lower: bool = True) -> None:
        """A rewind happened at batch ``k``: count it, start the lowered LR, clear the run."""
        self.rewinds.append(k)
        self.bad.clear()
        if lower:
            self.cool_left = self.settings.cooldown_steps

    # ---- the lowered LR ----------------------------------------------------------------------
    def lr_scale(self) -> float:
        """The factor of the next optimizer step's LR: ``lr_factor`` right after a rewind,
        rising linearly to 1 over ``cooldown_steps`` steps."""
        if self.cool_left <= 0:
            return 1.0
        s = self.settings
        done = s.cooldown_steps - self.cool_left
        return s.lr_factor + (1 - s.lr_factor) * done / max(s.cooldown_steps, 1)

    def stepped(self) -> None:
        """One optimizer step at :meth:`lr_scale` is done."""
        if self.cool_left > 0:
            self.cool_left -= 1

    # ---- words -------------------------------------------------------------------------------
    def why(self, reason: str, value: float, gnorm: float | None, stats: dict[str, float],
            what: str = "loss") -> str:
        """One clause saying what was seen."""
        z = self.settings.z
        if reason == "nonfinite-loss":
            return f"the {what} was {value!r}"
        if reason == "nonfinite-grad":
            return f"a gradient norm was {gnorm!r} ({what} {value:.4g})"
        if reason == "grad-spike" and gnorm is not None:
            return (f"the gradient norm {gnorm:.4g} is {gnorm / stats['median']:.1f}x its median "
                    f"{stats['median']:.4g} over the last {LEVEL} accepted batches (robust z "
                    f"{stats['z']:.1f} > {z:g}; {what} {value:.4g})")
        return (f"the {what} {value:.4g} is {value / stats['median']:.1f}x the median "
                f"{stats['median']:.4g} of the last {LEVEL} accepted batches (robust z "
                f"{stats['z']:.1f} > {z:g} against the batch-to-batch noise of the last "
                f"{int(stats['window'])})")

    def evidence(self, value: float, gnorm: float | None,
                 stats: dict[str, float]) -> dict[str, Any]:
        return {"loss": value, "grad_norm_sum": gnorm,
                **{k: round(v, 6) for k, v in stats.items()}}

    def stop(self, k: int, reason: str, ev: dict[str, Any], recent: list[int]) -> GuardError:
        """The event and the error for too many rewinds (the caller raises it)."""
        seen = ", ".join(f"batch {s} ({why}, loss {v:.4g})" for s, why, v in self.bad[-3:])
        msg = (f"Guard stopped training at batch {k}: {len(recent)} rewinds within "
               f"{self.settings.rewind_window} batches (at batches "
               f"{', '.join(map(str, recent))}) did not end the trouble; now {seen}. This "
               "is not a few bad batches: lower the learning rate, add warm-up or gradient "
               "clipping, or check the data (guard.events lists every action).")
        self.record(k, "stop", reason, msg, {**ev, "rewinds": recent})
        return GuardError(msg, tuple(self.events))

    def record(self, k: int, action: str, reason: str, message: str,
               evidence: dict[str, Any]) -> GuardEvent:
        ev = GuardEvent(k, action, reason, message,
                        {key: v for key, v in evidence.items() if v is not None})
        self.events.append(ev)
        return ev


class GuardReport:
    """What every framework's Guard reports in the same way: its ``events``, the counts, and one
    journal entry of cause ``guard`` per action. A Guard sets ``events`` and ``journal`` and
    defines ``_current_lrs()`` (the learning rates now, for an action that changes none)."""

    events: list[GuardEvent]
    journal: Any

    def _current_lrs(self) -> list[float]:
        raise NotImplementedError

    def _journal(self, event: GuardEvent, old: list[float] | None,
                 new: list[float] | None) -> None:
        if self.journal is None:
            return
        lrs = old or self._current_lrs()
        self.journal.append(Entry("guard", step=event.step, old_lrs=tuple(lrs),
                                  new_lrs=tuple(new or lrs),
                                  evidence={"action": event.action, "reason": event.reason,
                                            **event.evidence},
                                  message=event.message))

    @property
    def skipped(self) -> int:
        """Batches skipped or undone so far (rewinds included)."""
        return sum(e.action in ("skip", "rewind") for e in self.events)

    @property
    def rewinds(self) -> int:
        """Rewinds to an earlier snapshot so far."""
        return sum(e.action == "rewind" for e in self.events)

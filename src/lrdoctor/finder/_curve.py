"""The range test as a pure state machine: the LR ramp, loss smoothing and the stop rule.

The ramp is an lrdoctor schedule of the optimizer step: ``exponential`` goes from ``start_lr``
to ``end_lr`` geometrically over ``num_steps`` steps (``lr(k) = start * (end / start) **
(k / (num_steps - 1))``), ``linear`` arithmetically.

The stop rule reads a causal, bias-corrected exponential moving average,
``avg_k = beta * avg_{k-1} + (1 - beta) * loss_k``, ``smoothed_k = avg_k / (1 - beta ** (k + 1))``:
the test stops at the first NaN/Inf loss or once ``smoothed > diverge_factor * best smoothed``
(after ``min_steps``). ``beta`` defaults to ``1 - 1 / max(2, num_steps / 20)`` (a time constant
``tau = 1 / (1 - beta)`` of 5% of the ramp).

The curve the rules read (:attr:`Curve.smoothed`, :func:`robust_smooth`) is different, for two
reasons. A causal average lags by about ``tau`` steps — with fastai's and Lightning's
``beta = 0.98`` over 100 steps that is half the ramp, which drags every feature of the curve to
larger LRs — so it is zero-lag: the mean of the forward and the backward averages. And a plain
average, forward or backward, is dragged by the spikes of the high-LR end: one loss of 600 at
the divergence lifts the backward average tens of steps earlier, which moves the curve's minimum
a decade to the left. So the losses are first taken to log space (loss ratios, not differences:
a blow-up is exponential) and passed through a running median over ``tau`` steps (``2h + 1``
points, ``h = round(tau / 2)``), which ignores isolated spikes, before the zero-lag average.
Losses that are not all positive skip the log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lrdoctor.errors import FinderError
from lrdoctor.schedules import Schedule, Warmup

__all__ = [
    "Curve", "RangeTest", "default_beta", "ema", "ramp", "robust_smooth", "running_median",
    "zero_lag",
]

RAMPS = ("exponential", "linear")


def ramp(start_lr: float, end_lr: float, num_steps: int, mode: str = "exponential") -> Schedule:
    """The LR ramp of a range test, as a schedule: ``ramp(...)(k)`` is the LR of step ``k``.

    >>> r = ramp(1e-4, 1.0, 5)
    >>> [round(r(k), 6) for k in range(5)]
    [0.0001, 0.001, 0.01, 0.1, 1.0]
    >>> r.to_spec()
    'warmup(4, start=0.0001, shape=exponential, target=1.0)'
    """
    check_range(start_lr, end_lr, num_steps, mode)
    return Warmup(int(num_steps) - 1, start_lr=float(start_lr), target_lr=float(end_lr),
                  shape="exponential" if mode == "exponential" else "linear")


def check_range(start_lr: float, end_lr: float, num_steps: int, mode: str) -> None:
    if mode not in RAMPS:
        raise FinderError(f"mode must be 'exponential' or 'linear', got {mode!r}")
    if not (isinstance(start_lr, (int, float)) and math.isfinite(start_lr) and start_lr > 0):
        raise FinderError(f"start_lr must be a positive number, got {start_lr!r}")
    if not (isinstance(end_lr, (int, float)) and math.isfinite(end_lr)):
        raise FinderError(f"end_lr must be a finite number, got {end_lr!r}")
    if start_lr >= end_lr:
        raise FinderError(
            f"start_lr must be below end_lr, got start_lr={start_lr:g} >= end_lr={end_lr:g}; "
            "the test ramps the LR upwards (e.g. start_lr=1e-7, end_lr=10)")
    if int(num_steps) != num_steps or num_steps < 5:
        raise FinderError(f"num_steps must be an integer >= 5, got {num_steps!r}")


def default_beta(num_steps: int) -> float:
    """``1 - 1 / max(2, num_steps / 20)``: a time constant of 5% of the ramp."""
    return 1.0 - 1.0 / max(2.0, num_steps / 20.0)


def zero_lag(losses: np.ndarray | list[float], beta: float) -> np.ndarray:
    """Mean of the forward and backward bias-corrected EMAs: smooth without shifting features."""
    arr = np.asarray(losses, float)
    if len(arr) == 0:
        return arr.copy()
    return 0.5 * (ema(arr, beta) + ema(arr[::-1], beta)[::-1])


def running_median(values: np.ndarray | list[float], half: int) -> np.ndarray:
    """The median of each point's window ``values[k - half : k + half + 1]`` (cut at the ends).

    >>> running_median([1.0, 1.0, 50.0, 1.0, 1.0], 1).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    arr = np.asarray(values, float)
    n, half = len(arr), int(half)
    if half < 0:
        raise FinderError(f"half must be >= 0, got {half}")
    if half == 0 or n < 2:
        return arr.copy()
    padded = np.pad(arr, half, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.nanmedian(windows, axis=1)


def robust_smooth(losses: np.ndarray | list[float], beta: float) -> np.ndarray:
    """The curve the rules read: log, running median over ``tau`` steps, zero-lag EMA, exp.

    ``tau = 1 / (1 - beta)``; the median's half window is ``round(tau / 2)`` (none for
    ``beta = 0``). Losses that are not all positive are smoothed as they are, without the log.

    >>> loss = np.r_[np.linspace(2.0, 1.0, 31), np.linspace(1.05, 2.0, 20)]  # lowest at 30
    >>> loss[36] = 600.0                                 # one blow-up batch past the minimum
    >>> int(np.argmin(robust_smooth(loss, 0.9))), int(np.argmin(zero_lag(loss, 0.9)))
    (28, 0)
    """
    arr = np.asarray(losses, float)
    if len(arr) == 0:
        return arr.copy()
    if not 0 <= beta < 1:
        raise FinderError(f"beta must be in [0, 1), got {beta!r}")
    half = round(0.5 / (1.0 - beta)) if beta > 0 else 0
    positive = bool(np.all(arr > 0))
    x = np.log(arr) if positive else arr
    out = zero_lag(running_median(x, half), beta)
    return np.exp(out) if positive else out


def ema(losses: np.ndarray | list[float], beta: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential moving average of ``losses`` (fastai's and Lightning's).

    >>> ema([1.0, 3.0]).round(4).tolist()
    [1.0, 2.0101]
    """
    if not 0 <= beta < 1:
        raise FinderError(f"beta must be in [0, 1), got {beta!r}")
    out = np.empty(len(losses))
    avg = 0.0
    for k, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * float(loss)
        out[k] = avg / (1 - beta ** (k + 1))
    return out


@dataclass(frozen=True)
class Curve:
    """One range test: LRs, raw and smoothed losses, and why it stopped.

    ``stop`` is ``'end'`` (reached ``end_lr``), ``'diverged'`` (smoothed loss above
    ``diverge_factor`` × best; the diverging point is kept as the last one), ``'nonfinite'``
    (a NaN/Inf loss; not recorded) or ``'data'`` (the loader ran out).
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    stop: str = "end"
    #: the smoothing factor behind ``smoothed`` (for the noise estimate of the grade)
    beta: float | None = None

    def __post_init__(self) -> None:
        for name in ("lrs", "losses", "smoothed"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=float))
        if not len(self.lrs) == len(self.losses) == len(self.smoothed):
            raise FinderError("a curve needs as many losses as learning rates")

    def __len__(self) -> int:
        return len(self.lrs)

    @classmethod
    def from_losses(cls, lrs: list[float] | np.ndarray, losses: list[float] | np.ndarray, *,
                    beta: float | None = None, stop: str = "end") -> Curve:
        """A curve from raw losses, smoothed here with :func:`robust_smooth`."""
        beta = default_beta(len(losses)) if beta is None else beta
        return cls(np.asarray(lrs, float), np.asarray(losses, float),
                   robust_smooth(losses, beta), stop, beta)

    def to_dict(self) -> dict[str, object]:
        return {"lrs": self.lrs.tolist(), "losses": self.losses.tolist(),
                "smoothed": self.smoothed.tolist(), "stop": self.stop, "beta": self.beta}


@dataclass
class RangeTest:
    """The framework-free loop body: ask :meth:`lr`, train one step, report :meth:`record`.

    >>> t = RangeTest(1e-3, 1.0, 10)
    >>> while t.running:
    ...     _ = t.record(1.0 if t.step < 6 else 100.0)
    >>> t.curve().stop, len(t.curve())
    ('diverged', 7)
    """

    start_lr: float
    end_lr: float
    num_steps: int
    mode: str = "exponential"
    beta: float | None = None
    diverge_factor: float | None = 4.0
    min_steps: int | None = None
    step: int = 0
    stop: str | None = None
    _lrs: list[float] = field(default_factory=list)
    _losses: list[float] = field(default_factory=list)
    _smoothed: list[float] = field(default_factory=list)
    _avg: float = 0.0
    _best: float = math.inf

    def __post_init__(self) -> None:
        self.schedule = ramp(self.start_lr, self.end_lr, self.num_steps, self.mode)
        if self.beta is None:
            self.beta = default_beta(self.num_steps)
        if self.diverge_factor is not None and not self.diverge_factor > 1:
            raise FinderError(f"diverge_factor must be > 1 (or None), got {self.diverge_factor!r}")
        if not 0 <= self.beta < 1:
            raise FinderError(f"beta must be in [0, 1), got {self.beta!r}")
        if self.min_steps is None:
            self.min_steps = max(3, self.num_steps // 10)

    @property
    def recorded(self) -> int:
        """How many losses have been recorded."""
        return len(self._losses)

    @property
    def running(self) -> bool:
        return self.stop is None

    def lr(self) -> float:
        """The LR of the next step."""
        return float(self.schedule(self.step))

    def record(self, loss: float) -> bool:
        """Record the loss of the step just taken at :meth:`lr`, then advance; returns go on."""
        if self.stop is not None:
            raise FinderError("record() after the test stopped")
        loss = float(loss)
        if not math.isfinite(loss):
            self.stop = "nonfinite"
            return False
        k = len(self._losses)
        self._avg = self.beta * self._avg + (1 - self.beta) * loss
        smooth = self._avg / (1 - self.beta ** (k + 1))
        self._lrs.append(self.lr())
        self._losses.append(loss)
        self._smoothed.append(smooth)
        self.step += 1
        if (self.diverge_factor is not None and self.step > (self.min_steps or 0)
                and smooth > self.diverge_factor * self._best):
            self.stop = "diverged"
        elif self.step >= self.num_steps:
            self.stop = "end"
        self._best = min(self._best, smooth)
        return self.stop is None

    def advance(self) -> bool:
        """Move along the ramp without recording (a step whose loss is not measured)."""
        if self.stop is None:
            self.step += 1
            if self.step >= self.num_steps:
                self.stop = "end"
        return self.stop is None

    def end_of_data(self) -> None:
        """The loader ran out before the ramp ended."""
        if self.stop is None:
            self.stop = "data"

    @property
    def causal_smoothed(self) -> np.ndarray:
        """The causal average the stop rule used (what fastai and Lightning record)."""
        return np.array(self._smoothed)

    def curve(self) -> Curve:
        """The recorded curve, smoothed with :func:`robust_smooth` for the rules."""
        losses = np.array(self._losses)
        return Curve(np.array(self._lrs), losses, robust_smooth(losses, float(self.beta or 0)),
                     self.stop or "interrupted", self.beta)

"""Early stopping on the same footing as the plateau reducer: settings, state, pure update.

The semantics are Keras 3's ``EarlyStopping`` (checked differentially in the tests): evaluations
before ``start_from_epoch`` are ignored; every monitored evaluation increments ``wait``; an
improvement over ``best`` by more than ``min_delta`` records the new best and restarts ``wait``
only if it also beats ``baseline`` (when one is given); otherwise training stops once
``wait >= patience`` (and not on the very first epoch). Comparisons are made in float32 as Keras
makes them, unless ``float32=False``. NaN/±Inf never improve.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrdoctor.errors import PlateauError
from lrdoctor.plateau._state import _choice, _count, _number, infer_mode

__all__ = ["EarlyStopConfig", "EarlyStopOutcome", "EarlyStopState", "early_stop_update"]


@dataclass(frozen=True)
class EarlyStopConfig:
    """Early-stopping settings (Keras' names and defaults).

    ``restore_best`` asks the adapter to keep the best weights and put them back at the end.
    ``min_delta_mode='rel'`` makes ``min_delta`` a fraction of ``|best|``.
    """

    monitor: str = "val_loss"
    mode: str = "auto"
    min_delta: float = 0.0
    patience: int = 0
    baseline: float | None = None
    start_from_epoch: int = 0
    restore_best: bool = False
    min_delta_mode: str = "abs"
    float32: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.monitor, str) or not self.monitor:
            raise PlateauError(f"monitor must be a metric name such as 'val_loss', got {self.monitor!r}")
        mode = _choice("mode", self.mode, ("min", "max", "auto"))
        object.__setattr__(self, "mode", infer_mode(self.monitor) if mode == "auto" else mode)
        object.__setattr__(self, "min_delta", abs(_number("min_delta", self.min_delta)))
        object.__setattr__(self, "patience", _count("patience", self.patience))
        if self.baseline is not None:
            object.__setattr__(self, "baseline", _number("baseline", self.baseline))
        object.__setattr__(self, "start_from_epoch", _count("start_from_epoch", self.start_from_epoch))
        _choice("min_delta_mode", self.min_delta_mode, ("abs", "rel"))
        for name in ("restore_best", "float32"):
            if not isinstance(getattr(self, name), bool):
                raise PlateauError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def improves(self, value: float, reference: float | None) -> bool:
        """Keras' ``_is_improvement``: ``value ∓ min_delta`` beats ``reference``."""
        if not math.isfinite(value):
            return False
        if reference is None:
            return True
        d = self.min_delta if self.min_delta_mode == "abs" else self.min_delta * abs(reference)
        a, b = (value + d, reference) if self.mode == "min" else (value - d, reference)
        if self.float32:
            a, b = np.float32(a), np.float32(b)
        return bool(a < b) if self.mode == "min" else bool(a > b)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EarlyStopConfig:
        return cls(**data)


@dataclass(frozen=True)
class EarlyStopState:
    """``wait`` (Keras' counter), ``best`` and the 0-based ``best_epoch``, ``stopped_epoch``."""

    wait: int = 0
    best: float | None = None
    best_epoch: int | None = None
    stopped: bool = False
    stopped_epoch: int | None = None
    seen: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EarlyStopState:
        return cls(**data)


@dataclass(frozen=True)
class EarlyStopOutcome:
    """``state``; ``improved`` (save the weights now); ``stop``; ``evidence`` for the journal."""

    state: EarlyStopState
    improved: bool
    stop: bool
    counted: bool
    evidence: dict[str, Any]


def early_stop_update(config: EarlyStopConfig, state: EarlyStopState, epoch: int, value: float | None) -> EarlyStopOutcome:
    """Feed the evaluation of (0-based) ``epoch``; ``value=None`` means the metric is missing."""
    evidence = {
        "monitor": config.monitor, "mode": config.mode, "value": value, "best": state.best,
        "best_epoch": state.best_epoch, "patience": config.patience, "min_delta": config.min_delta,
        "min_delta_mode": config.min_delta_mode, "baseline": config.baseline,
    }
    if value is None or epoch < config.start_from_epoch:
        return EarlyStopOutcome(state, False, False, False, evidence)
    value = float(value)
    wait = state.wait + 1
    seen = state.seen + 1
    if config.improves(value, state.best):
        wait_after = 0 if config.baseline is None or config.improves(value, config.baseline) else wait
        new = dataclasses.replace(state, wait=wait_after, best=value, best_epoch=epoch, seen=seen)
        return EarlyStopOutcome(new, True, False, True, {**evidence, "wait": wait_after})
    stop = wait >= config.patience and epoch > 0
    new = dataclasses.replace(
        state, wait=wait, seen=seen, stopped=state.stopped or stop,
        stopped_epoch=epoch if stop else state.stopped_epoch,
    )
    return EarlyStopOutcome(new, False, stop, True, {**evidence, "wait": wait})

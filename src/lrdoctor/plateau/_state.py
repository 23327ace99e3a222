"""The plateau and early-stopping settings and their state records (frozen dataclasses).

Settings are validated once, when built; a bad value raises :class:`~lrdoctor.errors.PlateauError`
with a message that names the parameter and what to pass instead. States are plain values: the
update functions in :mod:`lrdoctor.plateau._update` and :mod:`lrdoctor.plateau._early_stop`
return new ones and never mutate.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from lrdoctor.errors import PlateauError

__all__ = [
    "MAX_WORDS",
    "MIN_WORDS",
    "PlateauConfig",
    "PlateauState",
    "infer_mode",
]

#: Metric-name endings that mean "lower is better" for ``mode='auto'``.
MIN_WORDS = ("loss", "error", "perplexity")
#: Metric-name endings that mean "higher is better" for ``mode='auto'``.
MAX_WORDS = ("accuracy", "acc", "auc", "f1", "precision", "recall", "iou", "map", "bleu")

CONVENTIONS = ("torch", "keras")


def infer_mode(monitor: str) -> str:
    """``'min'`` or ``'max'`` from a metric name, or a :class:`PlateauError` asking for ``mode``.

    A name whose last word (after ``val_``, ``val/``, ``train/``... prefixes, case-insensitive)
    ends in loss/error/perplexity is minimised; accuracy/acc/auc/f1/precision/recall/iou/map/bleu
    is maximised. ``"val_loss"``, ``"train/loss"``, ``"mean_squared_error"`` → min;
    ``"val_accuracy"``, ``"val/acc"``, ``"macro_f1"``, ``"mAP"`` → max.

    >>> infer_mode("val_accuracy"), infer_mode("val/loss")
    ('max', 'min')
    """
    if not isinstance(monitor, str) or not monitor:
        raise PlateauError(f"monitor must be a metric name such as 'val_loss', got {monitor!r}")
    name = monitor.lower()
    if name.endswith(MIN_WORDS):
        return "min"
    if any(re.search(rf"(^|[^a-z]){word}$", name) for word in MAX_WORDS):
        return "max"
    raise PlateauError(
        f"mode='auto' cannot tell whether {monitor!r} should go down or up (names ending in "
        f"{'/'.join(MIN_WORDS)} are minimised, {'/'.join(MAX_WORDS)} maximised); "
        "pass mode='min' or mode='max'"
    )


def _number(name: str, value: Any, *, low: float | None = None, low_open: bool = False,
            high: float | None = None, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise PlateauError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise PlateauError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        raise PlateauError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise PlateauError(f"{name} must be {'<' if high_open else '<='} {high:g}, got {value!r}")
    return v


def _count(name: str, value: Any, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) and not (
        isinstance(value, float) and value.is_integer()
    ):
        raise PlateauError(f"{name} must be a whole number >= 0, got {value!r}")
    if value < 0:
        raise PlateauError(f"{name} must be >= 0, got {value!r}")
    return int(value)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise PlateauError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


@dataclass(frozen=True)
class PlateauConfig:
    """Every knob of torch's and Keras' ``ReduceLROnPlateau``.

    ``convention`` picks the exact semantics of one peer:

    * ``"torch"`` (``torch.optim.lr_scheduler.ReduceLROnPlateau``): an evaluation is *bad* unless
      ``value`` beats ``best`` by the threshold; the bad count is zeroed while cooling down; the LR
      is reduced when the count exceeds ``patience`` (after ``patience + 1`` bad evaluations);
      each group becomes ``max(lr * factor, min_lr)`` unless that moves it by ``eps`` or less; the
      cool-down and the count restart whether or not an LR moved.
    * ``"keras"`` (``keras.callbacks.ReduceLROnPlateau``): the cool-down counter ticks first; a bad
      evaluation outside the cool-down increments ``wait``; the LR is reduced when
      ``wait >= patience`` (at the patience-th bad evaluation), only for groups whose lr is above
      ``float32(min_lr)``; cool-down and ``wait`` restart only if something was reduced.
      Comparisons are made in float32, as Keras makes them.

    ``threshold``/``threshold_mode`` (Keras calls it ``min_delta``, always absolute): in ``rel``
    mode an improvement must beat ``best`` by ``threshold * |best|`` (torch multiplies by ``best``,
    which inverts the test for negative metrics; ``torch_rel_bug=True`` reproduces that).
    NaN/±Inf values are bad evaluations (``nonfinite='bad'``) or reduce at once
    (``nonfinite='reduce'``). ``max_reductions`` caps the number of reductions;
    ``stop_at_min_lr`` asks for a stop once patience is spent with nothing left to reduce.
    """

    monitor: str = "val_loss"
    mode: str = "min"
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_lr: float | tuple[float, ...] = 0.0
    eps: float = 1e-8
    convention: str = "torch"
    max_reductions: int | None = None
    nonfinite: str = "bad"
    stop_at_min_lr: bool = False
    torch_rel_bug: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.monitor, str) or not self.monitor:
            raise PlateauError(f"monitor must be a metric name such as 'val_loss', got {self.monitor!r}")
        mode = _choice("mode", self.mode, ("min", "max", "auto"))
        if mode == "auto":
            mode = infer_mode(self.monitor)
        object.__setattr__(self, "mode", mode)
        factor = _number("factor", self.factor, low=0.0, low_open=True)
        if factor >= 1.0:
            raise PlateauError(
                f"factor must be < 1 (new_lr = lr * factor; a reduction must reduce), got {self.factor!r}"
            )
        object.__setattr__(self, "factor", factor)
        object.__setattr__(self, "patience", _count("patience", self.patience))
        object.__setattr__(self, "threshold", _number("threshold", self.threshold, low=0.0)
                           if self.convention != "keras" else abs(_number("min_delta", self.threshold)))
        _choice("threshold_mode", self.threshold_mode, ("rel", "abs"))
        object.__setattr__(self, "cooldown", _count("cooldown", self.cooldown))
        if isinstance(self.min_lr, (list, tuple)):
            if not self.min_lr:
                raise PlateauError("min_lr must be a number or a non-empty list, one per param group")
            mins: float | tuple[float, ...] = tuple(
                _number(f"min_lr[{i}]", v, low=0.0) for i, v in enumerate(self.min_lr)
            )
        else:
            mins = _number("min_lr", self.min_lr, low=0.0)
        object.__setattr__(self, "min_lr", mins)
        object.__setattr__(self, "eps", _number("eps", self.eps, low=0.0))
        _choice("convention", self.convention, CONVENTIONS)
        object.__setattr__(self, "max_reductions", _count("max_reductions", self.max_reductions, optional=True))
        _choice("nonfinite", self.nonfinite, ("bad", "reduce"))
        for name in ("stop_at_min_lr", "torch_rel_bug"):
            if not isinstance(getattr(self, name), bool):
                raise PlateauError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def min_lrs(self, n_groups: int) -> tuple[float, ...]:
        """``min_lr`` for each of ``n_groups`` param groups."""
        if isinstance(self.min_lr, tuple):
            if len(self.min_lr) != n_groups:
                raise PlateauError(
                    f"min_lr has {len(self.min_lr)} values but there are {n_groups} param groups; "
                    "give one number, or exactly one per group"
                )
            return self.min_lr
        return (self.min_lr,) * n_groups

    def initial_state(self) -> PlateauState:
        """The state before the first evaluation."""
        best = None if self.convention == "keras" else (math.inf if self.mode == "min" else -math.inf)
        return PlateauState(best=best)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if isinstance(self.min_lr, tuple):
            out["min_lr"] = list(self.min_lr)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlateauConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise PlateauError(f"unknown plateau setting(s) {sorted(unknown)}; expected {sorted(known)}")
        data = dict(data)
        if isinstance(data.get("min_lr"), list):
            data["min_lr"] = tuple(data["min_lr"])
        return cls(**data)


@dataclass(frozen=True)
class PlateauState:
    """Where a plateau reducer stands after ``evaluations`` evaluations.

    ``best`` is the best value so far (``±inf`` before any under the torch convention, ``None``
    under Keras'), ``best_evaluation`` the 1-based evaluation that set it, ``num_bad`` the bad
    evaluations counted towards ``patience`` (Keras' ``wait``), ``cooldown_counter`` the
    evaluations of cool-down left, ``reductions`` how many reductions changed an LR,
    ``exhausted`` whether patience has been spent with nothing left to reduce, ``stopped``
    whether a stop was asked for (``stop_at_min_lr``).
    """

    evaluations: int = 0
    best: float | None = None
    best_evaluation: int | None = None
    num_bad: int = 0
    cooldown_counter: int = 0
    reductions: int = 0
    last_value: float | None = None
    exhausted: bool = False
    stopped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlateauState:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes: Any) -> PlateauState:
        return dataclasses.replace(self, **changes)


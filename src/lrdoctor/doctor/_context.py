"""What every rule needs: the main series of a log, robust summaries, and "not checked" notes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrdoctor.logs import Series, TrainingLog

__all__ = ["Context", "blocks", "first_bad", "head", "tail"]

_ACC_NAMES = ("accuracy", "acc", "mean_token_accuracy", "f1")


def blocks(values: np.ndarray, n: int = 40) -> np.ndarray:
    """Medians of ``n`` consecutive equal blocks (fewer when short): a robust smoothing."""
    v = np.asarray(values, dtype=float)
    if len(v) <= n:
        return v.copy()
    size = len(v) // n
    grid = v[: size * n].reshape(n, size)
    if size > 2000:  # long logs: a strided sample of each block gives the same median, faster
        grid = grid[:, :: size // 2000]
    return np.median(grid, axis=1)


def head(s: Series, frac: float, minimum: int = 1) -> np.ndarray:
    k = max(minimum, math.ceil(len(s) * frac))
    return s.values[:k]


def tail(s: Series, frac: float, minimum: int = 1) -> np.ndarray:
    k = max(minimum, math.ceil(len(s) * frac))
    return s.values[-k:]


def first_bad(s: Series) -> float | None:
    bad = ~np.isfinite(s.values)
    return float(s.steps[np.argmax(bad)]) if bad.any() else None


@dataclass
class Context:
    """The log plus its main series picked once: train/val loss, accuracies, lr, grad norm."""

    log: TrainingLog
    not_checked: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        log = self.log
        self.unit = log.step_unit
        self.start, self.end = log.first_step, log.last_step
        self.train_raw = self._pick("train/loss", "train/loss_epoch", *self._losses("train"))
        self.train = None if self.train_raw is None else self.train_raw.finite
        if self.train is not None and len(self.train) == 0:
            self.train = None
        self.train_epoch = self._pick("train/loss_epoch")
        self.val_raw = self._pick("val/loss", *self._losses("val"))
        self.val = None if self.val_raw is None else (self.val_raw.finite or None)
        if self.val is not None and len(self.val) == 0:
            self.val = None
        self.train_acc = self._acc("train")
        self.val_acc = self._acc("val")
        self.lr = log.lr()
        self.grad = self._pick("grad_norm")
        self.meta: dict[str, Any] = dict(log.meta)
        self.per_step = self.unit == "step" and self.train is not None and len(self.train) >= 50

    def _losses(self, split: str) -> list[str]:
        """Other loss-like series (``train/nll_loss``, ``val/mse``) when ``<split>/loss`` is absent."""
        return [n for n in self.log.names(f"{split}/")
                if any(w in n for w in ("loss", "mse", "nll", "rmse", "mae"))]

    def _pick(self, *names: str) -> Series | None:
        for n in names:
            if self.log.has(n):
                return self.log.get(n)
        return None

    def _acc(self, split: str) -> Series | None:
        for n in _ACC_NAMES:
            if self.log.has(f"{split}/{n}"):
                s = self.log.get(f"{split}/{n}").finite
                if len(s) and np.nanmax(s.values) > 1.0 + 1e-9:  # percentages
                    s = Series(s.steps, s.values / 100.0, s.epochs)
                return s if len(s) else None
        return None

    def frac(self, step: float) -> float:
        span = self.end - self.start
        return 0.0 if span <= 0 else float((step - self.start) / span)

    def skip(self, code: str, reason: str) -> None:
        self.not_checked.append((code, reason))

    @property
    def optimizer(self) -> str | None:
        return self.meta.get("optimizer")

    @property
    def n_classes(self) -> int | None:
        n = self.meta.get("n_outputs")
        return int(n) if isinstance(n, (int, float)) and n and n > 1 else None

    def fmt_step(self, step: float) -> str:
        return f"{self.unit} {step:g}"

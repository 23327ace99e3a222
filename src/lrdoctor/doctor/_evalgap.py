"""Training columns against validation columns: what a gap between the two says per epoch.

Keras logs ``loss``/``accuracy`` as the mean over the epoch's batches in training mode (dropout
on, the labels as given) and ``val_loss``/``val_accuracy`` once per epoch in evaluation mode
(dropout off, clean labels). Two faults make training look worse than validation, and they leave
different marks:

* **Train-mode-only noise** (dropout far too strong): the evaluated network can be above chance
  while the noisy training forward pass is not (:func:`eval_above_chance`), and when both learn,
  the training split's probabilities are just blurred — per example no worse spread than on
  validation.
* **Noisy labels**: a fraction of the training labels are wrong and the model rightly gives them
  a small probability; their log-loss drags the training split's geometric-mean probability
  ``exp(-loss)`` far below its accuracy, which clean validation labels do not
  (:func:`noise_shape`).

Thresholds: ``T.NAME``, registered in ``_thresholds`` (docs/doctor.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lrdoctor.doctor._context import Context
from lrdoctor.doctor._epochs import _cached, _exp, curves
from lrdoctor.doctor._thresholds import T

__all__ = ["EvalAboveChance", "NoiseShape", "eval_above_chance", "noise_shape"]



@dataclass(frozen=True)
class EvalAboveChance:
    """Training at chance while the evaluated model is not (see :func:`eval_above_chance`)."""

    level: float        # the training tail's lowest loss: the chance level
    train_ratio: float  # median train accuracy * exp(level) over the tail (1 = chance)
    index: int          # the epoch (index) where validation is furthest above chance
    val_acc: float
    val_loss: float
    ratio: float        # val_acc * exp(level) there


def eval_above_chance(ctx: Context) -> EvalAboveChance | None:
    """The training columns sit at chance level while validation, at some epoch, does not.

    Rule: over the epochs after the first (and after an early blow-up, as in
    :func:`~lrdoctor.doctor._epochs.chance_tail`) the training loss's lowest value ``level``
    is ``>= MIN_LEVEL`` and ``0.5 <= median(train_acc) * exp(level) <= AT_CHANCE``, and at one
    of those epochs ``val_acc * exp(level) >= EVAL_ABOVE`` with ``val_loss < level``. Why: a
    model whose output ignores its input scores ``1/C = exp(-level)`` on any split; validation
    clearly above that, in loss and accuracy, while training is not, means the network computes
    something useful that the training-mode forward pass hides. In the tuning runs dropout 0.9
    reached 1.86-2.0 (3 of 4); dead, decayed, saturated, too slow or too fast runs at most 1.25.
    Needs 3 epochs of train loss and accuracy, and validation loss and accuracy.
    """
    return _cached(ctx, "eval_above_chance", lambda: _eval_above_chance(ctx))


def _eval_above_chance(ctx: Context) -> EvalAboveChance | None:
    c = curves(ctx)
    if c is None or len(c) < 3 or not np.isfinite(c.train).all():
        return None
    rest = c.train[1:]
    level0 = float(np.min(rest))
    if level0 < T.MIN_LEVEL:
        return None
    start = 1 + int(np.nonzero(rest <= T.BLOWUP * level0)[0][0])
    tail = c.train[start:]
    acc = c.train_acc[start:]
    if len(tail) < 2 or not np.isfinite(acc).any():
        return None
    level = float(np.min(tail))
    train_ratio = float(np.nanmedian(acc)) * _exp(level)
    if not 0.5 <= train_ratio <= T.AT_CHANCE:
        return None
    va, vl = c.val_acc[start:], c.val[start:]
    ok = np.isfinite(va) & np.isfinite(vl) & (vl < level)
    if not ok.any():
        return None
    ratios = np.where(ok, va, -np.inf) * _exp(level)
    i = int(np.argmax(ratios))
    if ratios[i] < T.EVAL_ABOVE:
        return None
    return EvalAboveChance(level, train_ratio, start + i, float(va[i]), float(vl[i]),
                           float(ratios[i]))


@dataclass(frozen=True)
class NoiseShape:
    """How the training split's probabilities are spread compared with validation's."""

    ratio: float        # median over the last 30% of epochs of (ta·e^tl) / (va·e^vl)
    val_fall: float     # median val loss there / the first epoch's val loss
    epochs: int         # how many epochs the median is over

    @property
    def confident(self) -> bool:
        """The model is confident enough for noisy labels to show in :attr:`ratio`."""
        return self.val_fall <= T.CONFIDENT

    @property
    def noisy_labels(self) -> bool:
        return self.ratio >= T.NOISE_SHAPE


def noise_shape(ctx: Context) -> NoiseShape | None:
    """``accuracy · exp(loss)`` of the training split over that of validation, late in the run.

    ``accuracy · exp(loss)`` is the accuracy over the geometric-mean probability of the right
    label: 1 at chance and at a perfect fit, large when some examples get a tiny probability.
    With a fraction ``eta`` of the training labels wrong, the model (fitting the clean function)
    gives those a small probability, so the ratio train/validation is about
    ``(1 - eta) * exp(eta * m)`` with ``m`` the mean log-odds margin on them: above 1 once the
    model is confident (``m > -ln(1 - eta) / eta``, at least 1 nat), hence judged only when the
    median validation loss over the last 30% of epochs is ``<= CONFIDENT`` (0.8) x the first
    epoch's. Dropout noise blurs every training example alike and leaves the ratio near 1. In
    the tuning runs: noisy labels (40%) 1.08-1.40, dropout 0.9 0.94-1.02, at a validation loss
    0.65-0.76x its first value. None when a column is missing or there are under 3 epochs.
    """
    return _cached(ctx, "noise_shape", lambda: _noise_shape(ctx))


def _noise_shape(ctx: Context) -> NoiseShape | None:
    c = curves(ctx)
    if c is None or len(c) < 3 or not np.isfinite(c.val[0]) or c.val[0] <= 0:
        return None
    k = max(1, math.ceil(0.3 * len(c)))
    ta, tl, va, vl = (x[-k:] for x in (c.train_acc, c.train, c.val_acc, c.val))
    ok = np.isfinite(ta) & np.isfinite(tl) & np.isfinite(va) & np.isfinite(vl) & (va > 0)
    if not ok.any():
        return None
    with np.errstate(over="ignore"):
        r = ta[ok] / va[ok] * np.exp(np.minimum(tl[ok] - vl[ok], 50.0))
    return NoiseShape(float(np.median(r)), float(np.median(vl[ok])) / float(c.val[0]),
                      int(ok.sum()))

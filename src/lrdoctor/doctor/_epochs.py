"""Per-epoch curves and the chance level: what a Keras CSVLogger's columns can tell.

A log that holds only per-epoch ``loss``, ``accuracy``, ``val_loss`` and ``val_accuracy`` has
no gradients, activations or inputs, but two facts of classification make it say more than it
seems to:

* A classifier that ignores its input predicts the label prior: its loss is the prior's
  entropy (``ln C`` for ``C`` balanced classes) and its accuracy the prior's largest share
  (``1/C``), so ``accuracy * exp(loss) ~ 1`` (<= 1.2 in the tuning runs at chance). A model
  that learned something scores more than its loss level implies (>= 1.3 in the tuning runs,
  while their loss was >= 0.6 nats); near a loss of 0 both sides approach 1 again, hence "at
  chance" also needs a loss of at least MIN_LEVEL = 0.6 nats (binary at chance: ln 2).
* ``exp(-val_loss)`` is the geometric-mean probability the model gives the right validation
  label; on data it is fitted to, shuffled, a model cannot score far below that.

:func:`curves` aligns the columns on the training loss's epochs; :func:`chance_tail` says
whether (and how) a run sits at chance level. Thresholds: ``T.NAME`` (``_thresholds``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lrdoctor.doctor._context import Context
from lrdoctor.doctor._thresholds import T

__all__ = [
    "BelowChance",
    "ChanceTail",
    "Curves",
    "Squash",
    "below_chance",
    "chance_tail",
    "curves",
    "measured",
    "softmax_band",
    "squashed_loss",
]



@dataclass(frozen=True)
class Curves:
    """Per-epoch series aligned on the training loss's steps (NaN where a column is missing)."""

    steps: np.ndarray
    train: np.ndarray
    val: np.ndarray
    train_acc: np.ndarray
    val_acc: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def has_acc(self) -> bool:
        return bool(np.isfinite(self.train_acc).any() or np.isfinite(self.val_acc).any())


@dataclass(frozen=True)
class ChanceTail:
    """How a run sits at chance level after its first epoch (see :func:`chance_tail`)."""

    level: float          # the lowest training loss of the tail: the chance-level loss
    start: int            # index of the first tail epoch (after the first epoch / a blow-up)
    first_ratio: float    # the first epoch's loss / level (> BLOWUP: the start blew up)
    deviation: float      # median |loss - level| / level over the tail
    early_excess: float   # min of the first two tail epochs' (loss - level) / level
    spread: float         # (max - level) / level over the tail
    decline: float        # (median of the tail's first third - last third) / level
    frozen: bool          # train and val loss fall at >= 80% of transitions, by tiny amounts
    acc_ratio: float      # median train accuracy * exp(level) over the tail (1 = chance)

    @property
    def blew_up(self) -> bool:
        return self.first_ratio > T.BLOWUP

    @property
    def pinned(self) -> bool:
        return self.deviation <= T.PIN_REL and not self.creeping

    @property
    def creeping(self) -> bool:
        return self.early_excess > T.CREEP_REL and self.decline > 0 and self.spread <= T.CREEP_MAX

    @property
    def bouncing(self) -> bool:
        return not self.creeping and self.deviation > (T.PIN_REL if self.blew_up else T.BOUNCE_REL)



def _exp(x: float) -> float:
    """``exp(x)`` capped below float overflow: a loss of hundreds of nats is far from chance."""
    return math.exp(min(x, 700.0))

def measured(ctx: Context, *prefixes: str) -> bool:
    """True when the log holds a live measurement under any of ``prefixes`` (then the rule that
    reads it directly decides, and curve signatures stay quiet)."""
    return any(ctx.log.names(p) for p in prefixes)


def _epoch_loss(ctx: Context):
    if ctx.train_epoch is not None and len(ctx.train_epoch.finite):
        return ctx.train_epoch
    if ctx.unit == "epoch" and ctx.train_raw is not None:
        return ctx.train_raw
    return None


def _aligned(s, steps: np.ndarray) -> np.ndarray:
    """The values of series ``s`` at ``steps`` (NaN where it has none)."""
    out = np.full(len(steps), np.nan)
    if s is None:
        return out
    idx = np.searchsorted(s.steps, steps)
    ok = idx < len(s)
    hit = np.zeros(len(steps), dtype=bool)
    hit[ok] = s.steps[idx[ok]] == steps[ok]
    out[hit] = s.values[idx[hit]]
    return out


def curves(ctx: Context) -> Curves | None:
    """The per-epoch training loss (with val loss and accuracies at the same epochs), or None
    when the log has no per-epoch training loss: ``train/loss_epoch`` if the log has it (our
    JSONL, Lightning), else ``train/loss`` of an epoch-unit log (Keras)."""
    return _cached(ctx, "curves", lambda: _curves(ctx))


def _cached(ctx: Context, key: str, compute):
    """Several rules read the same analysis: compute it once per diagnosis (per Context)."""
    memo = ctx.__dict__.setdefault("_epochs_memo", {})
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _curves(ctx: Context) -> Curves | None:
    loss = _epoch_loss(ctx)
    if loss is None or not len(loss):
        return None
    steps = loss.steps.astype(float)
    return Curves(steps, loss.values.astype(float), _aligned(ctx.val_raw, steps),
                  _aligned(ctx.train_acc, steps), _aligned(ctx.val_acc, steps))


def _falls(v: np.ndarray) -> float:
    d = np.diff(v[np.isfinite(v)])
    return float(np.mean(d < 0)) if len(d) else 0.0


def chance_tail(ctx: Context) -> ChanceTail | None:
    """The run's tail (epochs after the first, and after any early blow-up) when its training
    and validation accuracy are at the chance level its loss implies, else None.

    "At chance": over the tail, ``0.5 <= median(train_acc) * exp(level) <= AT_CHANCE`` and
    ``median(val_acc) * exp(min val_loss) <= AT_CHANCE``, with ``level >= MIN_LEVEL``, where
    ``level`` is the tail's lowest training loss. (Below 0.5 the model scores under chance on
    its own training data: that is :mod:`unshuffled-data <lrdoctor.doctor._signatures>`.)
    Needs at least 3 epochs with a training loss and an accuracy column.
    """
    return _cached(ctx, "chance_tail", lambda: _chance_tail(ctx))


def _chance_tail(ctx: Context) -> ChanceTail | None:
    c = curves(ctx)
    if c is None or len(c) < 3 or not c.has_acc:
        return None
    t = c.train
    if not np.isfinite(t).all():
        return None
    rest = t[1:]
    level0 = float(np.min(rest))
    if not (math.isfinite(level0) and level0 >= T.MIN_LEVEL):
        return None
    # the tail starts at the first epoch after the first whose loss is back near the level
    near = np.nonzero(rest <= T.BLOWUP * level0)[0]
    start = 1 + int(near[0])
    tail = t[start:]
    if len(tail) < 2:
        return None
    level = float(np.min(tail))
    acc = c.train_acc[start:]
    vacc, vloss = c.val_acc[start:], c.val[start:]
    ratios = []
    if np.isfinite(acc).any():
        r = float(np.nanmedian(acc)) * _exp(level)
        if not 0.5 <= r <= T.AT_CHANCE:
            return None
        ratios.append(r)
    if np.isfinite(vacc).any() and np.isfinite(vloss).any():
        r = float(np.nanmedian(vacc)) * _exp(float(np.nanmin(vloss)))
        if r > T.AT_CHANCE:
            return None
        ratios.append(r)
    dev = float(np.median(np.abs(tail - level))) / level
    early = float(np.min(tail[:2] - level)) / level
    k = max(1, len(tail) // 3)
    decline = (float(np.median(tail[:k])) - float(np.median(tail[-k:]))) / level
    v = c.val[np.isfinite(c.val)]
    frozen = (len(t) >= 4 and _falls(t) >= T.MONOTONE and (len(v) < 4 or _falls(v) >= T.MONOTONE)
              and float(np.ptp(t)) / level < 0.01)
    return ChanceTail(level, start, float(t[0]) / level, dev, early,
                      float(np.max(tail)) / level - 1.0, decline, frozen,
                      ratios[0] if ratios else math.nan)




@dataclass(frozen=True)
class BelowChance:
    """Median train/val accuracy and loss over the epochs after the first."""

    train_acc: float
    val_acc: float
    train_loss: float
    val_loss: float

    @property
    def chance(self) -> float:
        """The accuracy the validation loss implies for a model at chance: exp(-val_loss)."""
        return _exp(-self.val_loss)


def below_chance(ctx: Context) -> BelowChance | None:
    """The run scores below chance on its own training data while validation does not.

    Over the epochs after the first (medians): ``train_acc < BELOW_CHANCE * exp(-val_loss)``,
    ``train_acc < BELOW_CHANCE * val_acc`` and ``train_loss > TRAIN_ABOVE_VAL * val_loss``.
    Needs per-epoch train loss and accuracy next to val loss and accuracy, 2 epochs or more.
    """
    return _cached(ctx, "below_chance", lambda: _below_chance(ctx))


def _below_chance(ctx: Context) -> BelowChance | None:
    c = curves(ctx)
    if c is None or len(c) < 2:
        return None
    sl = slice(1, None)
    cols = [c.train_acc[sl], c.val_acc[sl], c.train[sl], c.val[sl]]
    if not all(np.isfinite(x).any() for x in cols):
        return None
    ta, va, tl, vl = (float(np.nanmedian(x)) for x in cols)
    if (ta < T.BELOW_CHANCE * _exp(-vl) and ta < T.BELOW_CHANCE * va
            and tl > T.TRAIN_ABOVE_VAL * vl):
        return BelowChance(ta, va, tl, vl)
    return None




@dataclass(frozen=True)
class Squash:
    """The loss fell no faster than a softmax-squashed loss can (see :func:`squashed_loss`)."""

    split: str            # "validation" or "training": the columns judged
    classes: float        # C (the log's class count, else estimated)
    estimated: bool
    ln_c: float
    floor: float          # ln(1 + (C-1)/e)
    max_fall: float       # 1 - floor / ln C
    acc: float            # accuracy at the last judged epoch
    loss: float           # loss there
    fall: float           # (ln C - loss) / ln C there
    lowest: float         # the lowest loss of the judged split
    slope: float          # the largest fall / (max_fall * gain) over the judged epochs
    step: float           # the first judged epoch


def softmax_band(classes: float) -> tuple[float, float]:
    """(floor, largest relative fall) of CrossEntropyLoss fed softmax outputs over C classes:
    ``floor = ln(1 + (C-1)/e)`` (reached at p_y = 1, the rest 0), and the loss starts near
    ``ln C``, so it can fall by at most ``1 - floor / ln C``.

    >>> [round(x, 3) for x in softmax_band(10)]
    [1.461, 0.365]
    """
    floor = math.log(1.0 + (classes - 1.0) / math.e)
    return floor, 1.0 - floor / math.log(classes)


def squashed_loss(ctx: Context) -> Squash | None:
    """Accuracy rose far faster than a softmax-squashed loss could fall, or None.

    With probabilities fed to CrossEntropyLoss the loss is confined to ``[floor, ln C]``
    (:func:`softmax_band`), so its relative fall ``d = (ln C - L) / ln C`` is at most
    ``d_max`` and grows about linearly with the accuracy's gain ``g = (acc - 1/C) / (1 - 1/C)``.
    Fires when, at every epoch with ``g >= SOFTMAX_MIN_GAIN`` (at least one),
    ``d <= SOFTMAX_SLOPE * d_max * g``, and the loss never went below ``0.98 * floor``. Healthy
    and noisy-label runs fall 1.8x or more faster. Judged on validation columns when there are
    3 or more epochs of them, else on training. ``C`` is the log's class count, else ``exp`` of
    the first epoch's loss (train or val, the larger) when epoch 1's training loss is still
    ``>= STALLED_START`` of epoch 0's (a stalled start: the untrained loss, ln C).
    """
    return _cached(ctx, "squashed_loss", lambda: _squashed_loss(ctx))


def _squashed_loss(ctx: Context) -> Squash | None:
    c = curves(ctx)
    if c is None or len(c) < 3 or not np.isfinite(c.train[:2]).all():
        return None
    use_val = np.isfinite(c.val).sum() >= 3 and np.isfinite(c.val_acc).sum() >= 3
    loss, acc = (c.val, c.val_acc) if use_val else (c.train, c.train_acc)
    ok = np.isfinite(loss) & np.isfinite(acc)
    if ok.sum() < 3:
        return None
    classes = ctx.n_classes
    estimated = classes is None
    if classes is None:
        if c.train[1] < T.STALLED_START * c.train[0]:
            return None
        top = max(float(c.train[0]), float(c.val[0]) if np.isfinite(c.val[0]) else 0.0)
        classes = math.exp(min(top, 50.0))
    if not 2 <= classes <= 1e6:
        return None
    ln_c = math.log(classes)
    floor, d_max = softmax_band(classes)
    loss, acc, steps = loss[ok], acc[ok], c.steps[ok]
    g = (acc - 1.0 / classes) / (1.0 - 1.0 / classes)
    d = (ln_c - loss) / ln_c
    judged = np.nonzero(g >= T.SOFTMAX_MIN_GAIN)[0]
    if not len(judged) or float(np.min(loss)) < 0.98 * floor:
        return None
    slope = float(np.max(d[judged] / (d_max * g[judged])))
    if slope > T.SOFTMAX_SLOPE:
        return None
    j = int(judged[-1])
    return Squash("validation" if use_val else "training", classes, estimated, ln_c, floor,
                  d_max, float(acc[j]), float(loss[j]), float(d[j]), float(np.min(loss)), slope,
                  float(steps[judged[0]]))

"""underfitting: a training loss that stays high, and, from the curves alone, the look-alike
causes its columns fit (the bad initialization, label noise or setup candidates it names).

With the Monitor's measurements in the log the symptom stays plain and ``_internals`` names the
cause; thresholds ``T.UNDERFIT_GAIN``, ``T.UNDERFIT_NO_ACC_REL``, ``T.START_BLOWUP`` and
``T.UNDERFIT_VAL_BELOW`` (docs/doctor.md).
"""

from __future__ import annotations

import numpy as np

from lrdoctor.doctor._context import Context, blocks, tail
from lrdoctor.doctor._curves import _f, _levels, _rel_change
from lrdoctor.doctor._epochs import chance_tail, curves
from lrdoctor.doctor._finding import Finding
from lrdoctor.doctor._thresholds import T

__all__ = ["RULES", "underfitting"]


def underfitting(ctx: Context) -> list[Finding]:
    lv = _levels(ctx)
    if lv is None:
        return []
    l0, _lmin, lend, _ = lv
    drop = (l0 - lend) / max(abs(l0), 1e-12)
    acc = None if ctx.train_acc is None else float(np.median(tail(ctx.train_acc, 0.1)))
    vacc = None if ctx.val_acc is None else float(np.median(tail(ctx.val_acc, 0.1)))
    sm = blocks(ctx.train.values)
    late = _rel_change(sm[-max(2, len(sm) // 3):])
    if late < -0.1 or lend > T.DIVERGE_FACTOR * l0 or drop < -T.FLAT_REL:
        return []
    if acc is not None or vacc is not None:
        # the accuracy's gain over chance (1/C when the log knows C, else 0): scale-free
        # across class counts, where a bare accuracy cut-off is not
        chance = 1.0 / ctx.n_classes if ctx.n_classes else 0.0
        a = acc if acc is not None else vacc
        low = (a - chance) / (1.0 - chance) < T.UNDERFIT_GAIN
        if not low:
            return []
    elif drop >= T.UNDERFIT_NO_ACC_REL:
        return []
    seen = ((f"training loss only fell {drop:.0%}" if drop >= 0.005 else
             "training loss did not fall")
            + f" ({l0:.4g} -> {lend:.4g})"
            + (f"; final training accuracy {acc:.1%}" if acc is not None else "")
            + (f"; validation accuracy {vacc:.1%}" if vacc is not None else ""))
    if ctx.log.names("grad_norm/") or ctx.log.names("dead_frac/"):
        # the Monitor's measurements decide the cause (_internals); the symptom stays plain
        return [_f("underfitting", "warning", seen,
                   "Use a bigger model or train longer, and check the learning rate and the "
                   "regularization.", [ctx.end], 0.4, drop=drop)]
    return _underfit_lookalikes(ctx, seen, drop, lend)


def _underfit_lookalikes(ctx: Context, seen: str, drop: float, lend: float) -> list[Finding]:
    """A training loss that stays high, from the curves alone: which causes the columns fit.

    Several setup faults end in the same high, slowly falling loss, and per-epoch columns hold
    no gradients, weights or inputs to tell them apart; the shape still splits them in three:

    * the first epoch's mean loss at least START_BLOWUP times the lowest since (and the run not
      at chance level, where ``_signatures`` reads the blow-up): the first steps
      saw losses far above where the model can go, which a far too large initialization,
      unnormalized inputs or too high a first learning rate cause (``bad-initialization``,
      the likeliest first; underfitting is then its consequence);
    * without accuracies (a regression; with them ``_training`` reads the train/val accuracy
      gap), the validation loss more than UNDERFIT_VAL_BELOW below the training loss: the
      model predicts unseen data better than the data it trains on, so the training labels or
      the training-mode forward pass are the problem, not its size (``label-noise``, with
      over-regularization and a data problem as the look-alikes);
    * otherwise ``underfitting`` (a model too small), with a squashing output activation and
      too much weight decay as the look-alikes: all three converge to a high floor.

    Each finding names its candidates (``data["candidates"]``) and the one check that splits
    them (``data["check"]``).
    """
    c = curves(ctx)
    train = c.train[np.isfinite(c.train)] if c is not None else np.array([])
    at_chance = chance_tail(ctx) is not None  # the chance-level signatures decide there
    if (not at_chance and len(train) >= 3
            and train[0] >= T.START_BLOWUP * float(np.min(train[1:])) > 0):
        ratio = float(train[0] / np.min(train[1:]))
        return [_f("bad-initialization", "warning",
                   seen + f", yet the first epoch's mean loss {train[0]:.4g} was {ratio:.3g}x "
                   f"the lowest since ({float(np.min(train[1:])):.4g}): the first steps saw "
                   "losses far above where the model can get to. A far too large weight "
                   "initialization does this, and so do unnormalized inputs or too high a first "
                   "learning rate, which per-epoch columns cannot tell apart: print each "
                   "weight's std x sqrt(fan_in) (near 1 for the default init) and x.std() of "
                   "one batch (near 1 when standardized)",
                   "Use the default (Kaiming/Xavier) initialization; if x.std() of a batch is far "
                   "from 1, standardize the inputs; else warm the learning rate up.",
                   [ctx.start], 0.5, drop=drop, start_ratio=ratio,
                   candidates=["bad-initialization", "unnormalized-input", "lr-too-high"],
                   check="print each weight's std x sqrt(fan_in) (near 1 for the default init) "
                         "and x.std() of one batch (near 1 when standardized)"),
                _f("underfitting", "warning", seen, "Fix the start first (see above).",
                   [ctx.end], 0.4, drop=drop)]
    vend = (float(np.median(tail(ctx.val, 0.1))) if ctx.val is not None and len(ctx.val) >= 3
            else None)
    no_acc = ctx.train_acc is None and ctx.val_acc is None  # with accuracies _training decides
    if no_acc and vend is not None and lend > 0 and vend < (1 - T.UNDERFIT_VAL_BELOW) * lend:
        return [_f("label-noise", "warning",
                   seen + f", while the validation loss ends at {vend:.4g}, "
                   f"{1 - vend / lend:.0%} below it: the model predicts data it never saw "
                   "better than the data it trains on, so the training targets or the "
                   "training-mode forward pass hold it back, not its size. Noisy training labels "
                   "do this, and so do dropout or augmentation far too strong (over-"
                   "regularization) and training inputs that differ from validation's (a data "
                   "problem): evaluate the training set in eval mode (one minute): near the "
                   "validation loss means the train-mode regularization, still far above it the "
                   "training labels or inputs",
                   "Audit the training labels (or use a noise-robust loss such as Huber or label "
                   "smoothing); if dropout or augmentation is strong, lower it.",
                   [ctx.start], 0.45, drop=drop,
                   candidates=["label-noise", "over-regularization", "data-problem"],
                   check="evaluate the training set in eval mode: near the validation loss "
                         "means train-mode regularization, still far above it the training "
                         "labels or inputs"),
                _f("underfitting", "warning", seen, "Fix the training data first (see above).",
                   [ctx.end], 0.4, drop=drop)]
    return [_f("underfitting", "warning",
               seen + ". A model too small does this; so do a squashing activation on the "
               "output (the loss cannot fall below its floor) and weight decay far too strong, "
               "which per-epoch columns cannot tell apart: print the model and the optimizer "
               "(the last layer, the weight decay)",
               "Use a bigger model or train longer; remove a softmax/sigmoid before the loss; "
               "lower a weight decay above ~1e-2.", [ctx.end], 0.4, drop=drop,
               candidates=["underfitting", "loss-activation-mismatch", "over-regularization"],
               check="print the model and the optimizer: an activation on the output means "
                     "loss-activation-mismatch, weight decay above ~1e-2 over-regularization, "
                     "else the model is too small")]


RULES = (underfitting,)

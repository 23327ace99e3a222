"""Rules on the validation curve alone, judged against its own evaluation noise and progress:
a plateau over the last third, and swings from one evaluation to the next (for logs without a
per-step gradient norm, where the live oscillation rule cannot decide).

Thresholds (``T.NAME``, registered in ``_thresholds``; docs/doctor.md).
"""

from __future__ import annotations

import math

import numpy as np

from lrdoctor.doctor._context import Context
from lrdoctor.doctor._curves import _f, _lr_at
from lrdoctor.doctor._finding import Finding
from lrdoctor.doctor._thresholds import T

__all__ = ["RULES"]


def _theil_sen(x: np.ndarray, y: np.ndarray) -> float:
    """Median of the pairwise slopes: a trend that one outlying evaluation cannot move."""
    i, j = np.triu_indices(len(x), 1)
    dx = x[j] - x[i]
    keep = dx != 0
    return float(np.median((y[j] - y[i])[keep] / dx[keep])) if keep.any() else 0.0


def _eval_noise(v: np.ndarray) -> float:
    """Evaluation-to-evaluation noise: median |difference| / sqrt(2) (for white noise of std
    sigma, about 0.95 sigma)."""
    return float(np.median(np.abs(np.diff(v)))) / math.sqrt(2) if len(v) > 2 else 0.0


def val_plateau(ctx: Context) -> list[Finding]:
    """plateau (info): the validation loss is flat over the last third of its evaluations.

    Flat: the Theil-Sen change over the last third is within VAL_FLAT_NOISE times the
    series' own evaluation-to-evaluation noise there, and within FLAT_SHARE of its fall
    before the last third (which must be a real fall: more than that noise). Needs >= 6
    evaluations. Scale-free: a fine-tune whose eval loss moves by 0.01 nats and a regression
    whose MSE moves by 10 are judged against their own noise and progress.
    """
    val = ctx.val
    if val is None or len(val) < 6:
        return []
    v, st = val.values.astype(float), val.steps.astype(float)
    k = max(3, len(v) // 3)
    last, first = v[-k:], v[:-k]
    change = _theil_sen(st[-k:], last) * float(st[-1] - st[-k])
    noise = _eval_noise(last)
    fell = float(np.median(first[: max(1, len(first) // 3)]) - np.median(last))
    if fell <= max(noise, 1e-12) or abs(change) > max(T.VAL_FLAT_NOISE * noise,
                                                      T.FLAT_SHARE * fell):
        return []
    return [_f("plateau", "info",
               f"validation loss flat over the last third ({len(last)} evaluations from "
               f"{ctx.fmt_step(st[-k])}): trend {change:+.3g} against its noise +-{noise:.2g}, "
               f"after falling {fell:.3g} before",
               "Validation has converged: stop here (or at the best evaluation), or lower the "
               "learning rate (decay or PlateauLR) to get a little more.", [st[-k]], 0.35,
               change=change, noise=noise)]


def _before_final_rise(v: np.ndarray, is_acc: bool) -> int:
    """How many of ``v``'s points to keep: all but a final run of at most 2 evaluations that
    each got worse after the best one (an early-stopping run ends with its patience epochs of
    rising validation loss; that rise is where overfitting starts, not a swing)."""
    worse = (np.diff(v) < 0) if is_acc else (np.diff(v) > 0)
    best = int(np.argmax(v)) if is_acc else int(np.argmin(v))
    tail_len = len(v) - 1 - best
    if 1 <= tail_len <= 2 and worse[best:].all():
        return best + 1
    return len(v)


def swinging_validation(ctx: Context) -> list[Finding]:
    """oscillation from curves: the validation metric swings from evaluation to evaluation.

    Over the second half of the evaluations (>= 8 in all), the total variation of the
    validation loss (else accuracy) is at least SWING times its net Theil-Sen change plus
    its typical step (a monotone curve scores 1), with direction changes at half of the
    steps or more (a final rise of at most 2 evaluations after the best one is left out: that is
    where an early-stopped run starts to overfit), and the median step above SWING_LEVEL of the curve's whole range (its
    progress over the run), so converged noise is not a swing. Quiet when
    the log has a per-step gradient norm (the live rule decides).
    """
    if ctx.grad is not None and ctx.per_step:
        return []
    for s, is_acc in ((ctx.val, False), (ctx.val_acc, True)):
        if s is None or len(s) < 8:
            continue
        v = s.values[len(s) // 2:].astype(float)
        st = s.steps[len(s) // 2:].astype(float)
        keep = _before_final_rise(v, is_acc)
        v, st = v[:keep], st[:keep]
        if len(v) < 4:
            continue
        d = np.diff(v)
        tv = float(np.sum(np.abs(d)))
        net = abs(_theil_sen(st, v) * float(st[-1] - st[0]))
        step = float(np.median(np.abs(d)))
        # against the run's own progress: the whole curve's range (its fall, for a loss)
        level = max(float(np.ptp(s.values)), 1e-12)
        turns = float(np.mean(np.sign(d[1:]) != np.sign(d[:-1]))) if len(d) > 1 else 0.0
        if tv >= T.SWING * (net + step) and turns >= 0.5 and step > T.SWING_LEVEL * level:
            name = "validation accuracy" if is_acc else "validation loss"
            unit = f"{step / level:.0%} of the curve's whole range"
            lr = _lr_at(ctx, ctx.end)
            return [_f("oscillation", "warning",
                       f"{name} swings from evaluation to evaluation over the second half: "
                       f"median change {step * (100 if is_acc else 1):.3g}"
                       + (" points" if is_acc else "") + f" ({unit})"
                       + f", total movement {tv / max(net + step, 1e-12):.1f}x its net trend, "
                       f"direction reversed at {turns:.0%} of the evaluations"
                       + (f"; lr {lr:.3g}" if lr else ""),
                       "Lower the learning rate (2-10x) or decay it; if the validation set is "
                       "tiny (tens of examples), enlarge it: its noise alone swings this much.",
                       [float(st[0])], 0.45, swing=tv / max(net + step, 1e-12))]
    return []


RULES = (val_plateau, swinging_validation)

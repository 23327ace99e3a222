"""oscillation from a cyclic learning rate: the loss swings up and down with the LR's cycles.

A cyclic or restarting schedule (CLR, SGDR) is a deliberate choice and says nothing by itself;
what this rule measures is the loss's answer to it. When every LR peak throws the loss back up,
by a share that is large against the loss itself, the peaks are above what the model tolerates:
the optimizer bounces out of the valley at each peak instead of settling. Thresholds:
``T.NAME`` (``_thresholds``; docs/doctor.md).
"""

from __future__ import annotations

import numpy as np

from lrdoctor.doctor._context import Context
from lrdoctor.doctor._curves import _f
from lrdoctor.doctor._finding import Finding
from lrdoctor.doctor._thresholds import T

__all__ = ["RULES", "lr_turns"]

#: a reversal of the LR counts as a cycle's turn only after the LR moved by this factor since
#: the last turn (a definition: halving or doubling; it keeps an adaptive optimizer's
#: effective-LR jitter and float noise out)
_TURN_FACTOR = 2.0


def lr_turns(lr: np.ndarray) -> list[int]:
    """Indices where a positive LR series reverses direction after moving by at least
    _TURN_FACTOR since the previous reversal (a zigzag filter on log LR)."""
    v = np.log(np.maximum(np.asarray(lr, dtype=float), 1e-300))
    step = float(np.log(_TURN_FACTOR))
    turns: list[int] = []
    ext, ext_i, direction = v[0], 0, 0
    for i in range(1, len(v)):
        x = v[i]
        if direction >= 0 and x > ext:
            ext, ext_i = x, i
            direction = direction or (1 if x - v[0] >= step else 0)
        elif direction <= 0 and x < ext:
            ext, ext_i = x, i
            direction = direction or (-1 if v[0] - x >= step else 0)
        if direction == 1 and ext - x >= step:
            turns.append(ext_i)
            ext, ext_i, direction = x, i, -1
        elif direction == -1 and x - ext >= step:
            turns.append(ext_i)
            ext, ext_i, direction = x, i, 1
    return turns


def _box(x: np.ndarray, width: int) -> np.ndarray:
    """Moving mean over ``width`` points, the edges averaged over what they have."""
    if width <= 1:
        return x.copy()
    k = np.ones(width)
    return np.convolve(x, k, "same") / np.convolve(np.ones_like(x), k, "same")


def cyclic_swing(ctx: Context) -> list[Finding]:
    """oscillation: the per-step loss swings in phase with a cyclic learning rate.

    The LR turns (reverses after a 2x move) at least 4 times; ``period`` = twice the median
    distance between turns. The log loss is smoothed over period/8, its trend (a moving mean
    over one period) removed, and the first and last period dropped; ``swing`` = the std of
    what is left (a loss swinging by +-s% scores about s/100) and ``corr`` = its largest
    correlation with log LR at a lag of 0 to period/2 (the loss answers the LR a little later).
    A warning when ``corr >= CYCLE_CORR`` and ``swing >= CYCLE_SWING``: each LR peak pushes the
    loss back up by a large share of itself. Both are scale-free (a log loss and a
    correlation), and the trend removal makes a falling loss no swing.
    """
    s, lr = ctx.train, ctx.lr
    if not ctx.per_step or lr is None or len(lr) < 50:
        return []
    lr_f = lr.finite
    if len(lr_f) < 50 or np.any(lr_f.values <= 0):
        return []
    v = s.values.astype(float)
    keep = v > 0
    if keep.sum() < 50:
        return []
    steps, lv = s.steps[keep].astype(float), np.log(v[keep])
    x = np.log(np.interp(steps, lr_f.steps.astype(float), lr_f.values.astype(float)))
    turns = lr_turns(np.exp(x))
    if len(turns) < 4:
        return []
    period = 2 * int(np.median(np.diff(turns)))
    if period < 8 or len(lv) < 4 * period:
        return []
    sm = _box(lv, max(1, period // 8))
    res = (sm - _box(sm, period))[period:-period]
    xs = x[period:-period]
    swing = float(np.std(res))
    if swing <= 0 or np.std(xs) <= 0:
        return []
    corr, lag = max((float(np.corrcoef(res[k:], xs[:len(xs) - k])[0, 1]), k)
                    for k in range(period // 2))
    if corr < T.CYCLE_CORR or swing < T.CYCLE_SWING:
        return []
    ratio = float(np.exp(np.max(x) - np.min(x)))
    return [_f("oscillation", "warning",
               f"the learning rate cycles ({len(turns)} turns, period ~{period} "
               f"{ctx.unit}s, peak {ratio:.0f}x its trough) and the training loss swings with "
               f"it: +-{swing:.0%} around its trend, correlated {corr:.2f} with the LR "
               f"{lag} {ctx.unit}s later; each peak throws the loss back up",
               "Lower the cycle's peak learning rate (max_lr 3-10x lower, or a range test's "
               "suggestion), or narrow the range (base_lr = max_lr / 4).",
               [float(steps[turns[0]])], 0.5, swing=swing, corr=corr, period=period,
               lr_range=ratio)]


RULES = (cyclic_swing,)

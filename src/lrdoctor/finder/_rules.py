"""Suggestion rules: functions of one curve (LRs and smoothed losses) that pick an LR.

Every rule returns a :class:`Pick` (the LR, its index and a plausible range ``low..high``) or
``None`` when the curve shows no descent to pick from. ``x`` is always ``log10(lr)``: slopes are
taken against the log of the LR, the axis the ramp is uniform in.

- ``steepest``: the most negative local slope, fitted by least squares over a window of ~8% of
  the points (robust to the noise that makes a point-to-point gradient jump), looked for only
  before the loss minimum. Range: where the slope is at least half the steepest.
- ``valley``: the longest descending stretch (fastai's "valley", by ESRI), ~1/2 of the way down
  it. Range: its middle third.
- ``minimum``: the LR of the lowest smoothed loss, divided by 10. Range: ÷20 .. ÷5.
- ``margin``: the LR of the lowest smoothed loss divided by a safety margin, ``MARGIN`` (chosen
  by benchmark P1, see ``docs/finder.md``). The loss minimum of a range test sits at the edge of
  stability — the LR where the step starts to overshoot — and a constant LR held for a whole run
  needs room below it, more the longer the run. Range: ÷(2 × margin) .. ÷(margin / 2).
- ``edge``: the upper edge of the steep descent — going right from the steepest point, the
  last LR where the slope is still at least half the steepest: the largest LR that still
  makes fast progress, before the curve bends into its minimum. Range: the steepest point
  .. the LR of the minimum.

Peer rules, re-implemented from those projects' sources for side-by-side comparison, applied to
the raw recorded curve as their finders record it:

- ``fastai_valley``: fastai ``lr_find`` drops the first ``len // 10`` and last 5 points, then
  ``valley``.
- ``lightning``: Lightning ``LRFinder.suggestion`` (since 2.5.3) drops 10 at the start and 1 at the
  end and takes the minimum of ``torch.gradient(losses, spacing=[lrs])``: the slope against the
  raw LR, which favours small LRs.
- ``torch_lr_finder``: torch-lr-finder's ``plot(suggest_lr=True)``: skip 10 and 5, the minimum of
  ``np.gradient(losses)`` against the index (i.e. log LR for an exponential ramp).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lrdoctor.errors import FinderError

__all__ = [
    "MARGIN", "PEER_RULES", "Pick", "RULES", "descent", "edge", "margin", "minimum", "noise",
    "steepest", "valley",
]


@dataclass(frozen=True)
class Pick:
    """A rule's choice on one curve: ``lr`` (at index ``index``) and a plausible ``low..high``."""

    lr: float
    index: int
    low: float
    high: float


def _clean(lrs: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lrs = np.asarray(lrs, float)
    losses = np.asarray(losses, float)
    keep = np.isfinite(losses) & np.isfinite(lrs) & (lrs > 0)
    if not keep.all():
        # a non-finite point ends the usable curve
        bad = int(np.argmin(keep))
        lrs, losses = lrs[:bad], losses[:bad]
    return lrs, losses


def descent(lrs: np.ndarray, losses: np.ndarray) -> float:
    """How much the (smoothed) loss falls before its minimum, relative to where it started.

    The start is the median of the first 5% of points (at least 3); 0 means no descent.
    """
    lrs, losses = _clean(lrs, losses)
    if len(losses) < 5:
        return 0.0
    head = float(np.median(losses[: max(3, len(losses) // 20)]))
    low = float(np.min(losses))
    scale = max(abs(head), 1e-12)
    return max(0.0, (head - low) / scale)


def noise(losses: np.ndarray) -> float:
    """Robust per-step noise of raw losses: 1.4826 * MAD of first differences / sqrt(2)."""
    arr = np.asarray(losses, float)
    arr = arr[np.isfinite(arr)]
    if len(arr) < 3:
        return 0.0
    d = np.diff(arr)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))


def _local_slopes(x: np.ndarray, y: np.ndarray, half: int) -> np.ndarray:
    """Least-squares slope dy/dx over a centred window of ``2 * half + 1`` points."""
    n = len(x)
    out = np.full(n, np.nan)
    for i in range(n):
        a, b = max(0, i - half), min(n, i + half + 1)
        if b - a < 3:
            continue
        xs, ys = x[a:b], y[a:b]
        xm = xs - xs.mean()
        den = float(xm @ xm)
        if den > 0:
            out[i] = float(xm @ (ys - ys.mean())) / den
    return out


def steepest(lrs: np.ndarray, losses: np.ndarray, *, window: float = 0.08) -> Pick | None:
    """The steepest descent of loss against log LR, fitted over a window (see module doc)."""
    lrs, losses = _clean(lrs, losses)
    region = _steep_region(lrs, losses, window)
    if region is None:
        return None
    i, lo, hi, _ = region
    return Pick(float(lrs[i]), i, float(lrs[lo]), float(lrs[hi]))


def _steep_region(lrs: np.ndarray, losses: np.ndarray, window: float,
                  fraction: float = 0.5) -> tuple[int, int, int, np.ndarray] | None:
    """(steepest index, region start, region end, slopes): slope <= fraction * steepest."""
    n = len(losses)
    if n < 5:
        return None
    x = np.log10(lrs)
    half = max(2, round(window * n / 2))
    slopes = _local_slopes(x, losses, half)
    stop = int(np.argmin(losses))
    cand = slopes[: stop + 1]
    if not np.isfinite(cand).any() or np.nanmin(cand) >= 0:
        return None
    i = int(np.nanargmin(cand))
    strong = np.isfinite(slopes) & (slopes <= fraction * slopes[i])
    lo = hi = i
    while lo > 0 and strong[lo - 1]:
        lo -= 1
    while hi < n - 1 and strong[hi + 1]:
        hi += 1
    return i, lo, hi, slopes


def edge(lrs: np.ndarray, losses: np.ndarray, *, window: float = 0.08) -> Pick | None:
    """The upper edge of the steep descent (see module doc)."""
    lrs, losses = _clean(lrs, losses)
    region = _steep_region(lrs, losses, window)
    if region is None:
        return None
    i, _, hi, _ = region
    stop = max(int(np.argmin(losses)), hi)
    return Pick(float(lrs[hi]), hi, float(lrs[i]), float(lrs[stop]))


def _longest_valley(losses: np.ndarray) -> tuple[int, int]:
    """fastai's longest-valley search: (start, end) indices of the longest descending run."""
    n = len(losses)
    lds = np.ones(n, dtype=int)
    max_start = max_end = 0
    for i in range(1, n):
        higher = losses[:i] > losses[i]
        if higher.any():
            lds[i] = int(lds[:i][higher].max()) + 1
        if lds[max_end] < lds[i]:
            max_end = i
            max_start = max_end - int(lds[max_end])
    return max_start, max_end


def valley(lrs: np.ndarray, losses: np.ndarray) -> Pick | None:
    """The longest descending stretch, about halfway down (fastai's ``valley``)."""
    lrs, losses = _clean(lrs, losses)
    if len(losses) < 5:
        return None
    start, end = _longest_valley(losses)
    if end - start < 2:
        return None
    sections = (end - start) / 3
    i = start + int(sections) + int(sections / 2)
    lo, hi = start + int(sections), min(start + int(2 * sections), len(lrs) - 1)
    return Pick(float(lrs[i]), i, float(lrs[lo]), float(lrs[hi]))


#: The ``margin`` rule's divisor of the min-loss LR (see the module docstring).
MARGIN = 4.0


def margin(lrs: np.ndarray, losses: np.ndarray, *, factor: float = MARGIN) -> Pick | None:
    """The LR of the lowest smoothed loss divided by ``factor`` (default :data:`MARGIN`)."""
    if not factor >= 1:
        raise FinderError(f"margin factor must be >= 1, got {factor!r}")
    lrs, losses = _clean(lrs, losses)
    if len(losses) < 5:
        return None
    i = int(np.argmin(losses))
    if i == 0:
        return None
    best = float(lrs[i])
    return Pick(best / factor, i, best / (2 * factor), min(best, 2 * best / factor))


def minimum(lrs: np.ndarray, losses: np.ndarray) -> Pick | None:
    """The LR of the lowest smoothed loss, divided by 10 (fastai's first rule)."""
    return margin(lrs, losses, factor=10.0)


# ---- peers, as their projects compute them -----------------------------------------------------


def fastai_valley(lrs: np.ndarray, losses: np.ndarray) -> Pick | None:
    """fastai ``lr_find(suggest_funcs=valley)``: skip ``n // 10`` first and 5 last points."""
    lrs, losses = _clean(lrs, losses)
    n = len(losses)
    skip = n // 10
    if n - skip - 5 < 5:
        return None
    pick = valley(lrs[skip:-5], losses[skip:-5])
    if pick is None:
        return None
    return Pick(pick.lr, pick.index + skip, pick.low, pick.high)


def lightning(lrs: np.ndarray, losses: np.ndarray) -> Pick | None:
    """Lightning ``LRFinder.suggestion(skip_begin=10, skip_end=1)``: min of dloss/dlr (raw LR)."""
    lrs = np.asarray(lrs, float)[10:-1]
    losses = np.asarray(losses, float)[10:-1]
    idx = np.arange(10, 10 + len(losses))
    keep = np.isfinite(losses)
    lrs, losses, idx = lrs[keep], losses[keep], idx[keep]
    if len(losses) < 2:
        return None
    grads = np.gradient(losses, lrs)
    j = int(np.argmin(grads))
    return Pick(float(lrs[j]), int(idx[j]), float(lrs[j]), float(lrs[j]))


def torch_lr_finder(lrs: np.ndarray, losses: np.ndarray) -> Pick | None:
    """torch-lr-finder ``plot(skip_start=10, skip_end=5, suggest_lr=True)``: min of np.gradient."""
    lrs = np.asarray(lrs, float)[10:-5]
    losses = np.asarray(losses, float)[10:-5]
    if len(losses) < 2:
        return None
    j = int(np.gradient(losses).argmin())
    return Pick(float(lrs[j]), j + 10, float(lrs[j]), float(lrs[j]))


Rule = Callable[[np.ndarray, np.ndarray], "Pick | None"]

#: lrdoctor's rules, by name.
RULES: dict[str, Rule] = {"margin": margin, "steepest": steepest, "edge": edge,
                          "valley": valley, "minimum": minimum}
#: The peers' rules, for comparison (see the module docstring).
PEER_RULES: dict[str, Rule] = {"fastai_valley": fastai_valley, "lightning": lightning,
                               "torch_lr_finder": torch_lr_finder}

"""The ``auto`` recipe, framework-free: from a finder result and a run length to a schedule spec.

``auto`` answers "what LR and schedule do I run for N steps": a peak learning rate read off the
range test, a linear warm-up, and a decay to zero at exactly step ``N``:

- ``peak = suggestion * PEAK_FACTORS[grade]`` - by how sure the finder is: a clear reading
  (``good``/``fair``) gets x2, since a schedule that decays can start above the LR that is best
  held constant (the suggestion: the loss minimum / 4); a ``poor`` one the suggestion itself;
  a ``fallback`` (no descent seen) stays far below the divergence;
- ``warmup = round(WARMUP_FRACTION * N)`` steps from 0 to the peak (at least 1);
- then the decay :data:`AUTO_SCHEDULE` (one of :data:`RECIPES`).

The factors and the schedule were chosen by benchmark P2's tuning part (``benchmarks/
bench_auto.py tune``) on the tuning families only (the bundled examples and four added
families, ``benchmarks/_p2_tuning.py``), and then measured on held-out families.

>>> recipe_spec("cosine", 0.01, 1000)
'warmup(50) >> cosine(0.01, end=0, steps=950)'
>>> recipe_spec("wsd", 0.01, 1000)
'wsd(0.01, warmup=50, stable=750, decay=200)'
"""

from __future__ import annotations

from collections.abc import Mapping

from lrdoctor.errors import FinderError

__all__ = ["AUTO_SCHEDULE", "DIVERGENCE_CAP", "DIVERGENCE_FLOOR", "PEAK_FACTOR", "PEAK_FACTORS",
           "RECIPES", "WARMUP_FRACTION", "WSD_DECAY_FRACTION", "auto_peak", "peak_lr",
           "recipe_spec"]

#: the decays ``auto`` can write: warm-up + cosine to 0, Smith's one-cycle, warm-up + stable +
#: a linear decay over the last ``WSD_DECAY_FRACTION`` (WSD), warm-up + linear to 0
RECIPES = ("cosine", "one_cycle", "wsd", "linear")
#: chosen by ``bench_auto.py tune`` on the first three tuning families (RESULTS.md 2026-12-07
#: 14:37: WSD x2 had the lowest mean regret, 0.46 pp; linear 0.90, cosine 1.31, one-cycle 1.35)
#: and compared again at the second choice's peaks on the four added families (RESULTS.md,
#: "auto recipe choice, step 2")
AUTO_SCHEDULE = "wsd"
#: the peak's factor on the finder's suggestion, by the finder's ``grade`` (``bench_auto.py
#: tune``, second choice, on seven tuning families: the examples plus a GRU, an LSTM, a CNN
#: with BatchNorm and a transformer; RESULTS.md "auto recipe choice, step 1/2"):
#:
#: - ``good``/``fair`` x2 (the loss minimum / 2: a decaying schedule can start above the best
#:   constant LR; the best of x0.5/x1/x2 in exact runs on the example families);
#: - ``poor`` x1 (the interval spans more than a decade: the suggestion, min / 4, itself);
#: - ``fallback`` x0.03 (no ramp descended; the fallback is the divergence D / 10, so the peak
#:   is D / 333: the loss never showed where it learns, so stay 2.5 decades under where it
#:   blows up - at x1 the LSTM tuning family lost 51 pp, at x0.1 5, at x0.03 2.4)
PEAK_FACTORS: dict[str, float] = {"good": 2.0, "fair": 2.0, "poor": 1.0, "fallback": 0.03}
#: the factor of the first recipe (2026-12-07, three tuning families), for every grade but
#: ``fallback``; kept for comparison (``auto_lr(peak_factor=PEAK_FACTOR)``)
PEAK_FACTOR = 2.0
#: the peak of a graded answer (not ``fallback``) whose range test diverged at ``D`` stays within
#: ``D / DIVERGENCE_FLOOR .. D / DIVERGENCE_CAP`` (``None``: no bound on that side); chosen by
#: ``bench_auto.py rule`` on 9 tuning families (the 7 above and two MSE regressions,
#: ``benchmarks/_p2_tuning_mse.py``; RESULTS.md "auto recipe choice, step 3", 21:04): exact
#: 3-seed runs, mean regret 2.23 (pp; MSE % x0.1) against 11.1 without bounds (the tanh
#: regression's suggestion sat a decade under its best LR: 868% of the oracle's MSE, 23% with
#: the floor) and 3.61 with a D/30 floor. No factor of the fallback suited both of its tuning
#: cases (an LSTM wants x0.01-0.03, a ReLU regression x0.3): it stays x0.03
DIVERGENCE_FLOOR: float | None = 20.0
DIVERGENCE_CAP: float | None = 10.0
WARMUP_FRACTION = 0.05
WSD_DECAY_FRACTION = 0.2


def peak_lr(suggestion: float, grade: str, factor: float | Mapping[str, float] | None = None
            ) -> float:
    """``suggestion * factor``: the recipe's peak LR from the finder's suggestion.

    ``factor`` is a number (every grade), a ``{grade: factor}`` mapping, or ``None`` for
    :data:`PEAK_FACTORS`; a grade missing from the mapping gets 1.

    >>> peak_lr(0.01, "good", {"good": 2.0})
    0.02
    """
    if not suggestion > 0:
        raise FinderError(f"the suggestion must be > 0, got {suggestion!r}")
    factors = PEAK_FACTORS if factor is None else factor
    f = factors.get(grade, 1.0) if isinstance(factors, Mapping) else factors
    if not (isinstance(f, (int, float)) and f > 0):
        raise FinderError(f"peak_factor must be > 0 (a number or one per grade), got {f!r}")
    return float(suggestion) * float(f)


def _bound(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and value > 0):
        raise FinderError(f"{name} must be > 0 (a divisor of the divergence lr) or None, got "
                          f"{value!r}")
    return float(value)


def auto_peak(suggestion: float, grade: str, divergence_lr: float | None = None, *,
              factor: float | Mapping[str, float] | None = None,
              floor: float | None = DIVERGENCE_FLOOR, cap: float | None = DIVERGENCE_CAP
              ) -> float:
    """``auto``'s peak LR: ``peak = suggestion * factor[grade]`` (:func:`peak_lr`), then, for a
    graded answer (not ``fallback``) whose range test diverged at ``D = divergence_lr``,
    clipped to ``D / floor <= peak <= D / cap`` (each bound only where it is not ``None``).

    The divergence is where the loss blew up, whatever its scale; the suggestion (the loss
    minimum / 4) can sit a decade or more below it when the minimum is shallow (an MSE
    regression that keeps descending at every LR the ramp tried).

    >>> auto_peak(0.001, "poor", 0.3, factor={"poor": 1.0}, floor=30, cap=None)
    0.01
    >>> auto_peak(0.001, "poor", None, factor={"poor": 1.0}, floor=30, cap=None)
    0.001
    """
    peak = peak_lr(suggestion, grade, factor)
    lo, hi = _bound(floor, "floor"), _bound(cap, "cap")
    if lo is not None and hi is not None and hi > lo:
        raise FinderError(f"the floor's divisor must be >= the cap's (D / floor <= D / cap), got "
                          f"floor={floor!r}, cap={cap!r}")
    if grade == "fallback" or divergence_lr is None or not divergence_lr > 0:
        return peak
    if lo is not None:
        peak = max(peak, divergence_lr / lo)
    if hi is not None:
        peak = min(peak, divergence_lr / hi)
    return peak


def _fmt(lr: float) -> str:
    return f"{lr:.3g}"


def recipe_spec(kind: str, peak: float, total_steps: int) -> str:
    """The spec string of recipe ``kind`` peaking at ``peak`` for exactly ``total_steps`` steps.

    ``one_cycle`` is torch's ``OneCycleLR`` (its own warm-up: 30% of the run from peak / 25);
    the others warm up linearly from 0 over ``WARMUP_FRACTION`` of the run.
    """
    if kind not in RECIPES:
        raise FinderError(f"schedule must be one of {', '.join(RECIPES)}, got {kind!r}")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 20:
        raise FinderError(f"total_steps must be an integer >= 20 (the run's optimizer steps), "
                          f"got {total_steps!r}")
    if not peak > 0:
        raise FinderError(f"the peak lr must be > 0, got {peak!r}")
    n = total_steps
    w = max(1, round(WARMUP_FRACTION * n))
    if kind == "one_cycle":
        return f"one_cycle({_fmt(peak)}, steps={n})"
    if kind == "wsd":
        d = max(1, round(WSD_DECAY_FRACTION * n))
        return f"wsd({_fmt(peak)}, warmup={w}, stable={n - w - d}, decay={d})"
    return f"warmup({w}) >> {kind}({_fmt(peak)}, end=0, steps={n - w})"

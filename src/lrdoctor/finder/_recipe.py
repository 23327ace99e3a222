"""The ``auto`` recipe, framework-free: from a finder result and a run length to a schedule spec.

``auto`` answers "what LR and schedule do I run for N steps": a peak learning rate read off the
range test, a linear warm-up, and a decay to zero at exactly step ``N``:

- ``peak = suggestion * PEAK_FACTOR`` - a schedule that decays can start above the LR that is
  best held constant for a whole run (the finder's suggestion: the loss minimum / 4), since it
  spends most of the run below its peak;
- ``warmup = round(WARMUP_FRACTION * N)`` steps from 0 to the peak (at least 1);
- then the decay :data:`AUTO_SCHEDULE` (one of :data:`RECIPES`).

The factor and the schedule were chosen by benchmark P2's tuning part (``benchmarks/
bench_auto.py tune``) on the tuning families only (the bundled examples, see docs/finder.md),
and then measured on held-out families. A result graded ``fallback`` (no descent on any ramp)
gets the fallback LR as its peak, without the factor.

>>> recipe_spec("cosine", 0.01, 1000)
'warmup(50) >> cosine(0.01, end=0, steps=950)'
>>> recipe_spec("wsd", 0.01, 1000)
'wsd(0.01, warmup=50, stable=750, decay=200)'
"""

from __future__ import annotations

from lrdoctor.errors import FinderError

__all__ = ["AUTO_SCHEDULE", "PEAK_FACTOR", "RECIPES", "WARMUP_FRACTION", "WSD_DECAY_FRACTION",
           "recipe_spec"]

#: the decays ``auto`` can write: warm-up + cosine to 0, Smith's one-cycle, warm-up + stable +
#: a linear decay over the last ``WSD_DECAY_FRACTION`` (WSD), warm-up + linear to 0
RECIPES = ("cosine", "one_cycle", "wsd", "linear")
#: chosen by ``bench_auto.py tune`` on the tuning families (RESULTS.md 2026-12-07: WSD at 2x
#: the suggestion had the lowest mean regret to the best candidate, 0.46 pp, worst 1.0; linear
#: x2 0.90, cosine x2 1.31, one-cycle x2 1.35; every recipe at 1x was worse than at 2x)
AUTO_SCHEDULE = "wsd"
PEAK_FACTOR = 2.0
WARMUP_FRACTION = 0.05
WSD_DECAY_FRACTION = 0.2


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

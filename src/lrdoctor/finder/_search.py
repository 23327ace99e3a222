"""The finder's passes, framework-free: first ramp, adapt when it shows nothing, zoom, fall back.

:func:`search` drives a ``run(lo, hi, steps) -> curves`` callable (``repeats`` ramps from the
same starting state; ``lrdoctor.torch.find_lr`` supplies one that trains a real model) through
these passes, so that the finder always answers when the curve holds an answer:

1. **First pass** over ``start_lr .. end_lr``; :func:`~lrdoctor.finder.analyze` reads it.
2. **Adapt**, only when it showed no clear descent (a model that learns late: a recurrent net,
   a transformer, anything with a long flat start, crosses the decade where it would learn in
   a dozen steps of a 100-step ramp over 8 decades):

   - the ramp **diverged** at ``D`` (the lowest LR at which a repeat did): re-run a slower ramp
     over ``D / SLOW_BELOW .. SLOW_ABOVE * D`` with the same number of steps - 3.3 decades
     instead of 8, so about 2.5 times as many steps per decade, and all of them in the range
     between the flat part and the divergence, where a late learner starts to learn;
   - the ramp reached ``end_lr`` **without diverging**: continue it to higher LRs, over
     ``end_lr / 10 .. end_lr * EXTEND`` (capped at ``MAX_LR``); if that diverges without a
     descent, the slower ramp above follows.

   At most ``MAX_ADAPT`` such passes. The first pass that shows a clear descent is read like a
   first pass (and zoomed, step 3).
3. **Zoom** (``zoom=True``): :func:`~lrdoctor.finder.zoom_range` of the pass that answered, at
   ``zoom_steps`` steps; its suggestion stands when it shows a clear descent.
4. **Fall back**, when no pass showed a clear descent but a ramp diverged at ``D``: the
   suggestion is ``D / FALLBACK_DIVISOR`` with interval ``D / 30 .. D / 3`` and grade
   ``fallback``. A range test's loss minimum sits a factor 2-3 below where it diverges, and the
   default rule stays a margin of 4 below the minimum; ten below the divergence is that rule
   applied to the point of divergence when no minimum can be seen. ``suggestion is None``
   (grade ``none``) only when no ramp diverged or descended anywhere up to ``MAX_LR``: the loss
   does not respond to the learning rate, which points at the model or the data.

Every result carries ``reason``: one sentence on which pass and which rule gave the number.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from lrdoctor.errors import FinderError
from lrdoctor.finder._curve import Curve
from lrdoctor.finder._result import DEFAULT_RULE, FinderResult, analyze, zoom_range

__all__ = ["EXTEND", "FALLBACK_DIVISOR", "MAX_ADAPT", "MAX_LR", "SLOW_ABOVE", "SLOW_BELOW",
           "adapt_range", "fallback", "search"]

#: the slower re-run after a divergence at D without a descent: D / SLOW_BELOW .. SLOW_ABOVE * D
SLOW_BELOW, SLOW_ABOVE = 1000.0, 2.0
#: a ramp that ended flat is continued to end_lr * EXTEND, never past MAX_LR
EXTEND, MAX_LR = 1000.0, 1e4
#: how many adaptive passes at most
MAX_ADAPT = 2
#: the fallback suggestion: the divergence LR divided by this
FALLBACK_DIVISOR = 10.0

Runner = Callable[[float, float, int], Sequence[Curve]]


def _fmt(lr: float) -> str:
    return f"{lr:.3g}"


def adapt_range(result: FinderResult, lo: float, hi: float,
                tried: Sequence[str] = ()) -> tuple[str, float, float] | None:
    """The next adaptive pass after ``result`` (a pass over ``lo .. hi`` with no clear descent).

    ``('slow', D / SLOW_BELOW, SLOW_ABOVE * D)`` when a repeat diverged at ``D`` (and no slow
    pass was tried yet), ``('extend', hi / 10, min(hi * EXTEND, MAX_LR))`` when none did and
    ``hi < MAX_LR``; ``None`` when there is nothing left to try.

    >>> import numpy as np
    >>> flat = Curve.from_losses(np.geomspace(1e-7, 10, 50), np.full(50, 2.0))
    >>> adapt_range(analyze([flat]), 1e-7, 10)
    ('extend', 1.0, 10000.0)
    """
    d = result.divergence_lr
    if d is not None:
        if "slow" in tried:
            return None
        return "slow", max(d / SLOW_BELOW, 1e-12), SLOW_ABOVE * d
    if hi >= MAX_LR or "extend" in tried:
        return None
    return "extend", hi / 10.0, min(hi * EXTEND, MAX_LR)


def fallback(result: FinderResult, divergence: float, tried: str) -> FinderResult:
    """``result`` with the fallback suggestion ``divergence / FALLBACK_DIVISOR`` (see module)."""
    s = divergence / FALLBACK_DIVISOR
    reason = (f"fallback: no ramp showed a clear descent ({tried}), but the loss diverged at lr "
              f"{_fmt(divergence)}, so the suggestion is that lr / {FALLBACK_DIVISOR:g} (the "
              "default margin below where a minimum would sit); check it with a short run")
    return dataclasses.replace(result, suggestion=s, interval=(divergence / 30, divergence / 3),
                               grade="fallback", reason=reason,
                               notes=(*result.notes, reason))


def search(run: Runner, *, start_lr: float, end_lr: float, num_steps: int,
           rule: str = DEFAULT_RULE, zoom: bool = True, zoom_steps: int | None = None,
           adapt: bool = True, settings: Callable[..., dict[str, Any]] | None = None
           ) -> FinderResult:
    """Run the finder's passes through ``run`` (see the module doc); a :class:`FinderResult`.

    ``run(lo, hi, steps)`` returns the curves of ``repeats`` ramps from ``lo`` to ``hi`` over
    ``steps`` steps, each from the same starting state. ``settings(**extra)`` gives the
    result's ``settings`` (``find_lr`` adds its own); ``settings["passes"]`` lists every pass.

    >>> import numpy as np
    >>> def run(lo, hi, steps):  # the loss falls from 2 to 1 around lr 0.01, blows up at 1
    ...     lrs = np.geomspace(lo, hi, steps)
    ...     lrs = lrs[lrs <= 1.0]
    ...     loss = 1.5 - 0.5 * np.tanh(2 * (np.log10(lrs) + 2)) + 100 * (lrs > 0.5)
    ...     return [Curve.from_losses(lrs, loss, stop="diverged")]
    >>> r = search(run, start_lr=1e-6, end_lr=10, num_steps=100, zoom=False)
    >>> r.grade != "none", r.reason.startswith("margin")
    (True, True)
    """
    if zoom_steps is None:
        zoom_steps = max(num_steps // 2, 10)
    passes: list[dict[str, Any]] = []

    def settings_(**extra: Any) -> dict[str, Any]:
        base = settings(**extra) if settings is not None else dict(extra)
        return {**base, "passes": [dict(p) for p in passes]}

    def one(kind: str, lo: float, hi: float, steps: int) -> FinderResult | None:
        """One pass; ``None`` for a later pass that recorded nothing (NaN at its first step)."""
        curves = list(run(lo, hi, steps))
        if all(len(c) == 0 for c in curves):
            if kind != "first":
                passes.append({"kind": kind, "range": [float(lo), float(hi)],
                               "steps": int(steps), "descent": False, "divergence_lr": lo})
                return None
            raise FinderError("the range test recorded no losses (every step was skipped or "
                              "the loader ran dry)")
        res = analyze(curves, rule=rule, settings=settings_(zoom=None))
        passes.append({"kind": kind, "range": [float(lo), float(hi)], "steps": int(steps),
                       "descent": res.suggestion is not None,
                       "divergence_lr": res.divergence_lr})
        return res

    first = one("first", start_lr, end_lr, num_steps)
    assert first is not None
    result = first
    lo, hi = start_lr, end_lr
    tried: list[str] = []
    divergence = first.divergence_lr
    while result.suggestion is None and adapt and len(tried) < MAX_ADAPT:
        step = adapt_range(result, lo, hi, tried)
        if step is None:
            break
        kind, lo, hi = step
        tried.append(kind)
        new = one(kind, lo, hi, num_steps)
        if new is None:  # non-finite from its first step: the divergence is at or below lo
            divergence = lo if divergence is None else min(divergence, lo)
            break
        result = new
        if result.divergence_lr is not None:
            divergence = result.divergence_lr if divergence is None else \
                min(divergence, result.divergence_lr)
    lead, lead_notes = "", ()
    if result.suggestion is not None and result is not first:
        why_first = first.notes[0] if first.notes else "no clear descent"
        how = "a slower" if tried[-1] == "slow" else "a continued"
        lead = (f"the first ramp ({_fmt(start_lr)} .. {_fmt(end_lr)}) showed no clear descent; "
                f"{how} ramp over {_fmt(lo)} .. {_fmt(hi)} did; ")
        lead_notes = (f"first ramp: {why_first}",
                      f"so {how} ramp over {_fmt(lo)} .. {_fmt(hi)} followed, and it did")
    if result.suggestion is not None:
        window = zoom_range(result) if zoom else None
        fine = one("zoom", *window, zoom_steps) if window is not None else None
        if fine is not None and fine.suggestion is not None:
            result = dataclasses.replace(
                fine, coarse=result, notes=(*lead_notes, *fine.notes),
                reason=f"{lead}{fine.reason}, read off the zoomed pass over {_fmt(window[0])} "
                       f".. {_fmt(window[1])}")
        else:
            extra = () if fine is None else (
                ("the zoomed second pass found no clear descent; the suggestion is the "
                "first pass's"),)
            result = dataclasses.replace(result, notes=(*lead_notes, *result.notes, *extra),
                                         reason=lead + result.reason)
        return dataclasses.replace(result, settings=settings_(
            zoom=[float(window[0]), float(window[1])] if window else None,
            zoom_steps=zoom_steps if window else None))
    if divergence is not None:
        what = "; ".join(f"{p['kind']} {_fmt(p['range'][0])} .. {_fmt(p['range'][1])}"
                         for p in passes)
        return dataclasses.replace(fallback(result, divergence, what),
                                   settings=settings_(zoom=None))
    reason = (f"no clear descent and no divergence anywhere up to lr {_fmt(hi)}: the loss does "
              "not respond to the learning rate; check that the model trains at all (frozen "
              "layers, a detached loss, constant targets)")
    return dataclasses.replace(result, reason=reason, notes=(*result.notes, reason),
                               settings=settings_(zoom=None))

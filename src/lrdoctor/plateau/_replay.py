"""Plateau hypotheses: replay a metric through the plateau core under many settings and keep
the one whose reductions land exactly on the observed LR drops."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lrdoctor.plateau._changes import Change, _natural_mode
from lrdoctor.plateau._state import PlateauConfig
from lrdoctor.plateau._update import update

__all__ = []

_MAX_EVALUATIONS = 3000

_THRESHOLDS = (("rel", 1e-4), ("abs", 0.0), ("abs", 1e-4), ("rel", 1e-2), ("abs", 1e-2))


# -- plateau hypotheses ----------------------------------------------------------------------
def _eval_index_before(eval_steps: np.ndarray, step: float, strict: bool) -> int:
    """Index of the last evaluation that could have caused a change first seen at ``step``."""
    k = int(np.searchsorted(eval_steps, step, side="left" if strict else "right")) - 1
    return k


def _replay(values: np.ndarray, mode: str, patience: int, tmode: str, t: float, cooldown: int,
            held: int = 0) -> list[int]:
    """Indices of the evaluations at which this reducer would reduce; the first ``held``
    evaluations fall in a warm-up (recorded, never counted, as PlateauLR does)."""
    cfg = PlateauConfig(monitor="m", mode=mode, patience=patience, threshold=t, threshold_mode=tmode,
                        cooldown=cooldown, factor=0.5, eps=0.0)
    state, lrs, fired = cfg.initial_state(), (1.0,), []
    for i, v in enumerate(values):
        o = update(cfg, state, float(v), lrs, hold=i < held)
        state, lrs = o.state, o.lrs
        if o.reduced:
            fired.append(i)
    return fired


def _fast_replay(values: list[float], mode: str, patience: int, tmode: str, t: float, cooldown: int,
                 held: int = 0) -> list[int]:
    """:func:`_replay` without the allocations (the search runs thousands of them); the tests
    check that both give the same indices."""
    minimise, rel = mode == "min", tmode == "rel"
    best = math.inf if minimise else -math.inf
    bad = cool = 0
    fired = []
    for i, v in enumerate(values):
        if not math.isfinite(v):
            better = False
        elif rel:
            flip = best < 0
            if minimise:
                better = v < best * ((1.0 + t) if flip else (1.0 - t))
            else:
                better = v > best * ((1.0 - t) if flip else (t + 1.0))
        else:
            better = v < best - t if minimise else v > best + t
        if better:
            best, bad = v, 0
        else:
            bad += 1
        if cool > 0:
            cool -= 1
            bad = 0
        if i < held:
            bad = 0
        if bad > patience:
            fired.append(i)
            cool, bad = cooldown, 0
    return fired


def _best_hypothesis(drops: list[Change], metrics: dict[str, tuple[np.ndarray, np.ndarray]],
                     strict: bool, warm_end: float | None = None) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for name, (es, ev) in metrics.items():
        if len(ev) < 2 or len(ev) > _MAX_EVALUATIONS:
            continue  # a per-step series is not what a plateau reducer is stepped with
        observed = sorted({_eval_index_before(es, c.step, strict) for c in drops})
        if not observed or observed[0] < 0:
            continue
        natural = _natural_mode(name)
        values = [float(x) for x in ev]
        holds = [0]
        if warm_end is not None:  # evaluations inside a warm-up may not have been counted
            holds += sorted({int(np.searchsorted(es, warm_end, side=side)) for side in ("left", "right")})
        for mode, held in ((m, h) for m in ("min", "max") for h in dict.fromkeys(holds)):
            for cooldown in (0, 1, 2, 3):
                for tmode, t in _THRESHOLDS:
                    for p in range(13):
                        fired = _fast_replay(values, mode, p, tmode, t, cooldown, held)
                        if not fired:
                            break  # a larger patience cannot fire either
                        hit = len(set(fired) & set(observed))
                        if not hit:
                            continue
                        # fires after the last observed drop may be no-ops at min_lr
                        extra = [f for f in fired if f not in observed and f < observed[-1]]
                        score = hit / (len(observed) + len(extra))
                        key = (score, hit, mode == natural, -cooldown, -abs(t - 1e-4), -p, -held)
                        if best is None or key > best["key"]:
                            best = {"key": key, "metric": name, "mode": mode, "patience": p,
                                    "held": held,
                                    "threshold": t, "threshold_mode": tmode, "cooldown": cooldown,
                                    "score": score, "natural_mode": natural, "fired": fired,
                                    "observed": observed}
                if best is not None and best["score"] == 1.0 and cooldown == 0:
                    break
    return best



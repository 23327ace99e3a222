"""The pure plateau update: ``update(config, state, value, lrs) -> PlateauOutcome``.

Nothing here touches an optimizer: the adapters pass the learning rates the reduction acts on
(the param groups' lrs, or the schedule's value times the plateau factor) and apply what comes
back. The same function drives ``lrdoctor.torch.PlateauLR`` and the Keras callbacks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrdoctor.plateau._state import PlateauConfig, PlateauState

__all__ = ["PlateauOutcome", "is_better", "reduce_lrs", "update"]


def _f32(x: float | None) -> np.float32 | None:
    return None if x is None else np.float32(x)


def is_better(config: PlateauConfig, value: float, best: float | None) -> bool:
    """Whether ``value`` improves on ``best`` by more than the threshold.

    torch convention, ``rel``: ``value < best * (1 - t)`` (min) / ``value > best * (1 + t)``
    (max) for ``best >= 0``; for ``best < 0`` the factor flips (``1 + t`` / ``1 - t``) so the
    margin is ``t * |best|`` — unless ``torch_rel_bug``. ``abs``: ``value < best - t`` /
    ``value > best + t``. Keras convention: ``float32(value - d) < float32(best)`` with
    ``d = -t`` (min) or ``+t`` (max) in ``abs`` mode, ``d = ∓ t * |best|`` in ``rel`` mode;
    ``best is None`` (no value yet) is always beaten.
    """
    if not math.isfinite(value):
        return False
    t, mode = config.threshold, config.mode
    if config.convention == "keras":
        if best is None:
            return True
        delta = t if config.threshold_mode == "abs" else t * abs(best)
        if mode == "min":
            return bool(_f32(value + delta) < _f32(best))
        return bool(_f32(value - delta) > _f32(best))
    if best is None:
        best = math.inf if mode == "min" else -math.inf
    if config.threshold_mode == "abs":
        return value < best - t if mode == "min" else value > best + t
    flip = best < 0 and not config.torch_rel_bug
    if mode == "min":
        return value < best * ((1.0 + t) if flip else (1.0 - t))
    return value > best * ((1.0 - t) if flip else (t + 1.0))


def reduce_lrs(config: PlateauConfig, lrs: Sequence[float]) -> tuple[tuple[float, ...], tuple[bool, ...]]:
    """One reduction of every group: the new lrs and which of them changed.

    torch: ``new = max(lr * factor, min_lr)``, kept only if ``lr - new > eps``.
    Keras: if ``lr > float32(min_lr)``: ``new = max(lr * factor, min_lr)``.
    """
    mins = config.min_lrs(len(lrs))
    out, changed = [], []
    for lr, low in zip(lrs, mins):
        lr = float(lr)
        if config.convention == "keras":
            if lr > np.float32(low):
                new = max(lr * config.factor, low)
                out.append(new)
                changed.append(True)
                continue
        else:
            new = max(lr * config.factor, low)
            if lr - new > config.eps:
                out.append(new)
                changed.append(True)
                continue
        out.append(lr)
        changed.append(False)
    return tuple(out), tuple(changed)


@dataclass(frozen=True)
class PlateauOutcome:
    """What one evaluation decided.

    ``state`` and ``lrs`` are the new state and learning rates. ``improved``: the value set a
    new best. ``fired``: patience was spent (or a non-finite value asked for an immediate
    reduction); ``reduced``: at least one lr moved; ``cause`` is ``"plateau"`` or
    ``"nonfinite"`` when something fired, else None; ``nonfinite``: the value was NaN/±Inf;
    ``stop``: a stop was asked for (``stop_at_min_lr``). ``evidence`` holds what a journal
    entry needs to explain the decision.
    """

    state: PlateauState
    lrs: tuple[float, ...]
    improved: bool
    fired: bool
    reduced: bool
    cause: str | None
    nonfinite: bool
    stop: bool
    changed: tuple[bool, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)


def update(
    config: PlateauConfig,
    state: PlateauState,
    value: float,
    lrs: Sequence[float],
    *,
    hold: bool = False,
) -> PlateauOutcome:
    """Feed one evaluation of the monitored metric.

    ``lrs`` are the learning rates a reduction acts on. ``hold=True`` (a warm-up is running)
    records the value — it may set a new best — but counts no bad evaluation and reduces
    nothing, as during a cool-down. A ``min_lr`` list must match the groups when a reduction
    fires (checked then, as torch checks it: a param group added later is fine until then).
    """
    value = float(value)
    lrs = tuple(float(x) for x in lrs)
    finite = math.isfinite(value)
    n = state.evaluations + 1
    best_before, best_eval_before = state.best, state.best_evaluation
    best, best_eval = state.best, state.best_evaluation
    bad, cool = state.num_bad, state.cooldown_counter
    improved = is_better(config, value, best)
    fired = False
    in_cooldown_at_eval = cool > 0

    if config.convention == "keras":
        if cool > 0:
            cool -= 1
            bad = 0
        if improved:
            best, best_eval, bad = value, n, 0
        elif cool <= 0 and not hold:
            bad += 1
            fired = bad >= config.patience
    else:
        if improved:
            best, best_eval, bad = value, n, 0
        else:
            bad += 1
        if cool > 0:
            cool -= 1
            bad = 0
        if hold:
            bad = 0
        fired = bad > config.patience
    cause = "plateau" if fired else None
    if not finite and config.nonfinite == "reduce" and not hold:
        fired, cause = True, "nonfinite"
    bad_at_fire = bad

    new_lrs, changed = lrs, tuple(False for _ in lrs)
    reductions, exhausted, stop = state.reductions, state.exhausted, False
    if fired:
        capped = config.max_reductions is not None and reductions >= config.max_reductions
        if not capped:
            new_lrs, changed = reduce_lrs(config, lrs)
        reduced = any(changed)
        if reduced:
            reductions += 1
        else:
            exhausted = True
            stop = config.stop_at_min_lr
        if config.convention == "torch" or reduced:
            cool, bad = config.cooldown, 0
    reduced = any(changed)
    new_state = PlateauState(
        evaluations=n,
        best=best,
        best_evaluation=best_eval,
        num_bad=bad,
        cooldown_counter=cool,
        reductions=reductions,
        last_value=value,
        exhausted=exhausted,
        stopped=state.stopped or stop,
    )
    evidence = {
        "monitor": config.monitor,
        "mode": config.mode,
        "value": value,
        "best": best_before if best_before is not None and math.isfinite(best_before) else None,
        "best_evaluation": best_eval_before,
        "num_bad": bad_at_fire,
        "patience": config.patience,
        "threshold": config.threshold,
        "threshold_mode": config.threshold_mode,
        "cooldown": config.cooldown,
        "in_cooldown": in_cooldown_at_eval,
        "factor": config.factor,
        "convention": config.convention,
        "hold": hold,
    }
    return PlateauOutcome(
        state=new_state,
        lrs=new_lrs,
        improved=improved,
        fired=fired,
        reduced=reduced,
        cause=cause,
        nonfinite=not finite,
        stop=stop,
        changed=changed,
        evidence=evidence,
    )

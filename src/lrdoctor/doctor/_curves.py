"""Rules on the loss and accuracy curves and the learning rate: what any log can show.

Thresholds (``T.NAME``, registered in ``_thresholds``; docs/doctor.md). ``L0`` is the median training loss
over the first 5% of the run, ``Lmin`` the lowest smoothed loss (medians of 40 blocks),
``Lend`` the median over the last 10%.
"""

from __future__ import annotations

import math

import numpy as np

from lrdoctor.doctor._context import Context, blocks, first_bad, head, tail
from lrdoctor.doctor._epochs import chance_tail, squashed_loss
from lrdoctor.doctor._finding import CODES, Finding
from lrdoctor.doctor._thresholds import T

__all__ = ["RULES"]



def _f(code: str, severity: str, evidence: str, fix: str, steps=(), score: float = 0.5,
       **data) -> Finding:
    return Finding(code, CODES[code], severity, evidence, fix,
                   tuple(float(s) for s in steps), score, data)


def _levels(ctx: Context) -> tuple[float, float, float, float] | None:
    s = ctx.train
    if s is None or len(s) < 3:
        return None
    k = max(min(3, len(s)), min(math.ceil(0.05 * len(s)), 10))
    l0 = float(np.median(s.values[:k]))
    sm = blocks(s.values)
    lmin = float(np.min(sm))
    lend = float(np.median(tail(s, 0.1, minimum=min(2, len(s)))))
    step_min = float(s.steps[int(np.argmin(s.values))])
    return l0, lmin, lend, step_min


def _rel_change(values: np.ndarray) -> float:
    """Relative change from the first quarter to the last quarter of ``values`` (neg = falling)."""
    if len(values) < 4:
        return 0.0
    q = max(1, len(values) // 4)
    a, b = float(np.median(values[:q])), float(np.median(values[-q:]))
    return (b - a) / max(abs(a), 1e-12)


def nonfinite(ctx: Context) -> list[Finding]:
    hits = []
    for name in ctx.log.names():
        s = ctx.log.get(name)
        if name.startswith("nonfinite/"):
            bad = s.values > 0
            if bad.any():
                hits.append((float(s.steps[np.argmax(bad)]), name))
            continue
        step = first_bad(s)
        if step is not None:
            hits.append((step, name))
    hits += [(float(e.step or 0), e.code) for e in ctx.log.events if e.code == "nonfinite"]
    if not hits:
        return []
    step, name = min(hits)
    lr = _lr_at(ctx, step)
    return [_f("nonfinite", "critical",
               f"{name} is NaN/Inf from {ctx.fmt_step(step)} on"
               + (f" (lr {lr:.3g} there)" if lr else ""),
               "Lower the learning rate (or clip gradients) and check the inputs and the loss for "
               "log(0) or division by zero.", [step], 1.0, names=sorted({n for _, n in hits}))]


def _lr_at(ctx: Context, step: float) -> float | None:
    if ctx.lr is None or not len(ctx.lr):
        return None
    i = int(np.searchsorted(ctx.lr.steps, step, side="right")) - 1
    return float(ctx.lr.values[max(i, 0)])


def diverging(ctx: Context) -> list[Finding]:
    lv = _levels(ctx)
    raw = ctx.train_raw
    if lv is None:
        ctx.skip("diverging", "needs at least 3 training-loss points")
        return []
    l0, lmin, lend, _ = lv
    blew_up = raw is not None and first_bad(raw) is not None
    sm = blocks(ctx.train.values)
    grew = lend > T.DIVERGE_FACTOR * l0 or (lend > 3 * lmin and lend > 0.9 * l0 and lmin < 0.7 * l0)
    if not (grew or blew_up):
        return []
    step = first_bad(raw) if blew_up else _first_above(ctx.train, (lmin + lend) / 2)
    return [_f("diverging", "critical",
               f"training loss went from {l0:.4g} (start) to {lend:.4g} (end)"
               + (" and became NaN/Inf" if blew_up else "")
               + f"; lowest smoothed value {float(np.min(sm)):.4g}",
               "Lower the learning rate (10x), add warm-up or gradient clipping.",
               [step] if step is not None else [], 0.9, l0=l0, lend=lend)]


def _first_above(s, level: float) -> float | None:
    """Where the loss rose above ``level`` for good: after the last smoothed point below it."""
    n = min(40, len(s))
    sv, st = blocks(s.values, n), blocks(s.steps.astype(float), n)
    below = np.nonzero(sv <= level)[0]
    if len(below) == len(sv):
        return None
    i = 0 if not len(below) else int(below[-1]) + 1
    return float(st[min(i, len(st) - 1)])


def lr_too_high(ctx: Context) -> list[Finding]:
    lv = _levels(ctx)
    ratio = _median_update_ratio(ctx)
    out = []
    if lv is not None:
        l0, _lmin, lend, _ = lv
        _lmin = float(np.min(blocks(ctx.train.values)))
        raw = ctx.train_raw
        blew = raw is not None and first_bad(raw) is not None
        grew = lend > T.DIVERGE_FACTOR * l0
        early = ctx.frac(first_bad(raw)) if blew else None
        if blew or grew:
            step = first_bad(raw) if blew else _first_above(ctx.train, T.DIVERGE_FACTOR * l0)
            lr = _lr_at(ctx, step or ctx.start)
            out.append(_f("lr-too-high", "critical",
                          f"the loss {'became NaN/Inf' if blew else 'grew'} at "
                          f"{ctx.fmt_step(step or 0)}"
                          + (f" with lr {lr:.3g}" if lr else "")
                          + (f" ({early:.0%} into the run)" if early is not None else ""),
                          "Divide the learning rate by 10 (run `lrdoctor find` for a measured one).",
                          [step] if step is not None else [], 0.8))
        elif len(ctx.train) > 1 and float(np.max(ctx.train.values[1:])) > T.SPIKE_FACTOR * max(
                min(l0, ctx.train.values[0]), 1e-12):
            i = 1 + int(np.argmax(ctx.train.values[1:]))  # a rise after the start, not the start
            step = float(ctx.train.steps[i])
            lr = _lr_at(ctx, step)
            stuck = lend > 0.8 * l0
            out.append(_f("lr-too-high", "critical" if stuck else "warning",
                          f"the loss jumped to {ctx.train.values[i]:.4g} at {ctx.fmt_step(step)} "
                          f"({ctx.train.values[i] / max(l0, 1e-12):.0f}x its start {l0:.4g})"
                          + (f" with lr {lr:.3g}" if lr else "")
                          + (" and never recovered" if stuck else ""),
                          "Divide the learning rate by 10, or warm it up.", [step],
                          0.8 if stuck else 0.6))
        elif _lmin < T.FELL_BELOW * l0 and lend >= T.JUMP_BACK * l0:
            step = _first_above(ctx.train, (_lmin + lend) / 2)
            lr = _lr_at(ctx, step or ctx.start)
            out.append(_f("lr-too-high", "critical",
                          f"the loss fell to {_lmin:.4g} ({_lmin / max(l0, 1e-12):.0%} of its start "
                          f"{l0:.4g}), then jumped back to {lend:.4g} "
                          + (f"at {ctx.fmt_step(step)} " if step is not None else "")
                          + "and stayed there" + (f" (lr {lr:.3g})" if lr else "")
                          + ": a step threw the model back to where it started",
                          "Divide the learning rate by 10 (run `lrdoctor find` for a measured one), "
                          "or warm it up and clip gradients.",
                          [step] if step is not None else [], 0.8))
        elif (killed := _killed_suddenly(ctx)) is not None and lend >= T.JUMP_BACK * l0:
            layer, step, before, after = killed
            lr = _lr_at(ctx, step)
            ratio_txt = f"; the largest layer update/weight ratio was {ratio:.2g} per step" if (
                ratio := _max_update_ratio(ctx)) is not None else ""
            out.append(_f("lr-too-high", "warning",
                          f"the units of {layer} were alive at first ({before:.0%} dead) and died "
                          f"between two measurements ({after:.0%} dead by {ctx.fmt_step(step)}), "
                          "for good, while the loss never got below its start "
                          f"({l0:.4g} -> {lend:.4g})" + (f"; lr {lr:.3g}" if lr else "")
                          + ratio_txt + ": the first large steps killed them (a bias or weight "
                          "init that kills units does so from the first step)",
                          "Divide the learning rate by 10 (run `lrdoctor find`), or warm it up.",
                          [step], 0.75))
        elif (g_spike := _early_grad_spike(ctx)) is not None and lend >= 0.95 * l0:
            step, factor = g_spike
            out.append(_f("lr-too-high", "warning",
                          f"the gradient norm jumped {factor:.0f}x at {ctx.fmt_step(step)} and the "
                          f"loss never got below its start ({l0:.4g} -> {lend:.4g})",
                          "Divide the learning rate by 10.", [step], 0.6))
        elif ratio is not None and ratio > 0.1 and _rel_change(blocks(ctx.train.values)) > -0.3:
            out.append(_f("lr-too-high", "warning",
                          f"median update/weight ratio {ratio:.3g} per step (healthy ~1e-3) while "
                          f"the loss barely fell ({l0:.4g} -> {lend:.4g})",
                          "Divide the learning rate by 10.", [ctx.start], 0.7, ratio=ratio))
    return out


def _killed_suddenly(ctx: Context) -> tuple[str, float, float, float] | None:
    """(layer, step, dead share before, after) for a ReLU layer whose dead share jumped from
    at most DEAD_FRAC to above it between two consecutive measurements and stayed above it."""
    for name, s in ctx.log.group("dead_frac").items():
        v = s.finite.values
        if len(v) < 2 or v[0] > T.DEAD_FRAC:
            continue
        above = v > T.DEAD_FRAC
        i = int(np.argmax(above))
        if above[i] and above[i:].all():
            return name, float(s.finite.steps[i]), float(v[i - 1]), float(np.median(v[i:]))
    return None


def _max_update_ratio(ctx: Context) -> float | None:
    vals = [float(np.max(s.finite.values)) for s in ctx.log.group("update_ratio").values()
            if len(s.finite)]
    return max(vals) if vals else None


def _early_grad_spike(ctx: Context) -> tuple[float, float] | None:
    """(step, factor) when the gradient norm jumps > GRAD_SPIKE x its first value early on."""
    g = ctx.grad
    if g is None or len(g) < 10 or not np.isfinite(g.values[0]) or g.values[0] <= 0:
        return None
    early = g.values[: max(3, len(g) // 10)]
    i = int(np.nanargmax(early))
    factor = float(early[i] / g.values[0])
    return (float(g.steps[i]), factor) if factor > T.GRAD_SPIKE else None


def _median_update_ratio(ctx: Context) -> float | None:
    groups = ctx.log.group("update_ratio")
    if not groups:
        return None
    vals = [np.median(s.finite.values) for s in groups.values() if len(s.finite)]
    return float(np.median(vals)) if vals else None


def _pace(values: np.ndarray) -> float:
    """The fall per point over the second half of ``values`` over that of the first half.

    ``pace = ((v[h] - v[-1]) / (n - 1 - h)) / ((v[0] - v[h]) / h)`` with ``h = (n - 1) // 2``
    (at least 1), on ``n >= 3`` points (an epoch's loss, or block medians of a per-step one).
    A learning rate far too small keeps the loss in its linear regime, where each step lowers
    it by about ``lr * |g|^2`` with a gradient that has barely changed: the fall goes on at the
    same pace (about 1) or speeds up as it leaves a flat start (> 1). A run that learns slows
    down as it nears its floor (well under 1). ``inf`` when only the second half falls; 0 when
    neither does or there are fewer than 3 points.
    """
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n < 3 or not np.isfinite(v).all():
        return 0.0
    h = max(1, (n - 1) // 2)
    early = (v[0] - v[h]) / h
    late = (v[h] - v[-1]) / (n - 1 - h)
    if early <= 0:
        return math.inf if late > 0 else 0.0
    return float(late / early)


def lr_too_low(ctx: Context) -> list[Finding]:
    """lr-too-low: the loss crawls down at an unchanging pace, or the updates are tiny.

    From the curves: the loss fell less than LOW_LR_REL of its start, still sloping down, and
    :func:`_pace` of the (20-block smoothed) loss is at least LOW_LR_PACE: it is not slowing
    down. From the Monitor: the largest layer's update ratio is under LOW_UPDATE_RATIO.
    """
    lv = _levels(ctx)
    if lv is None:
        return []
    l0, _lmin, lend, _ = lv
    if float(np.max(ctx.train.values)) > T.SPIKE_FACTOR * max(l0, 1e-12):
        return []  # a blow-up, not a crawl
    dead = [float(np.median(s.finite.values)) for s in ctx.log.group("dead_frac").values()
            if len(s.finite)]
    if dead and max(dead) > 0.5:
        return []  # dead units explain small updates; dead-relu says so
    ratios = [float(np.median(s.finite.values)) for s in ctx.log.group("update_ratio").values()
              if len(s.finite)]
    ratio = max(ratios) if ratios else None
    # the Monitor measured every layer's steps tiny: the weights barely move, whatever the
    # loss's jitter at chance level or its squashed look says
    measured_tiny = ratio is not None and ratio < T.LOW_UPDATE_RATIO
    stuck = chance_tail(ctx)
    if stuck is not None and not stuck.frozen and not measured_tiny:
        return []  # at chance with a jittering loss: the weights move, something else is wrong
    if squashed_loss(ctx) is not None and not (measured_tiny and _outputs_checked(ctx)):
        return []  # a softmax-squashed loss falls slowly whatever the lr: loss-activation-mismatch
    if (ctx.train_acc is not None and ctx.val_acc is not None and len(ctx.val_acc) >= 3
            and float(np.median(tail(ctx.val_acc, 0.3))) - float(np.median(tail(ctx.train_acc, 0.3)))
            > T.NOISE_ACC_GAP):
        return []  # validation beats training: the model learns, the training loss cannot fall
    drop = (l0 - lend) / max(abs(l0), 1e-12)
    sm = blocks(ctx.train.values)
    late = _rel_change(sm[len(sm) // 2:])
    sm20 = blocks(ctx.train.values, 20)
    steady = len(sm20) >= 4 and float(np.mean(np.diff(sm20) < 0)) >= 0.75
    pace = _pace(sm20)
    slow = (0 <= drop < T.LOW_LR_REL and (late < -0.005 or steady)
            and pace >= T.LOW_LR_PACE)
    tiny_updates = ratio is not None and ratio < T.LOW_UPDATE_RATIO
    if not ((tiny_updates and -T.FLAT_REL <= drop < T.UNDERFIT_REL)
            or (slow and (ratio is None or ratio < 10 * T.LOW_UPDATE_RATIO))):
        return []
    lr = _lr_at(ctx, ctx.end)
    evidence = (f"the training loss fell only {drop:.1%} ({l0:.4g} -> {lend:.4g})"
                + (" and is still sloping down at an unchanging pace (" + (
                    f"fall per point over the second half {pace:.2f}x the first half's"
                    if math.isfinite(pace) else "falling in the second half only")
                   + "; a run that learns slows down)" if slow else "")
                + (f"; the largest layer update/weight ratio is {ratio:.2g} per step "
                   "(healthy ~1e-3)" if ratio is not None else "")
                + (f"; lr {lr:.3g}" if lr else ""))
    return [_f("lr-too-low", "warning", evidence,
               "Raise the learning rate (try 10x, or run `lrdoctor find`).",
               [ctx.start + 0.3 * (ctx.end - ctx.start)], 0.6 + 0.3 * tiny_updates, drop=drop,
               pace=pace if math.isfinite(pace) else None)]


def _outputs_checked(ctx: Context) -> bool:
    """The Monitor inspected the model's first outputs (``n_outputs`` in the log's metadata)
    and raised no loss-activation-mismatch: the outputs are raw logits, not squashed."""
    return bool(ctx.meta.get("n_outputs")) and not any(
        e.code == "loss-activation-mismatch" for e in ctx.log.events)


def trend(ctx: Context) -> list[Finding]:
    """The train/val trend matrix: still-learning, overfitting, data-problem, plateau."""
    lv = _levels(ctx)
    if lv is None:
        ctx.skip("still-learning", "needs a training loss")
        return []
    l0, lmin, lend, _ = lv
    out = []
    sm = blocks(ctx.train.values)
    third = sm[-max(2, len(sm) // 3):]
    t_late = _rel_change(third)
    t_total = (lend - l0) / max(abs(l0), 1e-12)
    val = ctx.val
    if val is None or len(val) < 3:
        ctx.skip("overfitting", "needs a validation loss with at least 3 points")
        ctx.skip("data-problem", "needs a validation loss with at least 3 points")
        v_late = None
    else:
        vv = val.values
        v0, vmin = float(np.median(vv[: max(1, len(vv) // 10)])), float(np.min(vv))
        imin = int(np.argmin(vv))
        vend = float(np.median(vv[-max(1, len(vv) // 10):]))
        v_late = _rel_change(vv[-max(3, len(vv) // 3):])
        # a rise every one of the last evaluations confirms, not one noisy epoch
        rise = float(np.min(vv[-max(T.OVERFIT_CONFIRM, len(vv) // 10):])) - vmin
        if (ctx.frac(val.steps[imin]) < 0.8 and rise > T.OVERFIT_RISE * max(v0 - vmin, 1e-12)
                and lend < (1 - T.IMPROVE_REL) * l0  # training learned: not noise at chance
                and _accuracy_suffers(ctx)
                and rise > 0.02 * abs(vmin) and lend <= lmin * 1.2 + 1e-12
                and lend < float(np.interp(val.steps[imin], ctx.train.steps, ctx.train.values))):
            gap = _acc_gap(ctx)
            out.append(_f("overfitting", "warning",
                          f"validation loss bottomed at {vmin:.4g} ({ctx.fmt_step(val.steps[imin])}) "
                          f"and rose to {vend:.4g} while the training loss kept falling to {lend:.4g}"
                          + (f"; train-val accuracy gap {gap:.1%}" if gap is not None else ""),
                          "Stop early at the best validation point, add data augmentation or "
                          "regularization (weight decay, dropout), or use a smaller model.",
                          [val.steps[imin]], 0.6 + min(0.3, rise / max(abs(vmin), 1e-12)),
                          val_min=vmin, val_end=vend))
        gap = _acc_gap(ctx)
        # with accuracies, a near-zero training loss is memorization only if validation
        # accuracy falls well short of training's (a healthy run can fit its data and generalize)
        memorized = (gap is None and lend < 0.1 * vend and vend > 0.05) or (
            gap is not None and gap > T.OVERFIT_ACC_GAP
            and float(np.median(tail(ctx.train_acc, 0.1))) > 0.98)
        if memorized and not any(f.code == "overfitting" for f in out):
            out.append(_f("overfitting", "warning",
                          f"the training loss fell to {lend:.3g} while validation stays at "
                          f"{vend:.3g}" + (f"; train-val accuracy gap {gap:.1%}" if gap else "")
                          + ": the model memorizes the training set",
                          "Get more data or augment it, regularize (weight decay, dropout), or "
                          "use a smaller model; stop at the best validation point.",
                          [float(val.steps[int(np.argmin(vv))])], 0.55))
        if abs(t_total) < T.FLAT_REL and (v0 - vend) / max(abs(v0), 1e-12) > T.IMPROVE_REL:
            out.append(_f("data-problem", "warning",
                          f"training loss stayed flat ({l0:.4g} -> {lend:.4g}) while validation "
                          f"improved ({v0:.4g} -> {vend:.4g})",
                          "Check that the training batches carry the right labels and inputs (a "
                          "pipeline bug, heavy augmentation, or train-mode-only layers).",
                          [ctx.start], 0.55))
    if t_late < -T.FLAT_REL and (v_late is None or v_late < 0):
        out.append(_f("still-learning", "info",
                      f"the training loss fell {-t_late:.1%} over the last third"
                      + (f" and validation {-v_late:.1%}" if v_late is not None else ""),
                      "Train longer: the loss has not converged yet.", [ctx.end], 0.3))
    elif abs(t_late) < T.FLAT_REL and (v_late is None or abs(v_late) < T.FLAT_REL) and t_total < -0.2:
        out.append(_f("plateau", "info",
                      f"training loss flat over the last third ({t_late:+.1%})"
                      + (f", validation {v_late:+.1%}" if v_late is not None else ""),
                      "Training has converged; lower the learning rate (decay or PlateauLR) to "
                      "get a little more, or stop.", [ctx.start + 0.67 * (ctx.end - ctx.start)],
                      0.3))
    return out


def _accuracy_suffers(ctx: Context) -> bool:
    """With accuracies in the log, a rising validation loss is overfitting only when accuracy
    shows it too: a train-val gap above OVERFIT_ACC_GAP, or validation accuracy down from its
    best by more than OVERFIT_VAL_ACC_DROP. (A loss that rises while accuracy holds is the model
    growing more confident on the examples it gets wrong: calibration, not lost accuracy.)"""
    if ctx.val_acc is None or len(ctx.val_acc) < 2:
        return True
    gap = _acc_gap(ctx)
    va = ctx.val_acc.values
    drop = float(np.max(va)) - float(np.median(tail(ctx.val_acc, 0.1, minimum=2)))
    return (gap is not None and gap > T.OVERFIT_ACC_GAP) or drop > T.OVERFIT_VAL_ACC_DROP


def _acc_gap(ctx: Context) -> float | None:
    if ctx.train_acc is None or ctx.val_acc is None:
        return None
    return float(np.median(tail(ctx.train_acc, 0.1)) - np.median(tail(ctx.val_acc, 0.1)))


def oscillation(ctx: Context) -> list[Finding]:
    if not ctx.per_step:
        ctx.skip("oscillation", "needs a per-step training loss (>= 50 points)")
        return []
    if ctx.grad is None or len(ctx.grad.finite) < 10:
        ctx.skip("oscillation", "needs the gradient norm (grad_norm) next to the loss")
        return []
    s, g = ctx.train, ctx.grad.finite
    half = s.values[len(s) // 2:]
    level = float(np.median(np.abs(half))) or 1e-12
    jitter = float(np.median(np.abs(np.diff(half)))) / level
    flat = abs(_rel_change(blocks(half, 20))) < T.FLAT_REL
    g_early = float(np.median(head(g, 0.1, minimum=3)))
    g_late = float(np.median(g.values[len(g) // 2:]))
    lv = _levels(ctx)
    if lv is None:
        return []
    l0, _lmin, lend, _ = lv
    high = lend > 0.3 * l0
    if flat and high and jitter > T.OSC_JITTER and g_late > T.OSC_GRAD_KEEP * g_early:
        lr = _lr_at(ctx, ctx.end)
        return [_f("oscillation", "warning",
                   f"loss flat at {lend:.4g} over the second half with step-to-step jitter "
                   f"{jitter:.0%} while the gradient norm stays at {g_late:.3g} "
                   f"({g_late / max(g_early, 1e-12):.2f}x its early level)"
                   + (f"; lr {lr:.3g}" if lr else ""),
                   "Lower the learning rate (2-10x) or add momentum/decay: the optimizer is "
                   "bouncing between the walls of a valley.",
                   [float(s.steps[len(s) // 2])], 0.5, jitter=jitter)]
    return []


def zero_loss(ctx: Context) -> list[Finding]:
    """data-problem: the training loss is exactly 0 at every logged point (>= 10): nothing
    is being learned from, e.g. every label masked out or an empty target."""
    s = ctx.train
    if s is None or len(s) < 10 or np.any(np.abs(s.values) > 1e-12):
        return []
    return [_f("data-problem", "warning",
               f"the training loss is exactly 0 at all {len(s)} logged {ctx.unit}s: no "
               "example contributes a gradient",
               "Check the labels and the loss mask (e.g. every label set to -100 / the ignore "
               "index, or a prompt-only collator) and the loss inputs.", [ctx.start], 0.7)]


RULES = (nonfinite, diverging, lr_too_high, lr_too_low, trend, oscillation, zero_loss)

"""Rules on the loss and accuracy curves and the learning rate: what any log can show.

Thresholds (module constants, documented in docs/doctor.md). ``L0`` is the median training loss
over the first 5% of the run, ``Lmin`` the lowest smoothed loss (medians of 40 blocks),
``Lend`` the median over the last 10%.
"""

from __future__ import annotations

import math

import numpy as np

from lrdoctor.diagnose._context import Context, blocks, first_bad, head, tail
from lrdoctor.diagnose._finding import CODES, Finding

__all__ = ["RULES"]

DIVERGE_FACTOR = 1.5        # Lend > 1.5 * L0, or a smoothed loss 3x above its minimum
FLAT_REL = 0.03             # |relative change| over the last third below this: "flat"
IMPROVE_REL = 0.05          # relative improvement above this: "improving"
UNDERFIT_REL = 0.5          # (lr-too-low with tiny updates) the loss fell by less than half
UNDERFIT_ACC = 0.75         # final training (else validation) accuracy below this
UNDERFIT_NO_ACC_REL = 0.2   # without accuracy: the loss fell by less than 20% of L0
LOW_LR_REL = 0.1            # the loss fell by less than 10% of L0 while still sloping down
LOW_UPDATE_RATIO = 1e-4     # or the median |dw|/|w| per step is below this (healthy ~1e-3)
OVERFIT_RISE = 0.1          # val rises above its minimum by 10% of (val0 - valmin) and by 2%
OVERFIT_ACC_GAP = 0.1       # final train accuracy - val accuracy above this
NOISE_ACC_GAP = 0.05        # val accuracy above train accuracy by this (label noise/dropout)
OSC_GRAD_KEEP = 0.5         # grad norm in the flat part at least half its early level
OSC_JITTER = 0.1            # step-to-step loss jitter relative to the loss level
SPIKE_FACTOR = 5.0          # a training loss above 5 * L0 anywhere: the step was too big
WARMUP_SPIKE = 1.5          # early loss peak above 1.5 * the first loss (adaptive optimizers)
LR_DROP = 0.5               # an lr change below half of the previous value is a "drop"
SHIFT_REL = 0.2             # test loss 20% above val loss, or test accuracy 5 points below
ADAPTIVE = ("Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta",
            "Adafactor", "Lion", "LAMB")


def _f(code: str, severity: str, evidence: str, fix: str, steps=(), score: float = 0.5,
       **data) -> Finding:
    return Finding(code, CODES[code], severity, evidence, fix,
                   tuple(float(s) for s in steps), score, data)


def _levels(ctx: Context) -> tuple[float, float, float, float] | None:
    s = ctx.train
    if s is None or len(s) < 3:
        return None
    k = max(min(3, len(s)), min(int(math.ceil(0.05 * len(s))), 10))
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
    grew = lend > DIVERGE_FACTOR * l0 or (lend > 3 * lmin and lend > 0.9 * l0 and lmin < 0.7 * l0)
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
        l0, lmin, lend, _ = lv
        raw = ctx.train_raw
        blew = raw is not None and first_bad(raw) is not None
        grew = lend > DIVERGE_FACTOR * l0
        early = ctx.frac(first_bad(raw)) if blew else None
        if blew or grew:
            step = first_bad(raw) if blew else _first_above(ctx.train, DIVERGE_FACTOR * l0)
            lr = _lr_at(ctx, step or ctx.start)
            out.append(_f("lr-too-high", "critical",
                          f"the loss {'became NaN/Inf' if blew else 'grew'} at "
                          f"{ctx.fmt_step(step or 0)}"
                          + (f" with lr {lr:.3g}" if lr else "")
                          + (f" ({early:.0%} into the run)" if early is not None else ""),
                          "Divide the learning rate by 10 (run `lrdoctor find` for a measured one).",
                          [step] if step is not None else [], 0.8))
        elif float(np.max(ctx.train.values)) > SPIKE_FACTOR * max(l0, 1e-12):
            i = int(np.argmax(ctx.train.values))
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
        elif ratio is not None and ratio > 0.1 and _rel_change(blocks(ctx.train.values)) > -0.3:
            out.append(_f("lr-too-high", "warning",
                          f"median update/weight ratio {ratio:.3g} per step (healthy ~1e-3) while "
                          f"the loss barely fell ({l0:.4g} -> {lend:.4g})",
                          "Divide the learning rate by 10.", [ctx.start], 0.7, ratio=ratio))
    return out


def _median_update_ratio(ctx: Context) -> float | None:
    groups = ctx.log.group("update_ratio")
    if not groups:
        return None
    vals = [np.median(s.finite.values) for s in groups.values() if len(s.finite)]
    return float(np.median(vals)) if vals else None


def lr_too_low(ctx: Context) -> list[Finding]:
    lv = _levels(ctx)
    if lv is None:
        return []
    l0, lmin, lend, _ = lv
    if float(np.max(ctx.train.values)) > SPIKE_FACTOR * max(l0, 1e-12):
        return []  # a blow-up, not a crawl
    dead = [float(np.median(s.finite.values)) for s in ctx.log.group("dead_frac").values()
            if len(s.finite)]
    if dead and max(dead) > 0.5:
        return []  # dead units explain small updates; dead-relu says so
    ratios = [float(np.median(s.finite.values)) for s in ctx.log.group("update_ratio").values()
              if len(s.finite)]
    ratio = max(ratios) if ratios else None
    drop = (l0 - lend) / max(abs(l0), 1e-12)
    sm = blocks(ctx.train.values)
    late = _rel_change(sm[len(sm) // 2:])
    sm20 = blocks(ctx.train.values, 20)
    steady = len(sm20) >= 4 and float(np.mean(np.diff(sm20) < 0)) >= 0.75
    slow = 0 <= drop < LOW_LR_REL and (late < -0.005 or steady)
    tiny_updates = ratio is not None and ratio < LOW_UPDATE_RATIO
    if not ((tiny_updates and 0 <= drop < UNDERFIT_REL)
            or (slow and (ratio is None or ratio < 10 * LOW_UPDATE_RATIO))):
        return []
    lr = _lr_at(ctx, ctx.end)
    evidence = (f"the training loss fell only {drop:.1%} ({l0:.4g} -> {lend:.4g})"
                + (" and is still sloping down" if slow else "")
                + (f"; the largest layer update/weight ratio is {ratio:.2g} per step "
                   "(healthy ~1e-3)" if ratio is not None else "")
                + (f"; lr {lr:.3g}" if lr else ""))
    return [_f("lr-too-low", "warning", evidence,
               "Raise the learning rate (try 10x, or run `lrdoctor find`).",
               [ctx.start + 0.3 * (ctx.end - ctx.start)], 0.6 + 0.3 * tiny_updates, drop=drop)]


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
        rise = vend - vmin
        if (ctx.frac(val.steps[imin]) < 0.8 and rise > OVERFIT_RISE * max(v0 - vmin, 1e-12)
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
        memorized = (lend < 0.1 * vend and vend > 0.05) or (
            gap is not None and gap > OVERFIT_ACC_GAP
            and float(np.median(tail(ctx.train_acc, 0.1))) > 0.98)
        if memorized and not any(f.code == "overfitting" for f in out):
            out.append(_f("overfitting", "warning",
                          f"the training loss fell to {lend:.3g} while validation stays at "
                          f"{vend:.3g}" + (f"; train-val accuracy gap {gap:.1%}" if gap else "")
                          + ": the model memorizes the training set",
                          "Get more data or augment it, regularize (weight decay, dropout), or "
                          "use a smaller model; stop at the best validation point.",
                          [float(val.steps[int(np.argmin(vv))])], 0.55))
        if abs(t_total) < FLAT_REL and (v0 - vend) / max(abs(v0), 1e-12) > IMPROVE_REL:
            out.append(_f("data-problem", "warning",
                          f"training loss stayed flat ({l0:.4g} -> {lend:.4g}) while validation "
                          f"improved ({v0:.4g} -> {vend:.4g})",
                          "Check that the training batches carry the right labels and inputs (a "
                          "pipeline bug, heavy augmentation, or train-mode-only layers).",
                          [ctx.start], 0.55))
    if t_late < -FLAT_REL and (v_late is None or v_late < 0):
        out.append(_f("still-learning", "info",
                      f"the training loss fell {-t_late:.1%} over the last third"
                      + (f" and validation {-v_late:.1%}" if v_late is not None else ""),
                      "Train longer: the loss has not converged yet.", [ctx.end], 0.3))
    elif abs(t_late) < FLAT_REL and (v_late is None or abs(v_late) < FLAT_REL) and t_total < -0.2:
        out.append(_f("plateau", "info",
                      f"training loss flat over the last third ({t_late:+.1%})"
                      + (f", validation {v_late:+.1%}" if v_late is not None else ""),
                      "Training has converged; lower the learning rate (decay or PlateauLR) to "
                      "get a little more, or stop.", [ctx.start + 0.67 * (ctx.end - ctx.start)],
                      0.3))
    return out


def _acc_gap(ctx: Context) -> float | None:
    if ctx.train_acc is None or ctx.val_acc is None:
        return None
    return float(np.median(tail(ctx.train_acc, 0.1)) - np.median(tail(ctx.val_acc, 0.1)))


def underfitting(ctx: Context) -> list[Finding]:
    lv = _levels(ctx)
    if lv is None:
        return []
    l0, lmin, lend, _ = lv
    drop = (l0 - lend) / max(abs(l0), 1e-12)
    acc = None if ctx.train_acc is None else float(np.median(tail(ctx.train_acc, 0.1)))
    vacc = None if ctx.val_acc is None else float(np.median(tail(ctx.val_acc, 0.1)))
    sm = blocks(ctx.train.values)
    late = _rel_change(sm[-max(2, len(sm) // 3):])
    if late < -0.1 or lend > DIVERGE_FACTOR * l0 or drop < 0:
        return []
    if acc is not None or vacc is not None:
        low = (acc if acc is not None else vacc) < UNDERFIT_ACC
        if not low:
            return []
    elif drop >= UNDERFIT_NO_ACC_REL:
        return []
    return [_f("underfitting", "warning",
               f"training loss only fell {drop:.0%} ({l0:.4g} -> {lend:.4g})"
               + (f"; final training accuracy {acc:.1%}" if acc is not None else "")
               + (f"; validation accuracy {vacc:.1%}" if vacc is not None else ""),
               "Use a bigger model or train longer, and check the learning rate and the "
               "regularization.", [ctx.end], 0.4, drop=drop)]


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
    flat = abs(_rel_change(blocks(half, 20))) < FLAT_REL
    g_early = float(np.median(head(g, 0.1, minimum=3)))
    g_late = float(np.median(g.values[len(g) // 2:]))
    lv = _levels(ctx)
    if lv is None:
        return []
    l0, lmin, lend, _ = lv
    high = lend > 0.3 * l0
    if flat and high and jitter > OSC_JITTER and g_late > OSC_GRAD_KEEP * g_early:
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


def noise_or_regularization(ctx: Context) -> list[Finding]:
    """label-noise and over-regularization: training worse than validation, loss floor high."""
    lv = _levels(ctx)
    if lv is None:
        return []
    l0, lmin, lend, _ = lv
    meta = ctx.meta
    dropout = max(meta.get("dropout") or [0.0])
    groups = meta.get("param_groups") or []
    wd = max((float(g.get("weight_decay") or 0.0) for g in groups), default=0.0)
    opt = ctx.optimizer or ""
    strong_wd = wd >= (0.3 if opt == "AdamW" else 5e-3)
    out = []
    pn = ctx.log.get("param_norm").finite if ctx.log.has("param_norm") else None
    shrink = None
    if pn is not None and len(pn) >= 3:
        shrink = float(pn.values[-1] / max(pn.values[0], 1e-12))
    high_floor = lend > 0.25 * l0
    if dropout >= 0.5 or strong_wd or (shrink is not None and shrink < 0.5 and high_floor):
        why = []
        if dropout >= 0.5:
            why.append(f"dropout {dropout:g}")
        if strong_wd:
            why.append(f"weight decay {wd:g} ({opt or 'optimizer'})")
        if shrink is not None and shrink < 0.8:
            why.append(f"weight norm shrank to {shrink:.0%} of its start")
        if high_floor or (ctx.train_acc is not None and np.median(tail(ctx.train_acc, 0.1)) < 0.9):
            out.append(_f("over-regularization", "warning",
                          f"training loss stays at {lend:.4g} ({lend / max(l0, 1e-12):.0%} of its "
                          f"start) with {', '.join(why)}",
                          "Weaken the regularization (lower dropout to 0.1-0.3, weight decay to "
                          "1e-4..1e-2) and check that the training loss then falls.",
                          [ctx.start], 0.7))
            return out
    if ctx.train_acc is not None and ctx.val_acc is not None and len(ctx.val_acc) >= 3:
        ta = float(np.median(tail(ctx.train_acc, 0.3)))
        va = float(np.median(tail(ctx.val_acc, 0.3)))
        if va - ta > NOISE_ACC_GAP and ta < 0.9 and high_floor:
            return [_f("label-noise", "warning",
                       f"validation accuracy {va:.1%} stays above training accuracy {ta:.1%} and "
                       f"the training loss floors at {lend:.4g}: the model cannot fit the "
                       "training labels it generalizes from"
                       + ("" if meta else " (or strong dropout; the log does not say)"),
                       "Audit the training labels (confident-learning / cleanlab), or use a "
                       "noise-robust loss (label smoothing, bootstrapping).", [ctx.start], 0.55,
                       gap=va - ta)]
    elif ctx.val is not None and len(ctx.val) >= 3 and "dropout" in meta and dropout < 0.5:
        vend = float(np.median(tail(ctx.val, 0.3)))
        if vend < 0.8 * lend and high_floor:
            return [_f("label-noise", "warning",
                       f"validation loss {vend:.4g} stays well below training loss {lend:.4g} "
                       "without strong dropout: the training labels look noisy",
                       "Audit the training labels, or use a noise-robust loss.", [ctx.start], 0.5)]
    return out


def missing_warmup(ctx: Context) -> list[Finding]:
    if not ctx.per_step:
        ctx.skip("missing-warmup", "needs a per-step training loss to see an early spike")
        return []
    opt = ctx.optimizer
    if opt is None:
        ctx.skip("missing-warmup", "the log does not name the optimizer (adaptive or not)")
        return []
    if opt not in ADAPTIVE:
        return []
    s = ctx.train
    n = max(5, len(s) // 10)
    early = s.values[:n]
    first = float(np.median(s.values[:3]))
    peak_i = int(np.argmax(early))
    if ctx.lr is not None and len(ctx.lr) > 3:
        lrv = ctx.lr.values
        if lrv[0] < 0.5 * float(np.max(lrv[: max(3, len(lrv) // 10)])):
            return []  # there is a warm-up
    if early[peak_i] > WARMUP_SPIKE * first and peak_i >= 1:
        step = float(s.steps[peak_i])
        return [_f("missing-warmup", "warning",
                   f"{opt} started at full lr {(_lr_at(ctx, 0) or float('nan')):.3g} and the loss "
                   f"spiked to {early[peak_i]:.4g} ({early[peak_i] / first:.1f}x the first loss) "
                   f"at {ctx.fmt_step(step)}",
                   "Warm the learning rate up over the first 1-5% of steps, e.g. "
                   "'warmup(500) >> constant(lr)' or warmup_untuned(beta2=0.999).",
                   [step], 0.65)]
    return []


def plateau_monitor_mismatch(ctx: Context) -> list[Finding]:
    lr = ctx.lr
    if lr is None or len(lr) < 3:
        ctx.skip("plateau-monitor-mismatch", "needs the learning rate over time")
        return []
    watch = ctx.val_acc if ctx.val_acc is not None else None
    wl = ctx.val
    if watch is None and wl is None:
        ctx.skip("plateau-monitor-mismatch", "needs a validation metric next to the lr")
        return []
    v = lr.values
    drops = np.nonzero((v[1:] < LR_DROP * v[:-1]) & (v[1:] > 0))[0] + 1
    if len(drops) == 0:
        return []
    suspicious = []
    for i in drops:
        step = float(lr.steps[i])
        improving = []
        for s, higher in ((watch, True), (wl, False)):
            if s is None:
                continue
            before = s.values[s.steps < step]
            if len(before) < 3:
                continue
            best_prev = np.max(before[:-2]) if higher else np.min(before[:-2])
            recent = before[-2:]
            improving.append(bool(np.any(recent > best_prev) if higher else np.any(recent < best_prev)))
        if improving and all(improving):
            suspicious.append(step)
    if len(suspicious) >= max(1, (len(drops) + 1) // 2):
        return [_f("plateau-monitor-mismatch", "warning",
                   f"the learning rate was cut at {len(suspicious)} of {len(drops)} drops "
                   f"({', '.join(ctx.fmt_step(s) for s in suspicious[:3])}) while the validation "
                   "metrics were still reaching new bests",
                   "Point the plateau scheduler at the metric that improves, in the right mode "
                   "(mode='max' for accuracy), or use a fixed schedule; ignore this if the drops "
                   "are a planned step schedule.", suspicious, 0.6)]
    return []


def distribution_shift(ctx: Context) -> list[Finding]:
    log = ctx.log
    tests = log.names("test/")
    if not tests:
        ctx.skip("distribution-shift", "no test split in the log")
        return []
    out = []
    if log.has("test/loss") and ctx.val is not None:
        t = float(log.get("test/loss").finite.values[-1])
        v = float(ctx.val.values[-1])
        if t > (1 + SHIFT_REL) * v:
            out.append((t / max(v, 1e-12), f"test loss {t:.4g} vs validation loss {v:.4g}"))
    for name in ("test/accuracy",):
        if log.has(name) and ctx.val_acc is not None:
            t = float(log.get(name).finite.values[-1])
            t = t / 100 if t > 1 else t
            v = float(ctx.val_acc.values[-1])
            if v - t > 0.05:
                out.append((1 + v - t, f"test accuracy {t:.1%} vs validation accuracy {v:.1%}"))
    if not out:
        return []
    return [_f("distribution-shift", "warning", "; ".join(e for _, e in out),
               "Check that the test data comes from the same distribution as validation "
               "(preprocessing, time period, source), and validate on data like the test set.",
               [ctx.end], 0.5)]


def unshuffled_from_loss(ctx: Context) -> list[Finding]:
    """Per-step loss periodic with the epoch (each epoch replays the same order of classes)."""
    s = ctx.train
    if not ctx.per_step or s is None or s.epochs is None:
        return []
    ep = s.epochs
    per = [int(np.sum(ep == e)) for e in np.unique(ep[np.isfinite(ep)])]
    if len(per) < 3:
        return []
    lag = int(np.median(per))
    c = np.cumsum(np.r_[0.0, s.values])
    trend_ = np.empty_like(s.values)
    half = lag // 2
    lo = np.clip(np.arange(len(s)) - half, 0, len(s))
    hi = np.clip(np.arange(len(s)) - half + lag, 0, len(s))
    trend_[:] = (c[hi] - c[lo]) / np.maximum(hi - lo, 1)  # centred moving average, O(n)
    x = s.values - trend_
    x = x[lag:-lag] if len(x) > 3 * lag else x
    if len(x) < 2 * lag + 4 or lag < 4:
        return []
    x = x - x.mean()
    den = float(np.dot(x, x)) or 1e-12
    ac = float(np.dot(x[:-lag], x[lag:])) / den
    if ac > 0.6:
        return [_f("unshuffled-data", "warning",
                   f"the per-step loss repeats with the epoch (autocorrelation {ac:.2f} at a lag "
                   f"of one epoch, {lag} steps)",
                   "Shuffle the training data every epoch (DataLoader(shuffle=True)).",
                   [float(s.steps[lag])], 0.6, autocorr=ac)]
    return []


RULES = (nonfinite, diverging, lr_too_high, lr_too_low, trend, underfitting, oscillation,
         noise_or_regularization, missing_warmup, plateau_monitor_mismatch, distribution_shift,
         unshuffled_from_loss)

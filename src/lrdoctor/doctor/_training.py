"""Rules on how training was set up, as the curves show it: regularization and label noise,
warm-up, the plateau scheduler's metric, a shifted test split, unshuffled batches.

Thresholds: ``T.NAME``, registered in ``_thresholds`` (docs/doctor.md).
"""

from __future__ import annotations

import numpy as np

from lrdoctor.doctor._context import Context, tail
from lrdoctor.doctor._curves import _f, _levels, _lr_at
from lrdoctor.doctor._epochs import below_chance, squashed_loss
from lrdoctor.doctor._evalgap import noise_shape
from lrdoctor.doctor._finding import Finding
from lrdoctor.doctor._thresholds import T
from lrdoctor.errors import PlateauError
from lrdoctor.plateau._changes import _segments
from lrdoctor.plateau._replay import _best_hypothesis
from lrdoctor.plateau._state import infer_mode

__all__ = ["RULES"]

ADAPTIVE = ("Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta",
            "Adafactor", "Lion", "LAMB")


def noise_or_regularization(ctx: Context) -> list[Finding]:
    """label-noise and over-regularization: training worse than validation, loss floor high."""
    lv = _levels(ctx)
    if lv is None:
        return []
    l0, _lmin, lend, _ = lv
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
    high_floor = lend > T.HIGH_FLOOR * l0
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
        if below_chance(ctx) is not None:
            return out  # noise cannot push training accuracy below chance: unshuffled-data
        if va - ta > T.NOISE_ACC_GAP and ta < 0.9 and high_floor:
            if "dropout" not in meta:
                return [_val_above_train(ctx, ta, va, lend)]
            return [_f("label-noise", "warning",
                       f"validation accuracy {va:.1%} stays above training accuracy {ta:.1%} and "
                       f"the training loss floors at {lend:.4g}: the model cannot fit the "
                       "training labels it generalizes from",
                       "Audit the training labels (confident-learning / cleanlab), or use a "
                       "noise-robust loss (label smoothing, bootstrapping).", [ctx.start], 0.55,
                       gap=va - ta, candidates=["label-noise"])]
    elif ctx.val is not None and len(ctx.val) >= 3 and "dropout" in meta and dropout < 0.5:
        vend = float(np.median(tail(ctx.val, 0.3)))
        if vend < 0.8 * lend and high_floor:
            return [_f("label-noise", "warning",
                       f"validation loss {vend:.4g} stays well below training loss {lend:.4g} "
                       "without strong dropout: the training labels look noisy",
                       "Audit the training labels, or use a noise-robust loss.", [ctx.start], 0.5)]
    return out


def _val_above_train(ctx: Context, ta: float, va: float, lend: float) -> Finding:
    """label-noise or over-regularization when validation beats training and the log does not
    record the dropout rates: :func:`~lrdoctor.doctor._evalgap.noise_shape` decides.

    Once the model is confident (val loss <= 0.8x its first value), a train/val ratio of
    ``accuracy * exp(loss)`` below NOISE_SHAPE (1.05) says the training split holds no examples
    the model disbelieves: train-mode-only noise (dropout), over-regularization. At or above it,
    or before the model is confident, label-noise (naming dropout as the look-alike while it
    cannot be ruled out). A softmax-squashed loss (loss-activation-mismatch) distorts the ratio:
    then label-noise as well.
    """
    shape = noise_shape(ctx)
    gap = (f"validation accuracy {va:.1%} stays above training accuracy {ta:.1%} and the "
           f"training loss floors at {lend:.4g}")
    check = ("evaluate the training set in eval mode (one minute): near the validation accuracy "
             "means train-mode regularization, still below it the labels")
    if (shape is not None and shape.confident and not shape.noisy_labels
            and squashed_loss(ctx) is None):
        return _f("over-regularization", "warning",
                  gap + f", yet the training split's accuracy x exp(loss) is {shape.ratio:.2f}x "
                  f"validation's (< {T.NOISE_SHAPE:g}; median of the last {shape.epochs} epochs, val "
                  f"loss at {shape.val_fall:.0%} of its first value): no training examples get "
                  "the tiny probability a model gives labels it rightly disbelieves, so training "
                  "is worse only because the training forward pass is noisier. Dropout far too "
                  "strong (active in training only) or heavy training-only augmentation does "
                  "this; noisy labels would push the ratio above 1 by now. To be sure, " + check,
                  "Lower the dropout rate (0.1-0.5) or the augmentation strength and check that "
                  "training accuracy then catches up with validation.", [ctx.start], 0.6,
                  ratio=shape.ratio, candidates=["over-regularization", "label-noise"])
    decided = shape is not None and shape.confident and shape.noisy_labels
    return _f("label-noise", "warning",
              gap + ": the model cannot fit the training labels it generalizes from"
              + (f"; the training split's accuracy x exp(loss) is {shape.ratio:.2f}x "
                 f"validation's (>= {T.NOISE_SHAPE:g}): some training labels get the tiny "
                 "probability of labels the model rightly disbelieves, which dropout noise "
                 "does not produce" if decided else
                 ". Strong dropout (active in training only) makes training worse than "
                 "validation the same way, this log does not hold the model's dropout rates "
                 "and its columns cannot tell the two apart yet (the model is not confident "
                 "enough for noisy labels to show): " + check),
              "Audit the training labels (confident-learning / cleanlab), or use a "
              "noise-robust loss (label smoothing, bootstrapping).", [ctx.start], 0.55,
              gap=va - ta, candidates=["label-noise"] + ([] if decided
                                                         else ["over-regularization"]))


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
    # a spike, not one noisy batch: the running median of 3 steps stays above the level too
    # (a regression's per-batch MSE can double from one batch to the next at any lr)
    held = np.array([np.median(early[max(0, i - 1):i + 2]) for i in range(len(early))])
    if early[peak_i] > T.WARMUP_SPIKE * first and peak_i >= 1 and (
            float(np.max(held)) > T.WARMUP_SPIKE * first):
        step = float(s.steps[peak_i])
        return [_f("missing-warmup", "warning",
                   f"{opt} started at full lr {(_lr_at(ctx, 0) or float('nan')):.3g} and the loss "
                   f"spiked to {early[peak_i]:.4g} ({early[peak_i] / first:.1f}x the first loss) "
                   f"at {ctx.fmt_step(step)}",
                   "Warm the learning rate up over the first 1-5% of steps, e.g. "
                   "'warmup(500) >> constant(lr)' or warmup_untuned(beta2=0.999).",
                   [step], 0.65)]
    return []


def _declared_mode_mismatch(ctx: Context) -> Finding | None:
    """A logged scheduler setting (an event whose data has ``mode`` and ``monitor``, as the
    demo and the integrations write) whose mode contradicts the metric's name: certain, so
    it needs no curve evidence."""
    for event in ctx.log.events:
        mode, monitor = event.data.get("mode"), event.data.get("monitor")
        if mode not in ("min", "max") or not isinstance(monitor, str):
            continue
        try:
            natural = infer_mode(monitor.split("/")[-1])
        except PlateauError:
            continue
        if natural == mode:
            continue
        cuts = [float(e.step) for e in ctx.log.events
                if e.code == "plateau" and e.step is not None and e.data.get("monitor") == monitor]
        cut_text = f"; it cut the lr {len(cuts)} times" if cuts else ""
        goal = "maximised" if natural == "max" else "minimised"
        return _f("plateau-monitor-mismatch", "critical",
                  f"the plateau scheduler watches {monitor} in mode='{mode}', but {monitor} should "
                  f"be {goal}, so every improvement counts as a bad evaluation{cut_text}",
                  f"Use mode='{natural}' (or mode='auto', which reads it from the metric's name).",
                  cuts or ([float(event.step)] if event.step is not None else []), 0.9)
    return None


def _replay_metrics(ctx: Context) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The per-evaluation series a plateau reducer can be stepped with: every ``val/*``
    metric, and the per-epoch training loss and accuracy (a test split is not one)."""
    names = [n for n in ctx.log.names() if n.startswith("val/")]
    names += [n for n in ("train/loss_epoch", "train/accuracy") if ctx.log.has(n)]
    if ctx.unit == "epoch" and ctx.log.has("train/loss"):
        names.append("train/loss")
    out = {}
    for n in names:
        f = ctx.log.get(n).finite
        if 2 <= len(f) <= 3000:
            out[n] = (f.steps.astype(float), f.values.astype(float))
    return out


def _best_recently(steps: np.ndarray, values: np.ndarray, at: float, natural: str) -> bool:
    """One of the last two evaluations before ``at`` is the metric's best so far."""
    before = values[steps < at]
    if len(before) < 2:
        return False
    best = np.max(before) if natural == "max" else np.min(before)
    return bool(np.any(before[-2:] == best))


def _step_schedule(cuts: list[float], eval_steps: np.ndarray) -> bool:
    """Could a fixed step schedule have made these cuts? Counted in evaluations before each
    cut, a step schedule cuts every P evaluations from the start (the first gap P, or P - 1
    when the log records the lr after the scheduler stepped). A plateau reducer on a metric
    that improves every time, watched in the wrong mode, also cuts every P = patience + 1
    evaluations, but its first evaluation only sets the best, so its first gap is P + 1 (or P,
    logged after the step: then the two cannot be told apart and this says yes)."""
    from_start = np.diff([0.0, *cuts])
    if np.allclose(from_start, from_start[-1], rtol=0.02, atol=0.0):
        return True  # every P steps from the start (a per-step StepLR, not on evaluations)
    n = [int(np.sum(eval_steps < c)) for c in cuts]
    gaps = np.diff(n)
    if len(gaps) == 0 or not np.all(gaps == gaps[0]):
        return False
    return n[0] != gaps[0] + 1


def plateau_monitor_mismatch(ctx: Context) -> list[Finding]:
    """The LR drops are a plateau reducer's decisions on a metric watched in the wrong mode.

    From the curves alone: the LR curve is cut into sudden drops and smooth runs (linear,
    cosine and exponential decay, warm-up: a fixed schedule, never a finding); the drops are
    then replayed through the plateau core (:mod:`lrdoctor.plateau`) on each per-evaluation
    metric, in both modes, over patience 0-12, torch's and Keras' thresholds and cool-downs,
    as ``lrdoctor explain`` does. When the best replay lands on the drops (share of hits,
    stray cuts counted against it, at least PLATEAU_FIT) in the mode opposite to the metric's
    natural one (``min`` on an accuracy, ``max`` on a loss), with two cuts or more that a fixed
    step schedule cannot have made (:func:`_step_schedule`), the scheduler watches the wrong
    mode.
    """
    declared = _declared_mode_mismatch(ctx)
    if declared is not None:
        return [declared]
    lr = ctx.lr
    if lr is None or len(lr) < 3:
        ctx.skip("plateau-monitor-mismatch", "needs the learning rate over time")
        return []
    metrics = _replay_metrics(ctx)
    if not metrics:
        ctx.skip("plateau-monitor-mismatch", "needs a per-evaluation metric next to the lr")
        return []
    f = lr.finite
    drops = [c for c in _segments(f.steps.astype(float), f.values.astype(float))
             if c.kind == "drop"]
    if not drops:
        return []  # constant or a smooth schedule: nothing a plateau reducer decided
    hyp = _best_hypothesis(drops, metrics, ctx.unit == "epoch")
    if hyp is None or hyp["score"] < T.PLATEAU_FIT:
        return []
    natural = hyp["natural_mode"]
    if natural is None or natural == hyp["mode"]:
        return []  # a plateau reducer doing its job on the metric it was given
    metric, mode = hyp["metric"], hyp["mode"]
    es, ev = metrics[metric]
    if len(drops) < 2 or _step_schedule([c.step for c in drops], es):
        return []  # one cut, or evenly spaced ones: a fixed step schedule fits as well
    cuts = [c.step for c in drops]
    better = sum(_best_recently(es, ev, c, natural) for c in cuts)
    goal = "maximised" if natural == "max" else "minimised"
    return [_f("plateau-monitor-mismatch", "warning",
               f"the {len(cuts)} learning-rate cuts ("
               + ", ".join(ctx.fmt_step(c) for c in cuts[:4]) + (", ..." if len(cuts) > 4 else "")
               + f") are exactly what a plateau reducer watching {metric} in mode='{mode}' with "
               f"patience {hyp['patience']} decides (replayed: it lands on {hyp['score']:.0%} of "
               f"them, no stray cut), but {metric} should be {goal}: each time it got better the "
               "reducer counted a bad evaluation"
               + (f"; at {better} of the cuts {metric} had just reached a new best"
                  if better else ""),
               f"Use mode='{natural}' for {metric} (or mode='auto', which reads it from the "
               "metric's name).", cuts, 0.85, metric=metric, mode=mode,
               patience=hyp["patience"], fit=hyp["score"])]


def distribution_shift(ctx: Context) -> list[Finding]:
    log = ctx.log
    tests = log.names("test/")
    if not tests:
        ctx.skip("distribution-shift", "no test split in the log")
        return []
    out = []
    tl = log.get("test/loss").finite.values if log.has("test/loss") else np.array([])
    # with both losses logged, an accuracy gap is a shift only if the test loss is worse too:
    # a model near chance (a tiny one, dead units) scores test and validation a few points
    # apart by sampling alone, at the same loss
    loss_agrees = not (len(tl) and ctx.val is not None and len(ctx.val.values)) or (
        float(tl[-1]) > (1 + T.SHIFT_REL) * float(ctx.val.values[-1]))
    if len(tl) and ctx.val is not None and len(ctx.val.values):
        t = float(tl[-1])
        v = float(ctx.val.values[-1])
        v0 = float(ctx.val.values[0])
        gave_back = (t - v) / (v0 - v) if v0 > v else np.inf
        ta = log.get("test/accuracy").finite.values if log.has("test/accuracy") else np.array([])
        # the test loss rose over the run while the test accuracy did not fall: the model grew
        # over-confident on a few test examples (calibration), which is no shift by itself;
        # the accuracy comparison below still judges the split
        calibration = len(tl) >= 2 and len(ta) >= 2 and tl[-1] > tl[0] and ta[-1] >= ta[0]
        if t > (1 + T.SHIFT_REL) * v and gave_back >= T.SHIFT_BACK and not calibration:
            out.append((t / max(v, 1e-12), f"test loss {t:.4g} vs validation loss {v:.4g}"))
    for name in ("test/accuracy",):
        values = log.get(name).finite.values if log.has(name) else np.array([])
        if len(values) and ctx.val_acc is not None and len(ctx.val_acc.values):
            t = float(values[-1])
            t = t / 100 if t > 1 else t
            v = float(ctx.val_acc.values[-1])
            if v - t > 0.05 and loss_agrees:
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
    per = np.unique(ep[np.isfinite(ep)], return_counts=True)[1].tolist()
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
    if ac > T.AUTOCORR:
        return [_f("unshuffled-data", "warning",
                   f"the per-step loss repeats with the epoch (autocorrelation {ac:.2f} at a lag "
                   f"of one epoch, {lag} steps)",
                   "Shuffle the training data every epoch (DataLoader(shuffle=True)).",
                   [float(s.steps[lag])], 0.6, autocorr=ac)]
    return []


RULES = (noise_or_regularization, missing_warmup, plateau_monitor_mismatch, distribution_shift,
         unshuffled_from_loss)

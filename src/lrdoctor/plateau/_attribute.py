"""Explain learning-rate changes after the fact: from a decision journal, or from a training log
alone by detecting each LR change and finding what caused it.

``attribute(series, step_unit)`` takes plain arrays — ``{name: (steps, values)}`` with the
canonical names of :mod:`lrdoctor.logs` (``lr``, ``train/loss``, ``val/loss``,
``val/accuracy``...) — and returns an :class:`Attribution`: one :class:`Change` per LR change
(sudden drop, smooth decay, warm-up, restart, rise) with its cause and evidence, and a direct
answer to "why did my LR drop while the training loss was improving?".

How a sudden drop is attributed: every watched-metric hypothesis (each ``val/*``/``train/loss``
series, in its natural mode *and* the opposite one, patience 0–12, torch's and Keras'
thresholds, cool-down 0–3) is replayed through :func:`lrdoctor.plateau.update` on the metric's
own evaluations; the hypothesis whose reductions land exactly on the observed drops wins. Drops
no hypothesis explains, spaced regularly, are a step schedule. Runs of small same-sign changes
are a smooth schedule (warm-up when rising from the start, decay otherwise); a single jump up
after a decay is a restart.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lrdoctor.errors import PlateauError
from lrdoctor.journal import Entry, format_lr, format_value
from lrdoctor.plateau._changes import Arrays, Attribution, Change, _arr, _natural_mode, _segments
from lrdoctor.plateau._replay import _best_hypothesis, _eval_index_before

__all__ = ["Attribution", "Change", "attribute", "explain_journal"]



def _periodic(steps: list[float], start: float) -> float | None:
    """The common spacing of the drops if they fall every P steps from the start of the run, as a
    step schedule's do. (A reducer stuck on one best fires every ``patience + 1`` evaluations
    too, but its first drop comes one evaluation later: the first evaluation only sets the best.)"""
    if len(steps) < 2:
        return None
    gaps = np.diff([start] + list(steps))
    if np.allclose(gaps, gaps[-1], rtol=0.02, atol=1.0):
        return float(gaps[-1])
    return None


def _trend(steps: np.ndarray, values: np.ndarray, at: float, window: float) -> tuple[bool | None, float, float]:
    """Was ``values`` falling just before ``at``? Compares the means of the two half-windows."""
    keep = (steps < at) & (steps >= at - window)
    v = values[keep]
    if len(v) < 4:
        v = values[steps <= at][-8:]
        if len(v) < 4:
            return None, math.nan, math.nan
    half = len(v) // 2
    a, b = float(np.mean(v[:half])), float(np.mean(v[half:]))
    noise = float(np.std(np.diff(v))) / math.sqrt(2) if len(v) > 2 else 0.0
    return (b < a - 0.25 * noise / math.sqrt(max(half, 1)) and b < a), a, b


def _noise(values: np.ndarray) -> float:
    if len(values) < 4:
        return 0.0
    return float(np.std(np.diff(values)) / math.sqrt(2))


def attribute(series: Arrays, *, step_unit: str = "step") -> Attribution:
    """Attribute every LR change in ``series`` (``{"lr": (steps, values), ...}``)."""
    lr_key = "lr" if "lr" in series else next((k for k in series if k.startswith("lr/")), None)
    if lr_key is None:
        raise PlateauError("the log has no learning-rate column (lr / learning_rate), so there is "
                           "nothing to explain; log the LR (lrdoctor.torch.Monitor does) or pass a journal")
    steps, lr = _arr(series[lr_key])
    if not len(steps):
        raise PlateauError(f"the log's learning rate ({lr_key}) holds no finite value, so there is "
                           "nothing to explain; check how the LR is logged, or pass a journal")
    unit = step_unit
    changes = _segments(steps, lr)
    metrics = {k: _arr(v) for k, v in series.items()
               if (k.startswith(("val/", "test/")) or k == "train/loss") and not k.startswith("lr")}
    metrics = {k: v for k, v in metrics.items() if len(v[1]) >= 2}
    # warm-up, restarts
    seen_decay = False
    for c in changes:
        first_change = float(steps[min(1, len(steps) - 1)])
        if c.kind == "rise" and not seen_decay and c.step <= first_change:
            c.kind, c.cause = "warmup", "warmup-end"
            c.evidence = {"from_step": float(steps[0]), "peak_step": c.end_step}
        elif c.kind in ("rise", "jump"):
            c.cause = "restart" if seen_decay else "schedule"
            if c.kind == "jump" and not seen_decay and c.step <= first_change:
                c.kind, c.cause = "warmup", "warmup-end"
        if c.kind in ("decay", "drop"):
            seen_decay = True
    drops = [c for c in changes if c.kind == "drop"]
    notes: list[str] = []
    strict = step_unit == "epoch"
    warm = next((c for c in changes if c.kind == "warmup"), None)
    warm_end = None if warm is None else (warm.end_step if warm.end_step is not None else warm.step)
    hyp = _best_hypothesis(drops, metrics, strict, warm_end) if drops and metrics else None
    period = _periodic([c.step for c in drops], float(steps[0]))
    plateau_ok = hyp is not None and hyp["score"] >= 0.99
    if plateau_ok and period is not None and hyp is not None and hyp["natural_mode"] not in (None, hyp["mode"]):
        # evenly spaced drops that only a metric watched against its grain would explain: the
        # simpler story is a step schedule (a plateau on a flat metric is periodic too, but in
        # the metric's own direction)
        plateau_ok = False
        notes.append(f"the drops are evenly spaced every {period:g} {step_unit}s; they also fit a "
                     f"plateau of {hyp['metric']} in mode='{hyp['mode']}', which is less likely")
    for c in drops:
        if plateau_ok:
            assert hyp is not None
            es, ev = metrics[hyp["metric"]]
            k = _eval_index_before(es, c.step, strict)
            c.cause, c.metric, c.mode = "plateau", hyp["metric"], hyp["mode"]
            best_i = _best_index(ev[:k + 1], hyp["mode"])
            c.evidence = {"patience": hyp["patience"], "threshold": hyp["threshold"],
                          "threshold_mode": hyp["threshold_mode"], "cooldown": hyp["cooldown"],
                          "natural_mode": hyp["natural_mode"], "value": float(ev[k]),
                          "best": float(ev[best_i]), "best_step": float(es[best_i]),
                          "evaluation_step": float(es[k]), "noise": _noise(ev[:k + 1]),
                          "fit": hyp["score"]}
        elif period is not None or len(drops) == 1 and hyp is None:
            c.cause = "schedule"
            c.evidence = {"period": period, "factor": c.new_lr / c.old_lr if c.old_lr else None}
        else:
            c.cause = "schedule" if hyp is None else "unknown"
            if hyp is not None:
                c.evidence = {"closest": {k: hyp[k] for k in ("metric", "mode", "patience", "score")}}
    # training-loss trend at each downward change
    train = metrics.get("train/loss") or (_arr(series["train/loss"]) if "train/loss" in series else None)
    span = float(steps[-1] - steps[0]) if len(steps) else 0.0
    for c in changes:
        if c.kind in ("drop", "decay") and train is not None:
            if c.kind == "decay" and c.end_step is not None:  # falling during the decay?
                at, window = c.end_step + 1e-9, c.end_step - c.step + 1.0
            else:
                at, window = c.step, max(span * 0.15, 4.0)
            improving, a, b = _trend(train[0], train[1], at, window)
            c.train_improving = improving
            c.evidence.setdefault("train_loss_before", a)
            c.evidence.setdefault("train_loss_at", b)
        c.sentence = _sentence(c, unit)
    answer = _answer(changes, unit, train is not None)
    if not changes:
        notes.append("the learning rate never changed in this log")
    return Attribution(changes=changes, answer=answer, notes=notes, unit=unit)


def _noise_advice(metric: str, noise: float, t: float, tmode: str, best: float | None,
                  patience: Any) -> str:
    """Patience and threshold against the metric's evaluation-to-evaluation noise."""
    if not noise or not math.isfinite(noise):
        return ""
    need = t * abs(best) if tmode == "rel" and best is not None else t
    if need > 0 and noise > 2 * need:
        return (f" {metric} jumps by about ±{noise:.3g} between evaluations, {noise / need:.0f}× the "
                f"improvement the threshold asks for ({need:.3g}), so with patience {patience} noise "
                f"alone can decide; raise patience or set threshold_mode='abs', threshold≈{noise:.2g}.")
    return f" {metric} varies by about ±{noise:.3g} between evaluations."


def _best_index(values: np.ndarray, mode: str) -> int:
    return int(np.argmin(values) if mode == "min" else np.argmax(values))


def _at(step: float, unit: str) -> str:
    return f"{unit} {int(step) if float(step).is_integer() else step}"


def _sentence(c: Change, unit: str) -> str:
    lrs = f"lr {format_lr(c.old_lr)} → {format_lr(c.new_lr)}"
    if c.kind == "warmup":
        return f"{_at(c.step, unit)}–{c.end_step if c.end_step is not None else c.step:g}: warm-up, {lrs}; it ends at {unit} {c.end_step if c.end_step is not None else c.step:g}"
    if c.cause == "restart":
        return f"{_at(c.step, unit)}: the schedule restarted, {lrs}"
    if c.kind in ("decay", "rise"):
        shape = "decay" if c.kind == "decay" else "rise"
        return (f"{_at(c.step, unit)}–{c.end_step:g}: scheduled {shape}, {lrs} "
                "(smooth change every step: a schedule, not a plateau decision)")
    if c.cause == "plateau":
        e = c.evidence
        margin = f"{e['threshold'] * 100:g}%" if e["threshold_mode"] == "rel" else f"{e['threshold']:g}"
        wrong = ""
        if e.get("natural_mode") and e["natural_mode"] != c.mode:
            wrong = f" — but {c.metric} should be {'maximised' if e['natural_mode'] == 'max' else 'minimised'}: mode='{c.mode}' looks wrong"
        return (f"{_at(c.step, unit)}: plateau of {c.metric} (mode={c.mode}): no improvement by more "
                f"than {margin} over its best {format_value(e['best'])} ({_at(e['best_step'], unit)}) "
                f"for more than {e['patience']} evaluations → {lrs}{wrong}")
    if c.cause == "schedule":
        per = c.evidence.get("period")
        every = f", one of a drop every {per:g} {unit}s" if per else ""
        return f"{_at(c.step, unit)}: scheduled step decay{every}, {lrs} (no metric explains it)"
    closest = c.evidence.get("closest")
    hint = f"; closest explanation: a plateau of {closest['metric']}" if closest else ""
    return f"{_at(c.step, unit)}: {lrs}, cause unclear{hint}"


def _answer(changes: list[Change], unit: str, have_train: bool) -> str | None:
    downs = [c for c in changes if c.kind in ("drop", "decay")]
    if not downs:
        return None
    hits = [c for c in downs if c.train_improving]
    if not have_train:
        return ("The log has no training loss, so whether the LR fell while it was improving cannot "
                "be checked; the causes of the LR changes are listed above.")
    if not hits:
        return "No LR drop happened while the training loss was still improving."
    c = hits[0]
    when = (f"From {_at(c.step, unit)} to {c.end_step:g}" if c.kind == "decay" and c.end_step is not None
            else f"At {_at(c.step, unit)}")
    head = (f"Why did the LR drop while the training loss was improving? {when} the "
            f"LR went {format_lr(c.old_lr)} → {format_lr(c.new_lr)} while train/loss was still falling "
            f"({format_value(c.evidence.get('train_loss_before'))} → "
            f"{format_value(c.evidence.get('train_loss_at'))} just before).")
    more = f" ({len(hits)} of the {len(downs)} LR decreases happened that way.)" if len(hits) > 1 else ""
    if c.cause == "plateau":
        e = c.evidence
        if e.get("natural_mode") and e["natural_mode"] != c.mode:
            why = (f" The LR is cut by a plateau reducer watching {c.metric} in mode='{c.mode}'. "
                   f"{c.metric} should be {'maximised' if e['natural_mode'] == 'max' else 'minimised'}: "
                   f"every time it got better the reducer counted a bad evaluation. "
                   f"Fix: mode='{e['natural_mode']}' (or mode='auto', which infers it from the metric's name).")
        else:
            noisy = _noise_advice(c.metric, e.get("noise", 0.0), e["threshold"], e["threshold_mode"],
                                  e["best"], e["patience"])
            why = (f" The LR is not driven by the training loss: a plateau reducer watches {c.metric} "
                   f"(mode='{c.mode}', patience≈{e['patience']}), which had not beaten its best "
                   f"{format_value(e['best'])} ({_at(e['best_step'], unit)}) for more than "
                   f"{e['patience']} evaluations.{noisy}")
            if c.metric.startswith("val/") and c.metric.endswith("loss"):
                why += (" A validation loss that stalls while the training loss falls is the start of "
                        "overfitting: the reduction is doing its job; if you want the LR to follow the "
                        "training loss, monitor train/loss instead.")
        return head + why + more
    if c.cause == "schedule":
        return (head + " The LR follows a schedule that decays with the step count, whatever the loss "
                "does: the drop was planned. To keep the LR up longer, lengthen the schedule (more "
                "steps, a later or smaller decay) or switch to plateau reduction." + more)
    return head + " No monitored metric explains the drop; check the scheduler configuration." + more


# -- journals -----------------------------------------------------------------------------------
def explain_journal(entries: list[Entry], series: Arrays | None = None, *, step_unit: str = "step") -> Attribution:
    """The journal's own sentences, plus the seed-question answer when a log with the training
    loss is available (matched on the entries' optimizer steps)."""
    changes = []
    train = _arr(series["train/loss"]) if series and "train/loss" in series else None
    for e in entries:
        kind = {"plateau": "drop", "schedule": "decay", "warmup-end": "warmup", "restart": "restart",
                "nonfinite": "drop"}.get(e.cause, e.cause)
        c = Change(kind, float(e.step if e.step is not None else (e.epoch or 0)),
                   e.old_lrs[0] if e.old_lrs else math.nan, e.new_lrs[0] if e.new_lrs else math.nan,
                   e.cause, metric=e.evidence.get("monitor"), mode=e.evidence.get("mode"),
                   evidence=dict(e.evidence), sentence=e.explain())
        if train is not None and e.step is not None and kind in ("drop", "decay") and c.new_lr < c.old_lr:
            span = float(train[0][-1] - train[0][0]) if len(train[0]) else 0.0
            c.train_improving, a, b = _trend(train[0], train[1], float(e.step), max(span * 0.15, 4.0))
            c.evidence["train_loss_before"], c.evidence["train_loss_at"] = a, b
        changes.append(c)
    answer = None
    reduced = [c for c in changes if c.cause in ("plateau", "schedule") and c.new_lr < c.old_lr]
    hits = [c for c in reduced if c.train_improving]
    if hits:
        c = hits[0]
        head = (f"Why did the LR drop while the training loss was improving? At {unit_of(c, step_unit)} "
                f"the LR went {format_lr(c.old_lr)} → {format_lr(c.new_lr)} while train/loss was still "
                f"falling ({format_value(c.evidence.get('train_loss_before'))} → "
                f"{format_value(c.evidence.get('train_loss_at'))}).")
        if c.cause == "plateau":
            m, mode = c.metric or "the monitored metric", c.mode
            natural = _natural_mode(m) if c.metric else None
            if natural and mode and natural != mode:
                answer = head + (f" The reducer watches {m} in mode='{mode}', but {m} should be "
                                 f"{'maximised' if natural == 'max' else 'minimised'}: each improvement "
                                 f"counted as a bad evaluation. Fix: mode='{natural}'.")
            else:
                ev = c.evidence
                noise = 0.0
                if series:
                    from lrdoctor.logs import canonical

                    name = canonical(m) if c.metric else None
                    if name in series:
                        noise = _noise(_arr(series[name])[1])
                answer = head + (f" The decision was taken on {m} (mode='{mode}'), not on the training "
                                 f"loss: {m} had not improved on its best for {ev.get('num_bad')} "
                                 f"evaluations (patience {ev.get('patience')}).")
                answer += _noise_advice(m, noise, ev.get("threshold", 0.0) or 0.0,
                                        ev.get("threshold_mode", "abs"), ev.get("best"), ev.get("patience"))
        else:
            answer = head + " The schedule decays the LR with the step count, whatever the loss does."
    elif reduced:
        monitors = {c.metric for c in reduced if c.cause == "plateau" and c.metric}
        natural_bad = [m for m in monitors if _natural_mode(m) and any(
            c.mode != _natural_mode(m) for c in reduced if c.metric == m)]
        if natural_bad:
            m = natural_bad[0]
            answer = (f"The LR was reduced on {m} in mode='{next(c.mode for c in reduced if c.metric == m)}', "
                      f"but {m} should be {'maximised' if _natural_mode(m) == 'max' else 'minimised'}: "
                      f"improvements count as bad evaluations. Fix: mode='{_natural_mode(m)}'.")
        elif monitors:
            answer = (f"Every reduction was decided on {', '.join(sorted(monitors))}, not on the "
                      "training loss" + ("" if series else " (pass the training log to check the "
                                           "training loss at each reduction)") + ".")
    return Attribution(changes=changes, answer=answer, unit=step_unit)


def unit_of(c: Change, unit: str) -> str:
    return _at(c.step, unit)

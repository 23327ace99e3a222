"""Machine-applicable fixes: each finding's ``changes``, computed from its evidence.

A change is a small dict of training knobs from one vocabulary (:data:`KNOBS`, documented in
docs/repair.md); a finding carries alternatives, the one expected to help most first.
:func:`lrdoctor.repair` applies them one at a time and retrains. Values come from the log:

- a new learning rate is the LR finder's suggestion when the log's meta holds one
  (``meta["lr_suggestion"]``), else the LR at the step where the loss broke divided by ``k``:
  ``k = 100`` when the loss broke within the first 2% of the run (far past the edge), else 10;
- for a crawl, the LR times ``clip(3 / drop, 10, 1000)``, ``drop`` the fraction by which the
  training loss fell (in the linear regime a loss that moved 1% needs about 300x the step to
  make a healthy run's drop within a third of the run);
- label smoothing for noisy labels is the noise rate the accuracies imply: a model that does not
  memorize scores ``a_train = (1 - p) * a_val + p / C`` on labels replaced with probability p,
  so ``p = (a_val - a_train) / (a_val - 1 / C)``;
- weight decay for overfitting is ``gap / (lr * steps)``: the decay that shrinks the weights by
  ``exp(-gap)`` over the run, ``gap`` the relative train/val loss gap at the end;
- warm-up steps are ``clip(2 * spike_step, 5% of the run, 25% of the run)``: twice as long as
  it took the loss to spike, within the usual 1-25% of the steps;
- the plateau mode is the monitored metric's natural direction (``max`` for accuracy);
- an early-stopping epoch budget is the epoch of the best validation loss;
- a wider model for a run whose loss flattened high (underfitting that is not a crawl):
  ``width`` times ``k = clip(2^ceil(log2(30 * n_train / n_params)), 4, 64)``, written ``"x<k>"``
  (:func:`lrdoctor.healing.apply_change` multiplies it into the config's width): a healthy net
  of the corpus carries 14-30 parameters per training example, and the parameter count grows
  at least linearly with the width; ``n_train`` is the steps per epoch times the logged batch
  size, and ``k = 16`` when the log lacks either;
- a batch-size change that raises the batch keeps the number of optimizer steps: ``epochs``
  times ``new / old`` batch (a run of one epoch at batch 4 becomes 4 epochs at batch 16).

Pure (numpy + stdlib): no framework is imported here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrdoctor.doctor._context import Context, first_bad, tail
from lrdoctor.doctor._finding import Finding

__all__ = ["KNOBS", "Knob", "attach", "changes_for", "validate_change", "width_factor"]


@dataclass(frozen=True)
class Knob:
    """One training knob of the repair vocabulary: its type, meaning and the values random
    repair draws from (``choices``)."""

    name: str
    type: str
    meaning: str
    choices: tuple[Any, ...]


#: The repair vocabulary (stable; docs/repair.md lists it with the same words).
KNOBS: dict[str, Knob] = {k.name: k for k in (
    Knob("lr", "float > 0", "peak learning rate: the constant LR, or the value {lr} in "
         "`schedule`", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)),
    Knob("schedule", "str | None", "LR schedule spec in lrdoctor's spec language; {lr} stands for "
         "`lr` and {steps} for the optimizer steps after warm-up; None = constant `lr`",
         (None, "cosine({lr}, end=0, steps={steps})", "linear({lr}, end=0, steps={steps})")),
    Knob("warmup_steps", "int >= 0", "linear warm-up from 0 to the schedule's first LR over this "
         "many optimizer steps, prepended to `schedule`", (0, 20, 50, 100)),
    Knob("weight_decay", "float >= 0", "weight decay of the optimizer (decoupled for AdamW)",
         (0.0, 1e-4, 1e-3, 1e-2)),
    Knob("grad_clip", "float > 0 | None", "clip the global gradient L2 norm to this before each "
         "step; None = no clipping", (None, 0.5, 1.0, 5.0)),
    Knob("batch_size", "int >= 1", "training examples per optimizer step", (16, 32, 64, 128)),
    Knob("epochs", "int >= 1", "passes over the training data", (2, 4, 8, 16)),
    Knob("optimizer", "str", "optimizer family: 'sgd', 'momentum' (SGD 0.9), 'adam', 'adamw', "
         "'rmsprop' (a train_fn may read 'sgd' with momentum)", ("sgd", "adam", "adamw")),
    Knob("init", "str", "weight initialisation: 'default' (the framework's), 'kaiming', "
         "'xavier', 'normal:<std>'; every choice but 'default' sets biases to zero",
         ("default", "kaiming", "xavier")),
    Knob("activation", "str", "hidden-layer activation: 'relu', 'leaky_relu', 'gelu', 'tanh', "
         "'sigmoid'", ("relu", "leaky_relu", "gelu", "tanh")),
    Knob("dropout", "float in [0, 1)", "dropout probability of the model's dropout layers",
         (0.0, 0.1, 0.3, 0.5)),
    Knob("normalize_inputs", "bool", "standardize inputs with the training set's mean and std",
         (True, False)),
    Knob("shuffle", "bool", "reshuffle the training data every epoch", (True, False)),
    Knob("output_activation", "str | None", "what the model applies to its outputs before the "
         "loss: None (raw logits), 'softmax', 'sigmoid'", (None, "softmax")),
    Knob("plateau_mode", "str | None", "the plateau scheduler's mode: 'min', 'max' or 'auto' "
         "(from the metric's name); None = the train_fn's default", ("min", "max", "auto")),
    Knob("plateau_monitor", "str | None", "the metric the plateau scheduler watches "
         "('val_loss', 'val_accuracy'); None = the train_fn's default",
         ("val_loss", "val_accuracy")),
    Knob("label_smoothing", "float in [0, 1)", "label smoothing of the cross-entropy loss",
         (0.0, 0.05, 0.1, 0.2)),
    Knob("width", "int >= 1 | 'x<k>'", "units (or channels) of every hidden layer; a string "
         "'x<k>' multiplies the config's own int width by k", (16, 64, 256)),
)}

_TYPES: dict[str, Callable[[Any], bool]] = {
    "lr": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
    and math.isfinite(v),
    "schedule": lambda v: v is None or isinstance(v, str),
    "warmup_steps": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "weight_decay": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
    "grad_clip": lambda v: v is None or (isinstance(v, (int, float)) and v > 0),
    "batch_size": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    "epochs": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    "optimizer": lambda v: v in ("sgd", "momentum", "adam", "adamw", "rmsprop"),
    "init": lambda v: isinstance(v, str) and bool(v),
    "activation": lambda v: v in ("relu", "leaky_relu", "gelu", "tanh", "sigmoid", "identity"),
    "dropout": lambda v: isinstance(v, (int, float)) and 0 <= v < 1,
    "normalize_inputs": lambda v: isinstance(v, bool),
    "shuffle": lambda v: isinstance(v, bool),
    "output_activation": lambda v: v in (None, "softmax", "sigmoid"),
    "plateau_mode": lambda v: v in (None, "min", "max", "auto"),
    "plateau_monitor": lambda v: v is None or isinstance(v, str),
    "label_smoothing": lambda v: isinstance(v, (int, float)) and 0 <= v < 1,
    "width": lambda v: (isinstance(v, int) and not isinstance(v, bool) and v >= 1)
    or (isinstance(v, str) and width_factor(v) is not None),
}


def width_factor(value: Any) -> float | None:
    """The factor of a relative ``width`` value ``'x<k>'`` (k > 0), else None.

    >>> width_factor("x16"), width_factor(64), width_factor("x0")
    (16.0, None, None)
    """
    if not isinstance(value, str) or not value.startswith("x"):
        return None
    try:
        k = float(value[1:])
    except ValueError:
        return None
    return k if k > 0 and math.isfinite(k) else None


def validate_change(change: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the knob when ``change`` leaves the vocabulary or its types."""
    for key, value in change.items():
        if key not in KNOBS:
            raise ValueError(f"unknown repair knob {key!r}; knobs: {', '.join(KNOBS)}")
        if not _TYPES[key](value):
            raise ValueError(f"repair knob {key} must be {KNOBS[key].type}, got {value!r}")


# ---- what the log says about the run --------------------------------------------------------
def _sig(x: float) -> float:
    """Three significant digits: 0.0123456 -> 0.0123."""
    return float(f"{x:.3g}")


def _lr_at(ctx: Context, step: float | None) -> float | None:
    lr = ctx.lr
    if lr is not None and len(lr.finite):
        s = lr.finite
        if step is None:
            return float(np.max(s.values))
        i = int(np.searchsorted(s.steps, step, side="right")) - 1
        v = float(s.values[max(i, 0)])
        return v if v > 0 else float(np.max(s.values))
    groups = ctx.meta.get("param_groups") or []
    lrs = [float(g["lr"]) for g in groups if isinstance(g.get("lr"), (int, float))]
    return max(lrs) if lrs and max(lrs) > 0 else None


def _suggested(ctx: Context) -> float | None:
    v = ctx.meta.get("lr_suggestion")
    return float(v) if isinstance(v, (int, float)) and v > 0 and math.isfinite(v) else None


def _break_step(ctx: Context, finding: Finding) -> float | None:
    if finding.steps:
        return float(min(finding.steps))
    raw = ctx.train_raw
    return first_bad(raw) if raw is not None else None


def _total_steps(ctx: Context) -> int:
    return max(1, round(ctx.end - ctx.start) + 1)


def _epochs(ctx: Context) -> int | None:
    for s in (ctx.train_raw, ctx.val):
        known = s.epochs[np.isfinite(s.epochs)] if s is not None and s.epochs is not None else ()
        if len(known):
            return int(known.max()) + (1 if known.min() == 0 else 0)
    if ctx.unit == "epoch":
        return round(ctx.end) + (1 if ctx.start == 0 else 0)
    return None


def _steps_per_epoch(ctx: Context) -> float | None:
    n = _epochs(ctx)
    if ctx.unit == "epoch":
        return 1.0
    return _total_steps(ctx) / n if n else None


def _overshoot(ctx: Context, finding: Finding) -> float:
    """How far below the edge to go: 100 when the loss broke within the first 2% of the run
    (the LR is far past the edge), else 10."""
    step = _break_step(ctx, finding)
    if step is None:
        return 10.0
    return 100.0 if (step - ctx.start) <= 0.02 * _total_steps(ctx) else 10.0


def _lower(ctx: Context, finding: Finding, factor: float | None = None) -> float | None:
    """The finder's suggestion when it is below the LR of the break, else that LR / factor
    (default :func:`_overshoot`)."""
    lr = _lr_at(ctx, _break_step(ctx, finding))
    sug = _suggested(ctx)
    if sug is not None and (lr is None or sug < lr):
        return _sig(sug)
    k = _overshoot(ctx, finding) if factor is None else factor
    return _sig(lr / k) if lr else None


def _drop(ctx: Context, finding: Finding) -> float | None:
    """The fraction by which the training loss fell (the finding's own figure when it has one)."""
    d = finding.data.get("drop")
    if isinstance(d, (int, float)) and math.isfinite(d):
        return float(d)
    t = ctx.train
    if t is None or len(t) < 4:
        return None
    k = max(1, len(t) // 10)
    first, last = float(np.median(t.values[:k])), float(np.median(t.values[-k:]))
    return (first - last) / abs(first) if first else None


def _crawl_factor(ctx: Context, finding: Finding) -> float:
    """``clip(3 / drop, 10, 1000)``: in the linear regime the loss falls in proportion to the
    LR, and a healthy run makes most of its drop (~100%) within the first third of its steps,
    so a loss that fell 1% over the whole run needs about 300x the step."""
    d = _drop(ctx, finding)
    if d is None or d <= 0:
        return 100.0 if d is not None else 10.0
    return float(np.clip(3.0 / d, 10.0, 1000.0))


def _raise(ctx: Context, factor: float = 10.0) -> float | None:
    lr = _lr_at(ctx, None)
    sug = _suggested(ctx)
    if sug is not None and (lr is None or sug > lr):
        return _sig(sug)
    return _sig(lr * factor) if lr else None


def _warmup(ctx: Context, finding: Finding) -> int:
    total = _total_steps(ctx)
    spike = _break_step(ctx, finding) or 0.05 * total
    spike -= ctx.start
    return int(np.clip(round(2 * spike), max(1, round(0.05 * total)), max(1, round(0.25 * total))))


def _decay(ctx: Context) -> str:
    return "cosine({lr}, end=0, steps={steps})"


# ---- one function per finding code -----------------------------------------------------------
def _with_lr(lr: float | None, *others: dict[str, Any]) -> list[dict[str, Any]]:
    return ([{"lr": lr}] if lr else []) + list(others)


def _too_high(ctx: Context, f: Finding) -> list[dict[str, Any]]:
    lr = _lower(ctx, f)
    out = _with_lr(lr)
    if lr:
        out.append({"lr": lr, "warmup_steps": _warmup(ctx, f)})
        out.append({"lr": _sig(lr / 10)})
    out.append({"grad_clip": 1.0})
    return out


def _too_low(ctx: Context, f: Finding) -> list[dict[str, Any]]:
    k = _crawl_factor(ctx, f)
    lr = _raise(ctx, k)
    out = _with_lr(lr)
    if lr:
        if k > 10:  # the estimate may overshoot: a third of it next, then 10x it
            out.append({"lr": _sig(lr / 3)})
        out.append({"lr": _sig(lr * 10)})
    if ctx.optimizer in (None, "SGD"):
        out.append({"optimizer": "adam", "lr": 1e-3})
    return out


def _oscillation(ctx: Context, f: Finding) -> list[dict[str, Any]]:
    lr = _lr_at(ctx, None)
    out = [{"lr": _sig(lr / 3)}] if lr else []
    out.append({"schedule": _decay(ctx)})
    if lr:
        out.append({"lr": _sig(lr / 10)})
    return out


def _exploding(ctx: Context, f: Finding) -> list[dict[str, Any]]:
    lr = _lower(ctx, f)
    return _with_lr(lr, {"grad_clip": 1.0}) + ([{"lr": lr, "grad_clip": 1.0}] if lr else [])


def _spiked(ctx: Context) -> bool:
    """The training loss rose above twice its first value or went non-finite: units died in
    a blow-up, not from their initialisation."""
    raw = ctx.train_raw
    if raw is None or len(raw) < 2:
        return False
    v = raw.values
    return bool((~np.isfinite(v)).any() or np.nanmax(v) > 2 * abs(float(v[0])))


def _dead_relu(ctx: Context, f: Finding) -> list[dict[str, Any]]:
    """Killed by a blow-up: a lower lr first; else the init (a negative bias), then LeakyReLU."""
    lr = _lower(ctx, f)
    rest = [{"init": "kaiming"}, {"activation": "leaky_relu"}]
    return _with_lr(lr, *rest) if _spiked(ctx) else rest + _with_lr(lr)


def _warmup_missing(ctx: Context, f: Finding) -> list[dict[str, Any]]:
    w = _warmup(ctx, f)
    lr = _lr_at(ctx, None)
    out: list[dict[str, Any]] = [{"warmup_steps": w}]
    if lr:
        out += [{"warmup_steps": w, "lr": _sig(lr / 3)}, {"lr": _sig(lr / 10)}]
    return out


def _plateau_monitor(ctx: Context, f: Finding) -> list[dict[str, Any]]:
    from lrdoctor.errors import PlateauError
    from lrdoctor.plateau._state import infer_mode

    for event in ctx.log.events:  # a logged scheduler setting names the metric and the mode
        monitor, mode = event.data.get("monitor"), event.data.get("mode")
        if isinstance(monitor, str) and mode in ("min", "max"):
            name = monitor.split("/")[-1]
            try:
                natural = infer_mode(name)
            except PlateauError:
                continue
            if natural != mode:
                return [{"plateau_mode": natural},
                        {"plateau_monitor": "val_loss", "plateau_mode": "min"},
                        {"plateau_mode": "auto"}]
    return [{"plateau_monitor": "val_loss", "plateau_mode": "min"},
            {"plateau_mode": "auto"},
            {"plateau_monitor": "val_accuracy", "plateau_mode": "max"}]


def _gap_decay(ctx: Context) -> float:
    """``clip(gap / (lr * steps), 1e-4, 0.1)``: the weight decay whose shrinkage over the run,
    ``exp(-lr * wd * steps)``, is ``exp(-gap)``; ``gap = (val - train) / val``, the final
    losses' relative gap (1e-3 when the log lacks them)."""
    lr, val, train = _lr_at(ctx, None), ctx.val, ctx.train
    if not lr or val is None or train is None or not len(val) or not len(train):
        return 1e-3
    v, t = float(val.values[-1]), float(np.median(tail(train, 0.1)))
    if not (math.isfinite(v) and math.isfinite(t)) or v <= 0:
        return 1e-3
    gap = float(np.clip((v - t) / v, 0.05, 1.0))
    return _sig(float(np.clip(gap / (lr * _total_steps(ctx)), 1e-4, 0.1)))


def _overfitting(ctx: Context, f: Finding) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    val, spe = ctx.val, _steps_per_epoch(ctx)
    if val is not None and len(val) and spe:
        best = float(val.steps[int(np.argmin(val.values))])
        if val.epochs is not None and np.isfinite(val.epochs).all():
            epoch = int(val.epochs[int(np.argmin(val.values))]) + (
                1 if np.nanmin(val.epochs) == 0 else 0)
        else:
            epoch = math.ceil((best - ctx.start + 1) / spe)
        total = _epochs(ctx)
        if epoch >= 1 and (total is None or epoch < total):
            out.append({"epochs": int(epoch)})
    out += [{"weight_decay": _gap_decay(ctx)}, {"dropout": 0.3}]
    return out


def _over_regularization(ctx: Context, f: Finding) -> list[dict[str, Any]]:
    dropout = max(ctx.meta.get("dropout") or [0.0])
    groups = ctx.meta.get("param_groups") or []
    wd = max((float(g.get("weight_decay") or 0.0) for g in groups), default=0.0)
    drop_fix, wd_fix = {"dropout": 0.1}, {"weight_decay": _sig(min(1e-4, wd / 100)) if wd else 0.0}
    if dropout >= 0.5 and not (wd and wd >= 0.3):
        return [drop_fix, wd_fix, {"dropout": 0.0, "weight_decay": 0.0}]
    if wd:
        return [wd_fix, drop_fix, {"dropout": 0.0, "weight_decay": 0.0}]
    return [drop_fix, {"weight_decay": 0.0}, {"dropout": 0.0, "weight_decay": 0.0}]


def _n_train(ctx: Context) -> float | None:
    """Training examples per epoch: steps per epoch times the logged batch size (or None)."""
    spe, log = _steps_per_epoch(ctx), ctx.log
    if not spe or ctx.unit == "epoch" or not log.has("batch/size"):
        return None
    batch = float(np.median(log.get("batch/size").values))
    return spe * batch if math.isfinite(batch) and batch >= 1 else None


def _width_factor(ctx: Context) -> int:
    """``clip(2^ceil(log2(30 * n_train / n_params)), 4, 64)``; 16 without both counts."""
    n_params, n_train = ctx.meta.get("n_params"), _n_train(ctx)
    if not isinstance(n_params, (int, float)) or n_params <= 0 or not n_train:
        return 16
    return int(np.clip(2 ** math.ceil(math.log2(max(30 * n_train / n_params, 1.0))), 4, 64))


def _underfitting(ctx: Context, f: Finding) -> list[dict[str, Any]]:
    """A loss that barely moved (fell < 5%) is a crawl first: the lr as for lr-too-low; a loss
    that fell and flattened high is a model too small: a wider one (:func:`_width_factor`);
    then longer training, a 3x lr, no regularization."""
    n = _epochs(ctx)
    lr = _lr_at(ctx, None)
    d = _drop(ctx, f)
    out: list[dict[str, Any]] = []
    if lr and d is not None and d < 0.05:
        out += _too_low(ctx, f)[:2]
    else:
        out.append({"width": f"x{_width_factor(ctx)}"})
    out += [{"epochs": 2 * n}] if n else []
    if lr:
        out.append({"lr": _sig(lr * 3)})
    out.append({"weight_decay": 0.0, "dropout": 0.0})
    return out


def _noise_rate(ctx: Context) -> float | None:
    """The label-replacement rate the accuracies imply, ``(a_val - a_train) / (a_val - 1/C)``
    (final tenth medians), within [0.05, 0.9]; None without both accuracies."""
    if ctx.train_acc is None or ctx.val_acc is None or not len(ctx.train_acc) \
            or not len(ctx.val_acc):
        return None
    a_tr = float(np.median(tail(ctx.train_acc, 0.1)))
    a_va = float(np.median(tail(ctx.val_acc, 0.1)))
    chance = 1.0 / ctx.n_classes if ctx.n_classes else 0.0
    if not (math.isfinite(a_tr) and math.isfinite(a_va)) or a_va - chance <= 0.05:
        return None
    return float(np.clip((a_va - a_tr) / (a_va - chance), 0.05, 0.9))


def _label_noise(ctx: Context, f: Finding) -> list[dict[str, Any]]:
    """Smoothing that matches the estimated noise rate (uniform replacement with rate p is
    label smoothing p), then half of it; the fixed 0.1 / 0.2 without accuracies."""
    p = _noise_rate(ctx)
    if p is None:
        return [{"label_smoothing": 0.1}, {"label_smoothing": 0.2}]
    def grid(x: float) -> float:  # to 0.1, ties down: a re-estimate 0.52 -> 0.55 is one value
        return max(0.1, math.floor(10 * x + 0.4) / 10)

    return [{"label_smoothing": grid(p)}, {"label_smoothing": grid(p / 2)}]


def _still_learning(ctx: Context, f: Finding) -> list[dict[str, Any]]:
    n = _epochs(ctx)
    return [{"epochs": 2 * n}] if n else []


def _plateau(ctx: Context, f: Finding) -> list[dict[str, Any]]:
    return [{"schedule": _decay(ctx)}]


def _batch_size(ctx: Context, f: Finding) -> list[dict[str, Any]]:
    est = f.data.get("noise_scale")
    log = ctx.log
    if not isinstance(est, (int, float)) or not log.has("batch/size"):
        return []
    batch = float(np.median(log.get("batch/size").values))
    if not (math.isfinite(est) and est > 0 and math.isfinite(batch) and batch >= 1):
        return []
    target = int(2 ** round(math.log2(float(np.clip(est, batch / 4, batch * 4)))))
    if target == int(batch) or target < 1:
        return []
    lr = _lr_at(ctx, None)
    scaled = {"batch_size": target, **({"lr": _sig(lr * target / batch)} if lr else {})}
    n = _epochs(ctx)
    if target > batch and n:  # keep the number of optimizer steps
        return [{**scaled, "epochs": max(1, math.ceil(n * target / batch))}, scaled,
                {"batch_size": target}]
    return [scaled, {"batch_size": target}]


_TABLE: dict[str, Callable[[Context, Finding], list[dict[str, Any]]]] = {
    "nonfinite": _too_high,
    "diverging": _too_high,
    "lr-too-high": _too_high,
    "lr-too-low": _too_low,
    "oscillation": _oscillation,
    "exploding-gradients": _exploding,
    "vanishing-gradients": lambda ctx, f: [{"activation": "relu", "init": "kaiming"},
                                           {"init": "kaiming"}, {"optimizer": "adam", "lr": 1e-3}],
    "dead-relu": _dead_relu,
    "saturated-activations": lambda ctx, f: [{"init": "default"}, {"normalize_inputs": True},
                                             {"activation": "relu"}],
    "bad-initialization": lambda ctx, f: [{"init": "default"}, {"init": "kaiming"}],
    "unnormalized-input": lambda ctx, f: [{"normalize_inputs": True}],
    "unshuffled-data": lambda ctx, f: [{"shuffle": True}],
    "label-noise": _label_noise,
    "loss-activation-mismatch": lambda ctx, f: [{"output_activation": None}],
    "missing-warmup": _warmup_missing,
    "plateau-monitor-mismatch": _plateau_monitor,
    "overfitting": _overfitting,
    "over-regularization": _over_regularization,
    "underfitting": _underfitting,
    "still-learning": _still_learning,
    "plateau": _plateau,
    "batch-size": _batch_size,
}
#: Codes without a machine-applicable fix: the data or the evaluation split must change.
NO_CHANGES = ("healthy", "data-problem", "distribution-shift")


def changes_for(finding: Finding, ctx: Context) -> tuple[dict[str, Any], ...]:
    """The alternatives for ``finding``, best first, duplicates removed; () when none applies.

    A change whose value a damaged log made invalid (an lr of inf from an lr of 1e308) is left
    out rather than raised: a diagnosis never fails for its fixes.
    """
    rule = _TABLE.get(finding.code)
    if rule is None:
        return ()
    out: list[dict[str, Any]] = []
    for change in rule(ctx, finding):
        try:
            validate_change(change)
        except ValueError:
            continue
        if change and change not in out:
            out.append(change)
    return tuple(out)


def attach(findings: Sequence[Finding], ctx: Context) -> list[Finding]:
    """``findings`` with ``changes`` filled in from :func:`changes_for`."""
    return [f if f.changes else dataclasses.replace(f, changes=changes_for(f, ctx))
            for f in findings]

"""Rules on what only a live monitor records: gradients per layer, activations, inputs, setup.

Each rule says in ``Diagnosis.not_checked`` why it could not run when its series are missing
(a Keras CSV has no gradients). Thresholds: ``T.NAME``, registered in ``_thresholds`` (docs/doctor.md).
"""

from __future__ import annotations

import math

import numpy as np

from lrdoctor.doctor._context import Context, blocks, head
from lrdoctor.doctor._curves import _f, _levels
from lrdoctor.doctor._finding import Finding
from lrdoctor.doctor._thresholds import T

__all__ = ["RULES"]



def _needs_monitor(ctx: Context, code: str, what: str) -> None:
    ctx.skip(code, f"needs {what}, which lrdoctor.torch.Monitor records and this "
                   f"{ctx.log.format} log does not hold")


def exploding_gradients(ctx: Context) -> list[Finding]:
    g = ctx.grad
    if g is None or len(g) < 5:
        _needs_monitor(ctx, "exploding-gradients", "the gradient norm (grad_norm)")
        return []
    gv = g.values
    finite = np.isfinite(gv)
    early = float(np.median(head(g.finite, 0.1, minimum=3))) if finite.any() else 0.0
    if not finite.all():
        i = int(np.argmax(~finite))
        return [_f("exploding-gradients", "critical",
                   f"the gradient norm became NaN/Inf at {ctx.fmt_step(g.steps[i])} "
                   f"(early median {early:.3g})",
                   "Clip gradients (clip_grad_norm_(…, 1.0)) and lower the learning rate.",
                   [g.steps[i]], 0.8)]
    peak_i = int(np.argmax(gv))
    if early > 0 and gv[peak_i] > T.EXPLODE_FACTOR * early:
        return [_f("exploding-gradients", "warning",
                   f"the gradient norm reached {gv[peak_i]:.3g} at {ctx.fmt_step(g.steps[peak_i])}, "
                   f"{gv[peak_i] / early:.0f}x its early median {early:.3g}",
                   "Clip gradients (clip_grad_norm_(…, 1.0)), lower the learning rate or add "
                   "normalization layers.", [g.steps[peak_i]], 0.7)]
    return _forward_growth(ctx, g)


def _act_growth(ctx: Context) -> tuple[float, int, str, str] | None:
    """(per-layer growth of the activation std at the first measurement, the number of
    activation layers, the first and the last of them): ``(s_last / s_first) ** (1 / (k - 1))``
    over the k >= 2 activation modules the Monitor measured, in model order."""
    group = ctx.log.group("act_std")
    order = [n for n in (ctx.meta.get("activations") or []) if n in group] or sorted(group)
    firsts = [(n, float(group[n].finite.values[0])) for n in order if len(group[n].finite)]
    if len(firsts) < 2 or firsts[0][1] <= 0 or firsts[-1][1] <= 0:
        return None
    growth = (firsts[-1][1] / firsts[0][1]) ** (1.0 / (len(firsts) - 1))
    return growth, len(firsts), firsts[0][0], firsts[-1][0]


def _forward_growth(ctx: Context, g) -> list[Finding]:
    """exploding-gradients from the init: the activation std grows layer by layer at the first
    step and the gradient norm starts far above its later level.

    ``growth = (s_last / s_first) ** (1 / (k - 1))`` (the Monitor's act_std at step 0, k >= 2
    activation layers) above EXPLODE_GROWTH: a fan-in-scaled init keeps it near 1 (Kaiming:
    0.6-1.45 in 1,200 random 2-4 layer ReLU MLPs of width 16-256; torch's default init ~0.45),
    weights scaled x4 give ~1.6; and ``max(first 10% of grad_norm) / median(second half)``
    above EXPLODE_EARLY: the backward signal was that much larger before the optimizer shrank
    the weights. Both ratios are scale-free; sampled gradient rows suffice (a max and a median).
    """
    ag = _act_growth(ctx)
    if ag is None or len(g.finite) < 10:
        return []
    growth, k, first, last = ag
    gv = g.finite.values
    late = float(np.median(gv[len(gv) // 2:]))
    start = float(np.max(head(g.finite, 0.1, minimum=3)))
    fall = start / max(late, 1e-30)
    if growth <= T.EXPLODE_GROWTH or fall <= T.EXPLODE_EARLY:
        return []
    return [_f("exploding-gradients", "warning",
               f"at the first step the activation std grows {growth:.2f}x per layer from "
               f"{first} to {last} ({k} activation layers; a fan-in-scaled init keeps it near "
               f"1), and the gradient norm started at {start:.3g}, {fall:.0f}x its median "
               f"{late:.3g} over the second half: the weights are scaled up, so every layer "
               "amplifies the signal forward and the gradient backward",
               "Re-initialise with the default (Kaiming/Xavier) scale, or add normalization "
               "layers; clip gradients (clip_grad_norm_(…, 1.0)) meanwhile.",
               [float(g.finite.steps[0])], 0.65, growth=growth, grad_fall=fall)]


def _early_ratio(first, last) -> tuple[float, float, float] | None:
    """(step, first / last layer gradient norm at their first common measurement, the same
    ratio at their last common one)."""
    a, b = first.finite, last.finite
    common = np.intersect1d(a.steps, b.steps)
    if not len(common):
        return None
    at = [(float(np.asarray(a.values)[a.steps == s][0]), float(np.asarray(b.values)[b.steps == s][0]))
          for s in (common[0], common[-1])]
    if at[0][1] <= 0:
        return None
    return float(common[0]), at[0][0] / at[0][1], at[1][0] / max(at[1][1], 1e-30)


#: the low end of the std * sqrt(fan_in) range the Monitor's init check states (0.5-1.5): a
#: definition, not a tuned cut-off (the check itself flags below 0.05 and above 4)
_FAN_IN_LOW = 0.5


def _small_init(ctx: Context) -> float | None:
    """The largest fan-in gain the Monitor's init check flagged, when every flagged layer is
    scaled below the fan-in range yet not zero (a shrunk init; zeros and huge ones are not)."""
    for e in ctx.log.events:
        gains = e.data.get("gains") if e.code == "bad-initialization" else None
        if isinstance(gains, dict) and gains:
            vals = [float(v) for v in gains.values() if isinstance(v, (int, float))]
            if vals and min(vals) > 0 and max(vals) < _FAN_IN_LOW:
                return max(vals)
    return None


def vanishing_gradients(ctx: Context) -> list[Finding]:
    """The first layer's gradient norm far below the last layer's.

    ``ratio = median |g_first| / median |g_last|`` over the run below VANISH_RATIO (3 or more
    layers), or the same ratio at the first measurement in (0, VANISH_EARLY): the backward
    signal fades at the start (a tiny init, saturating activations), even where an adaptive
    optimizer grows the weights later. When the Monitor's init check flagged weights scaled
    below the fan-in range, the evidence names them as the source (and that bad-initialization
    finding is shown as this one, ``data["shown_as"]``).
    """
    layers = ctx.log.group("grad_norm")
    order = ctx.meta.get("layers") or []
    if len(layers) >= 2:
        names = [n for n in order if n in layers] or sorted(layers)
        med = {n: float(np.median(layers[n].finite.values)) if len(layers[n].finite) else math.nan
               for n in names}
        weights = [n for n in names if math.isfinite(med[n])]
        if len(weights) >= 2:
            first, last = weights[0], weights[-1]
            ratio = med[first] / max(med[last], 1e-30)
            small = _small_init(ctx)
            init_txt = (f"; the Monitor's init check found the weights at up to {small:.2g}x "
                        "the fan-in scale, so each layer shrinks the backward signal"
                        if small is not None else "")
            if ratio < T.VANISH_RATIO and len(weights) >= 3:
                return [_f("vanishing-gradients", "warning",
                           f"the first layer ({first}) gets {ratio:.2g}x the gradient of the last "
                           f"({last}): median norms {med[first]:.2g} vs {med[last]:.2g}" + init_txt,
                           "Use ReLU-family activations, a He/Xavier initialisation, "
                           "normalization layers or residual connections.",
                           [ctx.start], 0.7, ratio=ratio)]
            early = _early_ratio(layers[first], layers[last])
            if early is not None and 0 < early[1] < T.VANISH_EARLY:
                step, r0, r_end = early
                return [_f("vanishing-gradients", "warning",
                           f"at the first measurement ({ctx.fmt_step(step)}) the first layer "
                           f"({first}) got {r0:.2g}x the gradient of the last ({last}); "
                           f"{r_end:.2g}x at the end" + init_txt,
                           ("Re-initialise with the default (Kaiming/Xavier) scale." if small
                            is not None else "Use ReLU-family activations, a He/Xavier "
                            "initialisation, normalization layers or residual connections."),
                           [step], 0.65, ratio=r0, ratio_end=r_end)]
            return []
    g = ctx.grad
    if g is None:
        _needs_monitor(ctx, "vanishing-gradients", "per-layer gradient norms")
        return []
    late = g.finite.values[len(g.finite) // 2:]
    if len(late) and float(np.median(late)) < T.VANISH_ABS:
        return [_f("vanishing-gradients", "warning",
                   f"the gradient norm is {float(np.median(late)):.2g} over the second half",
                   "Check the activations and the initialisation.", [ctx.start], 0.5)]
    return []


def _layer_stat(ctx: Context, prefix: str) -> dict[str, float]:
    out = {}
    for name, s in ctx.log.group(prefix).items():
        v = s.finite.values
        if len(v):
            out[name] = float(np.median(v[len(v) // 2:])) if len(v) > 2 else float(v[-1])
    return out


def dead_relu(ctx: Context) -> list[Finding]:
    stats = _layer_stat(ctx, "dead_frac")
    if not stats:
        if ctx.log.format == "lrdoctor-jsonl":
            ctx.skip("dead-relu", "the model has no ReLU-family activation modules "
                     "(functional activations cannot be hooked)")
        else:
            _needs_monitor(ctx, "dead-relu", "activation statistics (dead_frac/<layer>)")
        return []
    worst = max(stats, key=stats.get)
    if stats[worst] > T.DEAD_FRAC:
        s = ctx.log.get(f"dead_frac/{worst}")
        over = s.values > T.DEAD_FRAC
        step = float(s.steps[np.argmax(over)]) if over.any() else ctx.start
        lv = _levels(ctx)
        trains = lv is not None and lv[2] < T.HIGH_FLOOR * lv[0]  # the loss still fell well
        return [_f("dead-relu", "info" if trains else "warning",
                   f"{stats[worst]:.0%} of the units of {worst} output zero for whole batches"
                   + (f" (also {', '.join(f'{k} {v:.0%}' for k, v in stats.items() if k != worst and v > T.DEAD_FRAC)})"
                      if sum(v > T.DEAD_FRAC for v in stats.values()) > 1 else "")
                   + (f"; the training loss still fell to {lv[2] / max(lv[0], 1e-12):.0%} of its "
                      "start, so the live units carry the model: wasted capacity, not a fault"
                      if trains else ""),
                   "Lower the learning rate, use LeakyReLU/GELU, and initialise biases at zero "
                   "(He init for the weights).", [step], 0.5 + 0.4 * stats[worst])]
    return []


def saturated_activations(ctx: Context) -> list[Finding]:
    stats = _layer_stat(ctx, "saturation")
    if not stats:
        if ctx.log.format == "lrdoctor-jsonl":
            ctx.skip("saturated-activations", "the model has no sigmoid/tanh activation modules")
        else:
            _needs_monitor(ctx, "saturated-activations",
                           "activation statistics (saturation/<layer>)")
        return []
    worst = max(stats, key=stats.get)
    fix = ("Normalize the inputs, scale the initialisation down, add normalization layers, or "
           "switch sigmoid/tanh to ReLU-family activations.")
    if stats[worst] > T.SATURATED:
        s = ctx.log.get(f"saturation/{worst}")
        return [_f("saturated-activations", "warning",
                   f"{stats[worst]:.0%} of the outputs of {worst} sit within 1% of the "
                   "activation's limits", fix, [float(s.steps[0])], 0.5 + 0.4 * stats[worst])]
    # at a fan-in-scaled init almost no unit starts within 1% of its limits (sigmoid: |x| >
    # 4.6, tanh: |x| > 2.6); a share of them there at the first measurement is the setup's
    first = {n: (float(s.finite.steps[0]), float(s.finite.values[0]))
             for n, s in ctx.log.group("saturation").items() if len(s.finite)}
    if first:
        name = max(first, key=lambda n: first[n][1])
        step, share = first[name]
        if share > T.SATURATED_INIT:
            return [_f("saturated-activations", "warning",
                       f"{share:.1%} of the outputs of {name} sat within 1% of the activation's "
                       f"limits at the first measurement ({ctx.fmt_step(step)}; "
                       f"{stats.get(name, share):.1%} over the second half): a fan-in-scaled "
                       "init starts almost none there, so the weights or inputs are too large "
                       "for it", fix, [step], 0.45 + 0.4 * share, share_first=share)]
    return []


def unnormalized_input(ctx: Context) -> list[Finding]:
    log = ctx.log
    if not (log.has("input/absmax") or log.has("input/std")):
        _needs_monitor(ctx, "unnormalized-input", "input statistics (pass inputs= to step)")
        return []
    amax = float(np.median(log.get("input/absmax").values)) if log.has("input/absmax") else 0.0
    std = float(np.median(log.get("input/std").values)) if log.has("input/std") else 0.0
    mean = float(np.median(log.get("input/mean").values)) if log.has("input/mean") else 0.0
    # a standardized input (mean ~0, std ~1) with a large max |x| has one rare feature value
    # far out (a pixel almost always 0, scaled by its tiny std), not an unscaled input: a
    # whole-dataset batch always holds it, where the median minibatch does not
    standardized = (std > 0 and abs(mean) <= T.INPUT_SCALED and abs(std - 1.0) <= T.INPUT_SCALED)
    if ((amax > T.INPUT_ABSMAX and not standardized) or std > T.INPUT_STD
            or abs(mean) > T.INPUT_MEAN):
        return [_f("unnormalized-input", "warning",
                   f"input batches have mean {mean:.3g}, std {std:.3g}, max |x| {amax:.3g}",
                   "Standardize the inputs (subtract the training mean, divide by the std; "
                   "images: divide by 255).", [0.0], 0.75)]
    return []


def train_input_noise(ctx: Context) -> list[Finding]:
    """data-problem: the training batches look standardized, then noised, and training does
    no better than validation.

    The Monitor sees training batches only. Inputs standardized on the training set have
    mean ~0 and std ~1; mean within INPUT_SCALED of 0 with a std of TRAIN_NOISE_STD or more
    (below INPUT_STD, where unnormalized-input takes over) is what adding noise of std
    ``sqrt(std^2 - 1)`` after the scaling gives (a training-only augmentation or a pipeline
    bug). It is a warning when the curves agree: the validation loss over the last third at
    most TRAIN_NOISE_VAL times the training loss (the noised training split is the harder one).
    """
    log = ctx.log
    if not (log.has("input/std") and log.has("input/mean")) or ctx.val is None:
        return []
    std = float(np.median(log.get("input/std").values))
    mean = float(np.median(log.get("input/mean").values))
    if not (abs(mean) <= T.INPUT_SCALED and T.TRAIN_NOISE_STD <= std <= T.INPUT_STD):
        return []
    train = ctx.train_epoch if ctx.train_epoch is not None and len(ctx.train_epoch) >= 3 else ctx.train
    if train is None or len(ctx.val) < 3:
        return []
    k = max(1, len(ctx.val) // 3)
    v_end = float(np.median(ctx.val.values[-k:]))
    t_end = float(np.median(train.values[-max(1, len(train) // 3):]))
    ratio = v_end / max(t_end, 1e-12)
    if ratio > T.TRAIN_NOISE_VAL:
        return []
    return [_f("data-problem", "warning",
               f"training batches have mean {mean:.2g} and std {std:.3g}: standardized inputs "
               f"with noise of std ~{math.sqrt(max(std * std - 1.0, 0.0)):.2g} added, and the "
               f"validation loss ends at {ratio:.2f}x the training loss ({v_end:.4g} vs "
               f"{t_end:.4g}): the training split is the harder one",
               "Check the training input pipeline (augmentation strength, noise or a transform "
               "applied to training batches only) against what evaluation sees.", [ctx.start],
               0.6, input_std=std, val_over_train=ratio)]


def unshuffled_labels(ctx: Context) -> list[Finding]:
    log = ctx.log
    if not log.has("batch/label_purity"):
        return []  # the loss-periodicity rule still runs; say nothing here
    purity = log.get("batch/label_purity").values
    modes = log.get("batch/label_mode").values if log.has("batch/label_mode") else np.array([])
    med = float(np.median(purity))
    if med > T.LABEL_PURITY and len(purity) >= 3:
        return [_f("unshuffled-data", "critical" if med > 0.95 else "warning",
                   f"the first {len(purity)} batches are {med:.0%} one label (median), "
                   + (f"labels seen in order: {', '.join(str(int(m)) for m in _dedupe(modes)[:6])}"
                      if len(modes) else ""),
                   "Shuffle the training data every epoch (DataLoader(shuffle=True)).", [0.0],
                   0.9)]
    return []


def _dedupe(values: np.ndarray) -> list[float]:
    out: list[float] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(float(v))
    return out


def _constant_outputs(e) -> bool:
    """The Monitor's output check saw one number in every output (its data's min == max) that
    is not 1/outputs (a softmax of equal logits): "squashed into [0, 1]" then only says that
    the outputs are all 0 (or one other constant), which zero weights or dead units produce
    without any sigmoid."""
    lo, hi, n = (e.data.get(k) for k in ("min", "max", "n_outputs"))
    if not all(isinstance(v, (int, float)) for v in (lo, hi)) or lo != hi:
        return False
    return not (isinstance(n, (int, float)) and n > 0 and abs(lo * n - 1.0) < 1e-3)


def setup_events(ctx: Context) -> list[Finding]:
    """loss-activation-mismatch and bad-initialization: the Monitor's inspections, and the loss."""
    out = []
    events = [e for e in ctx.log.events if e.code in ("loss-activation-mismatch",
                                                      "bad-initialization")]
    for e in events:
        if e.code == "loss-activation-mismatch" and _constant_outputs(e):
            ctx.skip(e.code, f"every output of the first batch was {e.data['min']:g}: a model "
                     "that outputs a constant (zero weights, dead units) shows no squashing")
            continue
        if e.code == "loss-activation-mismatch":
            out.append(_f(e.code, "critical", e.message,
                          "Feed raw logits to CrossEntropyLoss (remove the final softmax/sigmoid) "
                          "and make the targets 0..classes-1.", [e.step or 0], 0.95))
        else:
            shrunk = _small_init(ctx) is not None  # its effect is measured: vanishing gradients
            out.append(_f(e.code, "warning", e.message,
                          "Use the default (Kaiming/Xavier) initialisation, or scale it to "
                          "std ~ 1/sqrt(fan_in).", [e.step or 0], 0.7,
                          **({"shown_as": "vanishing-gradients"} if shrunk else {})))
    c = ctx.n_classes
    lv = _levels(ctx)
    if c and lv is not None and ctx.train is not None:
        first = float(ctx.train.values[0])
        if first > T.INIT_LOSS_FACTOR * math.log(c) and not any(f.code == "bad-initialization"
                                                                for f in out):
            out.append(_f("bad-initialization", "warning",
                          f"the first loss {first:.4g} is {first / math.log(c):.1f}x ln({c}) = "
                          f"{math.log(c):.3g}, the loss of a fresh classifier",
                          "Initialise the last layer small (default init) so the first loss is "
                          "near ln(classes).", [float(ctx.train.steps[0])], 0.6))
    stds = {n: s for n, s in ctx.log.group("act_std").items() if len(s)}
    if stds:
        bad = {n: float(s.values[0]) for n, s in stds.items()  # 0 = dead units: dead-relu's job
               if s.values[0] > 0 and not (T.INIT_ACT_LOW < s.values[0] < T.INIT_ACT_HIGH)}
        if bad and not any(f.code == "bad-initialization" for f in out):
            out.append(_f("bad-initialization", "warning",
                          "activation std at the first step off by orders of magnitude: "
                          + ", ".join(f"{k} {v:.2g}" for k, v in list(bad.items())[:4]),
                          "Use a fan-in-scaled initialisation (Kaiming for ReLU, Xavier for "
                          "tanh).", [0.0], 0.6))
    if ctx.log.format != "lrdoctor-jsonl":
        ctx.skip("loss-activation-mismatch",
                 "needs the model's outputs and targets, which only the Monitor inspects")
        if not c:
            ctx.skip("bad-initialization", "needs the weights or the number of classes, which "
                     "only the Monitor records")
    return out


def _one_step_epochs(ctx: Context) -> int | None:
    """The number of epochs when a per-step log took exactly one optimizer step per epoch
    (the batch is the whole training set), else None. Epochs must be whole numbers: a log
    with fractional epochs (Hugging Face's ``epoch`` is steps / steps per epoch) has a new
    value at every step whatever the batch."""
    s = ctx.train
    if ctx.unit != "step" or s is None or s.epochs is None:
        return None
    ep = s.epochs[np.isfinite(s.epochs)]
    if len(ep) < 8 or not np.all(ep == np.round(ep)):
        return None
    counts = np.unique(ep, return_counts=True)[1]
    return len(counts) if len(counts) >= 8 and int(np.max(counts)) == 1 else None


def _still_improving(ctx: Context) -> tuple[float, float] | None:
    """(training loss fall over the last third, share of the evaluations after the validation
    best) when both were still improving as the run stopped: the training loss fell more than
    FLAT_REL over the last third and validation's best is among its last 10% of evaluations
    (the last 2 at least)."""
    lv, val = _levels(ctx), ctx.val
    if lv is None or val is None or len(val) < 3:
        return None
    sm = blocks(ctx.train.values)
    third = sm[-max(2, len(sm) // 3):]
    fall = (float(third[0]) - float(third[-1])) / max(abs(float(third[0])), 1e-12)
    vv = val.values
    after = (len(vv) - 1 - int(np.argmin(vv))) / len(vv)
    if fall > T.FLAT_REL and len(vv) - 1 - int(np.argmin(vv)) < max(2, len(vv) // 10):
        return fall, after
    return None


def batch_size(ctx: Context) -> list[Finding]:
    """batch-size: a warning when each epoch is one optimizer step (the whole training set in
    one batch) and training and validation were both still improving when the run stopped:
    the number of steps, not the data, limited the run (minibatches of B examples take n/B
    steps in the same epochs). Otherwise an info when the gradient noise scale
    ``B_noise = B * tr(S/B) / |G|^2`` (the Monitor's, over consecutive steps) is more than
    NOISE_SCALE_FACTOR times from the batch."""
    log = ctx.log
    ns = log.get("noise_scale").finite.values if log.has("noise_scale") else np.array([])
    b = log.get("batch/size").values if log.has("batch/size") else np.array([])
    est = float(np.median(ns)) if len(ns) else None
    epochs = _one_step_epochs(ctx)
    improving = _still_improving(ctx) if epochs is not None else None
    if epochs is not None and improving is not None:
        fall, _ = improving
        batch = f" of {float(np.median(b)):g} examples" if len(b) else ""
        return [_f("batch-size", "warning",
                   f"every epoch is one optimizer step (one batch{batch}: the whole training "
                   f"set), {epochs} steps in all, and the run was still improving when it "
                   f"stopped (training loss down {fall:.0%} over the last third, validation at "
                   "its best in the last evaluations): the step count, not the data, limits it"
                   + (f"; gradient noise scale ~{est:.3g} examples" if est is not None else ""),
                   "Use minibatches (32-256 examples give n/B times more steps in the same "
                   "epochs; scale the learning rate down with the batch), or train for more "
                   "epochs.", [ctx.end], 0.55, steps_total=epochs,
                   **({"noise_scale": est} if est is not None else {}))]
    if not log.has("noise_scale"):
        _needs_monitor(ctx, "batch-size", "the gradient noise scale")
        return []
    if len(ns) < 3 or not len(b) or est is None:
        return []
    batch = float(np.median(b))
    ratio = est / max(batch, 1e-12)
    if ratio > T.NOISE_SCALE_FACTOR or ratio < 1 / T.NOISE_SCALE_FACTOR:
        direction = "larger" if ratio > 1 else "smaller"
        return [_f("batch-size", "info",
                   f"the gradient noise scale is ~{est:.3g} examples while the batch is "
                   f"{batch:g} ({ratio:.2g}x)",
                   f"A {direction} batch (closer to {est:.0f}) would use compute better; scale the "
                   "learning rate with it.", [0.0], 0.3, noise_scale=est)]
    return []


RULES = (exploding_gradients, vanishing_gradients, dead_relu, saturated_activations,
         unnormalized_input, train_input_noise, unshuffled_labels, setup_events, batch_size)

"""Rules that name setup faults from per-epoch loss and accuracy alone (a Keras CSVLogger's
columns), by signatures that follow from how each fault acts on a classifier.

Each rule stays quiet when the log holds the live measurement that decides the same question
directly (a Monitor log: per-layer gradients, dead fractions, input statistics, the first
outputs); the rules in ``_internals`` read those. Where per-epoch columns cannot tell two causes
apart, the finding says so and names the one-minute check (``data["candidates"]`` lists them).
The chance-level analysis lives in ``_epochs``. Thresholds: ``T.NAME`` (``_thresholds``).
"""

from __future__ import annotations

import math

import numpy as np

from lrdoctor.doctor._context import Context, first_bad
from lrdoctor.doctor._curves import _f, _lr_at
from lrdoctor.doctor._epochs import (
    _exp,
    below_chance,
    chance_tail,
    curves,
    measured,
    squashed_loss,
)
from lrdoctor.doctor._evalgap import eval_above_chance
from lrdoctor.doctor._finding import Finding
from lrdoctor.doctor._thresholds import T

__all__ = ["RULES"]


_MONITOR_RUN = "run lrdoctor.torch.Monitor, which measures it directly"


def _epoch_of(ctx: Context, i: int) -> str:
    c = curves(ctx)
    return ctx.fmt_step(c.steps[i]) if c is not None and i < len(c) else ctx.fmt_step(ctx.start)


def constant_output(ctx: Context) -> list[Finding]:
    """dead-relu: the loss is pinned at chance level from the second epoch on.

    Rule (:func:`~lrdoctor.doctor._epochs.chance_tail`): at chance (``accuracy * exp(loss)``
    <= 1.3), no blow-up (first epoch < 1.5x the level), median ``|loss - level|`` <= 0.1% of
    the level over the tail (PIN_REL), not creeping, not frozen. Why: a network whose units
    output zero passes nothing but the last bias, which settles on the label prior within an
    epoch; the loss is then the prior's entropy to a few 1e-4. Weights initialized to zero or
    decayed to zero and a bottleneck whose units died give the same curve: the evidence says so
    (candidates: dead-relu, bad-initialization, over-regularization).
    """
    if measured(ctx, "dead_frac/", "grad_norm/"):
        return []
    t = chance_tail(ctx)
    if t is None or t.blew_up or not t.pinned or t.frozen:
        return []
    return [_f("dead-relu", "warning",
               f"from {_epoch_of(ctx, t.start)} on the training loss stays within "
               f"{t.deviation:.2%} of {t.level:.4g} (= ln {_exp(t.level):.3g}) with accuracy "
               f"at chance (accuracy x exp(loss) = {t.acc_ratio:.2f}): the output does not "
               "depend on the input, no signal reaches the last layer. Dead ReLUs (a negative "
               "bias init, or units killed by an early spike) do this; so do weights initialized "
               "to zero (every unit computes the same nothing), weight decay so strong the "
               "weights collapsed to zero and a layer too narrow. Per-epoch loss and accuracy "
               "cannot tell these apart without activation statistics or the weights: print each "
               "weight's std (one minute: exactly 0 is the init, near 0 after training the weight "
               f"decay), else {_MONITOR_RUN} (dead_frac per layer)",
               "Initialise biases at zero with He init for the weights (or use LeakyReLU/GELU); "
               "if the weight decay is above ~1e-2, lower it.",
               [float(curves(ctx).steps[t.start])], 0.6, level=t.level,
               candidates=["dead-relu", "bad-initialization", "over-regularization"],
               check="print each weight's std: exactly 0 means a zero init, near 0 after "
                     "training the weight decay; else run lrdoctor.torch.Monitor: dead_frac "
                     "near 1 per layer means dead ReLUs")]


def creep_to_chance(ctx: Context) -> list[Finding]:
    """vanishing-gradients: the loss creeps down to chance level from above.

    Rule: at chance, no blow-up, the first two tail epochs both > 0.25% above the tail's lowest
    loss (CREEP_REL) and the tail's first third above its last third, not frozen. Why: a deep
    saturating stack maps every input to nearly the same, uninformative features; the last layer
    (which still gets gradient) can only learn to ignore them, so the loss decays to the prior's
    entropy from above and never below. Strong dropout noise can look alike.
    """
    if measured(ctx, "grad_norm/", "saturation/"):
        return []
    t = chance_tail(ctx)
    if t is None or t.blew_up or not t.creeping or t.frozen:
        return []
    c = curves(ctx)
    return [_f("vanishing-gradients", "warning",
               f"the training loss creeps down to chance level from above ({c.train[0]:.4g} at "
               f"{_epoch_of(ctx, 0)}, the next two epochs still >= {t.early_excess:.1%} above the "
               f"{t.level:.4g} it settles at) and never gets below it, accuracy at chance "
               f"(accuracy x exp(loss) = {t.acc_ratio:.2f}): the output varies with the "
               "input but carries no information, so the early layers are not learning — "
               "vanishing gradients, typical of deep sigmoid/tanh stacks. Without per-layer "
               "gradient norms this cannot be told apart from dropout so strong it drowns the "
               "signal, and a learning rate far too small creeps the same way: check the "
               f"activations, the dropout rate and the lr, or {_MONITOR_RUN}",
               "Use ReLU-family activations with He/Xavier initialisation, add normalization "
               "layers or residual connections.",
               [ctx.log.first_step], 0.55,
               candidates=["vanishing-gradients", "over-regularization", "lr-too-low"],
               check="run lrdoctor.torch.Monitor: first / last layer gradient norm far below "
                     "1e-2 means vanishing gradients, update/weight ratios below 1e-3 a "
                     "learning rate too low; neither, print the dropout rates")]


def scale_blowup(ctx: Context) -> list[Finding]:
    """unnormalized-input: a first-epoch loss far above chance level, then pinned there.

    Rule: at chance, the first epoch's mean loss > 1.5x the tail's level (BLOWUP), the tail
    pinned (median deviation <= 0.1%). Why: a fresh classifier with sane inputs and init starts
    near ln C (here <= 1.03x the level); inputs hundreds of times too large (or weights too
    large) give enormous logits and gradients at once, the first updates kill the units, and the
    output falls back to the label prior. The two causes look the same per epoch: both are
    named, the likelier first.
    """
    if measured(ctx, "input/", "act_std/"):
        return []
    t = chance_tail(ctx)
    if t is None or not t.blew_up or not t.pinned:
        return []
    first = float(curves(ctx).train[0])
    return [_f("unnormalized-input", "warning",
               f"the first epoch's mean loss {first:.4g} is {t.first_ratio:.3g}x the chance level "
               f"{t.level:.4g} (= ln {_exp(t.level):.3g}) where the run then stays, pinned "
               "within {:.2%} with accuracy at chance: the first steps saw enormous logits and "
               "the units died. Inputs that are not standardized (e.g. pixels 0-255) do this; a "
               "far too large weight initialization kills the units the same way and leaves the "
               "same per-epoch columns (both end as a dead network fitting the label prior). "
               "Check x.std() of one batch (near 1 when standardized) and each weight's std x "
               "sqrt(fan_in) (near 1 for the default init) (one minute), or run "
               "lrdoctor.torch.Monitor, which records both".format(t.deviation),
               "Standardize the inputs (subtract the training mean, divide by the std; images: "
               "divide by 255); if they already are, use the default (Kaiming/Xavier) init.",
               [ctx.log.first_step], 0.65,
               candidates=["unnormalized-input", "bad-initialization"],
               check="print x.std() of one batch (near 1 when standardized) and each weight's "
                     "std x sqrt(fan_in) (near 1 for the default init)")]


def bounce_at_chance(ctx: Context) -> list[Finding]:
    """lr-too-high: at chance level the loss keeps jumping.

    Rule: at chance, not frozen, and either a blow-up (first epoch > 1.5x the level) with a tail
    that is not pinned (median deviation > 0.1%), or no blow-up and a median deviation > 1%
    (BOUNCE_REL) without a creep. Why: with dead units only the last bias learns, and it settles
    on the prior to 1e-4 unless each step throws it around: the jitter left is the step size's.
    """
    if measured(ctx, "grad_norm", "update_ratio/"):
        return []
    t = chance_tail(ctx)
    if t is None or t.frozen or not (t.blew_up and not t.pinned or t.bouncing):
        return []
    first = float(curves(ctx).train[0])
    lr = _lr_at(ctx, ctx.start)
    return [_f("lr-too-high", "warning",
               (f"the first epoch's mean loss was {first:.4g} ({t.first_ratio:.3g}x chance level "
                f"{t.level:.4g}); since then " if t.blew_up else "")
               + f"the loss jumps around chance level ({t.deviation:.2%} median deviation from "
               f"{t.level:.4g}, accuracy at chance)" + (f" with lr {lr:.3g}" if lr else "")
               + ": the steps are too large for the model to settle even on the label prior",
               "Divide the learning rate by 10 (run `lrdoctor find` for a measured one), or warm "
               "it up.", [ctx.log.first_step], 0.6)]


def early_overflow(ctx: Context) -> list[Finding]:
    """lr-too-high, or bad-initialization at an ordinary lr: an epoch-level log whose train or
    val loss is NaN/Inf within the first OVERFLOW_EPOCHS (2) epochs.

    Too few points to see a shape, so the learning rate column decides which cause leads: at
    ``lr <= ORDINARY_LR`` (0.1, where plain SGD trains) a step is too small to overflow a sane
    network within an epoch, so the scale of the weights or the inputs is off, and the init
    (whose scale compounds layer by layer) is named first; unnormalized inputs more often blow
    up and then fall back to chance (:func:`scale_blowup`). Above it, or without an lr column,
    the learning rate is named first. Either way the finding lists all three in
    ``data["candidates"]`` with the one-minute check that splits them.
    """
    if ctx.unit != "epoch":
        return []
    c = curves(ctx)
    bad = [first_bad(s) for s in (ctx.train_raw, ctx.val_raw) if s is not None]
    bad = [b for b in bad if b is not None]
    if c is None or not bad:
        return []
    step = min(bad)
    i = int(np.searchsorted(c.steps, step))
    if i >= T.OVERFLOW_EPOCHS:
        return []
    first = float(c.train[0])
    lr = _lr_at(ctx, step)
    seen = (f"the loss became NaN/Inf at {ctx.fmt_step(step)}"
            + (f" after a first-epoch mean of {first:.3g}" if math.isfinite(first) else "")
            + (f" (lr {lr:.3g})" if lr else ""))
    if lr is not None and 0 < lr <= T.ORDINARY_LR:
        return [_f("bad-initialization", "warning",
                   seen + f": at a learning rate this ordinary (<= {T.ORDINARY_LR:g}) a step cannot "
                   "overflow a sanely scaled network within an epoch, so the scale of the "
                   "weights or of the inputs is off. A far too large initialization (its scale "
                   "compounds layer by layer) overflows this fast; unnormalized inputs usually "
                   "blow up and fall back to chance, but can overflow too, and for an adaptive "
                   "optimizer this lr may itself be too high: per-epoch columns cannot tell these "
                   "apart. Check each weight's std x sqrt(fan_in) (near 1 for Kaiming/Xavier) "
                   "and x.std() of one batch (one minute), or run lrdoctor.torch.Monitor, which "
                   "records both",
                   "Use the default (Kaiming/Xavier) initialisation; if x.std() of a batch is far "
                   "from 1, standardize the inputs.", [step], 0.6, lr=lr,
                   candidates=["bad-initialization", "unnormalized-input", "lr-too-high"],
                   check="print each weight's std x sqrt(fan_in) (near 1 for Kaiming/Xavier) "
                         "and x.std() of one batch")]
    return [_f("lr-too-high", "warning",
               seen + ": a learning rate far too high does this, and so do unnormalized inputs or "
               "a far too large initialization, which per-epoch columns cannot tell apart. Check "
               "the loss of the first batch before any step (one minute): near ln(classes) means "
               "the learning rate, far above it the inputs or the init",
               "Divide the learning rate by 10 and check that the first batch's loss is near "
               "ln(classes).", [step], 0.6,
               candidates=["lr-too-high", "unnormalized-input", "bad-initialization"],
               check="print the loss of the first batch before any step: near ln(classes) "
                     "means the learning rate, far above it the inputs or the init")]


def eval_beats_train(ctx: Context) -> list[Finding]:
    """over-regularization: training sits at chance while the evaluated model does not
    (:func:`lrdoctor.doctor._evalgap.eval_above_chance`).

    Quiet when the log records the model's dropout rates (``dropout`` in its metadata, as the
    Monitor writes): ``noise_or_regularization`` then reads them.
    """
    if "dropout" in ctx.meta:
        return []
    e = eval_above_chance(ctx)
    if e is None:
        return []
    return [_f("over-regularization", "warning",
               f"the training loss stays at chance level {e.level:.4g} (= ln "
               f"{_exp(e.level):.3g}; training accuracy x exp(loss) = {e.train_ratio:.2f}) "
               f"while validation reached {e.val_acc:.1%} at {_epoch_of(ctx, e.index)}, "
               f"{e.ratio:.2f}x the chance accuracy, with a val loss {e.val_loss:.4g} below that "
               "level: the network computes something the training-mode forward pass hides. "
               "Dropout far too strong (active in training only) does this; so does "
               "training-only augmentation or a layer that behaves differently in training "
               "(data-problem). Evaluate the training set in eval mode (one minute): near the "
               "validation accuracy means the train-mode regularization",
               "Lower the dropout rate (0.1-0.5) or the augmentation strength, and check that "
               "the training loss then falls.", [float(curves(ctx).steps[e.index])], 0.65,
               ratio=e.ratio, candidates=["over-regularization", "data-problem"],
               check="evaluate the training set in eval mode: near the validation accuracy "
                     "means the train-mode regularization (dropout, augmentation)")]


def noisy_at_chance(ctx: Context) -> list[Finding]:
    """over-regularization: at chance level the loss jitters more than a dead network's but
    neither creeps down nor bounces.

    Rule: at chance (:func:`~lrdoctor.doctor._epochs.chance_tail`), no blow-up, not frozen,
    not creeping, median ``|loss - level|`` above PIN_REL (0.1%) and at most BOUNCE_REL (1%)
    of the level. Why: a network that passes no signal outputs a constant (the last bias), so
    its epoch-mean loss is pinned to a few 1e-4 (<= 0.07% in the tuning runs); one whose
    training forward pass is randomized (dropout 0.9) outputs noise that carries no label
    information: the mean loss reaches chance in the first epoch and then varies by 0.1-0.5%.
    A learning rate a little too high can also jitter a dead network that much: named too.
    Quiet when the log records the dropout rates or per-layer gradients.
    """
    if "dropout" in ctx.meta or measured(ctx, "grad_norm/", "dead_frac/"):
        return []
    t = chance_tail(ctx)
    if (t is None or t.blew_up or t.frozen or t.pinned or t.creeping or t.bouncing):
        return []
    return [_f("over-regularization", "warning",
               f"from {_epoch_of(ctx, t.start)} on the training loss sits at chance level "
               f"{t.level:.4g} (= ln {_exp(t.level):.3g}, accuracy x exp(loss) = "
               f"{t.acc_ratio:.2f}) and varies by {t.deviation:.2%} (median) without creeping "
               "down: more than the constant output of a dead network (<= 0.1%), less than "
               "steps too large (> 1%). The output is random but uninformative in training "
               "mode: dropout far too strong does this; a learning rate a little too high on "
               "dead units, or dead units whose output bias still drifts, can look alike. Check the dropout rates and evaluate the training set "
               f"in eval mode (one minute), or {_MONITOR_RUN}",
               "Lower the dropout rate (0.1-0.5), and check that the training loss then falls.",
               [float(curves(ctx).steps[t.start])], 0.55, level=t.level,
               candidates=["over-regularization", "lr-too-high", "dead-relu"],
               check="evaluate the training set in eval mode: above chance means the dropout; "
                     "still at chance, run lrdoctor.torch.Monitor: dead_frac near 1 means dead "
                     "units, else the learning rate")]


def softmax_floor(ctx: Context) -> list[Finding]:
    """loss-activation-mismatch: accuracy rises far faster than a softmax-squashed loss can fall
    (:func:`lrdoctor.doctor._epochs.squashed_loss`). Quiet when the Monitor inspected the
    first outputs (``n_outputs`` in the log's metadata): its check decides."""
    if ctx.meta.get("n_outputs") or any(e.code == "loss-activation-mismatch"
                                        for e in ctx.log.events):
        return []
    q = squashed_loss(ctx)
    if q is None:
        return []
    return [_f("loss-activation-mismatch", "warning",
               f"{q.split} accuracy rose to {q.acc:.1%} while the loss fell only {q.fall:.1%} of "
               f"ln C = {q.ln_c:.4g} (to {q.loss:.4g}; lowest {q.lowest:.4g}): the predicted "
               "probabilities are squashed into a band. Softmax outputs fed to CrossEntropyLoss "
               f"confine the loss to [ln(1+(C-1)/e), ln C] = [{q.floor:.3g}, {q.ln_c:.3g}], so "
               f"it can fall at most {q.max_fall:.0%}; here it fell at {q.slope:.2f}x that pace "
               f"(C = {q.classes:.3g}" + (", estimated from the stalled start" if q.estimated
                                          else "")
               + "). Very strong label smoothing or weight decay also make a model this "
               "underconfident, and a learning rate far too small leaves the loss this high "
               "while the argmax already moves: check whether the model's last layer is a "
               "softmax (one minute)",
               "Feed raw logits to CrossEntropyLoss (remove the final softmax), or use NLLLoss "
               "on log_softmax outputs.", [q.step], 0.8, classes=q.classes, slope=q.slope,
               candidates=["loss-activation-mismatch", "over-regularization", "lr-too-low"],
               check="print the model's last layer and the optimizer: a softmax before "
                     "CrossEntropyLoss means the activation, label smoothing or weight decay "
                     "above ~1e-2 the regularization; neither, raise the lr 10x for one epoch")]


def sorted_batches(ctx: Context) -> list[Finding]:
    """unshuffled-data: the model scores below chance on its own training data (see
    :func:`lrdoctor.doctor._epochs.below_chance`)."""
    if measured(ctx, "batch/label_purity"):
        return []
    b = below_chance(ctx)
    if b is None:
        return []
    return [_f("unshuffled-data", "warning",
               f"training accuracy {b.train_acc:.1%} is below chance while validation scores "
               f"{b.val_acc:.1%} (chance by its loss: {b.chance:.1%}), and the training loss "
               f"{b.train_loss:.4g} is above the validation loss {b.val_loss:.4g}: the model "
               "does worse on the data it trains on than on data it never saw. With shuffled "
               "batches that cannot happen; it does when batches come sorted by label (each "
               "batch holds a class the model was just pulled away from)",
               "Shuffle the training data every epoch (DataLoader(shuffle=True), or "
               "model.fit(..., shuffle=True) on unsorted arrays).", [ctx.log.first_step], 0.7)]


RULES = (constant_output, creep_to_chance, scale_blowup, bounce_at_chance, early_overflow,
         eval_beats_train, noisy_at_chance, softmax_floor, sorted_batches)

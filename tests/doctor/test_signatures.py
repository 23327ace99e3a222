"""Per-epoch signatures (a Keras CSVLogger's columns only): each fault's curve triggers its
rule, a healthy curve and the look-alikes do not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrdoctor.doctor import diagnose
from lrdoctor.doctor._context import Context
from lrdoctor.doctor._epochs import softmax_band
from lrdoctor.doctor._evalgap import eval_above_chance, noise_shape
from lrdoctor.doctor._thresholds import T
from lrdoctor.logs import Series, TrainingLog

LN10 = math.log(10)
RNG = np.random.default_rng(1)


def epochs_log(loss, acc=None, val_loss=None, val_acc=None, lr=0.05, **extra) -> TrainingLog:
    """A Keras-CSV-like log: one row per epoch."""
    loss = np.asarray(loss, dtype=float)
    ep = np.arange(len(loss), dtype=float)
    cols = {"train/loss": loss, "train/accuracy": acc, "val/loss": val_loss,
            "val/accuracy": val_acc, "lr": np.full(len(loss), lr)}
    series = {k: Series(ep, np.asarray(v, dtype=float), ep) for k, v in cols.items()
              if v is not None}
    series.update(extra)
    return TrainingLog(series, format="keras-csv", step_unit="epoch")


def problems(log) -> list[str]:
    return [f.code for f in diagnose(log).problems]


def at_chance(n, level=LN10, jitter=3e-4, acc=0.1):
    """A loss pinned at ``level`` (tiny jitter) with accuracy at chance."""
    return (level + jitter * RNG.standard_normal(n), acc + 0.01 * RNG.standard_normal(n))


def healthy(n=8):
    x = np.arange(n)
    return {"loss": 0.1 + 2.1 * np.exp(-x / 1.2), "acc": 0.97 - 0.7 * np.exp(-x / 1.2),
                "val_loss": 0.18 + 1.6 * np.exp(-x / 1.1), "val_acc": 0.94 - 0.35 * np.exp(-x / 1.1)}


def test_healthy_epoch_log_raises_nothing():
    assert problems(epochs_log(**healthy())) == []
    assert problems(epochs_log(**healthy(10))) == []


def test_softmax_band_formula():
    floor, fall = softmax_band(10)
    assert floor == pytest.approx(math.log(1 + 9 / math.e))
    assert fall == pytest.approx(1 - floor / LN10)


def test_dead_relu_from_a_loss_pinned_at_chance():
    loss, acc = at_chance(8)
    vloss, vacc = at_chance(8, jitter=2e-3)
    d = diagnose(epochs_log(loss, acc, vloss, vacc))
    assert d.problems[0].code == "dead-relu"
    f = d.problems[0]
    assert "weight decay" in f.evidence and "over-regularization" in f.data["candidates"]
    assert "lr-too-low" not in d.codes  # the loss jitters: the weights do move


def test_pinned_but_frozen_is_lr_too_low_not_dead_relu():
    """A tiny lr: loss and val loss fall a little at every epoch, the same shape as stuck."""
    loss = LN10 + 0.007 - 0.0004 * np.arange(8)
    c = problems(epochs_log(loss, np.full(8, 0.09), loss + 0.002, np.full(8, 0.07)))
    assert "lr-too-low" in c and "dead-relu" not in c


def test_the_monitors_measurement_silences_the_curve_signature():
    loss, acc = at_chance(8)
    vloss, vacc = at_chance(8)
    ep = np.arange(8.0)
    log = epochs_log(loss, acc, vloss, vacc, **{"dead_frac/fc1": Series(ep, np.zeros(8), ep)})
    assert "dead-relu" not in problems(log)


def test_vanishing_gradients_from_a_creep_down_to_chance():
    excess = np.array([0.06, 0.05, 0.04, 0.03, 0.02, 0.012, 0.008, 0.006])
    loss = LN10 + excess
    c = problems(epochs_log(loss, np.full(8, 0.1), loss + 0.004, np.full(8, 0.1)))
    assert c[0] == "vanishing-gradients"
    assert "lr-too-low" not in c and "dead-relu" not in c


def test_unnormalized_input_from_a_blow_up_then_pinned():
    loss, acc = at_chance(8)
    loss[0] = 4.7e3
    vloss, vacc = at_chance(8, jitter=2e-3)
    d = diagnose(epochs_log(loss, acc, vloss, vacc))
    assert d.problems[0].code == "unnormalized-input"
    assert d.problems[0].data["candidates"] == ["unnormalized-input", "bad-initialization"]
    assert "dead-relu" not in d.codes


def test_lr_too_high_from_a_blow_up_that_keeps_bouncing():
    loss = LN10 + 0.015 + 0.01 * RNG.standard_normal(10)
    loss[0] = 17.0
    c = problems(epochs_log(loss, np.full(10, 0.1), loss, np.full(10, 0.1)))
    assert "lr-too-high" in c and "unnormalized-input" not in c


def test_lr_too_high_from_a_bounce_at_chance_without_blow_up():
    loss = 2.5 + 0.04 * RNG.standard_normal(10)
    c = problems(epochs_log(loss, np.full(10, 0.1), loss - 0.02, np.full(10, 0.1)))
    assert "lr-too-high" in c and "dead-relu" not in c


def test_lr_too_high_from_an_overflow_in_the_first_epoch():
    log = epochs_log([8e17], [0.1], [np.nan], [0.096], lr=5.0)
    d = diagnose(log)
    assert "lr-too-high" in d.codes and "nonfinite" in d.codes
    f = next(f for f in d.findings if f.code == "lr-too-high")
    assert "first batch" in f.evidence
    late = epochs_log([2.0, 1.0, 0.5, np.nan], [0.3, 0.7, 0.85, 0.1])
    assert "lr-too-high" not in [f.code for f in diagnose(late).findings
                                 if "first batch" in f.evidence]


def test_loss_activation_mismatch_from_a_squashed_loss():
    # softmax before CrossEntropyLoss, 10 classes: the loss can only fall from ln 10 to 1.46
    vacc = np.array([0.17, 0.25, 0.33, 0.30, 0.44, 0.46, 0.59, 0.67])
    vloss = np.array([2.30, 2.30, 2.29, 2.26, 2.18, 2.05, 1.92, 1.82])
    d = diagnose(epochs_log(vloss + 0.01, vacc - 0.05, vloss, vacc))
    assert d.problems[0].code == "loss-activation-mismatch"
    assert "lr-too-low" not in d.codes  # the loss falls slowly because it is squashed
    assert d.problems[0].data["slope"] <= 1.3


def test_noisy_labels_are_not_a_squashed_loss():
    """Label noise 40%: the training loss is high, but validation falls as fast as it should."""
    log = epochs_log([2.28, 2.03, 1.79, 1.74, 1.65, 1.58, 1.55, 1.53],
                     [0.14, 0.35, 0.48, 0.51, 0.54, 0.58, 0.59, 0.59],
                     [2.12, 1.29, 1.06, 1.15, 0.85, 0.78, 0.80, 0.81],
                     [0.17, 0.72, 0.78, 0.77, 0.87, 0.91, 0.88, 0.88])
    c = problems(log)
    assert "loss-activation-mismatch" not in c and "unshuffled-data" not in c
    assert c[0] == "label-noise"
    f = next(f for f in diagnose(log).findings if f.code == "label-noise")
    # confident model, train/val ratio of accuracy x exp(loss) ~1.4: the labels, not dropout
    assert f.data["candidates"] == ["label-noise"]


def test_unshuffled_data_from_training_accuracy_below_chance():
    log = epochs_log([2.62, 2.71, 2.67, 2.68, 2.68, 2.68, 2.68, 2.68],
                     [0.07, 0, 0, 0, 0, 0, 0, 0],
                     [2.37, 2.33, 2.33, 2.33, 2.33, 2.33, 2.33, 2.33], np.full(8, 0.078))
    c = problems(log)
    assert c[0] == "unshuffled-data"
    assert "label-noise" not in c  # noise cannot push training accuracy below chance


def test_label_purity_from_the_monitor_silences_the_curve_signature():
    ep = np.arange(8.0)
    log = epochs_log([2.62, 2.71, 2.67, 2.68, 2.68, 2.68, 2.68, 2.68],
                     [0.07, 0, 0, 0, 0, 0, 0, 0],
                     [2.37, 2.33, 2.33, 2.33, 2.33, 2.33, 2.33, 2.33], np.full(8, 0.078),
                     **{"batch/label_purity": Series(ep, np.full(8, 0.1), ep)})
    assert "unshuffled-data" not in problems(log)


@pytest.mark.parametrize("n", [1, 2])
def test_too_short_for_the_chance_analysis(n):
    loss, acc = at_chance(n)
    c = problems(epochs_log(loss, acc, loss, acc))
    assert "dead-relu" not in c and "vanishing-gradients" not in c


def test_learning_slowly_is_not_at_chance():
    """A small model that learns a little (accuracy 3x chance) is underfitting, nothing more."""
    log = epochs_log([2.30, 2.07, 1.92, 1.82, 1.78, 1.74, 1.75, 1.72],
                     [0.13, 0.23, 0.26, 0.25, 0.25, 0.27, 0.26, 0.27],
                     [2.22, 2.07, 1.93, 1.91, 1.85, 1.82, 1.89, 1.81],
                     [0.16, 0.18, 0.20, 0.21, 0.19, 0.20, 0.21, 0.23])
    assert problems(log) == ["underfitting"]


def test_lr_column_decides_who_leads_an_early_overflow():
    """NaN in the first epoch: at an ordinary lr the scale (init) leads, at lr 5 the lr."""
    ordinary = diagnose(epochs_log([4e22], [0.1], [np.nan], [0.096], lr=0.05))
    top = ordinary.problems[0]
    assert top.code == "bad-initialization"
    assert top.data["candidates"] == ["bad-initialization", "unnormalized-input", "lr-too-high"]
    assert "lr-too-high" not in ordinary.codes
    huge_lr = diagnose(epochs_log([4e22], [0.1], [np.nan], [0.096], lr=5.0))
    assert huge_lr.problems[0].code == "lr-too-high"
    assert "bad-initialization" not in huge_lr.codes
    above = diagnose(epochs_log([4e22], [0.1], [np.nan], [0.096], lr=0.2))  # just above 0.1
    assert "bad-initialization" not in above.codes


def dropout_at_chance(val_peak_acc: float, val_peak_loss: float, n: int = 8):
    """Train loss at chance (jitter 0.2%), validation at chance except one epoch."""
    rng = np.random.default_rng(3)
    loss = LN10 - 0.005 + 0.004 * np.abs(rng.standard_normal(n))
    loss[0] = LN10 + 0.06
    acc = 0.11 + 0.005 * rng.standard_normal(n)
    vloss = LN10 + 0.004 + 0.002 * rng.standard_normal(n)
    vacc = np.full(n, 0.10)
    vloss[4], vacc[4] = val_peak_loss, val_peak_acc
    return epochs_log(loss, acc, vloss, vacc)


def test_over_regularization_when_evaluation_beats_a_training_loss_at_chance():
    d = diagnose(dropout_at_chance(0.2, 2.26))
    assert d.problems[0].code == "over-regularization"
    f = d.problems[0]
    assert f.data["candidates"] == ["over-regularization", "data-problem"]
    assert f.data["ratio"] > 1.5 and "eval mode" in f.evidence


@pytest.mark.parametrize("acc, loss", [(0.13, 2.26),    # 1.3x chance: within at-chance noise
                                        (0.2, 2.45)])   # above chance but val loss above it
def test_a_val_epoch_near_chance_is_not_train_mode_noise(acc, loss):
    log = dropout_at_chance(acc, loss)
    assert eval_above_chance(Context(log)) is None


def test_eval_above_chance_is_quiet_when_the_log_records_dropout():
    log = dropout_at_chance(0.2, 2.26)
    log.meta["dropout"] = [0.0]
    assert "over-regularization" not in problems(log)


def test_over_regularization_from_a_jittering_loss_at_chance():
    """Jitter 0.3% at chance, reached within the first epoch: random but uninformative output."""
    rng = np.random.default_rng(5)
    loss = LN10 + 0.007 * np.abs(rng.standard_normal(10))
    loss[0] = LN10 + 0.06
    vloss, vacc = at_chance(10, jitter=2e-3)
    d = diagnose(epochs_log(loss, np.full(10, 0.105), vloss, vacc))
    assert d.problems[0].code == "over-regularization"
    assert d.problems[0].candidates == ("over-regularization", "lr-too-high", "dead-relu")
    assert "eval mode" in d.problems[0].check
    assert "dead-relu" not in d.codes


def test_a_dead_networks_pinned_loss_is_not_jitter():
    """The near miss: the same shape with 0.03% jitter is the constant output of dead units."""
    rng = np.random.default_rng(5)
    loss = LN10 + 0.0007 * np.abs(rng.standard_normal(10))
    vloss, vacc = at_chance(10, jitter=2e-3)
    c = problems(epochs_log(loss, np.full(10, 0.105), vloss, vacc))
    assert c[0] == "dead-relu" and "over-regularization" not in c


def val_above_train(train_loss: float, val_first: float = 2.15, n: int = 10):
    """Validation beats training late in a run: train acc 0.31, val acc 0.43, val loss 1.48."""
    x = np.arange(n) / (n - 1)
    loss = 2.28 + (train_loss - 2.28) * np.sqrt(x)
    acc = 0.12 + (0.31 - 0.12) * np.sqrt(x)
    vloss = val_first + (1.48 - val_first) * np.sqrt(x)
    vacc = 0.22 + (0.43 - 0.22) * np.sqrt(x)
    return epochs_log(loss, acc, vloss, vacc)


@pytest.mark.parametrize("train_loss, code", [(1.75, "over-regularization"),   # ratio 0.94
                                               (1.85, "over-regularization"),   # 1.04
                                               (1.90, "label-noise")])          # 1.10
def test_train_val_shape_splits_dropout_from_noisy_labels(train_loss, code):
    log = val_above_train(train_loss)
    shape = noise_shape(Context(log))
    assert shape.confident
    assert shape.ratio == pytest.approx(0.31 / 0.43 * math.exp(train_loss - 1.48), rel=0.05)
    assert (shape.ratio >= T.NOISE_SHAPE) == (code == "label-noise")
    d = diagnose(log)
    assert d.problems[0].code == code
    other = "label-noise" if code == "over-regularization" else "over-regularization"
    assert other not in d.codes
    if code == "over-regularization":
        assert d.problems[0].data["candidates"] == ["over-regularization", "label-noise"]


def test_before_the_model_is_confident_the_split_stays_open():
    """Val loss only at 0.9x its first value: too early for noisy labels to show; label-noise,
    naming dropout as the look-alike."""
    log = val_above_train(1.75, val_first=1.64)
    assert not noise_shape(Context(log)).confident
    d = diagnose(log)
    assert d.problems[0].code == "label-noise"
    assert d.problems[0].data["candidates"] == ["label-noise", "over-regularization"]


def test_the_monitors_dropout_record_keeps_label_noise_without_the_split():
    log = val_above_train(1.75)
    log.meta["dropout"] = []
    d = diagnose(log)
    assert d.problems[0].code == "label-noise"
    assert d.problems[0].data["candidates"] == ["label-noise"]


def test_a_chance_level_of_hundreds_of_nats_does_not_overflow():
    """exp(level) in the evidence is capped (math.exp overflowed at a level above ~710)."""
    level = 1e4
    loss, acc = at_chance(8, level=level, jitter=level * 3e-4)
    log = epochs_log(loss, acc, val_loss=loss + 1.0, val_acc=acc)
    diagnose(log)  # no OverflowError

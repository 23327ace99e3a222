"""Rules on the loss curves (``doctor/_curves``): the learning-rate crawl, underfitting and the
trend matrix, on per-epoch logs like a Keras CSVLogger's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrdoctor.doctor import diagnose
from lrdoctor.doctor._curves import _pace
from lrdoctor.logs import Series, TrainingLog


def epochs_log(loss, acc=None, val_loss=None, val_acc=None, lr=5e-3) -> TrainingLog:
    loss = np.asarray(loss, dtype=float)
    ep = np.arange(len(loss), dtype=float)
    cols = {"train/loss": loss, "train/accuracy": acc, "val/loss": val_loss,
            "val/accuracy": val_acc, "lr": np.full(len(loss), lr)}
    return TrainingLog({k: Series(ep, np.asarray(v, dtype=float), ep) for k, v in cols.items()
                        if v is not None}, format="keras-csv", step_unit="epoch")


def problems(log) -> list[str]:
    return [f.code for f in diagnose(log).problems]


def test_pace_formula():
    assert _pace(np.array([4.0, 3.0, 2.0, 1.0, 0.0])) == pytest.approx(1.0)  # a straight crawl
    assert _pace(np.array([4.0, 2.0, 1.0, 0.5, 0.25])) == pytest.approx(0.25)  # halving
    assert _pace(np.array([2.0, 2.0, 1.0])) == math.inf  # falls only in the second half
    assert _pace(np.array([1.0, 2.0, 3.0])) == 0.0
    assert _pace(np.array([1.0, 0.5])) == 0.0  # too short to say


def test_a_linear_crawl_is_lr_too_low():
    """A learning rate 100x too small: the loss falls the same small amount every epoch."""
    x = np.arange(8)
    log = epochs_log(1.01 - 0.011 * x, val_loss=1.0 - 0.011 * x, lr=1e-5)  # an MSE regression
    f = next(f for f in diagnose(log).problems if f.code == "lr-too-low")
    assert f.data["pace"] == pytest.approx(1.0, abs=0.05)
    assert "unchanging pace" in f.evidence


def test_a_short_run_that_slows_down_is_not_lr_too_low():
    """The charlm-tf shape: 4 epochs of a healthy character model, whose loss fell under 10%
    of its (median-of-3) start but slows down each epoch: still learning, not a crawl."""
    log = epochs_log([2.851, 2.400, 2.304, 2.229], acc=[0.326, 0.382, 0.395, 0.409],
                     val_loss=[2.504, 2.386, 2.323, 2.272], val_acc=[0.353, 0.379, 0.380, 0.388])
    assert "lr-too-low" not in problems(log)
    # the same fall at a constant pace is a crawl (without accuracies: no chance analysis)
    assert "lr-too-low" not in problems(epochs_log([2.851, 2.400, 2.304, 2.229],
                                                   val_loss=[2.504, 2.386, 2.323, 2.272]))
    assert "lr-too-low" in problems(epochs_log([2.40, 2.35, 2.30, 2.25],
                                               val_loss=[2.39, 2.34, 2.29, 2.24]))


def test_a_low_accuracy_ceiling_is_not_underfitting_but_a_tiny_model_is():
    """The healthy 4-epoch character model ends at 41% accuracy (a next-character task's
    ceiling is low): no warning at all. A model too small to learn (25%) still underfits."""
    healthy = epochs_log([2.851, 2.400, 2.304, 2.229], acc=[0.326, 0.382, 0.395, 0.409],
                         val_loss=[2.504, 2.386, 2.323, 2.272],
                         val_acc=[0.353, 0.379, 0.380, 0.388])
    assert problems(healthy) == []
    tiny = epochs_log([2.41, 2.184, 2.053, 1.969, 1.907, 1.867],
                      acc=[0.12, 0.17, 0.20, 0.22, 0.23, 0.237],
                      val_loss=[2.215, 2.082, 2.005, 1.956, 1.921, 1.89],
                      val_acc=[0.15, 0.19, 0.21, 0.22, 0.225, 0.228])
    assert "underfitting" in problems(tiny)


def test_a_high_loss_from_the_curves_names_its_look_alikes_and_the_check():
    """A loss that stays high reads three ways from per-epoch columns; each finding names its
    candidates (at most 3) and the one check that splits them."""
    x = np.arange(6)
    # a model too small: high floor, validation next to training
    small = epochs_log(2.3 - 0.4 * (1 - np.exp(-x / 2)), acc=0.12 + 0.1 * (1 - np.exp(-x / 2)),
                       val_loss=2.28 - 0.4 * (1 - np.exp(-x / 2)),
                       val_acc=0.12 + 0.1 * (1 - np.exp(-x / 2)))
    f = next(f for f in diagnose(small).problems if f.code == "underfitting")
    assert f.candidates == ("underfitting", "loss-activation-mismatch", "over-regularization")
    assert f.check and "print the model" in f.check
    # a first epoch far above the rest: the start blew up (init, inputs or the first lr)
    blown = epochs_log([30000.0, 11000.0, 6000.0, 4000.0, 3000.0, 2650.0],
                       acc=[0.12, 0.14, 0.16, 0.17, 0.18, 0.19],
                       val_loss=[9000.0, 5000.0, 3500.0, 2800.0, 2300.0, 2000.0],
                       val_acc=[0.13, 0.15, 0.17, 0.18, 0.19, 0.2])
    first = diagnose(blown).problems[0]
    assert first.code == "bad-initialization"
    assert first.candidates == ("bad-initialization", "unnormalized-input", "lr-too-high")
    # a regression whose validation loss ends far below its training loss: the training data
    noisy = epochs_log([0.62, 0.58, 0.56, 0.55, 0.545, 0.54, 0.535, 0.53],
                       val_loss=[0.35, 0.28, 0.25, 0.23, 0.225, 0.22, 0.22, 0.22])
    first = diagnose(noisy).problems[0]
    assert first.code == "label-noise"
    assert set(first.candidates) == {"label-noise", "over-regularization", "data-problem"}


def test_a_finding_names_at_most_three_candidates():
    from lrdoctor.doctor import Finding

    f = Finding("underfitting", "t", "warning", "e", "x")
    assert f.candidates == ("underfitting",) and f.check is None
    with pytest.raises(ValueError, match="at most 3"):
        Finding("underfitting", "t", "warning", "e", "x",
                data={"candidates": ["a", "b", "c", "d"]})


def monitor_log(step_loss, train_acc, val_loss, val_acc, *, ratio=None, events=(),
                optimizer="SGD", lr=1e-5) -> TrainingLog:
    """A Monitor-like log: per-step loss, per-epoch means and accuracies, the Monitor's
    ``n_outputs`` (it inspected the first outputs) and, if given, every layer's update ratio."""
    from lrdoctor.logs import Event

    loss = np.asarray(step_loss, dtype=float)
    n_ep = len(train_acc)
    per = len(loss) // n_ep
    steps = np.arange(len(loss), dtype=float)
    ep_of = steps // per
    ends = np.arange(1, n_ep + 1, dtype=float) * per - 1
    ep = np.arange(n_ep, dtype=float)
    epoch_mean = loss[: per * n_ep].reshape(n_ep, per).mean(axis=1)
    series = {"train/loss": Series(steps, loss, ep_of),
              "train/loss_epoch": Series(ends, epoch_mean, ep),
              "train/accuracy": Series(ends, np.asarray(train_acc, dtype=float), ep),
              "val/loss": Series(ends, np.asarray(val_loss, dtype=float), ep),
              "val/accuracy": Series(ends, np.asarray(val_acc, dtype=float), ep),
              "lr": Series(steps, np.full(len(loss), lr), ep_of)}
    if ratio is not None:
        heavy = np.arange(0, len(loss), 50, dtype=float)
        for layer in ("0", "2"):
            series[f"update_ratio/{layer}"] = Series(heavy, np.full(len(heavy), ratio))
    return TrainingLog(series, format="lrdoctor-jsonl", step_unit="step",
                       meta={"optimizer": optimizer, "n_outputs": 10},
                       events=[Event(**e) for e in events])


def test_measured_tiny_updates_are_lr_too_low_even_at_a_jittering_chance_level():
    """lr 1000x too small (the corpus' x0.001 shape): the loss sits at ln 10 and jitters from
    batch to batch, which alone reads as weights that move (the chance-level rules decide);
    the Monitor's update/weight ratios of 1e-5 per step say they do not."""
    rng = np.random.default_rng(3)
    n = 400
    loss = math.log(10) + 0.004 - 1e-6 * np.arange(n) + 0.01 * rng.standard_normal(n)
    acc = 0.1 + 0.01 * rng.standard_normal(8)
    vacc = 0.1 + 0.01 * rng.standard_normal(8)
    vloss = math.log(10) + 0.003 + 0.002 * rng.standard_normal(8)
    measured = monitor_log(loss, acc, vloss, vacc, ratio=1e-5)
    assert problems(measured)[0] == "lr-too-low"
    assert "lr-too-low" not in problems(monitor_log(loss, acc, vloss, vacc))


def test_a_squashed_looking_loss_with_tiny_updates_and_raw_logits_is_lr_too_low():
    """lr 100x too small on a classifier: accuracy climbs while the loss falls only ~10%,
    which from the columns alone is a softmax-squashed loss (loss-activation-mismatch). The
    Monitor saw raw logits (no mismatch event) and update ratios of 3e-4: the step is small."""
    rng = np.random.default_rng(4)
    n, x = 400, np.arange(400)
    loss = 2.30 - 0.23 * x / n + 0.01 * rng.standard_normal(n)
    acc = np.linspace(0.3, 0.85, 8)
    vloss, vacc = 2.28 - 0.23 * np.arange(8) / 8, np.linspace(0.32, 0.86, 8)
    assert problems(monitor_log(loss, acc, vloss, vacc, ratio=3e-4))[0] == "lr-too-low"
    squashed = monitor_log(loss, acc, vloss, vacc, ratio=3e-4, events=[
        {"step": 0, "code": "loss-activation-mismatch", "message": "outputs in [0, 1]",
         "data": {"min": 0.01, "max": 0.4, "n_outputs": 10}}])
    assert "lr-too-low" not in problems(squashed)

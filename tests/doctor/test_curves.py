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

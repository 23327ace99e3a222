"""Rules on how training was set up, as the curves show it (doctor/_training.py)."""

from __future__ import annotations

import numpy as np

from lrdoctor.doctor import diagnose
from lrdoctor.logs import Series, TrainingLog


def _split_log(test_loss, test_acc, val_loss=(0.24, 0.17, 0.13, 0.125, 0.122, 0.121),
               val_acc=(0.905, 0.953, 0.972, 0.978, 0.978, 0.978)) -> TrainingLog:
    ev = np.arange(50, 301, 50)
    steps = np.arange(300)
    return TrainingLog({"train/loss": Series(steps, 0.05 + 2.0 * np.exp(-steps / 40.0)),
                        "val/loss": Series(ev, np.array(val_loss)),
                        "val/accuracy": Series(ev, np.array(val_acc)),
                        "test/loss": Series(ev, np.array(test_loss)),
                        "test/accuracy": Series(ev, np.array(test_acc))},
                       format="lrdoctor-jsonl")


def test_a_test_loss_that_grows_while_test_accuracy_rises_is_calibration_not_a_shift():
    """Over-confidence on a few test examples: test loss 0.20 -> 0.22, accuracy 94% -> 97%."""
    log = _split_log((0.195, 0.242, 0.241, 0.226, 0.225, 0.224),
                     (0.942, 0.961, 0.964, 0.967, 0.972, 0.972))
    assert "distribution-shift" not in diagnose(log).codes


def test_a_test_split_that_lags_in_loss_and_accuracy_is_a_shift():
    falling = _split_log((0.69, 0.51, 0.43, 0.43, 0.39, 0.38), (0.84, 0.87, 0.89, 0.88, 0.89, 0.88))
    rising = _split_log((2.1, 2.5, 2.5, 2.8, 2.9, 2.75), (0.31, 0.35, 0.38, 0.38, 0.37, 0.41))
    for log in (falling, rising):
        assert "distribution-shift" in [f.code for f in diagnose(log).problems]


def test_a_test_split_with_no_finite_value_is_skipped_not_a_crash():
    """A run that went non-finite logs test/loss = nan at every evaluation (seen on a corpus
    run: diagnose raised IndexError on the empty finite series)."""
    nan = (float("nan"),) * 6
    log = _split_log(nan, nan)
    assert "distribution-shift" not in diagnose(log).codes


def test_an_accuracy_gap_at_the_same_loss_is_sampling_not_a_shift():
    """A tiny model near 40% accuracy (the corpus' width-2 shape): test accuracy 7 points
    below validation's at the same loss (1.6 vs 1.6) is the sampling noise of two splits, not a
    shift; the same gap with the test loss 30% above validation's is one."""
    vl, va = (2.1, 1.9, 1.75, 1.68, 1.63, 1.60), (0.22, 0.30, 0.35, 0.38, 0.40, 0.41)
    same = _split_log((2.12, 1.92, 1.77, 1.69, 1.64, 1.62), (0.17, 0.24, 0.28, 0.31, 0.33, 0.34),
                      vl, va)
    assert "distribution-shift" not in diagnose(same).codes
    worse = _split_log((2.3, 2.2, 2.15, 2.1, 2.1, 2.08), (0.17, 0.24, 0.28, 0.31, 0.33, 0.34),
                       vl, va)
    assert "distribution-shift" in [f.code for f in diagnose(worse).problems]

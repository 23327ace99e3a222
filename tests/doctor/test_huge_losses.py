"""Losses of hundreds of nats (a blown-up run that stays finite) are diagnosed, not a crash."""

from __future__ import annotations

import numpy as np
import pytest

from lrdoctor import diagnose
from lrdoctor.logs import Series, TrainingLog


@pytest.mark.parametrize("level", [750.0, 1e4, 1e300])
def test_per_epoch_columns_at_a_huge_loss_level(level):
    epochs = np.arange(8)
    train = np.array([2.3, level * 5, *([level] * 6)])
    acc = np.full(8, 0.1)
    log = TrainingLog({"train/loss": Series(epochs, train), "train/accuracy": Series(epochs, acc),
                       "val/loss": Series(epochs, train * 1.01),
                       "val/accuracy": Series(epochs, acc)}, step_unit="epoch")
    d = diagnose(log)          # raised OverflowError in math.exp before
    assert d.findings and d.worst in ("warning", "critical")


def test_negative_huge_validation_loss_and_infinite_epochs():
    epochs = np.arange(6, dtype=float)
    loss = np.array([2.3, 2.0, 1.8, 1.7, 1.6, 1.5])
    acc = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.42])
    log = TrainingLog({"train/loss": Series(epochs, loss, np.r_[epochs[:-1], np.inf]),
                       "train/accuracy": Series(epochs, acc),
                       "val/loss": Series(epochs, np.full(6, -1e308)),
                       "val/accuracy": Series(epochs, acc)}, step_unit="epoch")
    assert diagnose(log).findings      # OverflowError (exp of 1e308) before


@pytest.mark.timeout(60)
def test_fractional_per_step_epochs_are_counted_in_one_pass():
    n = 200_000                        # an HF log: one fractional epoch per step
    steps = np.arange(n)
    log = TrainingLog({"train/loss": Series(steps, 2.0 / (1 + steps / 1e4),
                                            steps / 1000.0)})
    assert diagnose(log).findings      # was one np.sum(ep == e) per distinct epoch: minutes

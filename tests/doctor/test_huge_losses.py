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

"""Rules on the validation curve against its own noise (``doctor/_validation``)."""

from __future__ import annotations

import numpy as np

from lrdoctor.doctor import diagnose
from lrdoctor.doctor._context import Context
from lrdoctor.doctor._validation import _before_final_rise, swinging_validation
from lrdoctor.logs import Series, TrainingLog


def epochs_log(loss, val_loss, lr=0.01) -> TrainingLog:
    ep = np.arange(len(loss), dtype=float)
    cols = {"train/loss": loss, "val/loss": val_loss, "lr": np.full(len(loss), lr)}
    return TrainingLog({k: Series(ep, np.asarray(v, dtype=float), ep) for k, v in cols.items()},
                       format="keras-csv", step_unit="epoch")


# an early-stopped healthy CNN (corpus mnist1d-cnn, early-stopping, seed 0): validation improves
# with evaluation noise, then rises for the 2 patience epochs that stop the run
TRAIN = [1.890, 1.383, 1.136, 0.933, 0.758, 0.622, 0.525, 0.452, 0.392, 0.327, 0.268, 0.299]
VAL = [1.566, 1.291, 1.112, 0.918, 0.806, 0.747, 0.643, 0.618, 0.632, 0.555, 0.614, 0.710]


def test_the_final_rise_that_stops_an_early_stopped_run_is_not_a_swing():
    assert "oscillation" not in [f.code for f in diagnose(epochs_log(TRAIN, VAL)).problems]


def test_a_swing_before_the_end_still_is_one():
    swung = VAL[:6] + [0.62, 0.75, 0.58, 0.74, 0.57, 0.73, 0.56, 0.72]
    train = list(np.linspace(1.89, 0.3, len(swung)))
    assert swinging_validation(Context(epochs_log(train, swung)))


def test_before_final_rise():
    v = np.array([0.64, 0.62, 0.63, 0.55, 0.61, 0.71])
    assert _before_final_rise(v, is_acc=False) == 4
    assert _before_final_rise(v[:4], is_acc=False) == 4       # ends at its best
    assert _before_final_rise(np.array([0.5, 0.4, 0.6, 0.7, 0.8]), is_acc=False) == 5  # 3 rises
    assert _before_final_rise(np.array([0.5, 0.7, 0.6]), is_acc=True) == 2   # accuracy fell

"""diagnose never crashes: random logs with NaN/Inf, negatives, zeros, tiny and odd series."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lrdoctor.doctor import diagnose
from lrdoctor.logs import Event, Series, TrainingLog

NAMES = ["train/loss", "val/loss", "train/accuracy", "val/accuracy", "lr", "grad_norm",
         "grad_norm/a", "grad_norm/b", "grad_norm/c", "update_ratio/a", "dead_frac/a",
         "saturation/b", "act_std/a", "input/absmax", "input/std", "input/mean",
         "batch/label_purity", "batch/label_mode", "noise_scale", "batch/size", "param_norm",
         "test/loss", "test/accuracy", "train/loss_epoch", "nonfinite/grads"]
VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                   st.sampled_from([0.0, -1.0, 1e-30, 1e30, 2.3]))


@st.composite
def logs(draw):
    series = {}
    for name in draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=10, unique=True)):
        vals = draw(st.lists(VALUES, min_size=1, max_size=120))
        steps = np.cumsum(draw(st.lists(st.integers(1, 5), min_size=len(vals),
                                        max_size=len(vals))))
        epochs = steps // 10 if draw(st.booleans()) else None
        series[name] = Series(steps, np.asarray(vals, dtype=float), epochs)
    meta = draw(st.sampled_from([{}, {"optimizer": "Adam", "n_outputs": 10, "dropout": [0.9],
                                      "param_groups": [{"weight_decay": 0.5}],
                                      "layers": ["a", "b", "c"]}]))
    events = [Event("loss-activation-mismatch", "x", 0)] if draw(st.booleans()) else []
    return TrainingLog(series, meta=meta, events=events,
                       step_unit=draw(st.sampled_from(["step", "epoch"])))


@settings(max_examples=150)
@given(logs())
def test_diagnose_never_crashes(log):
    d = diagnose(log)
    assert all(f.severity in ("info", "warning", "critical") for f in d.findings)
    d.to_dict()

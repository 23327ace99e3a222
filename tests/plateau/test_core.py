"""The pure plateau core: settings validation, mode inference, non-finite values, limits."""

from __future__ import annotations

import math

import pytest

from lrdoctor.errors import PlateauError
from lrdoctor.plateau import (
    EarlyStopConfig,
    EarlyStopState,
    PlateauConfig,
    PlateauState,
    early_stop_update,
    infer_mode,
    update,
)


def run(cfg: PlateauConfig, values, lrs=(1.0,), hold=None):
    state, out = cfg.initial_state(), []
    for i, v in enumerate(values):
        o = update(cfg, state, v, lrs, hold=bool(hold and hold(i)))
        state, lrs = o.state, o.lrs
        out.append(o)
    return out


@pytest.mark.parametrize("name,mode", [
    ("val_loss", "min"), ("train/loss", "min"), ("mean_squared_error", "min"), ("perplexity", "min"),
    ("val_accuracy", "max"), ("val_acc", "max"), ("val/auc", "max"), ("macro_f1", "max"),
    ("mAP", "max"), ("bleu", "max"), ("val_iou", "max"), ("precision", "max"), ("recall", "max"),
])
def test_auto_mode_names(name, mode):
    assert infer_mode(name) == mode
    assert PlateauConfig(monitor=name, mode="auto").mode == mode


@pytest.mark.parametrize("name", ["val_score", "heatmap", "lr", "grad_norm"])
def test_auto_mode_unknown_name_asks_for_mode(name):
    with pytest.raises(PlateauError, match="pass mode='min' or mode='max'"):
        PlateauConfig(monitor=name, mode="auto")


@pytest.mark.parametrize("kwargs,match", [
    ({"mode": "minimum"}, "mode must be one of"),
    ({"factor": 1.0}, "factor must be < 1"),
    ({"factor": 1.5}, "factor must be < 1"),
    ({"factor": 0.0}, "factor must be > 0"),
    ({"patience": -1}, "patience must be >= 0"),
    ({"patience": 1.5}, "patience must be a whole number"),
    ({"threshold_mode": "relative"}, "threshold_mode must be one of"),
    ({"cooldown": -2}, "cooldown must be >= 0"),
    ({"min_lr": -1e-3}, "min_lr must be >= 0"),
    ({"min_lr": []}, "min_lr must be a number or a non-empty list"),
    ({"eps": float("nan")}, "eps must be finite"),
    ({"convention": "jax"}, "convention must be one of"),
    ({"nonfinite": "ignore"}, "nonfinite must be one of"),
    ({"monitor": ""}, "monitor must be a metric name"),
])
def test_bad_settings_raise_clear_errors(kwargs, match):
    with pytest.raises(PlateauError, match=match):
        PlateauConfig(**kwargs)


def test_min_lr_per_group_count_must_match_when_a_reduction_fires():
    """As torch: checked at a reduction, not before (a group may be added after construction)."""
    cfg = PlateauConfig(min_lr=[0.0, 0.1], patience=0)
    first = update(cfg, cfg.initial_state(), 1.0, (1.0, 1.0, 1.0))
    assert not first.fired
    with pytest.raises(PlateauError, match="2 values but there are 3 param groups"):
        update(cfg, first.state, 1.0, (1.0, 1.0, 1.0))


def test_torch_convention_reduces_after_patience_plus_one():
    outs = run(PlateauConfig(patience=2, factor=0.5), [1.0, 1.0, 1.0, 1.0])
    assert [o.reduced for o in outs] == [False, False, False, True]
    assert outs[-1].lrs == (0.5,)
    assert outs[-1].evidence["num_bad"] == 3


def test_keras_convention_reduces_at_patience():
    cfg = PlateauConfig(patience=2, factor=0.5, convention="keras", threshold=0.0, threshold_mode="abs")
    outs = run(cfg, [1.0, 1.0, 1.0])
    assert [o.reduced for o in outs] == [False, False, True]


def test_nonfinite_is_a_bad_evaluation_by_default():
    outs = run(PlateauConfig(patience=1, mode="max"), [0.5, math.inf, math.nan])
    assert [o.nonfinite for o in outs] == [False, True, True]
    assert outs[1].state.best == 0.5  # +inf in max mode is not a new best (torch would take it)
    assert outs[2].reduced and outs[2].cause == "plateau"


def test_nonfinite_can_reduce_at_once():
    outs = run(PlateauConfig(patience=5, nonfinite="reduce", factor=0.5), [1.0, math.nan])
    assert outs[1].reduced and outs[1].cause == "nonfinite" and outs[1].lrs == (0.5,)


def test_max_reductions_and_stop_at_min_lr():
    cfg = PlateauConfig(patience=0, factor=0.5, max_reductions=2, stop_at_min_lr=True)
    outs = run(cfg, [1.0, 2.0, 2.0, 2.0])
    assert [o.lrs[0] for o in outs] == [1.0, 0.5, 0.25, 0.25]
    assert [o.stop for o in outs] == [False, False, False, True]
    assert outs[-1].state.exhausted and outs[-1].state.stopped


def test_stop_when_min_lr_reached_and_patience_spent_again():
    cfg = PlateauConfig(patience=1, factor=0.1, min_lr=0.01, stop_at_min_lr=True)
    outs = run(cfg, [1.0] * 10)
    lrs = [o.lrs[0] for o in outs]
    assert lrs[2] == pytest.approx(0.1) and lrs[4] == pytest.approx(0.01)
    first_stop = next(i for i, o in enumerate(outs) if o.stop)
    assert first_stop == 6  # two more bad evaluations after reaching min_lr at index 4


def test_hold_counts_no_bad_evaluations_but_tracks_best():
    outs = run(PlateauConfig(patience=0), [1.0, 2.0, 0.5, 3.0, 3.0], hold=lambda i: i < 3)
    assert [o.reduced for o in outs] == [False, False, False, True, True]
    assert outs[2].state.best == 0.5


def test_cooldown_torch_semantics():
    outs = run(PlateauConfig(patience=0, cooldown=2, factor=0.5), [1.0, 2.0, 2.0, 2.0, 2.0])
    assert [o.lrs[0] for o in outs] == [1.0, 0.5, 0.5, 0.5, 0.25]


def test_state_roundtrip():
    s = PlateauState(evaluations=3, best=0.2, best_evaluation=1, num_bad=2)
    assert PlateauState.from_dict(s.to_dict()) == s
    c = PlateauConfig(min_lr=[0.0, 1e-3], mode="max")
    assert PlateauConfig.from_dict(c.to_dict()) == c
    with pytest.raises(PlateauError, match="unknown plateau setting"):
        PlateauConfig.from_dict({"patients": 3})


def test_early_stop_baseline_and_start_epoch():
    cfg = EarlyStopConfig(monitor="val_loss", patience=2, baseline=0.5, start_from_epoch=1)
    state, stops = EarlyStopState(), []
    for epoch, v in enumerate([9.0, 0.8, 0.7, 0.6, 0.6]):
        o = early_stop_update(cfg, state, epoch, v)
        state = o.state
        stops.append(o.stop)
    # epoch 0 ignored; 0.8, 0.7, 0.6 improve but never beat the baseline, so wait is never
    # reset (Keras' rule) and the first evaluation that does not improve stops
    assert stops == [False, False, False, False, True]
    assert state.best == 0.6 and state.best_epoch == 3


def test_early_stop_missing_metric_is_ignored():
    cfg = EarlyStopConfig(monitor="val_loss", patience=0)
    o = early_stop_update(cfg, EarlyStopState(), 3, None)
    assert not o.counted and not o.stop


def test_early_stop_bad_settings():
    with pytest.raises(PlateauError, match="patience must be >= 0"):
        EarlyStopConfig(patience=-1)
    with pytest.raises(PlateauError, match="pass mode"):
        EarlyStopConfig(monitor="throughput")

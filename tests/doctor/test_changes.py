"""Finding.changes: values come from the evidence, every change is in the vocabulary, and every
knob a change uses is one the example tasks' train_fn applies."""

from __future__ import annotations

import numpy as np
import pytest

from lrdoctor import diagnose
from lrdoctor.doctor import Finding
from lrdoctor.doctor._changes import _TABLE, KNOBS, NO_CHANGES, changes_for, validate_change
from lrdoctor.doctor._context import Context
from lrdoctor.doctor._finding import CODES
from lrdoctor.logs import Series, TrainingLog
from lrdoctor.logs._model import Event


def _log(n: int = 200, *, lr: float = 0.5, spike_at: int | None = None, **extra) -> TrainingLog:
    steps = np.arange(n, dtype=float)
    loss = 2.3 * np.exp(-steps / 40) + 0.1
    if spike_at is not None:
        loss[spike_at:] = 50.0
    series = {"train/loss": Series(steps, loss), "lr": Series(steps, np.full(n, lr))}
    series.update(extra)
    return TrainingLog(series, meta={"optimizer": "Adam"})


def _finding(code: str, steps=(), **data) -> Finding:
    return Finding(code, CODES[code], "warning", "e", "f", tuple(float(s) for s in steps), 0.5,
                   data)


def test_every_code_with_a_fix_has_a_rule_and_the_rest_are_named():
    assert set(_TABLE) | set(NO_CHANGES) == set(CODES)


def test_new_lr_is_the_lr_where_the_loss_broke_over_ten():
    ctx = Context(_log(lr=0.5, spike_at=120))
    changes = changes_for(_finding("lr-too-high", [120]), ctx)
    assert changes[0] == {"lr": 0.05}
    assert changes[1]["lr"] == 0.05 and changes[1]["warmup_steps"] >= 1


def test_a_break_in_the_first_2_percent_steps_down_100x():
    # lr 0.5 broke at step 2 of 200: far past the edge, so /100 (and /1000 next), not /10
    changes = changes_for(_finding("lr-too-high", [2]), Context(_log(lr=0.5, spike_at=2)))
    assert changes[0] == {"lr": 0.005} and {"lr": 0.0005} in changes
    # the same lr breaking at step 10 (5% in) is one step of 10
    assert changes_for(_finding("lr-too-high", [10]), Context(_log(lr=0.5, spike_at=10)))[0] \
        == {"lr": 0.05}


def test_a_crawl_raises_the_lr_by_three_over_the_drop():
    # the loss fell 1%: 300x, then a third of it, then 10x it
    n = 200
    steps = np.arange(n, dtype=float)
    log = TrainingLog({"train/loss": Series(steps, 2.3 - 0.023 * steps / n),
                       "lr": Series(steps, np.full(n, 1e-4))}, meta={"optimizer": "SGD"})
    changes = changes_for(_finding("lr-too-low", drop=0.01), Context(log))
    assert [c.get("lr") for c in changes[:3]] == [0.03, 0.01, 0.3]
    assert changes[-1] == {"optimizer": "adam", "lr": 0.001}
    # underfitting whose loss barely moved is the same crawl first, then longer training
    under = changes_for(_finding("underfitting", drop=0.01), Context(log))
    assert under[0] == {"lr": 0.03}
    assert changes_for(_finding("underfitting", drop=0.3), Context(log))[0] != {"lr": 0.03}


def test_label_smoothing_matches_the_noise_rate_the_accuracies_imply():
    # 10 classes, validation 90%, training (on the noisy labels) 0.9 * 0.6 + 0.4 / 10 = 58%:
    # labels replaced with probability 0.4
    n = 100
    steps = np.arange(n, dtype=float)
    ev = steps[9::10]
    log = TrainingLog({"train/loss": Series(steps, np.full(n, 1.5)),
                       "train/accuracy": Series(ev, np.full(10, 0.58)),
                       "val/accuracy": Series(ev, np.full(10, 0.9))}, meta={"n_outputs": 10})
    changes = changes_for(_finding("label-noise"), Context(log))
    assert changes == ({"label_smoothing": 0.4}, {"label_smoothing": 0.2})
    # without accuracies: the fixed 0.1, 0.2
    assert changes_for(_finding("label-noise"), Context(_log()))[0] == {"label_smoothing": 0.1}


def test_overfitting_weight_decay_comes_from_the_loss_gap():
    # train 0.1, val 0.5 at the end: gap 0.8; lr 0.1 over 100 steps -> wd = 0.8 / 10 = 0.08
    steps = np.arange(100, dtype=float)
    log = TrainingLog({"train/loss": Series(steps, np.full(100, 0.1)),
                       "val/loss": Series(steps[9::10], np.full(10, 0.5)),
                       "lr": Series(steps, np.full(100, 0.1))})
    assert {"weight_decay": 0.08} in changes_for(_finding("overfitting"), Context(log))


def test_new_lr_follows_a_finder_suggestion_in_the_meta():
    log = _log(lr=0.5, spike_at=120)
    log.meta["lr_suggestion"] = 0.0123456
    assert changes_for(_finding("lr-too-high", [120]), Context(log))[0] == {"lr": 0.0123}


def test_too_low_raises_the_lr_tenfold():
    assert changes_for(_finding("lr-too-low"), Context(_log(lr=1e-4)))[0] == {"lr": 0.001}


def test_warmup_steps_come_from_the_spike_step_within_5_to_25_percent():
    ctx = Context(_log(n=1000))
    assert changes_for(_finding("missing-warmup", [30]), ctx)[0] == {"warmup_steps": 60}
    assert changes_for(_finding("missing-warmup", [1]), ctx)[0] == {"warmup_steps": 50}
    assert changes_for(_finding("missing-warmup", [900]), ctx)[0] == {"warmup_steps": 250}


def test_plateau_mode_is_the_monitored_metrics_direction():
    log = _log()
    log.events.append(Event("lr-scheduler", "PlateauLR", 0,
                            {"mode": "min", "monitor": "val_accuracy"}))
    assert changes_for(_finding("plateau-monitor-mismatch"), Context(log))[0] == \
        {"plateau_mode": "max"}
    log.events[0] = Event("lr-scheduler", "PlateauLR", 0, {"mode": "max", "monitor": "val_loss"})
    assert changes_for(_finding("plateau-monitor-mismatch"), Context(log))[0] == \
        {"plateau_mode": "min"}


def test_dead_units_after_a_blow_up_get_a_lower_lr_first_else_the_init():
    assert changes_for(_finding("dead-relu", [120]), Context(_log(spike_at=120)))[0] == \
        {"lr": 0.05}
    assert changes_for(_finding("dead-relu"), Context(_log()))[0] == {"init": "kaiming"}


def test_overfitting_stops_at_the_epoch_of_the_best_validation_loss():
    steps = np.arange(0, 100, dtype=float)
    epochs = steps // 10
    vsteps = np.arange(9, 100, 10, dtype=float)
    val = np.array([1.0, 0.8, 0.6, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 1.0])
    log = TrainingLog({"train/loss": Series(steps, np.exp(-steps / 20), epochs),
                       "val/loss": Series(vsteps, val, np.arange(10, dtype=float))})
    assert changes_for(_finding("overfitting"), Context(log))[0] == {"epochs": 4}


def test_over_regularization_names_the_strong_one_first():
    log = _log()
    log.meta.update({"dropout": [0.9], "param_groups": [{"lr": 0.5, "weight_decay": 0.0}]})
    assert changes_for(_finding("over-regularization"), Context(log))[0] == {"dropout": 0.1}
    log.meta.update({"dropout": [], "param_groups": [{"lr": 0.5, "weight_decay": 0.3}]})
    assert changes_for(_finding("over-regularization"), Context(log))[0] == \
        {"weight_decay": 0.0001}


def test_a_damaged_log_leaves_out_invalid_values_instead_of_failing():
    log = _log(lr=1e308)
    log.meta["optimizer"] = "SGD"
    changes = changes_for(_finding("lr-too-low"), Context(log))
    assert {"optimizer": "adam", "lr": 0.001} in changes
    assert all(np.isfinite(c.get("lr", 1.0)) for c in changes)


def test_validate_change_names_the_knob():
    with pytest.raises(ValueError, match="unknown repair knob 'learning_rate'"):
        validate_change({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="warmup_steps must be int >= 0"):
        validate_change({"warmup_steps": -5})


def test_diagnose_attaches_changes_and_json_carries_them():
    d = diagnose(_log(lr=0.5, spike_at=120))
    f = next(f for f in d.findings if f.code == "lr-too-high")
    assert f.changes and f.to_dict()["changes"] == [dict(c) for c in f.changes]
    for f in d.findings:
        for c in f.changes:
            validate_change(c)


@pytest.mark.parametrize("name", ["digits-mlp", "mnist1d-conv"])
def test_every_knob_is_a_key_of_the_example_config(name):
    from lrdoctor.examples._repair import config

    assert set(KNOBS) <= set(config(name))
    assert not {"activation", "output_activation", "normalize_inputs", "width"} \
        & set(config("charlm"))


def test_docs_repair_lists_every_knob_and_every_code_with_changes():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "repair.md").read_text()
    for knob in KNOBS:
        assert f"| `{knob}` |" in text, knob
    for code in _TABLE:
        assert f"`{code}`" in text, code


def test_diagnose_json_carries_the_changes(tmp_path):
    import json

    from lrdoctor.cli import main

    p = tmp_path / "training.log"
    p.write_text("epoch,loss,val_loss,lr\n" + "".join(
        f"{i},{v},{v},0.5\n" for i, v in enumerate([2.0, 1.5, 9.0, 40.0, 80.0, 90.0])))
    assert main(["diagnose", str(p), "--json", str(tmp_path / "d.json"), "--quiet"]) == 0
    findings = json.loads((tmp_path / "d.json").read_text())["findings"]
    assert all("changes" in f for f in findings)
    assert any(c.get("lr") == 0.05 for f in findings for c in f["changes"])


def test_underfitting_that_flattened_widens_the_model_by_the_params_per_example():
    # 100 steps per epoch (2 epochs) at batch 32: 3200 examples; 150 parameters:
    # 30 * 3200 / 150 = 640 -> 2^10, clipped to 64
    n = 200
    steps = np.arange(n, dtype=float)
    loss = 1.5 + np.exp(-steps / 20)
    log = TrainingLog({"train/loss": Series(steps, loss, epochs=np.repeat([0.0, 1.0], 100)),
                       "batch/size": Series(steps[::50], np.full(4, 32.0)),
                       "lr": Series(steps, np.full(n, 0.1))},
                      meta={"optimizer": "SGD", "n_params": 150})
    under = changes_for(_finding("underfitting", drop=0.4), Context(log))
    assert under[0] == {"width": "x64"}
    log.meta["n_params"] = 30_000   # 30 * 3200 / 30000 = 3.2 -> 4
    assert changes_for(_finding("underfitting", drop=0.4), Context(log))[0] == {"width": "x4"}
    del log.meta["n_params"]        # no count: 16
    assert changes_for(_finding("underfitting", drop=0.4), Context(log))[0] == {"width": "x16"}
    validate_change({"width": "x16"})
    with pytest.raises(ValueError, match="width"):
        validate_change({"width": "wide"})


def test_a_larger_batch_keeps_the_number_of_optimizer_steps():
    n = 200
    steps = np.arange(n, dtype=float)
    log = TrainingLog({"train/loss": Series(steps, 2.3 * np.exp(-steps / 40) + 0.1,
                                            epochs=np.zeros(n)),
                       "batch/size": Series(steps[::50], np.full(4, 4.0)),
                       "lr": Series(steps, np.full(n, 0.01))}, meta={"optimizer": "SGD"})
    changes = changes_for(_finding("batch-size", noise_scale=16.0), Context(log))
    assert changes[0] == {"batch_size": 16, "lr": 0.04, "epochs": 4}
    assert changes[1:] == ({"batch_size": 16, "lr": 0.04}, {"batch_size": 16})

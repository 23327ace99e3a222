"""lrdoctor.repair: the loop on a pure train_fn (no torch), and on the example tasks."""

from __future__ import annotations

import numpy as np
import pytest

import lrdoctor
from lrdoctor import RepairResult, UnsupportedChange, repair
from lrdoctor.healing import random_repair
from lrdoctor.journal import Journal
from lrdoctor.logs import Series, TrainingLog


def _run(config: dict) -> TrainingLog:
    """A fake run: above lr 0.1 the loss blows up at step 60 (the doctor says lr-too-high)."""
    steps = np.arange(200, dtype=float)
    loss = 2.3 * np.exp(-steps / 30) + 0.1
    if config["lr"] > 0.1:
        loss[60:] = 40.0
    acc = np.clip(1 - loss / 2.4, 0, 1)
    return TrainingLog({"train/loss": Series(steps, loss),
                        "lr": Series(steps, np.full(200, float(config["lr"]))),
                        "val/accuracy": Series(steps[19::20], acc[19::20])})


class Recorder:
    def __init__(self, refuse: tuple[str, ...] = ()):
        self.configs: list[dict] = []
        self.refuse = refuse

    def __call__(self, config: dict) -> TrainingLog:
        for k in self.refuse:
            if config.get(k) is not None and config.get(k) != 0:
                raise UnsupportedChange(k)
        self.configs.append(dict(config))
        return _run(config)


def test_public_names():
    assert lrdoctor.repair is repair and not isinstance(lrdoctor.repair, type(lrdoctor))
    assert issubclass(UnsupportedChange, ValueError)
    assert RepairResult.__name__ == "RepairResult"


def test_heals_with_the_lr_from_the_evidence_and_records_every_round(tmp_path):
    fn = Recorder()
    result = repair(fn, {"lr": 2.0, "warmup_steps": 0, "grad_clip": None},
                    journal=tmp_path / "journal.jsonl")
    # the lr at the break (2.0) / 10 is still too high; the next alternative of that same
    # diagnosis is lr / 100
    assert [c["lr"] for c in fn.configs] == [2.0, 0.2, 0.2, 0.02]
    assert result.healed and result.config == {"lr": 0.02, "warmup_steps": 0, "grad_clip": None}
    assert result.history[0].change is None and not result.history[0].healthy
    assert result.history[-1].healthy and result.history[-1].code == "lr-too-high"
    assert result.rounds == len(fn.configs) - 1 <= 3
    entries = Journal.load(tmp_path / "journal.jsonl").entries
    assert [e.cause for e in entries] == ["repair"] * len(result.history)
    assert entries[-1].explain().startswith(f"repair round {result.rounds}: lr=")
    d = result.to_dict()
    assert d["healed"] and d["history"][1]["change"] == result.history[1].change


def test_a_healthy_run_costs_no_round():
    fn = Recorder()
    result = repair(fn, {"lr": 0.01}, improve=False)
    assert result.healed and result.rounds == 0 and len(fn.configs) == 1
    # improving (the default): its accuracy still rose at the end, so lr x3 is tried; the run
    # is the same (below lr 0.1 the fake ignores the lr): no gain, reverted, nothing else to try
    result = repair(Recorder(), {"lr": 0.01})
    assert result.healed and result.config == {"lr": 0.01} and result.rounds == 1
    assert result.history[1].change == {"lr": 0.03} and not result.history[1].kept


def test_unsupported_change_skips_to_the_next_alternative():
    # warm-up is refused by this train_fn; grad_clip and lr are fine
    fn = Recorder(refuse=("warmup_steps",))
    result = repair(fn, {"lr": 20.0, "warmup_steps": 0, "grad_clip": None}, rounds=3)
    skipped = [a for r in result.history for a in r.skipped]
    assert any("warmup_steps" in a.change and "warmup_steps" in a.reason for a in skipped)
    assert all(c.get("warmup_steps") == 0 for c in fn.configs)


def test_a_knob_the_config_lacks_is_skipped():
    fn = Recorder()
    result = repair(fn, {"lr": 20.0}, rounds=3)
    assert all(set(c) == {"lr"} for c in fn.configs)
    assert any("no knob" in a.reason for a in result.skipped)


def test_a_change_that_makes_things_worse_is_reverted():
    fn = Recorder()
    result = repair(fn, {"lr": 20.0, "grad_clip": None}, rounds=3)
    base = result.history[0]
    for r in result.history[1:]:
        assert r.kept == (r.healthy or r.metric > base.metric)
        base = r if r.kept else base
    assert result.config == base.config == result.best.config


def test_rounds_zero_only_diagnoses_and_bad_rounds_are_refused():
    assert repair(Recorder(), {"lr": 20.0}, rounds=0).rounds == 0
    with pytest.raises(ValueError, match="rounds must be an int >= 0"):
        repair(Recorder(), {"lr": 1.0}, rounds=-1)
    with pytest.raises(ValueError, match="train_fn must return a TrainingLog or a log path"):
        repair(lambda c: 3, {"lr": 1.0})


def test_random_repair_spends_the_same_budget_with_vocabulary_changes():
    fn = Recorder()
    result = random_repair(fn, {"lr": 20.0, "warmup_steps": 0, "grad_clip": None}, rounds=3,
                           seed=1)
    assert result.strategy == "random" and result.rounds <= 3
    for r in result.history[1:]:
        assert r.code == "random" and len(r.change) == 1


# ---- the example tasks ------------------------------------------------------------------------
KNOB_VALUES = {"lr": 0.01, "schedule": "cosine({lr}, end=0, steps={steps})", "warmup_steps": 5,
               "weight_decay": 1e-3, "grad_clip": 1.0, "batch_size": 64, "epochs": 1,
               "optimizer": "adamw", "init": "kaiming", "activation": "leaky_relu",
               "dropout": 0.1, "normalize_inputs": True, "shuffle": False,
               "output_activation": "softmax", "plateau_mode": "auto",
               "plateau_monitor": "val_accuracy", "label_smoothing": 0.1, "width": 32}


def test_every_knob_of_the_vocabulary_applies_to_the_example_train_fn(tmp_path):
    from lrdoctor.doctor._changes import KNOBS
    from lrdoctor.examples._repair import ExampleTrainer, config
    from lrdoctor.logs import load

    assert set(KNOB_VALUES) == set(KNOBS)
    fn = ExampleTrainer(tmp_path)
    base = config("digits-mlp", epochs=1)
    base["batch_size"] = 256
    for group in (("lr", "schedule", "warmup_steps", "weight_decay", "grad_clip"),
                  ("optimizer", "init", "activation", "dropout", "normalize_inputs"),
                  ("batch_size", "shuffle", "output_activation", "plateau_mode",
                   "plateau_monitor", "label_smoothing", "epochs", "width")):
        cfg = {**base, **{k: KNOB_VALUES[k] for k in group}}
        log = load(fn(cfg))
        assert log.has("train/loss") and log.has("val/accuracy")
        if "width" in group:  # hidden (128, 64) scaled by 32 / 128: 64*32+32 + 32*16+16 + 170
            assert log.meta["n_params"] == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    with pytest.raises(UnsupportedChange, match="activation"):
        fn({**config("charlm", epochs=1), "activation": "relu"})
    with pytest.raises(UnsupportedChange, match="width"):
        fn({**config("charlm", epochs=1), "width": 64})


def test_repair_example_heals_a_plateau_in_the_wrong_mode(tmp_path):
    from lrdoctor.healing import repair_example

    result = repair_example("digits-mlp", "plateau-min-on-accuracy", rounds=2, epochs=4,
                            out_dir=tmp_path)
    assert result.history[0].diagnosis.problems[0].code == "plateau-monitor-mismatch"
    assert result.healed and result.config["plateau_mode"] == "max"
    assert (tmp_path / "journal.jsonl").is_file() and (tmp_path / "run-02" / "log.jsonl").is_file()


def test_an_lr_change_scales_a_concrete_schedule_to_its_new_peak():
    from lrdoctor.healing import apply_change
    from lrdoctor.schedules import parse

    cfg = apply_change({"lr": 0.1, "schedule": "warmup(10) >> linear(0.1, end=10, steps=90)"},
                       {"lr": 0.5})
    s = parse(cfg["schedule"])
    assert max(s(k) for k in range(101)) == pytest.approx(0.5)
    templ = {"lr": 0.1, "schedule": "cosine({lr}, end=0, steps={steps})"}
    assert apply_change(templ, {"lr": 0.5}) == {**templ, "lr": 0.5}   # {lr} follows by itself
    assert apply_change({"lr": 0.1, "schedule": None}, {"lr": 0.5}) == {"lr": 0.5, "schedule": None}


def test_a_cure_hidden_by_a_second_fault_is_kept(tmp_path):
    """The demo's mistake: lr 10x too high *and* a plateau scheduler in mode 'min' on accuracy.
    Fixing the mode alone leaves the run at chance (same metric), but its finding is gone: the
    loop keeps it and goes on to the lr instead of spending its rounds on the mode's other
    alternatives (it ended unhealed before)."""
    from lrdoctor.examples._repair import ExampleTrainer, fault_config

    cfg = fault_config("digits-mlp", "plateau-min-on-accuracy", epochs=5)
    cfg["lr"] = 0.5
    result = repair(ExampleTrainer(tmp_path), cfg, rounds=3)
    assert result.healed and len(result.history) >= 3
    first, second = result.history[1], result.history[2]
    assert first.change == {"plateau_mode": "max"} and first.kept and not first.healthy
    assert second.code == "lr-too-high" and second.healthy
    assert result.config["plateau_mode"] == "max" and result.config["lr"] < 0.5


def _round(codes: tuple[str, ...], metric: float, code: str | None = None) -> object:
    from lrdoctor.doctor import Diagnosis, Finding
    from lrdoctor.doctor._finding import CODES
    from lrdoctor.healing import Round

    diag = Diagnosis(tuple(Finding(c, CODES[c], "warning", "e", "f", (), 0.5) for c in codes))
    return Round(1, {}, diag, TrainingLog({}), metric, not codes, code, {"x": 1})


def test_keep_rule_a_tie_goes_to_fewer_problems_and_any_cure_counts():
    from lrdoctor.healing import _better, _cured

    base = _round(("label-noise", "oscillation"), 0.94)
    # smoothing for label-noise: the noise stays, the oscillation it caused is gone, same metric
    fixed = _round(("label-noise",), 0.94, "label-noise")
    assert _better(fixed, base, "val/accuracy") and _cured(fixed, base, "val/accuracy")
    # a worse metric is no cure, and a new problem is none either
    assert not _cured(_round(("label-noise",), 0.90, "label-noise"), base, "val/accuracy")
    assert not _cured(_round(("label-noise", "lr-too-high"), 0.95, "label-noise"), base,
                      "val/accuracy")
    # a change made for a problem the run did not have (a random one) cures nothing
    assert not _cured(_round(("label-noise",), 0.94, "random"), base, "val/accuracy")
    assert not _better(_round(("label-noise", "oscillation"), 0.94), base, "val/accuracy")


# ---- the improving rounds (after the run is healthy) ------------------------------------------
def _rising(config: dict) -> TrainingLog:
    """A healthy run whose accuracy still rises at the end: higher lr, faster (capped at 0.95)
    and, above lr 1, a loss that blows up; ``noise`` wiggles the accuracy."""
    steps = np.arange(200, dtype=float)
    lr = float(config["lr"])
    loss = 2.3 * np.exp(-steps / 30) + 0.1
    if lr > 1:
        loss[60:] = 40.0
    ev = steps[19::20]
    acc = np.minimum(0.95, 0.5 + 0.02 * lr * (ev + 1) / 20) + config.get("noise", 0.0) * \
        np.resize([1.0, -1.0], len(ev))
    return TrainingLog({"train/loss": Series(steps, loss),
                        "lr": Series(steps, np.full(200, lr)),
                        "val/accuracy": Series(ev, acc)})


def test_a_healthy_run_still_improving_gets_the_rounds_left_kept_only_beyond_noise():
    result = repair(_rising, {"lr": 0.3, "epochs": 4}, rounds=3)
    first = result.history[1]
    assert result.history[0].healthy and first.improve and first.change == {"lr": 0.9}
    assert first.kept and first.metric > result.history[0].metric
    # lr 2.7 blows up: not healthy, so not kept whatever its metric
    assert result.history[2].change == {"lr": 2.7} and not result.history[2].kept
    assert result.healed and result.config["lr"] == 0.9
    assert "[improving]" in first.sentence() and result.to_dict()["history"][1]["improve"]
    # improve=False: a healthy run costs no round
    assert repair(_rising, {"lr": 0.3, "epochs": 4}, improve=False).rounds == 0


def test_an_improving_change_within_the_runs_noise_is_reverted():
    from lrdoctor.healing import _gained, _noise

    # +-0.05 wiggle: a gain of 0.02 (0.3 -> 0.33 in lr) is within it
    base = repair(_rising, {"lr": 0.3, "noise": 0.05}, rounds=0).history[0]
    other = repair(_rising, {"lr": 0.33, "noise": 0.05}, rounds=0).history[0]
    assert base.healthy and other.healthy and other.metric > base.metric
    assert _noise(base.log, "val/accuracy") > other.metric - base.metric
    assert not _gained(other, base, "val/accuracy")
    quiet = repair(_rising, {"lr": 0.3}, rounds=0).history[0]
    better = repair(_rising, {"lr": 0.33}, rounds=0).history[0]
    assert _noise(quiet.log, "val/accuracy") < 1e-9 and _gained(better, quiet, "val/accuracy")


def test_a_relative_width_needs_an_int_width_in_the_config():
    from lrdoctor.healing import apply_change

    assert apply_change({"width": 2}, {"width": "x16"}) == {"width": 32}
    assert apply_change({"width": 3}, {"width": 64}) == {"width": 64}
    with pytest.raises(UnsupportedChange, match="width"):
        apply_change({"width": None}, {"width": "x4"})

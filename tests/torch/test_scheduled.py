"""ScheduledLR: a real LRScheduler driven by a closed-form schedule."""

from __future__ import annotations

import pickle
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from lrdoctor.schedules import ScheduleError, parse
from lrdoctor.torch import ScheduledLR

from ..schedules.strategies import schedules


def _opt(kind="sgd", lr=0.1, groups=1):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(groups)]
    spec = [{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(params)]
    if kind == "adam":
        return torch.optim.Adam(spec, lr=lr)
    if kind == "adamw-tensor-lr":
        return torch.optim.AdamW(params, lr=torch.tensor(lr))
    return torch.optim.SGD(spec, lr=lr, momentum=0.9)


def _trajectory(sched, n):
    out = []
    for _ in range(n):
        out.append(tuple(g["lr"] for g in sched.optimizer.param_groups))
        sched.optimizer.step()
        sched.step()
    return out


def test_is_a_torch_lr_scheduler_and_sets_step_zero_on_construction():
    opt = _opt()
    sched = ScheduledLR(opt, "warmup(10) >> cosine(0.1, steps=90)")
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    assert opt.param_groups[0]["lr"] == 0.0 and sched.get_last_lr() == [0.0]
    s = parse("warmup(10) >> cosine(0.1, steps=90)")
    lrs = [lr for (lr,) in _trajectory(sched, 120)]
    assert lrs == [s(k) for k in range(120)]


@settings(max_examples=60)
@given(schedules, st.integers(0, 3000), st.integers(1, 200))
def test_resume_at_any_step_gives_the_uninterrupted_trajectory(s, cut, more):
    full = _trajectory(ScheduledLR(_opt(), s.to_spec() if s.momentum(0) is None else s), cut + more)
    first = ScheduledLR(_opt(), s)
    _trajectory(first, cut)
    state = pickle.loads(pickle.dumps(first.state_dict()))
    resumed = ScheduledLR(_opt(), "constant(1.0)")  # whatever it was built with
    resumed.load_state_dict(state)
    assert _trajectory(resumed, more) == full[cut:]


def test_state_dict_is_the_step_and_the_spec():
    sched = ScheduledLR(_opt(), "cosine(0.1, steps=100)")
    for _ in range(7):
        sched.step()
    assert sched.state_dict() == {"step": 7, "specs": ["cosine(0.1, steps=100)"], "scales": [1.0]}


def test_one_schedule_per_group_and_group_ratios():
    opt = _opt(groups=2)
    ScheduledLR(opt, ["constant(1.0)", "constant(2.0)"])
    assert [g["lr"] for g in opt.param_groups] == [1.0, 2.0]
    opt = _opt(groups=2)  # group lrs 0.1 and 0.2
    sched = ScheduledLR(opt, "cosine(1.0, steps=10)", keep_group_ratios=True)
    sched.step()
    a, b = (g["lr"] for g in opt.param_groups)
    assert b == pytest.approx(2 * a)
    with pytest.raises(ScheduleError, match="one per group"):
        ScheduledLR(_opt(groups=2), ["constant(1.0)"] * 3)


@pytest.mark.parametrize("kind,key", [("sgd", "momentum"), ("adam", "betas")])
def test_cycles_momentum_or_beta1(kind, key):
    opt = _opt(kind)
    s = parse("one_cycle(0.1, steps=100)")
    sched = ScheduledLR(opt, s)
    for k in range(100):
        value = opt.param_groups[0][key]
        assert (value[0] if key == "betas" else value) == s.momentum(k)
        if key == "betas":
            assert value[1] == 0.999  # beta2 untouched
        sched.step()


def test_momentum_schedule_on_an_optimizer_without_momentum_is_an_error():
    opt = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ScheduleError, match="cycle_momentum=false"):
        ScheduledLR(opt, "cyclic(1e-3, 1e-2)")
    ScheduledLR(opt, "cyclic(1e-3, 1e-2, cycle_momentum=false)")


def test_tensor_lr_is_updated_in_place():
    opt = _opt("adamw-tensor-lr")
    lr_tensor = opt.param_groups[0]["lr"]
    sched = ScheduledLR(opt, "linear(1.0, end=0, steps=4)")
    sched.step()
    assert opt.param_groups[0]["lr"] is lr_tensor and float(lr_tensor) == 0.75


def test_no_order_warning_when_the_first_optimizer_step_is_skipped():
    """A GradScaler that skips step 0 makes torch warn 'lr_scheduler.step() before
    optimizer.step()' falsely; ScheduledLR counts steps and does not guess."""
    opt = _opt()
    sched = ScheduledLR(opt, "cosine(0.1, steps=10)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()  # no optimizer.step() happened (skipped by the scaler)


def test_epoch_argument_is_refused():
    sched = ScheduledLR(_opt(), "constant(0.1)")
    with pytest.raises(TypeError, match="counts optimizer steps"):
        sched.step(5)


def test_bad_state_dict():
    sched = ScheduledLR(_opt(), "constant(0.1)")
    with pytest.raises(ScheduleError, match="not a ScheduledLR state dict"):
        sched.load_state_dict({"last_epoch": 3})
    with pytest.raises(ScheduleError, match="param groups"):
        sched.load_state_dict({"step": 3, "specs": ["constant(1.0)", "constant(2.0)"]})

"""lrdoctor.torch.Guard: skips, bit-exact rewinds, deterministic resume, the lowered LR, stops."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from lrdoctor.errors import GuardError, LRDoctorError
from lrdoctor.journal import Journal
from lrdoctor.torch import Guard, ScheduledLR

NAN = torch.tensor(float("nan"))


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                torch.nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = ScheduledLR(opt, "warmup(5) >> cosine(0.1, end=0, steps=200)")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64 * 40, 8, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return model, opt, sched, x, y


def _step(model, opt, sched, guard, xb, yb, *, corrupt: float | None = None):
    opt.zero_grad()
    if corrupt is not None:
        xb = xb * corrupt
    loss = torch.nn.functional.cross_entropy(model(xb), yb)
    loss.backward()
    ok = guard.check(loss)
    if ok:
        opt.step()
        sched.step()
    return ok


def _state(model, opt, sched):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {k: {n: t.clone() for n, t in s.items()} for k, s in opt.state_dict()["state"].items()},
            [g["lr"] for g in opt.param_groups], sched.state_dict(), torch.get_rng_state(),
            random.random(), np.random.random())


def _same(a, b):
    ma, oa, la, sa, ra, pa, na = a
    mb, ob, lb, sb, rb, pb, nb = b
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)
    assert oa.keys() == ob.keys() and all(torch.equal(oa[k][n], ob[k][n]) for k in oa for n in oa[k])
    assert la == lb and sa == sb and torch.equal(ra, rb) and pa == pb and na == nb


def test_a_rewind_restores_model_optimizer_scheduler_and_rng_bit_exactly(tmp_path):
    model, opt, sched, x, y = _setup()
    guard = Guard(model, opt, sched, snapshot_every=10_000, patience=2,
                  journal=tmp_path / "journal.jsonl")
    for i in range(12):
        assert _step(model, opt, sched, guard, x[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64])
    random.seed(5)
    np.random.seed(5)
    guard.snapshot()
    expected = _state(model, opt, sched)   # reads the RNGs' next values, as after a restore
    for i in range(12, 16):   # the state moves on (dropout draws from the RNG)
        _step(model, opt, sched, guard, x[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64])
    torch.rand(7)
    random.random()
    assert not guard.check(NAN) and guard.events[-1].action == "skip"
    assert not guard.check(NAN) and guard.events[-1].action == "rewind"
    _same(_state(model, opt, sched), expected)
    assert guard.events[-1].evidence["restored"] == 12
    entries = Journal.load(tmp_path / "journal.jsonl").entries
    assert [e.evidence["action"] for e in entries] == ["skip", "rewind"]
    assert "restored the snapshot of batch 12" in entries[-1].explain()


def _train(seed: int, *, spike_at=(60, 61, 62, 63, 64, 65), **kw):
    model, opt, sched, x, y = _setup(seed)
    guard = Guard(model, opt, sched, **kw)
    for i in range(120):
        j = i % 40
        _step(model, opt, sched, guard, x[j * 64:(j + 1) * 64], y[j * 64:(j + 1) * 64],
              corrupt=1e4 if i in spike_at else None)
    return model, guard


def test_resume_after_a_rewind_is_deterministic():
    m1, g1 = _train(0)
    m2, g2 = _train(0)
    assert g1.rewinds == 1 and [e.step for e in g1.events] == [e.step for e in g2.events]
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    assert all(torch.isfinite(p).all() for p in m1.parameters())


def test_single_spikes_are_skipped_without_a_rewind():
    _, guard = _train(0, spike_at=(50, 80))
    assert [(e.step, e.action, e.reason) for e in guard.events] == \
        [(50, "skip", "spike"), (80, "skip", "spike")]
    assert "median" in guard.events[0].message and guard.events[0].evidence["z"] > 6


def test_the_lr_is_lowered_after_a_rewind_and_the_scheduler_never_sees_it():
    model, opt, sched, x, y = _setup()
    guard = Guard(model, opt, sched, snapshot_every=5, patience=1, lr_factor=0.25,
                  cooldown_steps=4, min_history=2)
    used = []
    opt.register_step_pre_hook(lambda o, a, k: used.append(o.param_groups[0]["lr"]))
    for i in range(10):
        _step(model, opt, sched, guard, x[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64])
    assert not guard.check(NAN) and guard.rewinds == 1
    used.clear()
    planned = []
    for i in range(10, 16):
        planned.append(sched.schedule(sched.state_dict()["step"]))
        _step(model, opt, sched, guard, x[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64])
    factors = [u / p for u, p in zip(used, planned)]
    assert factors[:4] == pytest.approx([0.25, 0.4375, 0.625, 0.8125]) and factors[4] == 1.0
    assert opt.param_groups[0]["lr"] == pytest.approx(sched.schedule(sched.state_dict()["step"]))


def test_nonfinite_gradients_are_skipped():
    model, opt, sched, x, y = _setup()
    guard = Guard(model, opt, sched)
    loss = torch.nn.functional.cross_entropy(model(x[:64]), y[:64])
    loss.backward()
    next(model.parameters()).grad[0, 0] = float("inf")
    assert not guard.check(loss) and guard.events[-1].reason == "nonfinite-grad"


def test_too_many_rewinds_stop_with_what_it_saw():
    model, opt, sched, x, y = _setup()
    guard = Guard(model, opt, sched, patience=1, max_rewinds=2, min_history=2)
    for i in range(5):
        _step(model, opt, sched, guard, x[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64])
    guard.check(NAN)
    guard.check(NAN)
    with pytest.raises(GuardError, match=r"2 rewinds within 1000 batches .* loss nan") as err:
        guard.check(NAN)
    assert err.value.events[-1].action == "stop"


def test_bad_settings_name_the_parameter():
    model, opt, _, _, _ = _setup()
    with pytest.raises(LRDoctorError, match="Guard patience must be an int >= 1, got 0"):
        Guard(model, opt, patience=0)
    with pytest.raises(LRDoctorError, match="lr_factor must be in"):
        Guard(model, opt, lr_factor=2.0)


def test_a_given_gradient_norm_replaces_the_guards_own():
    model, opt, sched, x, y = _setup()
    guard = Guard(model, opt, sched, min_history=5)
    for i in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[i * 64:(i + 1) * 64]),
                                                 y[i * 64:(i + 1) * 64])
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if i == 20:
            norm = norm * 1000.0          # what a corrupt batch's gradient would show
        if i == 25:
            norm = torch.tensor(float("inf"))
        if guard.check(loss, grad_norm=norm):
            opt.step()
            sched.step()
    assert [(e.step, e.reason) for e in guard.events] == [(20, "grad-spike"),
                                                          (25, "nonfinite-grad")]
    assert guard.events[0].evidence["grad_norm_sum"] > 100


def test_the_gradient_test_runs_on_a_time_budget_and_every_batch_with_none():
    model, opt, sched, x, y = _setup()
    sampled = Guard(model, opt, sched)
    every = Guard(model, opt, sched, grad_budget=None)
    for guard in (sampled, every):
        calls = []
        measure = guard._measure
        guard._measure = lambda loss, m=measure, c=calls: c.append(1) or m(loss)
        for i in range(5):
            assert _step(model, opt, sched, guard, x[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64])
        assert len(calls) == 5          # the first batches always get the gradient test
        guard.close()
    with pytest.raises(LRDoctorError, match="grad_budget must be in"):
        Guard(model, opt, grad_budget=0.0)


def test_a_nonfinite_gradient_on_an_unchecked_batch_is_undone_by_the_rewind():
    model, opt, sched, x, y = _setup()
    guard = Guard(model, opt, sched, patience=3, snapshot_every=5)
    for i in range(30):
        _step(model, opt, sched, guard, x[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64])
    guard._grad_at = 10 ** 9             # this batch's gradient is not tested
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x[:64]), y[:64])
    loss.backward()
    next(model.parameters()).grad[0, 0] = float("nan")
    assert guard.check(loss)             # the loss is finite: the update goes through
    opt.step()
    assert not all(torch.isfinite(p).all() for p in model.parameters())
    i = 31
    while guard.rewinds == 0:           # every later loss is NaN until the rewind
        assert not _step(model, opt, sched, guard, x[i * 64:(i + 1) * 64],
                         y[i * 64:(i + 1) * 64])
        i += 1
    assert [e.reason for e in guard.events] == ["nonfinite-loss"] * 3
    assert all(torch.isfinite(p).all() for p in model.parameters())

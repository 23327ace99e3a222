"""Differential tests: lrdoctor schedules vs the real ``torch.optim.lr_scheduler`` classes.

For each scheduler, 200 random configurations are stepped 5,000 times (or to the end of a
finite schedule) and every learning rate (and momentum, where torch cycles it) must agree to
1e-9 relative. Where torch differs by design, a test pins down the difference.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.optim import lr_scheduler as tls

from lrdoctor.schedules import (
    SGDR,
    Cosine,
    Cyclic,
    Exponential,
    Linear,
    MultiStep,
    OneCycle,
    Polynomial,
    Step,
    parse,
)

from ._parity import assert_same

N_CONFIGS = 200
N_STEPS = 5000


def _optimizer(lr: float, kind: str = "sgd") -> torch.optim.Optimizer:
    p = torch.nn.Parameter(torch.zeros(1))
    if kind == "adam":
        return torch.optim.Adam([p], lr=lr)
    return torch.optim.SGD([p], lr=lr, momentum=0.9)


def _run(sched: tls.LRScheduler, n: int, *, closed_form: bool = False, momentum: str | None = None):
    """The lr (and momentum) torch sets for optimizer steps 0..n-1."""
    group = sched.optimizer.param_groups[0]
    lrs, moms = np.empty(n), np.empty(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "step before optimizer.step" - irrelevant here
        for k in range(n):
            if k:
                sched.step()
            lrs[k] = sched._get_closed_form_lr()[0] if closed_form else group["lr"]
            if momentum == "betas":
                moms[k] = group["betas"][0]
            elif momentum == "momentum":
                moms[k] = group["momentum"]
    return lrs, moms


def _ours(schedule, n: int, momentum: bool = False):
    lrs = schedule.values(n)
    moms = np.array([schedule.momentum(k) for k in range(n)]) if momentum else None
    return lrs, moms


def _rng(name: str) -> np.random.Generator:
    """A generator seeded by the test's name, so every run checks the same configurations."""
    return np.random.default_rng(sum(ord(c) * 31**i for i, c in enumerate(name)) % 2**32)


def test_step_lr():
    rng = _rng("step")
    for _ in range(N_CONFIGS):
        base, every, gamma = rng.uniform(1e-4, 1), int(rng.integers(20, 1000)), rng.uniform(0.1, 1)
        theirs, _ = _run(tls.StepLR(_optimizer(base), step_size=every, gamma=gamma), N_STEPS)
        assert_same(Step(base, every_steps=every, gamma=gamma).values(N_STEPS), theirs, (base, every, gamma))


def test_multistep_lr():
    rng = _rng("multistep")
    for _ in range(N_CONFIGS):
        base, gamma = rng.uniform(1e-4, 1), rng.uniform(0.1, 1)
        milestones = sorted({int(m) for m in rng.integers(1, N_STEPS, size=rng.integers(1, 8))})
        theirs, _ = _run(tls.MultiStepLR(_optimizer(base), milestones=milestones, gamma=gamma), N_STEPS)
        ours = MultiStep(base, milestones=milestones, gamma=gamma).values(N_STEPS)
        assert_same(ours, theirs, (base, milestones, gamma))


def test_exponential_lr():
    rng = _rng("exponential")
    for _ in range(N_CONFIGS):
        base, gamma = rng.uniform(1e-4, 1), rng.uniform(0.9, 1)
        theirs, _ = _run(tls.ExponentialLR(_optimizer(base), gamma=gamma), N_STEPS)
        assert_same(Exponential(base, gamma=gamma).values(N_STEPS), theirs, (base, gamma))


def test_cosine_annealing_lr_closed_form():
    rng = _rng("cosine")
    for _ in range(N_CONFIGS):
        base, t_max = rng.uniform(1e-4, 1), int(rng.integers(1, N_STEPS + 1))
        end = base * rng.choice([0.0, rng.uniform(0, 0.5)])
        n = min(N_STEPS, t_max + 1)
        theirs, _ = _run(tls.CosineAnnealingLR(_optimizer(base), T_max=t_max, eta_min=end), n, closed_form=True)
        assert_same(Cosine(base, end_lr=end, steps=t_max).values(n), theirs, (base, t_max, end))


def test_cosine_annealing_differs_by_design_after_t_max():
    """torch's cosine keeps going (rises again) after T_max; ours holds its final value."""
    base, t_max = 0.1, 100
    theirs, _ = _run(tls.CosineAnnealingLR(_optimizer(base), T_max=t_max), 3 * t_max)
    ours = Cosine(base, steps=t_max).values(3 * t_max)
    assert_same(ours[: t_max + 1], theirs[: t_max + 1], "first period")
    assert theirs[2 * t_max] == pytest.approx(base, rel=1e-6)  # torch: back at the peak
    assert np.all(ours[t_max:] == 0.0)  # ours: held at end


def test_cosine_annealing_warm_restarts():
    rng = _rng("sgdr")
    for _ in range(N_CONFIGS):
        base, t0, mult = rng.uniform(1e-4, 1), int(rng.integers(1, 500)), int(rng.integers(1, 4))
        end = base * rng.choice([0.0, rng.uniform(0, 0.5)])
        theirs, _ = _run(tls.CosineAnnealingWarmRestarts(_optimizer(base), T_0=t0, T_mult=mult, eta_min=end), N_STEPS)
        ours = SGDR(base, end_lr=end, period=t0, mult=mult).values(N_STEPS)
        assert_same(ours, theirs, (base, t0, mult, end))


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_lr_and_momentum(mode):
    rng = _rng("cyclic" + mode)
    for _ in range(N_CONFIGS):
        low = rng.uniform(1e-5, 1e-2)
        high = low * rng.uniform(1, 20)
        up = int(rng.integers(1, 1000))
        down = None if rng.random() < 0.5 else int(rng.integers(1, 1000))
        gamma = rng.uniform(0.999, 1.0)
        mlow, mhigh = sorted(rng.uniform(0.5, 0.99, size=2))
        sched = tls.CyclicLR(
            _optimizer(low), base_lr=low, max_lr=high, step_size_up=up, step_size_down=down,
            mode=mode, gamma=gamma, base_momentum=mlow, max_momentum=mhigh,
        )
        theirs, their_m = _run(sched, N_STEPS, momentum="momentum")
        ours = Cyclic(low, high, half_period=up, down_steps=down, mode=mode, gamma=gamma,
                      min_momentum=mlow, max_momentum=mhigh)
        our_lr, our_m = _ours(ours, N_STEPS, momentum=True)
        cfg = (low, high, up, down, mode, gamma)
        assert_same(our_lr, theirs, cfg)
        assert_same(our_m, their_m, cfg, what="momentum")


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_lr_and_momentum(three_phase, anneal):
    rng = _rng(f"onecycle{three_phase}{anneal}")
    for i in range(N_CONFIGS // 2):  # 4 variants x 100 = 400 configurations in all
        max_lr, total = rng.uniform(1e-4, 1), int(rng.integers(1000, N_STEPS + 1))
        pct = float(rng.uniform(0.05, 0.45))
        div, final_div = rng.uniform(2, 100), rng.uniform(10, 1e5)
        mlow, mhigh = sorted(rng.uniform(0.5, 0.99, size=2))
        kind = "adam" if i % 2 else "sgd"
        sched = tls.OneCycleLR(
            _optimizer(max_lr, kind), max_lr=max_lr, total_steps=total, pct_start=pct,
            anneal_strategy=anneal, div_factor=div, final_div_factor=final_div,
            three_phase=three_phase, base_momentum=mlow, max_momentum=mhigh,
        )
        theirs, their_m = _run(sched, total, momentum="betas" if kind == "adam" else "momentum")
        ours = OneCycle(max_lr, steps=total, peak_at=pct, div=div, final_div=final_div,
                        three_phase=three_phase, anneal=anneal, min_momentum=mlow, max_momentum=mhigh)
        our_lr, our_m = _ours(ours, total, momentum=True)
        cfg = (max_lr, total, pct, div, final_div, three_phase, anneal)
        assert_same(our_lr, theirs, cfg)
        assert_same(our_m, their_m, cfg, what="momentum")


def test_polynomial_lr():
    rng = _rng("polynomial")
    for _ in range(N_CONFIGS):
        base, total, power = rng.uniform(1e-4, 1), int(rng.integers(1, N_STEPS)), rng.uniform(0.5, 3)
        theirs, _ = _run(tls.PolynomialLR(_optimizer(base), total_iters=total, power=power), N_STEPS)
        assert_same(Polynomial(base, steps=total, power=power).values(N_STEPS), theirs, (base, total, power))


def test_linear_lr():
    rng = _rng("linear")
    for _ in range(N_CONFIGS):
        base, total = rng.uniform(1e-4, 1), int(rng.integers(1, N_STEPS))
        start_f, end_f = rng.uniform(0.01, 1), rng.uniform(0, 1)
        theirs, _ = _run(tls.LinearLR(_optimizer(base), start_factor=start_f, end_factor=end_f, total_iters=total), N_STEPS)
        ours = Linear(base * start_f, end_lr=base * end_f, steps=total).values(N_STEPS)
        assert_same(ours, theirs, (base, start_f, end_f, total))


def test_one_cycle_holds_where_torch_raises():
    """torch raises when stepped past total_steps; ours holds the final value."""
    sched = tls.OneCycleLR(_optimizer(0.1), max_lr=0.1, total_steps=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(10):
            sched.step()
        with pytest.raises(ValueError):
            sched.step()
    ours = OneCycle(0.1, steps=10)
    assert ours(9) == ours(10) == ours(10**7) == pytest.approx(0.1 / 25 / 1e4)
    assert math.isfinite(ours(10**7))


def _sequential(base: float, parts, milestones: list[int], n: int) -> np.ndarray:
    opt = _optimizer(base)
    scheds = [make(opt) for make in parts]
    return _run(tls.SequentialLR(opt, scheds, milestones=milestones), n)[0]


def test_sequential_lr_with_an_open_ended_first_part():
    """torch's SequentialLR plays an open-ended ExponentialLR until the next milestone; ours is
    ``exponential(..., steps=m) >> ...`` (each part on its own local step, as in torch)."""
    rng = _rng("sequential")
    for i in range(N_CONFIGS // 2):
        base, g1, m = rng.uniform(1e-4, 1), rng.uniform(0.9, 1), int(rng.integers(1, 2000))
        every, g2 = int(rng.integers(1, 500)), rng.uniform(0.1, 1)
        kind = i % 3
        if kind == 0:
            second = (lambda o, every=every, g2=g2: tls.StepLR(o, step_size=every, gamma=g2))
            ours = f"step({base!r}, every={every}, gamma={g2!r})"
        elif kind == 1:
            ms = sorted({int(x) for x in rng.integers(1, N_STEPS, size=3)})
            second = (lambda o, ms=ms, g2=g2: tls.MultiStepLR(o, milestones=ms, gamma=g2))
            ours = f"multistep({base!r}, milestones={ms}, gamma={g2!r})"
        else:
            second = (lambda o, g2=g2: tls.ExponentialLR(o, gamma=0.9 + g2 / 10))
            ours = f"exponential({base!r}, gamma={0.9 + g2 / 10!r})"
        theirs = _sequential(base, [lambda o, g1=g1: tls.ExponentialLR(o, gamma=g1), second], [m], N_STEPS)
        spec = f"exponential({base!r}, gamma={g1!r}, steps={m}) >> {ours}"
        assert_same(parse(spec).values(N_STEPS), theirs, spec)


def test_sequential_lr_with_an_open_ended_middle_part():
    base, m1, m2 = 0.5, 100, 700
    theirs = _sequential(base, [
        lambda o: tls.LinearLR(o, start_factor=0.01, end_factor=1.0, total_iters=m1),
        lambda o: tls.ExponentialLR(o, gamma=0.995),
        lambda o: tls.StepLR(o, step_size=300, gamma=0.5),
    ], [m1, m2], 2000)
    spec = (f"linear({base * 0.01!r}, end={base!r}, steps={m1}) >> "
            f"exponential({base!r}, gamma=0.995, steps={m2 - m1}) >> step({base!r}, every=300, gamma=0.5)")
    assert_same(parse(spec).values(2000), theirs, spec)

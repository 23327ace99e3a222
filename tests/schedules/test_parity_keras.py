"""Differential tests: lrdoctor schedules vs the real Keras 3 ``LearningRateSchedule`` classes.

Keras computes in ``floatx`` (float32 by default), so these tests switch it to float64 to
compare at 1e-9. Each schedule is called once on the whole vector of 5,000 steps; Keras' own
element-wise ops do the arithmetic. Three ops are adjusted, none of them arithmetic:
``ops.cond`` (Python-level branching on the torch backend, which cannot take a vector) becomes
an element-wise select of its two branches when its predicate is a vector, and ``ops.floor`` / ``ops.minimum``, which on the
torch backend cast float64 inputs to float32 (``result_type(x, float)``), keep the dtype.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from keras.optimizers import schedules as ks
from keras.src import ops as kops

from lrdoctor.schedules import SGDR, Cosine, Exponential, InverseTime, Piecewise, Polynomial, Warmup

from ._parity import assert_same

N_CONFIGS = 200
N_STEPS = 5000
STEPS = np.arange(N_STEPS, dtype=np.float64)


@pytest.fixture(autouse=True)
def float64_vectorised(monkeypatch):
    before = keras.config.floatx()
    keras.config.set_floatx("float64")
    import torch

    def cond(pred, true_fn, false_fn):
        if torch.as_tensor(pred).numel() == 1:  # a scalar: take one branch, as Keras does
            return true_fn() if bool(pred) else false_fn()
        return kops.where(pred, true_fn(), false_fn())

    monkeypatch.setattr(kops, "cond", cond)

    as_t = kops.convert_to_tensor
    monkeypatch.setattr(kops, "floor", lambda x: torch.floor(as_t(x)))
    monkeypatch.setattr(kops, "minimum", lambda a, b: torch.minimum(as_t(a), as_t(b)))
    yield
    keras.config.set_floatx(before)


def _keras(schedule) -> np.ndarray:
    """Keras' values at steps 0..N-1, with the schedule's float settings held as float64
    tensors (Keras infers float32 for some scalars whatever floatx says)."""
    for key, value in vars(schedule).items():
        if isinstance(value, (float, np.floating)):
            setattr(schedule, key, kops.convert_to_tensor(value, dtype="float64"))
        elif key == "values":
            setattr(schedule, key, [kops.convert_to_tensor(v, dtype="float64") for v in value])
    return np.asarray(kops.convert_to_numpy(schedule(kops.convert_to_tensor(STEPS, dtype="float64"))), dtype=float)


def _rng(name: str) -> np.random.Generator:
    """Seeded by name; draws come as np.float64, which Keras keeps in double precision
    (a Python float would be converted to float32 whatever floatx says)."""
    return _Float64Rng(np.random.default_rng(sum(ord(c) * 31**i for i, c in enumerate(name)) % 2**32))


class _Float64Rng:
    """A Generator whose scalar ``uniform`` draws are np.float64, not Python floats."""

    def __init__(self, g: np.random.Generator):
        self.g = g

    def uniform(self, low, high, size=None):
        v = self.g.uniform(low, high, size)
        return np.float64(v) if size is None else v

    def __getattr__(self, name):
        return getattr(self.g, name)


def test_exponential_decay():
    rng = _rng("exp")
    for _ in range(N_CONFIGS):
        base, every, rate, stair = rng.uniform(1e-4, 1), int(rng.integers(1, 500)), rng.uniform(0.5, 1), bool(rng.random() < 0.5)
        theirs = _keras(ks.ExponentialDecay(base, decay_steps=every, decay_rate=rate, staircase=stair))
        ours = Exponential(base, gamma=rate, every_steps=every, staircase=stair).values(N_STEPS)
        assert_same(ours, theirs, (base, every, rate, stair))


def test_piecewise_constant_decay_shifted_by_one(monkeypatch):
    """Keras changes value *after* a boundary step; ours at it: Keras b is ours b + 1.

    Keras accumulates into ``ops.array(0)`` in place, which only takes a scalar step; its
    accumulator is made a vector of zeros so the same additions run on all steps at once.
    """
    import torch

    monkeypatch.setattr(kops, "array", lambda v, dtype=None: torch.zeros(N_STEPS, dtype=torch.float64) + v)
    rng = _rng("piecewise")
    for _ in range(N_CONFIGS):
        bounds = sorted({int(b) for b in rng.integers(0, N_STEPS, size=rng.integers(1, 6))})
        values = list(rng.uniform(1e-5, 1, size=len(bounds) + 1))  # np.float64 items
        theirs = _keras(ks.PiecewiseConstantDecay([float(b) for b in bounds], values))
        ours = Piecewise(values_lr=values, boundaries=[b + 1 for b in bounds]).values(N_STEPS)
        assert_same(ours, theirs, (bounds, values))


def test_polynomial_decay():
    rng = _rng("poly")
    for _ in range(N_CONFIGS):
        base = rng.uniform(1e-4, 1)
        end, steps, power = base * rng.uniform(0, 0.5), int(rng.integers(1, N_STEPS)), rng.uniform(0.5, 3)
        cycle = bool(rng.random() < 0.3)
        theirs = _keras(ks.PolynomialDecay(base, steps, end_learning_rate=end, power=power, cycle=cycle))
        ours = Polynomial(base, end_lr=end, steps=steps, power=power, cycle=cycle).values(N_STEPS)
        assert_same(ours, theirs, (base, end, steps, power, cycle))


def test_inverse_time_decay():
    rng = _rng("invtime")
    for _ in range(N_CONFIGS):
        base, every, rate, stair = rng.uniform(1e-4, 1), int(rng.integers(1, 500)), rng.uniform(0, 5), bool(rng.random() < 0.5)
        theirs = _keras(ks.InverseTimeDecay(base, decay_steps=every, decay_rate=rate, staircase=stair))
        ours = InverseTime(base, rate=rate, every_steps=every, staircase=stair).values(N_STEPS)
        assert_same(ours, theirs, (base, every, rate, stair))


def test_cosine_decay_with_and_without_warmup():
    rng = _rng("cosdecay")
    for i in range(N_CONFIGS):
        base, steps, alpha = rng.uniform(1e-4, 1), int(rng.integers(1, N_STEPS)), rng.uniform(0, 0.5)
        if i % 2:
            theirs = _keras(ks.CosineDecay(base, steps, alpha=alpha))
            ours = Cosine(base, end_lr=alpha * base, steps=steps)
        else:
            target, warm = base * rng.uniform(1, 10), int(rng.integers(1, 1000))
            theirs = _keras(ks.CosineDecay(base, steps, alpha=alpha, warmup_target=target, warmup_steps=warm))
            ours = Warmup(warm, start_lr=base) >> Cosine(target, end_lr=alpha * target, steps=steps)
        assert_same(ours.values(N_STEPS), theirs, (i, base, steps, alpha))


def test_cosine_decay_restarts():
    rng = _rng("cosrestarts")
    mismatched_boundaries = 0
    for _ in range(N_CONFIGS):
        base, first = rng.uniform(1e-4, 1), int(rng.integers(1, 500))
        t_mul, m_mul, alpha = np.float64(rng.choice([1.0, 1.5, 2.0, 3.0])), rng.uniform(0.3, 1), rng.uniform(0, 0.5)
        theirs = _keras(ks.CosineDecayRestarts(base, first, t_mul=t_mul, m_mul=m_mul, alpha=alpha))
        sgdr = SGDR(base, end_lr=alpha * base, period=first, mult=t_mul, decay=m_mul)
        ours = sgdr.values(N_STEPS)
        # Keras finds the restart index with floor(log(...)/log(t_mul)); float rounding can
        # move a restart by one step (at the restart step, or the step before it). Ours settles
        # boundaries exactly. Check that every disagreement is at a restart, agree elsewhere.
        starts = {round(sgdr._start(i)) for i in range(60) if sgdr._start(i) < N_STEPS}
        diff = np.abs(ours - theirs) > 1e-9 * np.maximum(np.abs(ours), np.abs(theirs)) + 1e-15
        for k in np.flatnonzero(diff):
            at_restart = int(k) in starts or int(k) + 1 in starts
            assert at_restart, f"step {k} is not at a restart for {(base, first, t_mul, m_mul, alpha)}"
        mismatched_boundaries += int(diff.sum())
        keep = ~diff
        assert_same(ours[keep], theirs[keep], (base, first, t_mul, m_mul, alpha))
    assert mismatched_boundaries < N_CONFIGS  # rare: a handful of boundary steps in 200 configs


@pytest.mark.parametrize("m_mul", [1.5, 4.0])
def test_cosine_decay_restarts_with_a_growing_peak(m_mul):
    """Keras accepts m_mul > 1 (its own config test uses 4.0): each restart's peak grows."""
    rng = _rng(f"cosrestartsgrow{m_mul}")
    for _ in range(N_CONFIGS // 10):
        base, first = rng.uniform(1e-4, 1), int(rng.integers(200, 500))
        t_mul, alpha = np.float64(rng.choice([1.0, 2.0])), rng.uniform(0, 0.5)
        theirs = _keras(ks.CosineDecayRestarts(base, first, t_mul=t_mul, m_mul=np.float64(m_mul), alpha=alpha))
        sgdr = SGDR(base, end_lr=alpha * base, period=first, mult=float(t_mul), decay=m_mul)
        ours = sgdr.values(N_STEPS)
        starts = {round(sgdr._start(i)) for i in range(60) if sgdr._start(i) < N_STEPS}
        diff = np.abs(ours - theirs) > 1e-9 * np.maximum(np.abs(ours), np.abs(theirs)) + 1e-15
        assert all(int(k) in starts or int(k) + 1 in starts for k in np.flatnonzero(diff))
        assert_same(ours[~diff], theirs[~diff], (base, first, t_mul, m_mul, alpha))
        assert ours.max() > base  # it did grow

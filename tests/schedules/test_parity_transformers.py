"""Differential tests: lrdoctor specs vs Hugging Face transformers' schedule functions.

Each transformers schedule is a ``LambdaLR`` whose lr at step k is ``base_lr * lambda(k)``;
the test evaluates that real lambda at every step (stepping 6 x 200 LambdaLRs 5,000 times
would only add time, not coverage).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
import transformers.optimization as tfo

from lrdoctor.schedules import parse

from ._parity import assert_same

N_CONFIGS = 200
N_STEPS = 5000


def _hf(factory, base: float, **kwargs) -> np.ndarray:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    lam = factory(opt, **kwargs).lr_lambdas[0]
    return np.array([base * lam(k) for k in range(N_STEPS)])


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(sum(ord(c) * 31**i for i, c in enumerate(name)) % 2**32)


def _warm_total(rng):
    total = int(rng.integers(10, N_STEPS))
    return int(rng.integers(1, total)), total


def test_linear_with_warmup():
    rng = _rng("linear")
    for _ in range(N_CONFIGS):
        base, (w, t) = rng.uniform(1e-5, 1), _warm_total(rng)
        theirs = _hf(tfo.get_linear_schedule_with_warmup, base, num_warmup_steps=w, num_training_steps=t)
        ours = parse(f"warmup({w}) >> linear({base!r}, end=0, steps={t - w})").values(N_STEPS)
        assert_same(ours, theirs, (base, w, t))


def test_cosine_with_warmup_until_the_end():
    """transformers' half-cosine rises again after num_training_steps; ours holds 0 there."""
    rng = _rng("cosine")
    for _ in range(N_CONFIGS):
        base, (w, t) = rng.uniform(1e-5, 1), _warm_total(rng)
        theirs = _hf(tfo.get_cosine_schedule_with_warmup, base, num_warmup_steps=w, num_training_steps=t)
        ours = parse(f"warmup({w}) >> cosine({base!r}, end=0, steps={t - w})").values(N_STEPS)
        assert_same(ours[: t + 1], theirs[: t + 1], (base, w, t))
        assert np.all(ours[t:] == 0.0)


def test_cosine_with_hard_restarts():
    rng = _rng("hard")
    for _ in range(N_CONFIGS):
        base, (w, t), n = rng.uniform(1e-5, 1), _warm_total(rng), int(rng.integers(1, 6))
        theirs = _hf(tfo.get_cosine_with_hard_restarts_schedule_with_warmup, base,
                     num_warmup_steps=w, num_training_steps=t, num_cycles=n)
        period = (t - w) / n
        ours = parse(f"warmup({w}) >> sgdr({base!r}, end=0, period={period!r}, cycles={n})").values(N_STEPS)
        assert_same(ours, theirs, (base, w, t, n))


def test_polynomial_decay_with_warmup():
    rng = _rng("poly")
    for _ in range(N_CONFIGS):
        base, (w, t), power = rng.uniform(1e-5, 1), _warm_total(rng), rng.uniform(0.5, 3)
        end = base * rng.uniform(0, 0.5)
        theirs = _hf(tfo.get_polynomial_decay_schedule_with_warmup, base, num_warmup_steps=w,
                     num_training_steps=t, lr_end=end, power=power)
        ours = parse(f"warmup({w}) >> polynomial({base!r}, end={end!r}, steps={t - w}, power={power!r})")
        assert_same(ours.values(N_STEPS), theirs, (base, w, t, end, power))


def test_inverse_sqrt():
    rng = _rng("isqrt")
    for _ in range(N_CONFIGS):
        base, w = rng.uniform(1e-5, 1), int(rng.integers(0, 2000))
        timescale = None if rng.random() < 0.5 else int(rng.integers(1, 5000))
        theirs = _hf(tfo.get_inverse_sqrt_schedule, base, num_warmup_steps=w, timescale=timescale)
        ts = "" if timescale is None else f", timescale={timescale}"
        ours = parse(f"inverse_sqrt({base!r}, warmup={w}{ts})").values(N_STEPS)
        assert_same(ours, theirs, (base, w, timescale))


@pytest.mark.parametrize("warmup_type", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("decay_type", ["linear", "cosine", "1-sqrt"])
def test_warmup_stable_decay(warmup_type, decay_type):
    rng = _rng("wsd" + warmup_type + decay_type)
    shape = {"linear": "linear", "cosine": "cosine", "1-sqrt": "sqrt"}
    for _ in range(N_CONFIGS // 9 + 1):  # 9 variants x 23 = 207 configurations
        base = rng.uniform(1e-5, 1)
        w, s, d = (int(x) for x in rng.integers(0, 1700, size=3))
        d = max(d, 1)
        ratio = float(rng.choice([0.0, rng.uniform(0, 0.5)]))
        theirs = _hf(tfo.get_wsd_schedule, base, num_warmup_steps=w, num_stable_steps=s, num_decay_steps=d,
                     warmup_type=warmup_type, decay_type=decay_type, min_lr_ratio=ratio)
        end = ratio * base
        ours = parse(f"wsd({base!r}, warmup={w}, stable={s}, decay={d}, end={end!r}, start={end!r}, "
                     f"shape={shape[decay_type]}, warmup_shape={shape[warmup_type]})")
        assert_same(ours.values(N_STEPS), theirs, (base, w, s, d, ratio))

"""The framework-free guard core: the cached limit never hides a spike the exact test sees, the
restore point, the lowered LR, the stop (no torch, no keras)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrdoctor._guard_core import GuardCore, GuardSettings, SpikeTest


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), noise=st.floats(0.01, 0.6), decay=st.floats(0.0, 0.02),
       jump=st.floats(1.5, 40.0))
def test_the_cached_limit_never_lets_through_what_the_exact_test_calls_a_spike(seed, noise,
                                                                                 decay, jump):
    """A falling loss with heavy-tailed (Student t, 3 dof) log noise, probed with a jump: a value
    the exact median test calls a spike with room to spare (z and the ratio 1.5x past their
    limits) is at or above the cached limit. (A borderline one may hide for up to REFRESH
    batches while the noise estimate moves; the injected faults of bench_guard have z >= 16.)"""
    rng = np.random.default_rng(seed)
    s = GuardSettings()
    test = SpikeTest(s)
    for k in range(400):
        level = 2.0 * math.exp(-decay * k)
        value = level * math.exp(noise * rng.standard_t(3))
        probe = level * jump
        stats = test.spike(probe)
        if stats is not None and stats["z"] > 1.5 * s.z and probe > 1.5 * s.ratio * stats["median"]:
            assert probe >= test.limit, (k, probe, test.limit)
        if test.spike(value) is None:
            test.add(value)


def test_restore_point_keeps_a_margin_and_drops_newer_snapshots():
    core: GuardCore[str] = GuardCore(GuardSettings(patience=1))
    for label in (0, 25, 50):
        core.keep(label, f"s{label}")
    assert core.reject(51, "spike", 9.0) == "rewind"
    assert core.restore_point() == (25, "s25")      # 50 is within 2 batches of batch 51
    assert [s[0] for s in core.snapshots] == [0, 25]


def test_the_lowered_lr_rises_back_linearly_and_too_many_rewinds_stop():
    core: GuardCore[str] = GuardCore(GuardSettings(lr_factor=0.25, cooldown_steps=4,
                                                   max_rewinds=1))
    core.keep(0, "s0")
    core.rewound(10)
    scales = []
    for _ in range(5):
        scales.append(core.lr_scale())
        core.stepped()
    assert scales == pytest.approx([0.25, 0.4375, 0.625, 0.8125, 1.0])
    assert core.too_many(500) == [10] and core.too_many(1010) is None
    core.bad.append((500, "spike", 7.0))
    err = core.stop(500, "spike", {"loss": 7.0}, [10])
    assert "1 rewinds within 1000 batches" in str(err) and err.events[-1].action == "stop"


def test_nonfinite_values_are_rejected_before_any_history():
    core: GuardCore[str] = GuardCore(GuardSettings())
    assert core.judge(float("nan"))[0] == "nonfinite-loss"
    assert core.judge(-math.inf)[0] == "nonfinite-loss"
    assert core.judge(1.0, math.inf)[0] == "nonfinite-grad"
    assert core.judge(1e30, 1e30) == (None, {})      # no history yet: no spike test

"""The framework-free range-test core: ramps, smoothing, stop rule, rules, analysis, specs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrdoctor.errors import FinderError
from lrdoctor.finder import (
    DEFAULT_RULE,
    MARGIN,
    RULES,
    Curve,
    RangeTest,
    analyze,
    ema,
    ramp,
    robust_smooth,
    running_median,
    zero_lag,
    zoom_range,
)
from lrdoctor.finder._rules import fastai_valley, lightning, torch_lr_finder
from lrdoctor.schedules import parse


def synthetic(n: int = 200, *, center: float = -2.5, noise: float = 0.0, seed: int = 0,
              blowup_at: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """A textbook range-test curve: flat, a sigmoid descent around 10**center, then a blow-up."""
    lrs = np.logspace(-6, 1, n)
    x = np.log10(lrs)
    loss = 2.3 - np.tanh(2 * (x - center)) * 0.8 + np.where(lrs > blowup_at, 30 * (lrs - blowup_at), 0)
    loss = loss + np.random.default_rng(seed).normal(0, noise, n)
    return lrs, loss


# ---- ramp, ema, range test -----------------------------------------------------------------------


def test_exponential_and_linear_ramps_are_schedules():
    r = ramp(1e-6, 1.0, 7)
    assert np.allclose([r(k) for k in range(7)], np.logspace(-6, 0, 7))
    assert parse(r.to_spec())(3) == pytest.approx(r(3))
    lin = ramp(0.1, 1.0, 10, "linear")
    assert lin(0) == pytest.approx(0.1) and lin(9) == pytest.approx(1.0)
    assert lin(5) - lin(4) == pytest.approx(0.1)


@pytest.mark.parametrize("args, match", [
    ((1.0, 1.0, 100), "below end_lr"),
    ((1.0, 0.1, 100), "below end_lr"),
    ((0.0, 1.0, 100), "positive"),
    ((1e-3, 1.0, 2), "num_steps"),
    ((1e-3, math.inf, 100), "finite"),
])
def test_bad_ranges(args, match):
    with pytest.raises(FinderError, match=match):
        ramp(*args)


def test_ema_is_bias_corrected():
    assert ema([5.0])[0] == pytest.approx(5.0)
    assert np.allclose(ema([2.0] * 50, 0.98), 2.0)
    assert np.allclose(zero_lag([2.0] * 50, 0.9), 2.0)


def test_zero_lag_does_not_shift_a_step():
    y = np.r_[np.ones(100), np.zeros(100)]
    causal = ema(y, 0.9)
    centred = zero_lag(y, 0.9)
    # the causal average crosses 0.5 late; the zero-lag one at the step
    assert int(np.argmax(causal < 0.5)) > 103
    assert abs(int(np.argmax(centred < 0.5)) - 100) <= 1


def test_running_median_ignores_isolated_spikes_and_keeps_steps():
    y = np.r_[np.ones(20), np.zeros(20)]
    spiky = y.copy()
    spiky[[5, 30]] = 100.0
    assert np.array_equal(running_median(spiky, 2), y)
    assert np.array_equal(running_median(y, 0), y)
    with pytest.raises(FinderError, match="half"):
        running_median(y, -1)


def test_blow_ups_past_the_minimum_do_not_move_it():
    # a range test's high-LR end is spiky: a plain (zero-lag) average lets blow-up batches past
    # the minimum lift the curve many steps earlier, which moves its minimum to smaller LRs
    _lrs, loss = synthetic(noise=0.02)
    true_min = int(np.argmin(synthetic()[1]))
    spiky = loss.copy()
    spiky[true_min + 8] = 500.0
    spiky[true_min + 15] = 800.0
    assert int(np.argmin(robust_smooth(spiky, 0.9))) == int(np.argmin(robust_smooth(loss, 0.9)))
    assert int(np.argmin(zero_lag(spiky, 0.9))) <= int(np.argmin(zero_lag(loss, 0.9))) - 8


def test_robust_smooth_handles_non_positive_losses_and_beta_zero():
    y = np.linspace(1.0, -1.0, 200)  # e.g. a negative log-likelihood: no log taken
    assert np.allclose(robust_smooth(y, 0.9)[40:-40], y[40:-40], atol=1e-2)
    assert np.allclose(robust_smooth(np.array([3.0, 1.0, 2.0]), 0.0), [3.0, 1.0, 2.0])
    with pytest.raises(FinderError, match="beta"):
        robust_smooth(y, 1.0)


@given(st.lists(st.floats(0.01, 10.0), min_size=1, max_size=60), st.floats(0.0, 0.99))
def test_robust_smooth_stays_within_the_data(values, beta):
    out = robust_smooth(values, beta)
    assert out.min() >= min(values) * (1 - 1e-9) and out.max() <= max(values) * (1 + 1e-9)


@given(st.lists(st.floats(0.01, 10.0), min_size=1, max_size=60), st.floats(0.0, 0.99))
def test_ema_stays_within_the_data(values, beta):
    out = ema(values, beta)
    assert out.min() >= min(values) - 1e-9 and out.max() <= max(values) + 1e-9


def test_range_test_stops_on_divergence_and_nan():
    t = RangeTest(1e-4, 1.0, 50, diverge_factor=4.0)
    while t.running:
        t.record(1.0 if t.step < 20 else 100.0)
    c = t.curve()
    assert c.stop == "diverged" and len(c) == 21
    t2 = RangeTest(1e-4, 1.0, 50)
    for _ in range(10):
        t2.record(1.0)
    assert not t2.record(float("nan")) and t2.curve().stop == "nonfinite" and len(t2.curve()) == 10
    t3 = RangeTest(1e-4, 1.0, 20)
    while t3.running:
        t3.record(1.0)
    assert t3.curve().stop == "end" and len(t3.curve()) == 20
    with pytest.raises(FinderError, match="after the test stopped"):
        t3.record(1.0)


def test_no_divergence_stop_before_min_steps():
    t = RangeTest(1e-4, 1.0, 100, min_steps=10)
    t.record(0.01)
    for _ in range(5):
        assert t.record(10.0)  # early noise is not a divergence


# ---- rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_rules_on_a_textbook_curve(noise):
    lrs, loss = synthetic(noise=noise)
    c = Curve.from_losses(lrs, loss)
    picks = {name: fn(c.lrs, c.smoothed) for name, fn in RULES.items()}
    # the descent is centred at 10**-2.5 and the curve bottoms out just below 0.1
    assert 10**-3.2 < picks["steepest"].lr < 10**-1.8
    assert picks["steepest"].lr < picks["edge"].lr < 0.1
    assert picks["minimum"].lr == pytest.approx(c.lrs[np.argmin(c.smoothed)] / 10)
    assert picks["margin"].lr == pytest.approx(c.lrs[np.argmin(c.smoothed)] / MARGIN)
    assert picks["minimum"].lr < picks["margin"].lr < 0.1
    assert picks["valley"].lr < picks["edge"].lr
    for p in picks.values():
        assert p.low <= p.high


def test_steepest_is_robust_to_spikes():
    lrs, loss = synthetic(noise=0.02)
    loss = loss.copy()
    loss[40] -= 1.5  # one lucky batch far from the descent
    c = Curve.from_losses(lrs, loss)
    assert 10**-3.2 < RULES["steepest"](c.lrs, c.smoothed).lr < 10**-1.8


def test_rules_return_none_without_descent():
    lrs = np.logspace(-6, 1, 100)
    rising = np.linspace(1, 3, 100)
    for fn in RULES.values():
        assert fn(lrs, rising) is None
    assert RULES["steepest"](lrs[:3], rising[:3]) is None


def test_peer_rules_behave_as_documented():
    lrs, loss = synthetic(n=100, noise=0.02)
    causal = ema(loss, 0.98)
    # the slope against the raw LR is biased to tiny LRs, where noise dominates
    assert lightning(lrs, causal).lr < 1e-4
    assert fastai_valley(lrs, causal) is not None
    assert torch_lr_finder(lrs, loss).lr > 1e-4


# ---- analysis ------------------------------------------------------------------------------------


def test_analyze_combines_repeats():
    curves = [Curve.from_losses(*synthetic(noise=0.03, seed=s, center=-2.5 + 0.1 * s)) for s in range(3)]
    res = analyze(curves)
    assert res.rule == DEFAULT_RULE and res.suggestion is not None
    lo, hi = res.interval
    assert lo <= res.suggestion <= hi
    assert res.grade in ("good", "fair")
    assert set(res.picks) == set(RULES)
    assert len(res.lrs) == len(res.losses) == len(res.smoothed) == 200
    d = res.to_dict()
    assert {"suggestion", "interval", "rule", "grade", "specs"} <= set(d)


def test_zoom_range_brackets_the_loss_minimum():
    lrs, loss = synthetic(noise=0.01, blowup_at=0.01)
    res = analyze([Curve.from_losses(lrs, loss)])
    m = res.picks["margin"] * MARGIN
    lo, hi = zoom_range(res)
    assert math.isclose(lo, m / 30) and math.isclose(hi, m * 10)
    assert lo < res.suggestion < m < hi  # the default pick lies inside the window
    flat = analyze([Curve.from_losses(lrs, 2.3 + np.random.default_rng(0).normal(0, 0.05, 200))])
    assert zoom_range(flat) is None  # nothing to zoom in on


def test_flat_curve_says_so_instead_of_inventing_a_number():
    lrs = np.logspace(-6, 1, 200)
    flat = 2.3 + np.random.default_rng(0).normal(0, 0.05, 200)
    res = analyze([Curve.from_losses(lrs, flat)])
    assert res.suggestion is None and res.grade == "none"
    assert "no clear descent" in res.notes[0]
    assert res.specs() == {}
    with pytest.raises(FinderError, match="no clear descent"):
        res.spec_for("one_cycle")


def test_still_falling_at_the_end_is_noted():
    lrs = np.logspace(-6, -1, 100)
    res = analyze([Curve.from_losses(lrs, 3 - np.log10(lrs) / 10 - 0.6)])
    assert any("raise end_lr" in n for n in res.notes)


@pytest.mark.parametrize("kind", ["constant", "cosine", "one_cycle", "cyclic"])
def test_spec_strings_parse(kind):
    res = analyze([Curve.from_losses(*synthetic(noise=0.02))])
    spec = res.spec_for(kind, steps=500)
    schedule = parse(spec)
    low, high = res.bounds()
    assert low < high and high >= res.suggestion
    if kind == "one_cycle":
        assert max(schedule.values(range(500))) == pytest.approx(high, rel=1e-2)
    if kind == "constant":
        assert schedule(0) == pytest.approx(res.suggestion, rel=1e-2)


def test_analyze_bad_input():
    with pytest.raises(FinderError, match="rule"):
        analyze([Curve.from_losses(*synthetic())], rule="magic")
    with pytest.raises(FinderError, match="no losses"):
        analyze([])


def test_plot_writes_a_png(tmp_path):
    res = analyze([Curve.from_losses(*synthetic(noise=0.02, seed=s)) for s in range(2)])
    out = tmp_path / "finder.png"
    fig = res.plot(out)
    assert out.stat().st_size > 10_000
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("suggestion" in t for t in labels) and any("interval" in t for t in labels)
    with pytest.raises(FinderError, match="does not exist"):
        res.plot(tmp_path / "missing" / "x.png")


def test_repeats_without_descent_are_left_out_and_noted():
    lrs = np.logspace(-6, 1, 200)
    flat = Curve.from_losses(lrs, 2.3 + np.random.default_rng(1).normal(0, 0.05, 200))
    good = Curve.from_losses(*synthetic(noise=0.02))
    res = analyze([flat, good, flat])
    alone = analyze([good])
    assert res.suggestion == pytest.approx(alone.suggestion)
    assert res.grade == "poor" and any("only 1 of 3" in n for n in res.notes)

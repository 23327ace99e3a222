"""lrdoctor.finder._probe: the budget probe's edge, its state machine and its verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrdoctor.errors import FinderError
from lrdoctor.finder import NEAR_MARGIN, BudgetProbe, Curve, analyze, probe_edge
from lrdoctor.finder._probe import (
    PROBE_CONVERGED,
    PROBE_RISE,
    PROBE_STEPS,
    PROBE_TOP,
    PROBE_WINDOW,
)


def test_edge_is_where_the_median_rises_above_its_minimum_and_the_reference():
    lrs = np.geomspace(0.01, 1.0, 30)
    losses = np.where(np.arange(30) < 20, 1.0, 2.0)
    # the trailing median of 5 turns at the third high point
    assert probe_edge(lrs, losses, reference=1.0) == lrs[22]
    # one spike is ignored by the median
    spiky = np.ones(30)
    spiky[10] = 50.0
    assert probe_edge(lrs, spiky, reference=1.0) == lrs[-1]


def test_a_rise_that_stays_below_the_reference_is_not_an_edge():
    lrs = np.geomspace(0.01, 1.0, 20)
    losses = np.where(np.arange(20) < 10, 0.1, 0.2)  # doubled, but still below where warm ended
    assert probe_edge(lrs, losses, reference=0.5) == lrs[-1]
    assert probe_edge(lrs, losses, reference=0.15) == lrs[12]


def test_edge_of_a_nonfinite_loss_and_of_nothing():
    lrs = np.geomspace(0.01, 1.0, 10)
    losses = np.ones(10)
    losses[6] = math.nan
    assert probe_edge(lrs, losses, 1.0) == lrs[6]
    assert probe_edge(lrs[:0], losses[:0], 1.0) is None


def test_rise_factor_is_the_documented_one():
    lrs = np.geomspace(0.01, 1.0, 12)
    below = np.r_[np.ones(6), np.full(6, PROBE_RISE * 0.99)]
    above = np.r_[np.ones(6), np.full(6, PROBE_RISE * 1.01)]
    assert probe_edge(lrs, below, 1.0) == lrs[-1]
    assert probe_edge(lrs, above, 1.0) == lrs[6 + PROBE_WINDOW // 2]


def test_probe_lr_is_constant_while_warm_then_a_geometric_ramp_to_top():
    p = BudgetProbe(0.1, 0.4, warm_steps=7)
    seen = []
    while p.running:
        seen.append(p.lr())
        p.record(1.0)
    assert len(seen) == 7 + PROBE_STEPS and p.stop == "end"
    assert seen[:7] == [0.1] * 7
    assert seen[7] == pytest.approx(0.1) and seen[-1] == pytest.approx(PROBE_TOP * 0.4)
    ratios = np.diff(np.log(seen[7:]))
    assert np.allclose(ratios, ratios[0])


def test_probe_moves_when_the_loss_holds_past_the_minimum():
    p = BudgetProbe(0.1, 0.4, warm_steps=5)
    while p.running:
        p.record(1.0 if p.lr() < 1.0 else 1.5)
    r = p.report()
    assert r.moved and r.edge_lr >= 1.0 and r.reference == 1.0
    assert "moves up" in r.sentence()


def test_probe_keeps_the_margin_when_a_higher_lr_hurts_at_once():
    p = BudgetProbe(0.1, 0.4, warm_steps=5)
    while p.running:
        p.record(0.05 if p.lr() < 0.15 else 0.5)
    r = p.report()
    assert not r.moved and r.edge_lr < 0.4 and r.stop == "diverged"
    assert "keeps its margin" in r.sentence()


def test_probe_does_not_move_when_warm_training_failed_or_was_cut():
    p = BudgetProbe(0.1, 0.4, warm_steps=5)
    p.record(1.0)
    p.record(math.nan)
    assert p.stop == "nonfinite" and not p.report().moved
    q = BudgetProbe(0.1, 0.4, warm_steps=5)
    q.record(1.0)
    q.end_of_data()
    assert q.stop == "data" and not q.report().moved and q.report().edge_lr is None
    assert "the loader running out" in q.report().sentence()
    assert "a NaN/Inf loss" in p.report().sentence()
    with pytest.raises(FinderError, match="after the probe stopped"):
        q.record(1.0)


def test_probe_never_moves_the_suggestion_down():
    p = BudgetProbe(0.35, 0.4, warm_steps=3)  # 0.4 / sqrt(2) < 0.35
    while p.running:
        p.record(1.0)
    assert p.report().edge_lr >= 0.4 and not p.report().moved


@pytest.mark.parametrize("kwargs, match", [
    ({"warm_lr": 0.0}, "warm_lr"), ({"min_loss_lr": math.inf}, "min_loss_lr"),
    ({"warm_steps": 0}, "warm_steps"), ({"warm_steps": 2.5}, "warm_steps"),
    ({"ramp_steps": 3}, "ramp_steps"),
])
def test_bad_probe_settings(kwargs, match):
    args = {"warm_lr": 0.1, "min_loss_lr": 0.4, "warm_steps": 5, **kwargs}
    with pytest.raises(FinderError, match=match):
        BudgetProbe(**args)


def _result():
    lrs = np.logspace(-5, 0, 100)
    loss = 2 - np.tanh(3 * (np.log10(lrs) + 2.5)) + np.where(lrs > 0.1, 40 * (lrs - 0.1), 0)
    return analyze([Curve.from_losses(lrs, loss), Curve.from_losses(lrs, loss * 1.01)])


def test_with_probe_moves_suggestion_and_interval_together():
    res = _result()
    p = BudgetProbe(res.suggestion, res.min_loss_lr, warm_steps=3)
    while p.running:
        p.record(1.0)
    moved = res.with_probe(p.report())
    assert moved.suggestion == pytest.approx(res.min_loss_lr / NEAR_MARGIN)
    factor = moved.suggestion / res.suggestion
    assert moved.interval == pytest.approx((res.interval[0] * factor, res.interval[1] * factor))
    assert moved.grade == res.grade and moved.notes[-1] == p.report().sentence()
    assert moved.to_dict()["probe"]["moved"] is True
    assert res.to_dict()["probe"] is None


def test_with_probe_that_does_not_move_only_adds_its_note():
    res = _result()
    p = BudgetProbe(res.suggestion, res.min_loss_lr, warm_steps=3)
    while p.running:
        p.record(0.1 if p.step < 8 else 1.0)
    kept = res.with_probe(p.report())
    assert kept.suggestion == res.suggestion and kept.interval == res.interval
    assert kept.probe is not None and not kept.probe.moved


def test_plot_marks_the_moved_suggestion_and_the_probe_edge(tmp_path):
    res = _result()
    p = BudgetProbe(res.suggestion, res.min_loss_lr, warm_steps=3)
    while p.running:
        p.record(1.0)
    fig = res.with_probe(p.report()).plot(tmp_path / "probe.png")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    suggested = [t for t in labels if "(suggestion)" in t]
    assert len(suggested) == 1 and suggested[0].startswith("after the budget probe")
    assert any(t.startswith("budget probe's edge") for t in labels)


def _run_probe(warm_losses, ramp_loss, warm_lr=0.01, min_loss_lr=0.1):
    """A probe whose warm phase records ``warm_losses`` and whose ramp holds at ``ramp_loss``
    up to 4x the min-loss LR (past the minimum), then rises."""
    p = BudgetProbe(warm_lr, min_loss_lr, warm_steps=len(warm_losses))
    for loss in warm_losses:
        p.record(loss)
    while p.running:
        p.record(ramp_loss if p.lr() < 4 * min_loss_lr else 10 * ramp_loss)
    return p.report()


def test_a_converged_warm_phase_keeps_the_margin_although_the_ramp_holds():
    # the GRU of P1's gru-recall + Adam: the loss fell from 1.8 to about 0.001 in the warm
    # phase, and then a near-zero loss "held" past the min-loss LR
    warm = np.geomspace(1.8, 0.001, 40)
    r = _run_probe(warm, ramp_loss=0.001)
    assert r.edge_lr >= r.min_loss_lr  # the ramp alone would move it
    assert r.converged and not r.moved
    assert r.warm_start == pytest.approx(np.median(warm[:PROBE_WINDOW]))
    assert "converged" in r.sentence() and "keeps its margin" in r.sentence()
    assert r.to_dict()["converged"] is True
    res = _result()
    assert res.with_probe(r).suggestion == res.suggestion
    assert "already converged" in res.with_probe(r).reason  # not "the loss rose below the minimum"


def test_a_language_model_still_learning_still_moves():
    # charlm's warm phase: 4.7 nats down to about 2.3 (ratio ~0.5), the ramp holds past m
    r = _run_probe(np.linspace(4.7, 2.3, 40), ramp_loss=2.3)
    assert not r.converged and r.moved
    assert "moves up" in r.sentence()


def test_the_convergence_gate_is_the_documented_fraction_of_the_warm_start():
    start = np.ones(PROBE_WINDOW)
    above = _run_probe(np.r_[start, np.full(10, PROBE_CONVERGED * 1.05)], PROBE_CONVERGED)
    below = _run_probe(np.r_[start, np.full(10, PROBE_CONVERGED * 0.95)], PROBE_CONVERGED)
    assert above.moved and not above.converged
    assert below.converged and not below.moved

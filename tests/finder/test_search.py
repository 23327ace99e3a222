"""lrdoctor.finder.search: the passes answer whenever a curve holds an answer, and say why."""

from __future__ import annotations

import numpy as np
import pytest

from lrdoctor.finder import FALLBACK_DIVISOR, GRADES, Curve, adapt_range, analyze, search


def simulated(progress_needed: float | None, diverge_at: float = 1.0, noise: float = 0.002):
    """A range test on a model that learns late: its loss falls only once the LRs summed so far
    (the progress) pass ``progress_needed`` (never, for None), and blows up above ``diverge_at``.
    """
    calls = []

    def run(lo: float, hi: float, steps: int) -> list[Curve]:
        calls.append((lo, hi, steps))
        rng = np.random.default_rng(len(calls))
        lrs = np.geomspace(lo, hi, steps)
        progress = np.cumsum(lrs)
        loss = np.full(steps, 2.0)
        if progress_needed is not None:
            loss -= np.tanh(np.maximum(0.0, progress - progress_needed) / 2)
        loss *= 1 + noise * rng.standard_normal(steps)
        over = np.flatnonzero(lrs > diverge_at)
        if len(over):  # the first step past the edge is recorded 10x up, and the ramp stops
            k = int(over[0])
            loss = np.r_[loss[:k], 10 * loss[k]]
            return [Curve.from_losses(lrs[: k + 1], loss, stop="diverged")]
        return [Curve.from_losses(lrs, loss, stop="end")]

    return run, calls


def test_a_long_flat_start_gets_a_slower_ramp_and_a_suggestion():
    run, calls = simulated(progress_needed=8.0)
    first = analyze(run(1e-7, 10.0, 100))
    assert first.suggestion is None  # the first ramp alone: flat until it diverges
    calls.clear()
    res = search(run, start_lr=1e-7, end_lr=10.0, num_steps=100)
    assert res.suggestion is not None and res.grade in ("good", "fair", "poor")
    kinds = [p["kind"] for p in res.settings["passes"]]
    assert kinds == ["first", "slow", "zoom"]
    lo, _hi, _ = calls[1]
    assert lo == pytest.approx(res.settings["passes"][0]["divergence_lr"] / 1000)
    assert "showed no clear descent" in res.reason and "slower ramp" in res.reason
    assert "margin" in res.reason
    assert 1e-3 < res.suggestion < 1.0  # below the divergence, inside the slow ramp's range


def test_without_adapt_the_same_curve_gives_nothing():
    run, _ = simulated(progress_needed=8.0)
    res = search(run, start_lr=1e-7, end_lr=10.0, num_steps=100, adapt=False)
    assert res.grade == "fallback"  # no descent, but it diverged: the fallback rule
    assert res.suggestion == pytest.approx(res.divergence_lr / FALLBACK_DIVISOR)


def test_a_loss_that_never_descends_but_diverges_falls_back_and_says_so():
    run, _calls = simulated(progress_needed=None, diverge_at=0.3)
    res = search(run, start_lr=1e-7, end_lr=10.0, num_steps=100)
    assert [p["kind"] for p in res.settings["passes"]] == ["first", "slow"]
    assert res.grade == "fallback" and "fallback" in GRADES
    assert res.suggestion == pytest.approx(res.divergence_lr / FALLBACK_DIVISOR)
    assert res.interval[0] < res.suggestion < res.interval[1]
    assert res.reason.startswith("fallback:") and res.to_dict()["reason"] == res.reason
    _low, high = res.bounds()
    assert high == pytest.approx(res.suggestion)  # no minimum to read: the suggestion is the top


def test_a_loss_that_ignores_the_lr_continues_the_ramp_then_gives_none():
    run, calls = simulated(progress_needed=None, diverge_at=np.inf)
    res = search(run, start_lr=1e-7, end_lr=10.0, num_steps=60)
    assert [c[:2] for c in calls] == [(1e-7, 10.0), (1.0, 1e4)]  # continued past end_lr
    assert res.suggestion is None and res.grade == "none"
    assert "does not respond to the learning rate" in res.reason


def test_a_clear_first_pass_is_not_adapted():
    run, _calls = simulated(progress_needed=0.05)
    res = search(run, start_lr=1e-7, end_lr=10.0, num_steps=100)
    assert [p["kind"] for p in res.settings["passes"]] == ["first", "zoom"]
    assert res.reason.startswith("margin:") and "zoomed pass" in res.reason


def test_adapt_range_tries_each_kind_once():
    flat = Curve.from_losses(np.geomspace(1e-7, 10, 50), np.full(50, 2.0))
    assert adapt_range(analyze([flat]), 1e-7, 10, ["extend"]) is None
    diverged = Curve.from_losses(np.geomspace(1e-7, 0.5, 50), np.r_[np.full(49, 2.0), 20.0],
                                 stop="diverged")
    kind, lo, hi = adapt_range(analyze([diverged]), 1e-7, 10)
    assert kind == "slow" and lo == pytest.approx(0.5e-3) and hi == pytest.approx(1.0)
    assert adapt_range(analyze([diverged]), 1e-7, 10, ["slow"]) is None


def test_every_pass_keeps_its_settings_for_the_coarse_view():
    run, _ = simulated(progress_needed=0.05)
    counter = {"n": 0}

    def settings(**extra):
        counter["n"] += 1
        return {"steps_run": counter["n"], **extra}

    res = search(run, start_lr=1e-7, end_lr=10.0, num_steps=100, settings=settings)
    assert res.coarse is not None and "steps_run" in res.coarse.settings
    assert res.settings["steps_run"] > res.coarse.settings["steps_run"]

"""lrdoctor.preview: summaries that take the same time for 10^3 and 10^9 steps, exact at the
key points."""

from __future__ import annotations

import numpy as np
import pytest

from lrdoctor.preview import DENSE_STEPS, GRID_STEPS, plot_schedule, sample_steps, summarize
from lrdoctor.schedules import Schedule, ScheduleError, parse


def test_short_previews_evaluate_every_step():
    s = parse("one_cycle(0.1, steps=1000)")
    p = summarize(s)
    lrs = s.values(p.steps)
    assert not p.sampled and p.steps == 1050
    assert (p.peak_lr, p.peak_step, p.min_lr, p.min_step) == (lrs.max(), lrs.argmax(), lrs.min(), lrs.argmin())


@pytest.mark.parametrize("steps", [10**5, 10**7, 10**9, 2**53])
def test_long_previews_evaluate_a_bounded_number_of_steps(steps, monkeypatch):
    sizes = []
    real = Schedule.values
    monkeypatch.setattr(Schedule, "values", lambda self, ks: (sizes.append(len(ks)), real(self, ks))[1])
    spec = "constant(0.1, steps=1000000000)"
    p = summarize(spec, steps)
    assert p.sampled and sizes == [len(sample_steps(parse(spec), steps))]
    assert sizes[0] <= GRID_STEPS + 10
    assert p.start_lr == p.end_lr == p.peak_lr == 0.1


def test_key_points_are_exact_in_a_sampled_preview():
    spec = "warmup(1000003) >> sgdr(0.1, end=1e-5, period=3000017, mult=2, cycles=5)"
    s = parse(spec)
    p = summarize(s)
    assert p.sampled and p.steps > DENSE_STEPS
    ks = set(sample_steps(s, p.steps).tolist())
    for m in p.marks:  # warm-up end, every restart, the end: the step and the one before it
        assert {m.step - 1, m.step} <= ks, m
    assert p.peak_step == 1000003 and p.peak_lr == s(1000003) == 0.1
    assert p.start_lr == s(0) and p.end_lr == s(p.steps - 1)
    assert p.min_lr == min(s(k) for k in ks)


def test_plot_of_a_billion_steps(tmp_path):
    out = plot_schedule("warmup(1000) >> cosine(0.1, steps=1000000000)", tmp_path / "lr.png")
    assert out.stat().st_size > 1000


def test_bad_steps():
    for bad in (0, -1, 1.5, True, 2**70):
        with pytest.raises(ScheduleError, match="steps must be"):
            summarize("constant(0.1)", bad)  # type: ignore[arg-type]
    assert np.array_equal(sample_steps(parse("constant(1)"), 5), np.arange(5))

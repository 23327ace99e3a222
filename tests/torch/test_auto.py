"""lrdoctor.torch.auto_lr: a sized range test, a schedule for exactly total_steps, state back."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn

from lrdoctor.errors import FinderError
from lrdoctor.finder._recipe import RECIPES, auto_peak, recipe_spec
from lrdoctor.schedules import parse
from lrdoctor.torch import AutoResult, ScheduledLR, auto_lr
from lrdoctor.torch._auto import MAX_RAMP, MIN_RAMP, REPEATS, SIZED_PASSES, finder_size
from tests.torch.test_finder import assert_restored, capture, make_problem, warm


@pytest.fixture
def problem():
    model, loader = make_problem(n=512)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    warm(model, opt, loader)
    return model, opt, loader


def test_auto_lr_gives_a_spec_for_exactly_total_steps_and_restores_state(problem):
    model, opt, loader = problem
    before = capture(model, opt)
    res = auto_lr(model, opt, loader, nn.CrossEntropyLoss(), total_steps=2000)
    assert_restored(before, model, opt)
    assert isinstance(res, AutoResult) and res.suggestion is not None
    assert (res.finder.settings["num_steps"], res.finder.settings["repeats"]) == \
        finder_size(2000, 0.1)
    assert res.peak_lr == pytest.approx(
        auto_peak(res.suggestion, res.grade, res.divergence_lr), rel=5e-3)
    schedule = parse(res.spec)
    assert schedule.duration == 2000
    values = schedule.values(2000)
    assert values.max() == pytest.approx(res.peak_lr, rel=1e-3)
    assert values[-1] < values.max() / 100 and schedule(2000) == 0.0  # decayed by the end
    if len(res.settings["passes"]) <= 3:  # first (+ one adaptive pass) + zoom: within 10%
        assert res.cost <= 0.1
    data = res.to_dict()
    for key in ("suggestion", "interval", "rule", "reason", "spec", "schedule", "cost"):
        assert key in data
    assert data["spec"] == res.spec and data["suggestion"] == res.suggestion


def test_scheduler_drives_the_optimizer_along_the_spec(problem):
    model, opt, loader = problem
    res = auto_lr(model, opt, loader, nn.CrossEntropyLoss(), total_steps=400, schedule="wsd")
    sched = res.scheduler(opt)
    assert isinstance(sched, ScheduledLR)
    expected = parse(res.spec)
    seen = []
    for _ in range(400):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([expected(k) for k in range(400)])


@pytest.mark.parametrize("kind", RECIPES)
def test_every_recipe_lasts_exactly_its_steps_and_peaks_at_the_peak(kind):
    s = parse(recipe_spec(kind, 0.02, 777))
    assert s.duration == 777
    assert max(s.values(777)) == pytest.approx(0.02, rel=1e-3)


def test_finder_size_keeps_the_test_within_its_cost():
    for total in (500, 2000, 5000, 100_000):
        for repeats, passes in ((REPEATS, SIZED_PASSES), (3, 1.5), (2, 2.5)):
            n, r = finder_size(total, 0.1, repeats, passes)
            assert MIN_RAMP <= n <= MAX_RAMP and 1 <= r <= repeats
            assert passes * n * r <= 0.1 * total or (n == MIN_RAMP and r == 1)


def test_peak_factor_overrides_the_factor_by_grade(problem):
    model, opt, loader = problem
    one = auto_lr(model, opt, loader, nn.CrossEntropyLoss(), total_steps=1000, peak_factor=1)
    assert one.peak_lr == pytest.approx(one.suggestion, rel=5e-3)
    per = auto_lr(model, opt, loader, nn.CrossEntropyLoss(), total_steps=1000,
                  peak_factor={one.grade: 3.0})
    assert per.suggestion == one.suggestion  # the same test: the state was restored
    assert per.peak_lr == pytest.approx(3 * one.suggestion, rel=5e-3)
    with pytest.raises(FinderError, match="peak_factor must be > 0"):
        auto_lr(model, opt, loader, nn.CrossEntropyLoss(), total_steps=1000,
                peak_factor={"good": -1.0})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"total_steps": 5}, "total_steps must be"),
    ({"total_steps": 100, "schedule": "step"}, "schedule must be one of"),
    ({"total_steps": 100, "cost": 0}, "cost must be"),
    ({"total_steps": 100, "budget_steps": 10}, "no budget_steps"),
])
def test_bad_input_names_the_parameter(problem, kwargs, message):
    model, opt, loader = problem
    before = capture(model, opt)
    with pytest.raises(FinderError, match=message):
        auto_lr(model, opt, loader, nn.CrossEntropyLoss(), **kwargs)
    assert_restored(before, model, opt)

"""lrdoctor.finder._recipe: auto's schedule specs last exactly their steps and peak at the peak."""

from __future__ import annotations

import pytest

from lrdoctor.errors import FinderError
from lrdoctor.finder._recipe import (
    AUTO_SCHEDULE,
    DIVERGENCE_CAP,
    DIVERGENCE_FLOOR,
    PEAK_FACTORS,
    RECIPES,
    WARMUP_FRACTION,
    auto_peak,
    peak_lr,
    recipe_spec,
)
from lrdoctor.schedules import parse


@pytest.mark.parametrize("kind", RECIPES)
@pytest.mark.parametrize("steps", [20, 333, 2000])
def test_each_recipe_spans_exactly_its_steps_and_ends_near_zero(kind, steps):
    s = parse(recipe_spec(kind, 0.01, steps))
    values = s.values(steps)
    assert s.duration == steps
    assert max(values) == pytest.approx(0.01, rel=1e-3)
    assert s(steps) <= 0.01 * 1e-3  # decayed to (about) 0 when the run ends


def test_the_warmup_is_its_fraction_of_the_run():
    s = parse(recipe_spec("wsd", 0.01, 1000))
    values = s.values(1000)
    first_peak = int((values >= 0.01 * (1 - 1e-9)).argmax())
    assert first_peak == round(WARMUP_FRACTION * 1000)
    assert AUTO_SCHEDULE in RECIPES


@pytest.mark.parametrize(("args", "message"), [
    (("step", 0.01, 100), "schedule must be one of"),
    (("wsd", 0.01, 10), "total_steps must be"),
    (("wsd", 0.0, 100), "peak lr must be > 0"),
])
def test_bad_input_names_the_parameter(args, message):
    with pytest.raises(FinderError, match=message):
        recipe_spec(*args)


def test_the_peak_factor_goes_by_the_finders_grade():
    for grade in ("good", "fair", "poor", "fallback"):
        assert peak_lr(0.01, grade) == pytest.approx(0.01 * PEAK_FACTORS[grade])
    assert peak_lr(0.01, "poor", 3) == pytest.approx(0.03)
    assert peak_lr(0.01, "poor", {"good": 2.0}) == pytest.approx(0.01)  # missing grade: 1
    with pytest.raises(FinderError, match="peak_factor must be > 0"):
        peak_lr(0.01, "good", {"good": 0})
    with pytest.raises(FinderError, match="suggestion must be > 0"):
        peak_lr(0.0, "good")


def test_auto_peak_keeps_a_graded_peak_within_the_divergence_bounds():
    d = 0.4
    assert DIVERGENCE_FLOOR >= DIVERGENCE_CAP
    # a suggestion far under the divergence (a shallow minimum) is raised to D / floor
    assert auto_peak(1e-4, "poor", d) == pytest.approx(d / DIVERGENCE_FLOOR)
    # one close to it is lowered to D / cap
    assert auto_peak(0.2, "good", d) == pytest.approx(d / DIVERGENCE_CAP)
    # in between, or with no divergence seen, the factor by grade alone
    mid = d / (DIVERGENCE_FLOOR * DIVERGENCE_CAP) ** 0.5 / PEAK_FACTORS["good"]
    assert auto_peak(mid, "good", d) == pytest.approx(peak_lr(mid, "good"))
    assert auto_peak(1e-4, "poor", None) == pytest.approx(peak_lr(1e-4, "poor"))
    # the fallback is read from the divergence already: no bounds
    assert auto_peak(d / 10, "fallback", d) == pytest.approx(peak_lr(d / 10, "fallback"))
    assert auto_peak(1e-4, "poor", d, floor=None, cap=None) == pytest.approx(1e-4)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"floor": 0}, "floor must be > 0"),
    ({"cap": -1.0}, "cap must be > 0"),
    ({"floor": 5.0, "cap": 10.0}, "floor's divisor must be >= the cap's"),
])
def test_auto_peak_bad_bounds_name_the_parameter(kwargs, message):
    with pytest.raises(FinderError, match=message):
        auto_peak(0.01, "good", 0.3, **kwargs)

"""lrdoctor.finder._recipe: auto's schedule specs last exactly their steps and peak at the peak."""

from __future__ import annotations

import pytest

from lrdoctor.errors import FinderError
from lrdoctor.finder._recipe import (
    AUTO_SCHEDULE,
    PEAK_FACTORS,
    RECIPES,
    WARMUP_FRACTION,
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

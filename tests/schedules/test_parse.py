"""The spec language: every DESIGN.md example parses; malformed specs fail clearly."""

from __future__ import annotations

import pytest

from lrdoctor.errors import LRDoctorError
from lrdoctor.schedules import Cosine, Scaled, ScheduleError, Sequence, Warmup, parse

DESIGN_EXAMPLES = [
    "constant(1e-3)",
    "step(0.1, every=30, gamma=0.1)",
    "multistep(0.1, milestones=[30, 80], gamma=0.1)",
    "exponential(0.1, gamma=0.99, every=1, staircase=false)",
    "inverse_time(0.1, rate=0.5, every=100)",
    "inverse_sqrt(1e-3, warmup=4000)",
    "polynomial(0.1, end=1e-4, steps=1000, power=2)",
    "linear(1e-3, end=0, steps=1000)",
    "cosine(0.1, end=0, steps=1000)",
    "cyclic(1e-3, 6e-3, half_period=2000, mode=triangular2)",
    "one_cycle(0.1, steps=1000)",
    "one_cycle(0.1, steps=1000, three_phase=true, anneal=linear)",
    "sgdr(0.1, end=0, period=100, mult=2)",
    "sgdr(0.1, end=1e-4, period=100, mult=1.5, decay=0.5)",
    "wsd(3e-4, warmup=500, stable=8000, decay=1500, end=3e-6, shape=sqrt)",
    "warmup(500) >> cosine(3e-4, end=3e-6, steps=9500)",
    "warmup(500, start=1e-6, shape=exponential) >> constant(1e-3)",
    "warmup_untuned(beta2=0.999) >> constant(1e-3)",
    "cosine(0.1, end=0, steps=1000) * 0.5",
]


@pytest.mark.parametrize("spec", DESIGN_EXAMPLES)
def test_design_examples_parse_and_round_trip(spec):
    s = parse(spec)
    assert parse(s.to_spec()) == s
    assert s(0) >= 0


def test_structure_and_precedence():
    s = parse("warmup(10) >> cosine(1.0, steps=90) * 0.5")
    assert s == Sequence(parts=(Warmup(10), Scaled(Cosine(1.0, steps=90), 0.5)))
    assert s(10) == 0.5
    assert parse("(warmup(10) >> cosine(1.0, steps=90)) * 0.5")(10) == 0.5
    assert parse("0.5 * cosine(1.0, steps=10)") == parse("cosine(1.0, steps=10) * 0.5")
    assert parse("  cosine( 1.0 ,steps = 10 , ) ") == Cosine(1.0, steps=10)


def test_warmup_untuned_length_follows_beta2():
    s = parse("warmup_untuned(beta2=0.999) >> constant(1e-3)")
    assert s.parts[0].steps == 2000
    assert s(0) == pytest.approx(1e-3 / 2000) and s(1999) == 1e-3 and s(5000) == 1e-3


# (spec, the column the error must point at, a phrase the message must contain)
MALFORMED = [
    ("", 1, "empty"),
    ("cosine(0.1, stepz=10)", 13, "unknown argument 'stepz' for cosine; expected one of end, steps"),
    ("cosin(0.1, steps=10)", 1, "unknown schedule 'cosin'"),
    ("cosine(0.1)", 11, "cosine needs steps"),
    ("cosine 0.1, steps=10)", 8, "expected '(' after cosine"),
    ("cosine(0.1, steps=10", 21, "expected ',' or ')'"),
    ("cosine(0.1, steps=10))", 22, "unexpected ')'"),
    ("cosine(0.1, steps=-5)", 19, "steps must be >= 1"),
    ("cosine(0.1, steps=10.5)", 19, "whole number"),
    ("cosine(-0.1, steps=10)", 8, "must be >= 0"),
    ("cosine(0.1, 10)", 13, "too many positional arguments"),
    ("cosine(steps=10, 0.1)", 18, "positional argument cannot follow a keyword"),
    ("cosine(0.1, steps=10, steps=20)", 23, "given twice"),
    ("cosine(0.1, steps=true)", 19, "must be a number"),
    ("cosine(0.1, steps=ten)", 19, "must be a number"),
    ("cosine(0.1, steps=10) $ 2", 23, "unexpected character '$'"),
    ("cosine(0.1, steps=10) >> 3", 23, "joins schedules, not numbers"),
    ("1e-3", 1, "bare number is not a schedule"),
    ("cosine(0.1, steps=10) >>", 25, "expected a schedule"),
    ("constant(1e-3) >> cosine(1, steps=3)", 16, "never ends"),
    ("warmup(5)", 1, "has no target"),
    ("warmup(5) >> warmup(3)", 11, "nothing to ramp to"),
    ("warmup(0) >> constant(1)", 8, "steps must be >= 1"),
    ("warmup(5, shape=exponential) >> constant(1)", 17, "needs start > 0"),
    ("warmup(5, shape=quadratic) >> constant(1)", 17, "shape must be one of linear, cosine, sqrt, exponential"),
    ("step(0.1, every=30, gamma=2)", 27, "gamma must be in (0, 1]"),
    ("multistep(0.1, milestones=[80, 30])", 27, "increasing order"),
    ("multistep(0.1, milestones=30)", 27, "must be a list"),
    ("multistep(0.1, milestones=[30, 80)", 34, "expected ',' or ']'"),
    ("cyclic(1e-2, 1e-3)", 1, "below the low lr"),
    ("cyclic(1e-3, 1e-2, mode=triangle)", 25, "mode must be one of triangular, triangular2, exp_range"),
    ("one_cycle(0.1, steps=1000, peak_at=1.5)", 36, "peak_at must be in (0, 1)"),
    ("one_cycle(0.1, steps=2)", 22, "no room"),
    ("sgdr(0.1, period=0)", 18, "period must be > 0"),
    ("sgdr(0.1, period=10, mult=0.5)", 27, "mult must be >= 1"),
    ("piecewise(values=[1, 0.5], boundaries=[10, 20])", 18, "one more value than boundaries"),
    ("wsd(1e-3, warmup=10, stable=10)", 31, "wsd needs decay"),
    ("warmup_untuned(beta2=1.5) >> constant(1)", 22, "beta2 must be in (0, 1)"),
    ("polynomial(0.1, steps=10, power=0)", 33, "power must be > 0"),
    ("exponential(0.1, gamma=0.9, staircase=maybe)", 39, "must be true or false"),
]


@pytest.mark.parametrize("spec,column,phrase", MALFORMED, ids=[m[0] or "<empty>" for m in MALFORMED])
def test_malformed_specs_name_the_column_and_the_fix(spec, column, phrase):
    with pytest.raises(ScheduleError) as info:
        parse(spec)
    err = info.value
    assert isinstance(err, LRDoctorError) and isinstance(err, ValueError)
    assert phrase in str(err)
    assert err.column == column, (err.column, str(err))
    assert "\n" not in str(err)  # one line, for the CLI
    assert err.pointer().splitlines()[1] == " " * (column - 1) + "^"


def test_more_than_thirty_malformed_cases():
    assert len(MALFORMED) >= 30


def test_non_string_spec():
    with pytest.raises(ScheduleError, match="must be a string"):
        parse(0.1)  # type: ignore[arg-type]

"""The spec language: every DESIGN.md example parses; malformed specs fail clearly."""

from __future__ import annotations

import math

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


# -- hostile input: every case below raised RecursionError, OverflowError or gave inf/NaN -------
@pytest.mark.parametrize("spec,column,phrase", [
    ("(" * 3000 + "constant(1)" + ")" * 3000, 101, "more than 100 levels of brackets"),
    ("piecewise(values=" + "[" * 3000 + "1" + "]" * 3000 + ", boundaries=[])", 118, "more than 100 levels"),
    (" * ".join(["constant(1)"] * 3000), 1399, "nests 101 schedules deep"),
    (" * ".join(["constant(1)"] * 50) + " * (" + " * ".join(["constant(1)"] * 120) + ")", 2100, "schedules deep"),
    ("constant(1" + "0" * 5000 + ")", 10, "lr must be finite"),
    ("cosine(1, steps=" + "9" * 30 + ")", 17, "steps must be at most 2**53"),
    ("cosine(1, steps=" + "9" * 5000 + ")", 17, "steps must be"),
    ("constant(1e308)*10", 16, "factor 10.0 times the largest lr 1e+308 overflows"),
    ("constant(1e300) * constant(1e300)", 17, "overflows"),
    ("1e308 * 10 * constant(1)", 12, "factor must be finite"),
    ("one_cycle(1, steps=10, final_div=1e-320)", 34, "final_div is too small"),
    ("one_cycle(1, steps=10, div=1e-320)", 28, "div is too small"),
    ("sgdr(1, period=1e-320)", 16, "period must be >= 1 step"),
    ("sgdr(1, end=2, period=10, decay=2)", 13, "needs end <= base"),
    ("constant(1, steps=5) >> " * 3 + "warmup(3)", 70, "nothing to ramp to"),
    ("constant(1, steps=5) >> (constant(1) >> constant(2))", 38, "never ends"),
])
def test_hostile_specs_raise_schedule_errors_at_the_column(spec, column, phrase):
    with pytest.raises(ScheduleError) as info:
        parse(spec)
    assert phrase in str(info.value)
    assert info.value.column == column, (info.value.column, str(info.value)[:200])


def test_overflowing_evaluations_are_finite():
    """sgdr with a huge mult, or a peak that grows (decay > 1, Keras' m_mul), stays finite."""
    for spec in ["sgdr(1, period=1, mult=1e300)", "sgdr(1, period=1, decay=4.0)",
                 "sgdr(1, period=1, decay=4.0) * 10", "sgdr(1, period=1, decay=4.0) * constant(3)",
                 "warmup(10, start=1e-320, shape=exponential) >> constant(1e300)"]:
        s = parse(spec)
        for k in [0, 1, 2, 5, 10, 600, 10**6, 10**12, 2**53]:
            v = s(k)
            assert math.isfinite(v) and v >= 0, (spec, k, v)
    grow = parse("sgdr(1, period=10, decay=4.0)")
    assert [grow(k) for k in (0, 10, 20)] == [1.0, 4.0, 16.0]


def test_a_long_chain_is_joined_once(monkeypatch):
    """10^4 parts: one Sequence is built (it was one per '>>', quadratic in the parts)."""
    from lrdoctor.schedules import _compose

    built = []
    real = _compose.Sequence._validate
    monkeypatch.setattr(_compose.Sequence, "_validate", lambda self: (built.append(1), real(self)))
    s = parse(" >> ".join(["constant(0.1, steps=10)"] * 10_000))
    assert len(built) == 1 and s.duration == 100_000 and len(s.parts) == 10_000
    assert parse("(a) >> b".replace("a", "constant(1, steps=2) >> constant(2, steps=2)")
                 .replace("b", "constant(3)")).parts == parse(
        "constant(1, steps=2) >> constant(2, steps=2) >> constant(3)").parts


@pytest.mark.parametrize("spec", [
    "constant(.1)*(constant(3)*constant(7))",
    "constant(.1)*(constant(3)*0.7)",
    "(constant(.1)*constant(3))*constant(7)",
    "constant(.1) * (constant(3) * (constant(7) * constant(0.3)))",
    "0.1 * (constant(3, steps=2) >> constant(7)) * 3",
])
def test_nested_products_round_trip_bit_exactly(spec):
    s = parse(spec)
    again = parse(s.to_spec())
    assert again == s and again.to_spec() == s.to_spec()
    assert again(0) == s(0)


def test_open_ended_shapes_end_with_steps_and_can_be_followed():
    s = parse("exponential(1.0, gamma=0.5, steps=3) >> constant(0.01)")
    assert [s(k) for k in range(5)] == [1.0, 0.5, 0.25, 0.01, 0.01]
    for spec in ["step(1, every=2, steps=5)", "multistep(1, milestones=[2], steps=5)",
                 "piecewise(values=[1, 0.5], boundaries=[2], steps=5)", "inverse_time(1, rate=1, steps=5)",
                 "inverse_sqrt(1, warmup=2, steps=5)", "cyclic(0.1, 1, half_period=2, steps=5)",
                 "sgdr(1, period=2, steps=5)", "exponential(1, gamma=0.9, steps=5)"]:
        s = parse(spec)
        assert s.duration == 5 and s(5) == s(6) == s(10**9), spec
        assert parse(s.to_spec()) == s
    with pytest.raises(ScheduleError, match="give it a length"):
        parse("exponential(1.0, gamma=0.5) >> constant(0.01)")


def test_hostile_dicts_raise_schedule_errors():
    from lrdoctor.schedules import from_dict

    deep: dict = {"type": "constant", "lr": 1.0}
    for _ in range(3000):
        deep = {"type": "scaled", "schedule": deep, "factor": 1.0}
    with pytest.raises(ScheduleError, match="more than 100 levels"):
        from_dict(deep)
    with pytest.raises(ScheduleError, match="must be a list of schedule dicts"):
        from_dict({"type": "sequence", "parts": 3})
    with pytest.raises(ScheduleError, match="steps must be at most 2"):
        from_dict({"type": "constant", "lr": 1.0, "steps": 10**400})

"""Fuzzing the spec language: specs from the grammar, mutations of valid specs, and extremes.

Every spec must either parse to a schedule whose learning rates are finite and >= 0 at probe
steps up to 2**53 and whose ``to_spec`` parses back to an equal schedule with the same values
bit for bit, or raise a one-line :class:`ScheduleError` that points at a column. Through the CLI
(``lrdoctor schedule``, in process) every spec exits 0, or 2 with exactly one ``error:`` line
and not the CLI's wording for a crash ("a bug in lrdoctor"). Bounded: a few hundred examples, seconds.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrdoctor.cli import main
from lrdoctor.schedules import ScheduleError, from_dict, parse
from lrdoctor.schedules._base import registry, spec_fields

from .strategies import schedules
from .test_parse import DESIGN_EXAMPLES

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SHAPES = sorted(n for n in registry if n not in ("sequence", "scaled", "product"))
EXTREMES = ["0", "-0.0", "1", "-1", "0.5", ".5", "+2", "3", "10", "1000", "1e-3", "0.999", "4.0",
            "1e-320", "5e-324", "1e300", "1e308", "1.7976931348623157e308", "1e309", "-1e309", "inf",
            "-inf", "nan", "9007199254740993", "9" * 30, "9" * 400, "1" + "0" * 5000]
PROBES = [0, 1, 2, 3, 10, 999, 1000, 10**6, 10**9, 2**31, 2**53]

numbers = st.one_of(
    st.sampled_from(EXTREMES),
    st.integers(-5, 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
words = st.sampled_from(["true", "false", "none", "linear", "cos", "cosine", "sqrt", "exponential",
                         "triangular2", "exp_range", "foo"])
values = st.recursive(st.one_of(numbers, words),
                      lambda inner: st.lists(inner, max_size=4).map(lambda v: "[" + ", ".join(v) + "]"),
                      max_leaves=6)


@st.composite
def calls(draw):
    """A call to a known shape (sometimes an unknown one) with plausible and wild arguments."""
    name = draw(st.sampled_from(SHAPES) | st.just("cosin"))
    fields = spec_fields(registry[name]) if name in registry else []
    args = []
    for f in fields:
        if not draw(st.booleans()):
            continue
        kind = f.metadata["kind"]
        if kind in ("choice",) and draw(st.booleans()):
            value = draw(st.sampled_from(f.metadata["choices"]))
        elif kind == "bool":
            value = draw(st.sampled_from(["true", "false"]) | values)
        elif kind in ("steps", "steps0", "opt_steps"):
            value = draw(st.integers(0, 5000).map(str) | numbers)
        elif kind == "steps_list":
            value = "[" + ", ".join(map(str, sorted(draw(st.lists(st.integers(0, 3000), max_size=4))))) + "]"
        else:
            value = draw(st.sampled_from(["0.1", "1e-3", "0.5", "2", "0.9"]) | numbers | values)
        key = f.metadata.get("spec") or f.name
        positional = not f.kw_only and not args and draw(st.booleans())
        args.append(value if positional else f"{key}={value}")
    if draw(st.integers(0, 9)) == 0:
        args.append(draw(st.sampled_from(["stepz=1", "1", "=", ",", "steps"])))
    return f"{name}({', '.join(args)})"


grammar = st.recursive(
    calls(),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(" >> ".join),
        st.tuples(inner, inner | numbers).map(" * ".join),
        st.tuples(numbers, inner).map(" * ".join),
        inner.map(lambda s: f"({s})"),
    ),
    max_leaves=6,
)

valid_specs = st.one_of(st.sampled_from(DESIGN_EXAMPLES), schedules.map(lambda s: s.to_spec()))


@st.composite
def mutated(draw):
    """A valid spec with a few characters deleted, inserted, duplicated, or a number replaced."""
    text = draw(valid_specs)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "number"]))
        if op == "delete":
            text = text[:i] + text[i + 1:]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(list("()[],=*>.-+e0123456789 ") + [">>", "inf"])) + text[i:]
        elif op == "duplicate":
            j = draw(st.integers(i, min(len(text), i + 20)))
            text = text[:j] + text[i:j] + text[j:]
        else:
            text = text[:i] + draw(numbers) + text[i:]
    return text


EXTREME_SPECS = [
    "(" * 3000 + "constant(1)" + ")" * 3000,
    "(" * 99 + "constant(1)" + ")" * 99,
    " * ".join(["constant(1)"] * 3000),
    " * ".join(["constant(0.999)"] * 99),
    "constant(1)" + " * 0.5" * 2000,
    "piecewise(values=" + "[" * 3000 + "1" + "]" * 3000 + ", boundaries=[])",
    "piecewise(values=[" + ", ".join(["0.1"] * 2001) + "], boundaries=[" + ", ".join(map(str, range(2000))) + "])",
    " >> ".join(["constant(0.1, steps=10)"] * 2000),
    " >> ".join(["warmup(3)"] * 500 + ["constant(1)"]),
    "constant(1" + "0" * 5000 + ")",
    "constant(1e308)*10",
    "constant(1e308) * constant(1e308)",
    "one_cycle(1, steps=10, final_div=1e-320)",
    "one_cycle(1, steps=10, div=1e-320)",
    "sgdr(1, period=1, mult=1e300)",
    "sgdr(1, period=1e-320)",
    "sgdr(1, period=1, decay=1e300)",
    "sgdr(1e308, period=1, decay=4) * 1e308",
    "cosine(0.1, steps=9007199254740992) >> constant(1)",
    "constant(0.1, steps=9007199254740992) >> constant(0.1, steps=9007199254740992) >> constant(1)",
    "inverse_time(1e308, rate=1e308)",
    "exponential(1e308, gamma=5e-324)",
    "warmup(10, start=5e-324, shape=exponential) >> constant(1e308)",
    "cyclic(0, 1e308, half_period=1, mode=exp_range, gamma=5e-324)",
    "polynomial(1e308, end=0, steps=9007199254740992, power=1e308, cycle=true)",
    "wsd(1e308, warmup=0, stable=0, decay=1, warmup_shape=exponential, start=5e-324)",
    "\x00", "constant(0.1)\n", "ćonstant(1)", "", " ", "*", ">>", "()", "[]",
]


def check_spec(spec: str) -> None:
    try:
        s = parse(spec)
    except ScheduleError as err:
        assert err.column is not None and 1 <= err.column <= len(spec) + 1, (spec[:200], str(err)[:300])
        assert "\n" not in err.reason, err.reason
        return
    probes = set(PROBES)
    if s.duration is not None:
        probes |= {max(0, s.duration - 1), s.duration, s.duration + 1}
    probes = sorted(probes)
    lrs = [s(k) for k in probes]
    for k, v in zip(probes, lrs):
        assert isinstance(v, float) and math.isfinite(v) and v >= 0, (spec[:200], k, v)
        m = s.momentum(k)
        assert m is None or math.isfinite(m), (spec[:200], k, m)
    text = s.to_spec()
    again = parse(text)
    assert again == s and again.to_spec() == text, (spec[:200], text[:200])
    assert [again(k) for k in probes] == lrs, spec[:200]
    assert from_dict(s.to_dict()) == s


def check_cli(spec: str, capsys, extra: list[str]) -> None:
    status = main(["schedule", *extra, "--", spec])
    out = capsys.readouterr()
    errors = [line for line in (out.err + out.out).splitlines() if "error:" in line]
    if status == 0:
        assert not errors, errors
    else:
        assert status == 2 and len(errors) == 1, (spec[:200], status, errors)
        assert "a bug in lrdoctor" not in errors[0], errors[0]  # the CLI's wording for a crash


@FUZZ
@given(grammar)
def test_grammar_specs(spec):
    check_spec(spec)


@FUZZ
@given(mutated())
def test_mutated_specs(spec):
    check_spec(spec)


def test_extreme_specs():
    for spec in EXTREME_SPECS:
        check_spec(spec)


@settings(FUZZ, max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                   HealthCheck.function_scoped_fixture])
@given(spec=st.one_of(grammar, mutated(), st.sampled_from(EXTREME_SPECS[:20])),
       steps=st.none() | st.sampled_from(["1", "2", "1000", "1000000000", "9007199254740992", "0", "-3",
                                         str(2**70)]))
def test_cli_exits_0_or_2_with_one_error_line(spec, steps, capsys):
    check_cli(spec, capsys, [] if steps is None else ["--steps", steps])


def test_cli_on_a_billion_steps(capsys):
    check_cli("constant(0.1, steps=1000000000)", capsys, [])
    check_cli("warmup(1000) >> cosine(0.1, steps=1000000000)", capsys, ["--steps", "9007199254740992"])

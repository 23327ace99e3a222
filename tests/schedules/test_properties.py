"""Properties every schedule must have (hypothesis)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrdoctor.schedules import ScheduleError, Sequence, WarmupUntuned, from_dict, parse

from .strategies import leaves, monotone_decreasing, schedules, warmups

PROBES = [0, 1, 2, 999, 1000, 1001, 12_345, 99_999, 1_000_000, 9_999_999, 10_000_000]


def _probes(s):
    ks = set(PROBES)
    if s.duration is not None:
        ks |= {max(0, s.duration - 1), s.duration, s.duration + 1}
    return sorted(ks)


@given(schedules)
def test_finite_and_non_negative_up_to_ten_million_steps(s):
    for k in _probes(s):
        v = s(k)
        assert math.isfinite(v) and v >= 0, (s.to_spec(), k, v)


@given(schedules)
def test_spec_and_dict_round_trip(s):
    again = parse(s.to_spec())
    assert again == s
    assert from_dict(s.to_dict()) == s
    assert [again(k) for k in _probes(s)] == [s(k) for k in _probes(s)]


@given(monotone_decreasing, st.lists(st.integers(0, 200_000), min_size=2, max_size=40))
def test_decay_shapes_never_rise(s, ks):
    ks = sorted(ks)
    vals = [s(k) for k in ks]
    for a, b in itertools.pairwise(vals):
        assert b <= a * (1 + 1e-12), (s.to_spec(), vals)


@given(schedules, st.integers(0, 10**6))
def test_holds_final_value_after_its_end(s, extra):
    if s.duration is None:
        return
    assert s(s.duration + extra) == s(s.duration)


@given(warmups, leaves)
def test_warmup_hands_over_continuously(w, after):
    """The ramp ends exactly on the next part's first value, rising monotonically, and the
    step across the hand-over is no larger than the ramp shape's own last step."""
    if getattr(w, "shape", None) == "exponential" and after(0) <= 0:
        with pytest.raises(ScheduleError, match="geometrically"):
            w >> after
        return
    s = w >> after
    n, start, target = w.steps, s(0), after(0)
    assert s(n) == target
    ramp = [s(k) for k in range(0, n, max(1, n // 200))] + [s(n - 1), s(n)]
    lo, hi = sorted((start, target))
    assert all(lo * (1 - 1e-12) - 1e-15 <= v <= hi * (1 + 1e-12) + 1e-15 for v in ramp)
    jump = abs(s(n) - s(n - 1))
    shape = getattr(w, "shape", "linear")
    if isinstance(w, WarmupUntuned):
        bound = target / n
    elif shape == "exponential":
        bound = abs(target - target * (start / target) ** (1 / n)) if target > 0 else 0.0
    else:
        last_fraction = {"linear": 1 / n, "cosine": math.pi / (2 * n), "sqrt": math.sqrt(1 / n)}[shape]
        bound = abs(target - start) * last_fraction
    assert jump <= bound * (1 + 1e-9) + 1e-15, (s.to_spec(), jump, bound)


@given(schedules)
def test_sequence_parts_see_local_steps(s):
    if not isinstance(s, Sequence):
        return
    offset = 0
    for part, target in zip(s.parts, s._targets):
        if target is None and part.duration:
            assert s(offset) == part(0)
            assert s(offset + part.duration - 1) == part(part.duration - 1)
        offset += part.duration or 0

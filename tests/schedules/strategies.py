"""Hypothesis strategies that build every schedule shape, and compositions of them."""

from __future__ import annotations

from hypothesis import reject
from hypothesis import strategies as st

from lrdoctor.schedules import (
    SGDR,
    WSD,
    Constant,
    Cosine,
    Cyclic,
    Exponential,
    InverseSqrt,
    InverseTime,
    Linear,
    MultiStep,
    OneCycle,
    Piecewise,
    Polynomial,
    ScheduleError,
    Step,
    Warmup,
    WarmupUntuned,
)

lrs = st.floats(1e-7, 10.0)
small_lrs = st.floats(0.0, 1e-2)
steps = st.integers(1, 20_000)
fraction = st.floats(0.01, 1.0)


@st.composite
def milestones(draw):
    return sorted(set(draw(st.lists(st.integers(0, 50_000), min_size=1, max_size=6))))


@st.composite
def piecewise(draw):
    bounds = draw(milestones())
    values = draw(st.lists(lrs, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    return Piecewise(values_lr=values, boundaries=bounds)


@st.composite
def cyclic(draw):
    low = draw(small_lrs)
    return Cyclic(low, low + draw(lrs), half_period=draw(st.integers(1, 5000)),
                  down_steps=draw(st.none() | st.integers(1, 5000)),
                  mode=draw(st.sampled_from(["triangular", "triangular2", "exp_range"])),
                  gamma=draw(st.floats(0.9, 1.0)))


@st.composite
def one_cycle(draw):
    three = draw(st.booleans())
    total = draw(st.integers(100, 50_000))
    return OneCycle(draw(lrs), steps=total, peak_at=draw(st.floats(0.05, 0.45)),
                    div=draw(st.floats(1.5, 1e3)), final_div=draw(st.floats(1.0, 1e5)),
                    three_phase=three, anneal=draw(st.sampled_from(["cos", "linear"])))


@st.composite
def wsd(draw):
    return WSD(draw(lrs), warmup_steps=draw(st.integers(0, 5000)), stable_steps=draw(st.integers(0, 5000)),
               decay_steps=draw(st.integers(1, 5000)), end_lr=draw(small_lrs),
               shape=draw(st.sampled_from(["linear", "cosine", "sqrt"])),
               warmup_shape=draw(st.sampled_from(["linear", "cosine", "sqrt"])))


def _decreasing(cls, **extra):
    @st.composite
    def build(draw):
        base = draw(lrs)
        kwargs = {k: draw(v) for k, v in extra.items()}
        if "end_lr" in kwargs:
            kwargs["end_lr"] = min(kwargs["end_lr"], base)
        return cls(base, **kwargs)

    return build()


@st.composite
def open_ended_with_steps(draw):
    """An open-ended shape given ``steps=`` (it ends there, so a part may follow it)."""
    n = draw(steps)
    return draw(st.one_of(
        st.builds(Step, lrs, every_steps=steps, gamma=fraction, steps=st.just(n)),
        st.builds(MultiStep, lrs, milestones=milestones(), gamma=fraction, steps=st.just(n)),
        st.builds(Exponential, lrs, gamma=st.floats(0.5, 1.0), every_steps=steps, steps=st.just(n)),
        st.builds(InverseTime, lrs, rate=st.floats(0, 10), steps=st.just(n)),
        st.builds(InverseSqrt, lrs, warmup_steps=st.integers(0, 5000), steps=st.just(n)),
        st.builds(SGDR, lrs, period=st.floats(1, 5000), mult=st.floats(1, 3), steps=st.just(n)),
        st.builds(Cyclic, small_lrs, st.floats(1e-2, 1.0), half_period=st.integers(1, 5000), steps=st.just(n)),
    ))


@st.composite
def growing_sgdr(draw):
    """``decay > 1`` (Keras' ``m_mul``): the peak grows at each restart, held at the float max."""
    base = draw(lrs)
    return SGDR(base, end_lr=draw(st.floats(0.0, 1.0)) * base, period=draw(st.floats(1, 5000)),
                mult=draw(st.floats(1, 3)), decay=draw(st.floats(1.0, 1e3)),
                cycles=draw(st.none() | st.integers(1, 200)))


#: Shapes whose learning rate never rises (with end <= base).
monotone_decreasing = st.one_of(
    _decreasing(Step, every_steps=steps, gamma=fraction),
    st.builds(MultiStep, lrs, milestones=milestones(), gamma=fraction),
    _decreasing(Exponential, gamma=st.floats(0.5, 1.0), every_steps=steps, staircase=st.booleans()),
    _decreasing(InverseTime, rate=st.floats(0, 10), every_steps=steps, staircase=st.booleans()),
    _decreasing(Polynomial, end_lr=small_lrs, steps=steps, power=st.floats(0.1, 5)),
    _decreasing(Linear, end_lr=small_lrs, steps=steps),
    _decreasing(Cosine, end_lr=small_lrs, steps=steps),
)

leaves = st.one_of(
    st.builds(Constant, lrs),
    monotone_decreasing,
    piecewise(),
    st.builds(InverseSqrt, lrs, warmup_steps=st.integers(0, 5000), timescale=st.none() | steps),
    _decreasing(Polynomial, end_lr=small_lrs, steps=steps, power=st.floats(0.1, 5), cycle=st.just(True)),
    cyclic(),
    one_cycle(),
    st.builds(SGDR, lrs, end_lr=small_lrs, period=st.floats(1, 5000), mult=st.floats(1, 3),
              decay=st.floats(0.1, 1), cycles=st.none() | st.integers(1, 10)),
    wsd(),
    open_ended_with_steps(),
    growing_sgdr(),
)

finite_leaves = leaves.filter(lambda s: s.duration is not None)
warmups = st.one_of(
    st.builds(Warmup, st.integers(1, 5000), start_lr=small_lrs,
              shape=st.sampled_from(["linear", "cosine", "sqrt"])),
    st.builds(Warmup, st.integers(1, 5000), start_lr=st.floats(1e-9, 1e-6), shape=st.just("exponential")),
    st.builds(WarmupUntuned, beta2=st.floats(0.9, 0.9999)),
)


@st.composite
def sequences(draw):
    head = draw(st.lists(st.one_of(warmups, finite_leaves), min_size=1, max_size=3))
    parts = head + [draw(leaves)]
    if isinstance(parts[-1], (Warmup, WarmupUntuned)):
        parts.append(draw(leaves))
    s = parts[0]
    try:
        for p in parts[1:]:
            s = s >> p
    except ScheduleError:  # e.g. a geometric warm-up into a part that starts at 0
        reject()
    return s


schedules = st.one_of(
    leaves,
    sequences(),
    st.builds(lambda s, c: s * c, leaves, st.floats(0.0, 10.0)),
    st.builds(lambda a, b: a * b, leaves, leaves),
)

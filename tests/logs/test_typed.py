"""The typed readers (msgspec) give exactly the log the ordinary parser gives: on the generated
Monitor logs, generic JSON Lines and trainer_state.json files of test_columnar.py, on every
damaged file of the fuzz tests, and on the numbers where msgspec and ``json`` could part
(integers beyond 64 bits, subnormals, ``-0``, keys twice, ``null``). The fast path is forced on
these small files (``FAST_FROM = 0``, polars hidden) and compared with the same load with
msgspec hidden too; other tests check that it really was taken."""

from __future__ import annotations

import contextlib
import json
import math
import random
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrdoctor.logs import LogFormatError, _columnar, _typed, load

from ._damage import DAMAGES, KINDS, damage
from .test_columnar import WRITERS, _bits, _monitor

pytestmark = pytest.mark.skipif(not _typed.available(), reason="msgspec not installed")


@contextlib.contextmanager
def _fast(on: bool) -> Iterator[None]:
    """msgspec on or off; polars off either way (test_columnar.py compares that reader)."""
    saved = _columnar.FAST_FROM, _columnar.pl, _typed.msgspec
    _columnar.FAST_FROM, _columnar.pl = 0, None
    if not on:
        _typed.msgspec = None
    try:
        yield
    finally:
        _columnar.FAST_FROM, _columnar.pl, _typed.msgspec = saved


def _read(path: Path, fast: bool):
    with _fast(fast):
        try:
            return load(path)
        except LogFormatError as err:
            return f"LogFormatError: {err}"


def _same(path: Path) -> object:
    """Both ways of reading ``path``, compared bit for bit (NaN payloads aside)."""
    a, b = _read(path, True), _read(path, False)
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return a
    assert (a.names(), a.warnings, a.format, a.step_unit, a.meta) == \
        (b.names(), b.warnings, b.format, b.step_unit, b.meta)
    for name in a.names():
        x, y = a.get(name), b.get(name)
        assert _bits(x.steps) == _bits(y.steps) and _bits(x.values) == _bits(y.values), name
        assert (x.epochs is None) == (y.epochs is None), name
        if x.epochs is not None:
            assert _bits(x.epochs) == _bits(y.epochs), name
    assert [(e.code, e.step, e.message, dict(e.data)) for e in a.events] == \
        [(e.code, e.step, e.message, dict(e.data)) for e in b.events]
    return a


@contextlib.contextmanager
def _spy(answers: list) -> Iterator[None]:
    """Record what the typed readers answer."""
    real = _typed.jsonl_records, _typed.hf_history

    def jsonl(*a):
        answers.append(real[0](*a))
        return answers[-1]

    def hf(*a):
        answers.append(real[1](*a))
        return answers[-1]

    _typed.jsonl_records, _typed.hf_history = jsonl, hf
    try:
        yield
    finally:
        _typed.jsonl_records, _typed.hf_history = real


def _no_blank_lines(text: str) -> str:
    return "\n".join(line for line in text.split("\n") if line) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(WRITERS)), st.integers(0, 2**32 - 1), st.integers(2, 300))
def test_generated_logs_read_the_same_either_way(name, seed, n):
    answers: list = []
    with tempfile.TemporaryDirectory() as d, _spy(answers):
        p = Path(d) / name
        text = WRITERS[name](random.Random(seed), n)
        p.write_text(_no_blank_lines(text) if name.endswith(".jsonl") else text)
        _same(p)
    if name != "trainer_state.json":  # not routed through the typed reader (see _json.read_json)
        assert answers[0] is not None  # these files are all for the fast path (the first read)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["log.jsonl", "trainer_state.json"]), st.sampled_from(sorted(DAMAGES)),
       st.integers(0, 2**32 - 1))
def test_damaged_logs_read_the_same_either_way(kind, how, seed):
    rng = random.Random(seed)
    text = KINDS[kind](rng) if rng.random() < 0.5 else WRITERS[kind](rng, rng.randint(2, 60))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / kind
        p.write_bytes(damage(how, rng, text.encode()))
        _same(p)


_ODD = ["-0", "0", "-0.0", "1e-400", "2.4703282292062328e-324", "2.4703282292062327e-324",
        "1.7976931348623157e308", "1e308", "1E5", "9007199254740993", "18446744073709551617",
        str(2**1024 - 2**970),  # (beyond the largest double: json and msgspec refuse it)
        "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "null", "true", "1" + "0" * 400]


def _number_text(rng: random.Random) -> str:
    """A JSON number as writers leave them: any double, long decimal strings (near-halfway
    cases), integers of up to 40 digits, or one of the odd ones."""
    k = rng.random()
    if k < 0.4:
        return repr(struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0])
    if k < 0.7:
        return f"{rng.choice(['', '-'])}{rng.randrange(10**25)}.{rng.randrange(10**20)}" \
               f"e{rng.randint(-350, 280)}"
    if k < 0.98:
        return str(rng.choice([1, -1]) * rng.randrange(10 ** rng.randint(1, 40)))
    return rng.choice(_ODD)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_odd_numbers_and_keys_read_the_same_either_way(seed, hf):
    """Numbers json and msgspec could read apart, and in some files one odd number, a key
    given twice, a key spaced from its colon or an escaped quote: each file read the same
    (or refused here and read the same by the ordinary parser)."""
    rng = random.Random(seed)
    rows = []
    for i in range(rng.randint(2, 40)):
        pairs = [f'"step": {i}', f'"loss": {_number_text(rng)}', f'"lr": {_number_text(rng)}']
        rng.shuffle(pairs)
        rows.append(pairs)
    if rng.random() < 0.5:
        rng.choice(rows).append(rng.choice(['"loss": 1.5', '"lr" : 0.5', '"a\\"b": 2',
                                            '"lr":3', f'"loss": {rng.choice(_ODD)}']))
    rows = ["{" + ", ".join(pairs) + "}" for pairs in rows]
    text = ('{"global_step": 1, "log_history": [' + ", ".join(rows) + "]}") if hf else \
        "\n".join(rows) + "\n"
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / ("trainer_state.json" if hf else "log.jsonl")
        p.write_text(text)
        _same(p)


# trainer_state.json is not routed through the typed reader (logs/_json.py read_json says why)
@pytest.mark.parametrize("name", sorted(n for n in WRITERS if n != "trainer_state.json"))
@pytest.mark.parametrize("indent", [None, 2])
def test_the_fast_path_is_taken_on_clean_logs(name, indent):
    """Not a silent fallback: the typed reader answers (NaN and Infinity included)."""
    text = WRITERS[name](random.Random(3), 200)
    if name == "trainer_state.json":
        text = json.dumps(json.loads(text), indent=indent)
    else:
        text = _no_blank_lines(text)
    answers: list = []
    with tempfile.TemporaryDirectory() as d, _spy(answers):
        p = Path(d) / name
        p.write_text(text)
        log = _same(p)
    assert answers and answers[0] is not None
    assert not isinstance(log, str) and len(log)
    if name == "log.jsonl":
        assert any(math.isnan(v) for v in log.get("train/loss").values) or "NaN" not in text


def test_a_cut_last_line_keeps_the_fast_path():
    text = _no_blank_lines(_monitor(random.Random(5), 300))
    answers: list = []
    with tempfile.TemporaryDirectory() as d, _spy(answers):
        p = Path(d) / "log.jsonl"
        p.write_text(text[:-25])  # killed mid-write
        log = _same(p)
    assert answers and answers[0] is not None
    assert any("could not be parsed" in w for w in log.warnings)


def test_events_far_into_a_long_log_keep_the_fast_path():
    """Event lines past the first 20,000 lines are found through the line-break offsets."""
    rows = ['{"type": "meta", "version": 1, "every": 1}']
    for i in range(25_000):
        rows.append(f'{{"type": "scalars", "step": {i}, "epoch": 0, "values": '
                    f'{{"train/loss": {1 / (i + 1)!r}}}}}')
        if i in (3, 24_000):
            rows.append(f'{{"type": "event", "step": {i}, "code": "lr-change", "message": "m", '
                        f'"data": {{}}}}')
    answers: list = []
    with tempfile.TemporaryDirectory() as d, _spy(answers):
        p = Path(d) / "log.jsonl"
        p.write_text("\n".join(rows) + "\n")
        log = _same(p)
    assert answers and answers[0] is not None
    assert [e.step for e in log.events] == [3, 24_000]

"""The columnar readers (polars) give exactly the log the ordinary parser gives: on Monitor
logs, generic JSON Lines and trainer_state.json files (both layouts) with mixed row kinds,
NaN/inf, missing keys, duplicated steps, rare keys, and on every damaged file of the fuzz
tests. The fast path is forced on these small files (``FAST_FROM = 0``) and compared with the
same load with polars hidden; other tests check that it really was taken."""

from __future__ import annotations

import contextlib
import json
import math
import random
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrdoctor.logs import LogFormatError, _columnar, _typed, load

from ._damage import DAMAGES, KINDS, damage

pytestmark = pytest.mark.skipif(not _columnar.available(), reason="polars not installed")


@contextlib.contextmanager
def _fast(on: bool) -> Iterator[None]:
    """polars on or off, msgspec off (tests/logs/test_typed.py compares that reader)."""
    saved = _columnar.FAST_FROM, _columnar.pl, _typed.msgspec
    _columnar.FAST_FROM, _typed.msgspec = 0, None
    if not on:
        _columnar.pl = None
    try:
        yield
    finally:
        _columnar.FAST_FROM, _columnar.pl, _typed.msgspec = saved


def _bits(a: np.ndarray) -> bytes:
    a = np.where(np.isnan(a), np.nan, a) if a.dtype.kind == "f" else a
    return a.dtype.str.encode() + a.tobytes()


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


def _float(rng: random.Random) -> float:
    k = rng.random()
    if k < 0.5:
        return rng.uniform(0, 3)
    if k < 0.7:  # any double: every exponent, subnormals
        return struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
    return rng.choice([0.0, -0.0, 1e-320, 1e308, float("nan"), float("inf"), float("-inf"),
                       3, -7, 2**60, 10**15 + 1])


def _monitor(rng: random.Random, n: int) -> str:
    """A Monitor-like log: meta, step rows with and without grad_norm, sampled statistics rows,
    epoch rows with validation values, events, some rows again (a resumed run), rare keys."""
    lines = [json.dumps({"type": "meta", "version": 1, "every": 5})]
    step = 0
    for i in range(n):
        step = step + 1 if rng.random() < 0.9 else max(step - rng.randint(0, 5), 0)
        vals = {"train/loss": _float(rng), "lr/0": 0.1, "lr/1": _float(rng)}
        if i % 3 == 0:
            vals["grad_norm"] = _float(rng)
        if i % 7 == 0:
            vals.update({"update_ratio/fc1": _float(rng), "dead_frac/fc1": _float(rng)})
        if rng.random() < 0.02:
            vals["rare/key"] = _float(rng)
        row = {"type": "scalars", "step": step, "epoch": i // 10, "values": vals}
        lines.append(json.dumps(row))
        if i % 10 == 9:
            lines.append(json.dumps({"type": "scalars", "step": step, "epoch": i // 10 + 1,
                                     "values": {"val/loss": _float(rng), "val/accuracy": 0.5}}))
        if rng.random() < 0.03:
            lines.append(json.dumps({"type": "event", "step": step, "code": "lr-change",
                                     "message": "m", "data": {"old_lrs": [0.1], "new": 1}}))
        if rng.random() < 0.01:
            lines.append("")
    return "\n".join(lines) + "\n"


def _generic(rng: random.Random, n: int) -> str:
    """Generic JSON Lines: flat records with steps under various names, missing keys."""
    step_key = rng.choice(["step", "global_step", "_step", None])
    out = []
    for i in range(n):
        rec = {} if step_key is None else {step_key: i * rng.choice([1, 1, 2])}
        if rng.random() < 0.8:
            rec["loss"] = _float(rng)
        if rng.random() < 0.5:
            rec["learning_rate"] = _float(rng)
        if rng.random() < 0.3:
            rec["epoch"] = i / 7
        rec["val_acc" if rng.random() < 0.1 else "accuracy"] = _float(rng)
        out.append(json.dumps(rec))
    return "\n".join(out) + ("\n" if rng.random() < 0.5 else "")


def _trainer_state(rng: random.Random, n: int) -> str:
    hist: list = []
    for i in range(n):
        hist.append({"epoch": i / 50, "grad_norm": _float(rng), "learning_rate": _float(rng),
                     "loss": _float(rng), "step": i * 10})
        if i % 25 == 24:
            hist.append({"epoch": i / 50, "eval_loss": _float(rng), "eval_runtime": 1.5,
                         "step": i * 10})
    hist.append({"epoch": n / 50, "step": n * 10, "total_flos": 1e15, "train_loss": 1.0,
                 "train_runtime": 12.0})
    state = {"best_metric": None, "epoch": n / 50, "global_step": n * 10, "log_history": hist,
             "logging_steps": 10, "max_steps": n * 10, "trial_name": None}
    return json.dumps(state, indent=rng.choice([None, 2]), sort_keys=rng.random() < 0.5)


WRITERS = {"log.jsonl": _monitor, "generic.jsonl": _generic, "trainer_state.json": _trainer_state}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(WRITERS)), st.integers(0, 2**32 - 1), st.integers(2, 300))
def test_generated_logs_read_the_same_either_way(name, seed, n):
    answers = []
    with tempfile.TemporaryDirectory() as d, _spy(answers):
        p = Path(d) / name
        p.write_text(WRITERS[name](random.Random(seed), n))
        _same(p)
    assert answers[0] is not None  # these files are all for the fast path (the first read)


@contextlib.contextmanager
def _spy(answers: list) -> Iterator[None]:
    """Record what the columnar readers answer."""
    real = _columnar.jsonl_records, _columnar.hf_history

    def jsonl(*a):
        answers.append(real[0](*a))
        return answers[-1]

    def hf(*a):
        answers.append(real[1](*a))
        return answers[-1]

    _columnar.jsonl_records, _columnar.hf_history = jsonl, hf
    try:
        yield
    finally:
        _columnar.jsonl_records, _columnar.hf_history = real


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


@pytest.mark.parametrize("name", sorted(WRITERS))
@pytest.mark.parametrize("indent", [None, 2])
def test_the_fast_path_is_taken_on_clean_logs(name, indent, monkeypatch):
    """Not a silent fallback: the columnar reader answers (NaN and Infinity included)."""
    rng = random.Random(3)
    text = WRITERS[name](rng, 200)
    if name == "trainer_state.json":
        text = json.dumps(json.loads(text), indent=indent)
    calls = []
    for fn in ("jsonl_records", "hf_history"):
        real = getattr(_columnar, fn)
        monkeypatch.setattr(_columnar, fn, lambda *a, _r=real, _f=fn: calls.append(
            (_f, _r(*a))) or calls[-1][1])
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_text(text)
        log = _same(p)
    assert calls and calls[0][1] is not None, calls[0]  # (the second read hid polars)
    assert not isinstance(log, str) and len(log)
    if name == "log.jsonl":
        assert any(math.isnan(v) for v in log.get("train/loss").values) or "NaN" not in text


def test_a_cut_last_line_keeps_the_fast_path(monkeypatch):
    rng = random.Random(5)
    text = _monitor(rng, 300)
    got = []
    real = _columnar.jsonl_records
    monkeypatch.setattr(_columnar, "jsonl_records", lambda raw: got.append(real(raw)) or got[-1])
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "log.jsonl"
        p.write_text(text[:-25])  # killed mid-write
        log = _same(p)
    assert got and got[0] is not None
    assert any("could not be parsed" in w for w in log.warnings)

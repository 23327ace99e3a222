"""The JSON readers' two ways of reading records agree: record by record, and a column at a
time (what files of COLUMNAR_FROM records or more take), with and without orjson."""

from __future__ import annotations

import json
import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from lrdoctor.logs import _json
from lrdoctor.logs._json import _read_records, read_jsonl

from ._damage import KINDS

VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**400, 10**400),
                   st.booleans(), st.none(), st.sampled_from(["nan", "inf", "-Infinity", "x", ""]),
                   st.lists(st.integers(), max_size=2))
KEYS = st.sampled_from(["loss", "val_loss", "lr", "train/loss", "accuracy", "step", "epoch",
                        "global_step", "_step", "type", "grad_norm", "values"])
RECORDS = st.lists(st.one_of(
    st.dictionaries(KEYS, VALUES, max_size=5),
    st.fixed_dictionaries({"type": st.just("scalars"), "step": VALUES,
                           "values": st.dictionaries(KEYS, VALUES, max_size=4)}),
    st.fixed_dictionaries({"type": st.sampled_from(["meta", "event"]), "step": VALUES})),
    min_size=1, max_size=40)


def _same(a, b) -> None:
    assert a.names() == b.names() and a.warnings == b.warnings and a.format == b.format
    for name in a.names():
        assert a.get(name) == b.get(name), name
    assert [(e.code, e.step) for e in a.events] == [(e.code, e.step) for e in b.events]


@settings(max_examples=200, deadline=None)
@given(RECORDS, st.integers(1, 3))
def test_records_read_a_column_at_a_time_equal_records_read_one_by_one(records, repeat):
    records = [dict(r) for r in records * repeat]  # repeats: groups of several records
    results = []
    for columnar in (False, True):
        try:
            results.append(_read_records(Path("x.jsonl"), records, fmt="jsonl", columnar=columnar))
        except _json.LogFormatError as err:
            results.append(str(err))
    if isinstance(results[0], str) or isinstance(results[1], str):
        assert results[0] == results[1]
    else:
        _same(*results)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_a_monitor_log_reads_the_same_with_and_without_orjson(seed):
    text = KINDS["log.jsonl"](random.Random(seed))
    text += "".join(json.dumps({"type": "scalars", "step": 100 + k, "values": {"lr": float("nan")}},
                               allow_nan=True) + "\n" for k in range(3))  # NaN: orjson refuses it
    fast = read_jsonl(Path("x.jsonl"), text)
    saved = _json._orjson
    try:
        _json._orjson = None
        pure = read_jsonl(Path("x.jsonl"), text)
    finally:
        _json._orjson = saved
    _same(fast, pure)


HISTORY = st.lists(st.one_of(
    st.dictionaries(st.sampled_from(["step", "epoch", "loss", "eval_loss", "learning_rate",
                                     "grad_norm", "train_runtime", "values", "type"]),
                    VALUES, max_size=6),
    st.fixed_dictionaries({"step": st.integers(0, 50), "loss": VALUES, "epoch": VALUES}),
    st.integers()), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(HISTORY, st.integers(1, 3))
def test_trainer_state_read_a_column_at_a_time_equals_entry_by_entry(history, repeat):
    data = {"log_history": history * repeat}
    results = []
    for columnar in (False, True):
        try:
            results.append(_json.read_hf_state(Path("trainer_state.json"), data, columnar=columnar))
        except _json.LogFormatError as err:
            results.append(str(err))
    if isinstance(results[0], str) or isinstance(results[1], str):
        assert results[0] == results[1]
    else:
        _same(*results)

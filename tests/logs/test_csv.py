"""The CSV reader through pyarrow (the ``fast`` extra) and through the standard library gives
the same log, warnings and errors, on clean and on damaged files."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from lrdoctor.logs import LogFormatError
from lrdoctor.logs._csv import _delimiter, _fast_table, read_csv

from ._damage import DAMAGES, csv_text, damage


def _read(text: str, fast: bool):
    try:
        return read_csv(Path("x.csv"), text=text, fast=fast)
    except LogFormatError as err:
        return str(err)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(sorted(set(DAMAGES) - {"encoding"})),
       st.booleans())
def test_pyarrow_and_the_csv_module_read_the_same_log(seed, how, clean):
    rng = random.Random(seed)
    text = damage(how, rng, csv_text(rng, clean=clean).encode()).decode("utf-8", "replace")
    fast, pure = _read(text, True), _read(text, False)
    if isinstance(fast, str) or isinstance(pure, str):
        assert fast == pure
        return
    assert fast.names() == pure.names() and fast.warnings == pure.warnings
    assert fast.format == pure.format and fast.step_unit == pure.step_unit
    for name in pure.names():
        assert fast.get(name) == pure.get(name), name


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_a_clean_log_takes_the_fast_path(seed):
    text = csv_text(random.Random(seed), clean=True)
    assert _fast_table(text, _delimiter(text)) is not None


def test_cells_that_are_not_plain_numbers_fall_back_to_the_csv_module():
    for body in ("0,tensor(2.5)\n", "0,2.5,9\n", "0\n", '0,"2\n.5"\n'):
        text = "epoch,loss\n" + body
        assert _fast_table(text, ",") is None, body

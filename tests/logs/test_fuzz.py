"""load() on arbitrary text: a TrainingLog or a LogFormatError, never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from lrdoctor.logs import LogFormatError, TrainingLog, load

PIECES = st.sampled_from(["epoch", "step", "loss", "val_loss", ",", ";", "\n", "\t", "0", "1.5",
                          "nan", "-inf", "", "{", "}", "[", "]", '"', ":", "log_history",
                          '"type": "meta"', "<script>", "\x00", "é", " "])


@settings(max_examples=200)
@given(st.lists(PIECES, max_size=60).map("".join), st.sampled_from(["x.csv", "x.json", "x.jsonl",
                                                                    "x.log"]))
def test_load_arbitrary_text(text, name):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_text(text, encoding="utf-8")
        try:
            log = load(p)
        except LogFormatError:
            return
        assert isinstance(log, TrainingLog)

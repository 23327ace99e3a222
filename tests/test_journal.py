"""The decision journal: JSONL round trip, crash tolerance, one sentence per cause."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrdoctor.errors import LogFormatError, LRDoctorError
from lrdoctor.journal import CAUSES, Entry, Journal, format_lr, sentence

PLATEAU_EV = {"monitor": "val_accuracy", "mode": "max", "best": 0.912, "best_evaluation": 9,
              "num_bad": 3, "patience": 3, "threshold": 1e-4, "threshold_mode": "rel", "factor": 0.5}


def test_issue_example_sentence():
    e = Entry("plateau", epoch=12, old_lrs=[1e-3], new_lrs=[5e-4], evidence=PLATEAU_EV)
    assert e.explain() == (
        "epoch 12: val_accuracy has not improved by more than 0.01% over its best 0.9120 (epoch 9) "
        "for 3 evaluations (patience 3) → lr 1e-3 → 5e-4 (factor 0.5, mode=max)")


def test_every_cause_has_a_sentence():
    ev = dict(PLATEAU_EV, value=float("nan"), schedule="cosine(0.1, steps=100)", from_step=10,
              label="restart", reason="patience", wait=3, baseline=None)
    for cause in CAUSES:
        e = Entry(cause, epoch=3, step=30, old_lrs=[0.1, 0.01], new_lrs=[0.05, 0.005], evidence=ev,
                  message="something odd")
        text = sentence(e)
        assert text.startswith("epoch 3 (step 30): ") and len(text) > 30
        assert "lrs 0.1 → 0.05, 0.01 → 5e-3" in text or cause in ("warmup-end", "early-stop", "warning",
                                                                    "nonfinite")


def test_roundtrip_with_nonfinite_values(tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    j.record("nonfinite", epoch=2, old_lrs=[0.1], new_lrs=[0.1],
             evidence={"monitor": "val_loss", "value": float("nan"), "best": float("inf"), "num_bad": 1,
                       "patience": 2})
    j.append(Entry("plateau", epoch=4, step=40, old_lrs=[0.1], new_lrs=[0.01], evidence=PLATEAU_EV))
    for line in (tmp_path / "j.jsonl").read_text().splitlines():
        json.loads(line)  # strict JSON: NaN/Inf are spelt as strings
    back = Journal.load(tmp_path / "j.jsonl")
    assert [e.cause for e in back] == ["nonfinite", "plateau"]
    assert math.isnan(back[0].evidence["value"]) and back[0].evidence["best"] == math.inf
    assert back.explain() == j.explain()


def test_torn_last_line_is_dropped_but_a_bad_middle_line_is_an_error(tmp_path):
    p = tmp_path / "j.jsonl"
    j = Journal(p)
    j.record("plateau", epoch=1, old_lrs=[1.0], new_lrs=[0.5], evidence=PLATEAU_EV)
    with open(p, "a") as fh:
        fh.write('{"cause": "plat')  # killed mid-write
    assert len(Journal.load(p)) == 1
    p.write_text('{"cause": "plateau", "old_lrs": [1], "new_lrs": [0.5]}\nnot json\n{"cause": "schedule"}\n')
    with pytest.raises(LogFormatError, match="line 2 is not a journal entry"):
        Journal.load(p)


def test_write_false_keeps_entries_in_memory_only(tmp_path):
    j = Journal(tmp_path / "j.jsonl", write=False)
    j.record("schedule", epoch=1, old_lrs=[1.0], new_lrs=[0.9])
    assert len(j) == 1 and not (tmp_path / "j.jsonl").exists()


def test_restore_rewrites_the_file(tmp_path):
    p = tmp_path / "j.jsonl"
    j = Journal(p)
    for i in range(5):
        j.record("plateau", epoch=i, old_lrs=[1.0], new_lrs=[0.5], evidence=PLATEAU_EV)
    state = j.state()[:2]
    j2 = Journal(p)
    j2.restore(state)
    assert len(Journal.load(p)) == 2 and len(j2) == 2


def test_a_missing_parent_folder_is_created_and_a_folder_path_is_refused(tmp_path):
    p = tmp_path / "run" / "nested" / "j.jsonl"
    Journal(p).record("schedule", epoch=1, old_lrs=[1.0], new_lrs=[0.9])
    assert [e.cause for e in Journal.load(p)] == ["schedule"]
    fresh = tmp_path / "other" / "j.jsonl"
    Journal(fresh).restore([])
    assert fresh.exists()
    with pytest.raises(LRDoctorError, match="is a folder"):
        Journal(tmp_path).record("schedule", epoch=1, old_lrs=[1.0], new_lrs=[0.9])


def test_unknown_cause_is_an_error():
    with pytest.raises(ValueError, match="journal cause must be one of"):
        Entry("because")


@pytest.mark.parametrize("x,text", [(1e-3, "1e-3"), (5e-4, "5e-4"), (3.2e-5, "3.2e-5"), (0.1, "0.1"),
                                    (0.0, "0"), (1.5625e-3, "1.563e-3"), (2.0, "2")])
def test_format_lr(x, text):
    assert format_lr(x) == text


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=3),
       st.integers(0, 10**6), st.sampled_from(CAUSES))
def test_entry_json_roundtrip(lrs, step, cause):
    e = Entry(cause, epoch=step // 10, step=step, old_lrs=lrs, new_lrs=lrs[::-1],
              evidence={"value": lrs[0], "monitor": "m"})
    back = Entry.from_dict(json.loads(e.to_json()))
    assert back.to_json() == e.to_json()

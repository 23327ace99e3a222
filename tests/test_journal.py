"""The decision journal: JSONL round trip, crash tolerance, one sentence per cause."""

from __future__ import annotations

import bisect
import json
import logging
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrdoctor.errors import LogFormatError, LRDoctorError
from lrdoctor.journal import CAUSES, Entry, Journal, format_lr, sentence

REPO = Path(__file__).resolve().parents[1]

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
        head = "repair round 3: " if cause == "repair" else "epoch 3 (step 30): "
        assert text.startswith(head) and len(text) > 25
        assert "lrs 0.1 → 0.05, 0.01 → 5e-3" in text or cause in ("warmup-end", "early-stop", "warning",
                                                                    "nonfinite", "repair", "guard")


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


def test_a_torn_or_bad_line_is_skipped_and_named_and_a_file_of_no_entries_is_an_error(tmp_path):
    p = tmp_path / "j.jsonl"
    j = Journal(p)
    j.record("plateau", epoch=1, old_lrs=[1.0], new_lrs=[0.5], evidence=PLATEAU_EV)
    with open(p, "a") as fh:
        fh.write('{"cause": "plat')  # killed mid-write
    assert len(Journal.load(p)) == 1
    p.write_text('{"cause": "plateau", "old_lrs": [1], "new_lrs": [0.5]}\nnot json\n'
                 '{"cause": "schedule"}\n')
    back = Journal.load(p)
    assert [e.cause for e in back] == ["plateau", "schedule"]
    assert len(back.warnings) == 1 and f"{p}: line 2 is not a complete journal entry" in back.warnings[0]
    p.write_text("not json\n[1, 2]\n")
    with pytest.raises(LogFormatError, match="line 1 is not a journal entry"):
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


# -- damage: cuts, NUL tails, glued lines, concurrent writers, SIGKILL -----------------------
def _plateau_journal(path):
    """A real PlateauLR journal: 6 reductions on a flat metric (patience 0)."""
    torch = pytest.importorskip("torch")
    from lrdoctor.torch import PlateauLR

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = PlateauLR(opt, patience=0, factor=0.5, journal=path)
    for _ in range(7):
        sched.step(1.0)
    return path.read_bytes()


@pytest.fixture(scope="module")
def plateau_bytes(tmp_path_factory):
    raw = _plateau_journal(tmp_path_factory.mktemp("journal") / "journal.jsonl")
    assert raw.count(b"\n") == 6
    return raw


RESUMED = Entry("warning", step=10**6, message="resumed after a crash")


@pytest.mark.parametrize("tail", [b"", b"\x00" * 512], ids=["cut", "cut+NUL tail"])
def test_a_journal_cut_at_any_byte_then_appended_loses_only_the_cut_entry(
        tmp_path, monkeypatch, caplog, plateau_bytes, tail):
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # what is kept is tested here, not durability
    caplog.set_level(logging.ERROR, logger="lrdoctor.journal")  # thousands of warnings: read below
    raw = plateau_bytes
    whole = [line.decode() for line in raw.splitlines()]
    closes = [i for i, b in enumerate(raw) if b == ord("\n")]  # an entry is whole once its "}" is in
    p = tmp_path / "journal.jsonl"
    for cut in range(len(raw) + 1):
        p.write_bytes(raw[:cut] + tail)
        Journal(p).append(RESUMED)  # a resumed run goes on writing
        back = Journal.load(p)
        kept = bisect.bisect_right(closes, cut)
        got = [e.to_json() for e in back]
        assert got == whole[:kept] + [RESUMED.to_json()], cut
        cut_mid_entry = cut not in closes and cut - 1 not in closes and 0 < cut < len(raw)
        assert bool(back.warnings) == cut_mid_entry, (cut, back.warnings)
        if cut_mid_entry:
            line = raw[:cut].count(b"\n") + 1
            assert f"line {line} is not a complete journal entry" in back.warnings[0]


def test_an_entry_glued_onto_a_torn_one_by_an_older_writer_is_kept(tmp_path, plateau_bytes):
    raw = plateau_bytes
    lines = raw.splitlines(keepends=True)
    p = tmp_path / "journal.jsonl"
    for cut in range(1, len(lines[-1]) - 1):  # the last entry torn at every byte, no fresh line
        p.write_bytes(b"".join(lines[:-1]) + lines[-1][:cut] + RESUMED.to_json().encode() + b"\n")
        back = Journal.load(p)
        assert [e.to_json() for e in back] == [x.decode().strip() for x in lines[:-1]] + [
            RESUMED.to_json()], cut
        assert "starts with a cut-off entry" in back.warnings[-1]


def test_damaged_lines_of_every_kind_are_skipped_and_named(tmp_path):
    good = Entry("plateau", epoch=2, step=20, old_lrs=[0.1], new_lrs=[0.05], evidence=PLATEAU_EV)
    bad = ["[" * 100_000, '{"cause": "plateau", "old_lrs": [' + "9" * 400 + "]}", '{"cause": "because"}',
           '{"cause": "plateau", "step": "ten"}', '{"cause": "plateau", "evidence": [1]}',
           '{"cause": "plateau", "old_lrs": ["x"]}', "3", '"text"',
           '{"cause": "plateau", "old_lrs": [' + "9" * 5000 + "]}"]
    p = tmp_path / "journal.jsonl"
    p.write_bytes(b"\xff\xfe garbage\n" + "\n".join([good.to_json(), *bad, good.to_json()]).encode(
        "utf-8", "surrogateescape") + b"\n")
    back = Journal.load(p)
    assert len(back) == 2 and len(back.warnings) == len(bad) + 1
    assert all(w.startswith(f"{p}: line ") and "\n" not in w for w in back.warnings)
    assert back.explain()[0].startswith("epoch 2 (step 20): ")


def test_an_odd_but_parseable_entry_still_reads_as_a_sentence():
    e = Entry("plateau", epoch=1, old_lrs=[1.0], new_lrs=[0.5], evidence={"factor": "half"})
    assert e.explain() == "epoch 1: plateau, lr 1 → 0.5 (its evidence is unreadable)"


@pytest.mark.parametrize("where", ["first", "middle"])
def test_explain_shows_every_entry_but_the_cut_one(tmp_path, plateau_bytes, capsys, where):
    from lrdoctor.cli import main

    raw = plateau_bytes
    cut = raw.index(b"\n", len(raw) // 2 if where == "middle" else 0) - 40  # inside an entry
    p = tmp_path / "journal.jsonl"
    p.write_bytes(raw[:cut] + b"\x00" * 300)
    Journal(p).append(Entry("plateau", epoch=99, old_lrs=[1e-3], new_lrs=[5e-4], evidence=PLATEAU_EV))
    assert main(["explain", str(p)]) == 0
    out = capsys.readouterr().out
    kept = raw[:cut].count(b"\n")
    assert out.count("→ lr") == kept + 1 and "epoch 99" in out
    assert f"line {kept + 1} is not a complete journal entry" in " ".join(out.split())


WRITER = """
import sys
from lrdoctor.journal import Entry, Journal
path, who, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
j = Journal(path)
for i in range(n):
    j.append(Entry("warning", epoch=who, step=i, message="x" * (i % 7) * 300))
    if who < 0:
        print(i, flush=True)
"""


def _writer(path, who, n):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(who), str(n)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})


def test_concurrent_writers_in_real_processes_lose_nothing(tmp_path):
    p = tmp_path / "journal.jsonl"
    procs = [_writer(p, who, 40) for who in range(4)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    back = Journal.load(p)
    assert not back.warnings
    assert sorted((e.epoch, e.step) for e in back) == [(w, i) for w in range(4) for i in range(40)]


def test_sigkill_mid_append_loses_at_most_the_partial_entry_and_a_resume_goes_on(tmp_path):
    p = tmp_path / "journal.jsonl"
    proc = _writer(p, -1, 10**6)
    assert proc.stdout is not None
    done = -1
    for line in proc.stdout:  # the child prints after append() returned: on disk by then
        done = int(line)
        if done >= 150:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    Journal(p).append(RESUMED)
    back = Journal.load(p)
    steps = [e.step for e in back][:-1]
    assert steps == list(range(len(steps))) and len(steps) >= done + 1
    assert back[-1].to_json() == RESUMED.to_json() and len(back.warnings) <= 1

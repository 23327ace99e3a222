"""Fuzzing the readers, diagnose, explain and the CLI with damaged logs (issue 23): arbitrary
text, the logs each writer leaves cut at any byte, NUL tails, flipped bytes, binary junk, deep
nesting, huge numbers, BOMs and other encodings, duplicated, unordered and non-finite steps,
0-byte files, folders, symlink loops, unreadable files and corrupted TensorBoard records give a
sane log or one ``LogFormatError`` line; the CLI exits 0, or 2 with one ``error:`` line."""

from __future__ import annotations

import codecs
import os
import random
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrdoctor.cli import main
from lrdoctor.cli._common import CLIError
from lrdoctor.cli._explain import explain_path
from lrdoctor.doctor import diagnose
from lrdoctor.errors import LRDoctorError
from lrdoctor.logs import LogFormatError, TrainingLog, load

from ._damage import DAMAGES, KINDS, csv_text, damage

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


# -- damaged logs (issue 23): the good part, or one LogFormatError line; never a traceback --------
SEEDS = st.integers(0, 2**32 - 1)
REPO = Path(__file__).resolve().parents[2]


def _assert_sane(log: TrainingLog) -> None:
    """What the log model promises: every series non-empty, steps finite, sorted and unique."""
    for name in log.names():
        s = log.get(name)
        assert len(s) > 0 and len(s.values) == len(s.steps), name
        assert np.all(np.isfinite(s.steps.astype(float))) and np.all(np.diff(s.steps) > 0), name


def _assert_one_line(err: Exception, path: Path) -> None:
    assert "\n" not in str(err) and path.name in str(err), str(err)


def _write(d: str, kind: str, how: str, seed: int) -> Path:
    rng = random.Random(seed)
    raw = damage(how, rng, KINDS[kind](rng).encode())
    p = Path(d) / kind
    p.write_bytes(raw)
    return p


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(sorted(KINDS)), st.sampled_from(sorted(DAMAGES)), SEEDS)
def test_a_damaged_log_loads_diagnoses_and_explains_or_fails_in_one_line(kind, how, seed):
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy on 1e308 values: not errors
        p = _write(d, kind, how, seed)
        try:
            log = load(p)
        except LogFormatError as err:
            _assert_one_line(err, p)
            return
        _assert_sane(log)
        diagnose(log)
        try:
            explain_path(p)
        except (LRDoctorError, CLIError) as err:
            assert "\n" not in str(err)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["keras", "lightning", "generic"]), SEEDS, st.floats(0, 1), st.booleans())
def test_a_cut_csv_keeps_every_complete_row_and_drops_only_the_cut_one(flavor, seed, where, nul):
    raw = csv_text(random.Random(seed), clean=True, flavor=flavor).encode()
    cut = raw[:int(where * len(raw))]
    complete = cut[:cut.rfind(b"\n") + 1]  # the rows that were whole when the file was cut
    with tempfile.TemporaryDirectory() as d:
        a, b = Path(d) / "cut.csv", Path(d) / "whole.csv"
        a.write_bytes(cut + (b"\x00" * 700 if nul else b""))
        b.write_bytes(complete)
        try:
            want = load(b)
        except LogFormatError:
            with pytest.raises(LogFormatError):
                load(a)
            return
        got = load(a)
        assert got.names() == want.names()
        for name in want.names():
            assert got.get(name) == want.get(name), name
        if flavor != "lightning":  # one point per complete body row
            assert len(want.get("train/loss")) == complete.count(b"\n") - 1
        assert (cut != complete) == any("truncated" in w for w in got.warnings)


@pytest.mark.parametrize("encode", [
    lambda t: codecs.BOM_UTF8 + t.encode(), lambda t: t.encode("utf-16"),
    lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"), lambda t: t.encode("utf-32"),
    lambda t: t.encode("latin-1")], ids=["utf-8-sig", "utf-16", "utf-16-be", "utf-32", "latin-1"])
def test_boms_and_other_encodings_read_as_the_utf8_file_does(tmp_path, encode):
    text = "epoch,loss,val_précision,lr\n0,2.5,0.1,0.1\n1,2.0,0.3,0.1\n2,1.5,0.4,0.01\n"
    (tmp_path / "utf8.csv").write_text(text, encoding="utf-8")
    (tmp_path / "other.csv").write_bytes(encode(text))
    want, got = load(tmp_path / "utf8.csv"), load(tmp_path / "other.csv")
    assert got.names() == want.names() == ["lr", "train/loss", "val/précision"]
    assert all(got.get(n) == want.get(n) for n in want.names())
    assert any("Latin-1" in w for w in got.warnings) == (encode(text)[:1] == b"e"
                                                        and b"\xe9" in encode(text))


def _run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_cli_ok(rc: int, err: str) -> None:
    assert rc in (0, 2), (rc, err)
    assert "Traceback" not in err and "unexpected" not in err, err
    if rc == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(KINDS)), st.sampled_from(sorted(DAMAGES)), SEEDS,
       st.sampled_from(["diagnose", "explain"]))
def test_the_cli_on_a_damaged_log_exits_0_or_2_with_one_error_line(capsys, kind, how, seed, cmd):
    with tempfile.TemporaryDirectory() as d:
        p = _write(d, kind, how, seed)
        rc, _, err = _run_cli(capsys, [cmd, str(p)])
        _assert_cli_ok(rc, err)


def test_paths_that_are_not_logs_are_one_error_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "zero.csv").write_bytes(b"")
    (tmp_path / "nul.csv").write_bytes(b"\x00" * 4096)
    (tmp_path / "empty").mkdir()
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "nowhere.csv")
    (tmp_path / "dir" / "trainer_state.json").mkdir(parents=True)  # a folder with a log's name
    for name in ("zero.csv", "nul.csv", "empty", "loop", "dangling.csv", "dir", "missing.csv"):
        for cmd in ("diagnose", "explain"):
            rc, _, err = _run_cli(capsys, [cmd, str(tmp_path / name)])
            assert rc == 2, (name, cmd)
            _assert_cli_ok(rc, err)
    with pytest.raises(LogFormatError, match="symbolic link"):
        load(tmp_path / "loop")
    good = tmp_path / "good.csv"
    good.write_text("epoch,loss,lr\n0,2,0.1\n1,1,0.1\n")

    def unreadable(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", unreadable)  # root reads a chmod 000 file anyway
    rc, _, err = _run_cli(capsys, ["diagnose", str(good)])
    assert rc == 2 and err == f"error: Permission denied: {good}\n"


def test_warnings_then_an_error_is_one_stderr_line_from_a_real_process(tmp_path):
    bad_cells = tmp_path / "no_lr.csv"  # warns (cells that are not numbers), then cannot explain
    bad_cells.write_text("step,loss\n0,2\n1,oops\n2,1.5\n3,x")
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "80"}
    for argv in (["explain", str(bad_cells)], ["diagnose", str(loop)]):
        proc = subprocess.run([sys.executable, "-m", "lrdoctor", *argv], check=False, capture_output=True,
                              text=True, timeout=120, env=env, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def event_file(tmp_path_factory):
    pytest.importorskip("tensorboard")
    tb = pytest.importorskip("torch.utils.tensorboard")
    d = tmp_path_factory.mktemp("tb")
    w = tb.SummaryWriter(str(d))
    for i in range(100):
        w.add_scalar("train/loss", 1.0 / (i + 1), i)
        w.add_scalar("lr", 0.1, i)
    w.close()
    return next(d.glob("*tfevents*")).read_bytes()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(SEEDS, st.sampled_from(["cut", "flip", "junk"]))
def test_corrupted_tensorboard_records_read_up_to_the_damage_or_fail_in_one_line(
        event_file, seed, how):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "events.out.tfevents.1.host"
        p.write_bytes(damage(how, random.Random(seed), event_file))
        try:
            log = load(p)
        except LogFormatError as err:
            _assert_one_line(err, p)
            return
        _assert_sane(log)
        s = log.get("train/loss")
        assert np.allclose(s.values, 1.0 / (s.steps + 1))  # what was read is what was written

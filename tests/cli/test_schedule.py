"""``lrdoctor schedule``: table, plot, CSV, JSON, and exit 2 on bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from lrdoctor.cli import main
from lrdoctor.schedules import parse

SPEC = "warmup(50) >> cosine(3e-4, end=3e-6, steps=950)"


def test_outputs(tmp_path, capsys):
    png, csv_path, js = tmp_path / "lr.png", tmp_path / "lr.csv", tmp_path / "lr.json"
    assert main(["schedule", SPEC, "--plot", str(png), "--csv", str(csv_path), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "warm-up end" in out and "peak" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(csv_path.open()))
    s = parse(SPEC)
    assert len(rows) == 1050 and float(rows[123]["lr"]) == s(123)
    data = json.loads(js.read_text())
    assert data["peak_step"] == 50 and data["peak_lr"] == 3e-4 and data["duration"] == 1000
    assert data["lrs"][500] == s(500)


def test_momentum_column_for_one_cycle(tmp_path):
    path = tmp_path / "oc.csv"
    assert main(["schedule", "one_cycle(0.1, steps=100)", "--csv", str(path)]) == 0
    rows = list(csv.DictReader(path.open()))
    assert float(rows[0]["momentum"]) == 0.95


@pytest.mark.parametrize(
    "argv,phrase",
    [
        (["schedule", "cosine(0.1, stepz=10)"], "unknown argument 'stepz' for cosine"),
        (["schedule", "cosine(0.1, steps=10)", "--steps", "0"], "--steps must be >= 1"),
        (["schedule", "cosine(0.1, steps=10)", "--plot", "/no/such/dir/x.png"], "does not exist"),
        (["schedule"], "the following arguments are required"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(argv, phrase):
    proc = subprocess.run([sys.executable, "-m", "lrdoctor", *argv], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert phrase in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_every_writes_a_strided_csv_and_json(tmp_path):
    csv_path, js = tmp_path / "lr.csv", tmp_path / "lr.json"
    assert main(["schedule", SPEC, "--csv", str(csv_path), "--json", str(js), "--every", "100"]) == 0
    rows = list(csv.DictReader(csv_path.open()))
    s = parse(SPEC)
    assert [int(r["step"]) for r in rows] == list(range(0, 1050, 100))
    assert float(rows[3]["lr"]) == s(300)
    data = json.loads(js.read_text())
    assert data["every"] == 100 and data["lrs"][5] == s(500) and len(data["lrs"]) == 11


def test_a_billion_step_csv_is_refused_at_once_unless_strided(tmp_path):
    spec = "constant(0.1, steps=1000000000)"
    path = tmp_path / "lr.csv"
    proc = subprocess.run([sys.executable, "-m", "lrdoctor", "schedule", spec, "--csv", str(path)],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 2 and "--every" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not path.exists()
    assert main(["schedule", spec, "--csv", str(path), "--every", "10000000"]) == 0
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 105 and int(rows[-1]["step"]) == 1_040_000_000

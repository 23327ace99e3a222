"""``lrdoctor lab``: a picture and JSON from the command line, the tour, one-line errors."""

from __future__ import annotations

import json

import pytest

from lrdoctor.cli import main

pytest.importorskip("torch")


def test_lab_writes_picture_and_json(tmp_path, capsys):
    out, js = tmp_path / "v.png", tmp_path / "v.json"
    rc = main(["lab", "valley", "--optimizer", "sgd:1e-2", "-o", "adam:0.3:warmup(50)",
               "--steps", "400", "--out", str(out), "--json", str(js)])
    assert rc == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(js.read_text())
    assert data["surface"] == "valley" and len(data["runs"]) == 2
    sgd, adam = data["runs"]
    assert sgd["optimizer"] == "sgd" and abs(sgd["end"][1]) == pytest.approx(1.0)
    assert adam["schedule"] == "warmup(50) >> constant(0.3)"
    assert "picture:" in capsys.readouterr().out


def test_lab_noise_start_gif(tmp_path):
    pytest.importorskip("PIL")
    rc = main(["lab", "saddle", "-o", "sgd:0.05", "--steps", "60", "--noise", "0.01",
               "--start", "1,0.001", "--gif", str(tmp_path / "s.gif"), "--json", str(tmp_path / "s.json")])
    assert rc == 0
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["surface"] == "noisy-saddle" and data["runs"][0]["start"] == [1.0, 0.001]


def test_lab_negative_start(tmp_path):
    rc = main(["lab", "valley", "-o", "adam:0.3:warmup(10)", "--steps", "20", "--start=-4,0.02",
               "--json", str(tmp_path / "b.json")])
    assert rc == 0
    run = json.loads((tmp_path / "b.json").read_text())["runs"][0]
    assert run["start"] == [-4.0, 0.02] and run["schedule"] == "warmup(10) >> constant(0.3)"


def test_lab_diverged_run_is_reported_not_crashed(tmp_path, capsys):
    rc = main(["lab", "valley", "-o", "nesterov:1e-2", "--steps", "2000",
               "--json", str(tmp_path / "d.json")])
    assert rc == 0
    assert "diverged" in capsys.readouterr().out
    assert json.loads((tmp_path / "d.json").read_text())["runs"][0]["diverged"] is True


@pytest.mark.parametrize("argv, message", [
    (["lab"], "name a SURFACE"),
    (["lab", "valley", "--out", "x.png"], "at least one --optimizer"),
    (["lab", "valley", "-o", "sgd:1e-2"], "nothing to write"),
    (["lab", "valley", "-o", "lion:1", "--out", "x.png"], "unknown optimizer 'lion'"),
    (["lab", "valley", "-o", "sgd:1:cosine(", "--out", "x.png"], "column 8"),
    (["lab", "valley", "-o", "sgd:1", "--start", "1", "--out", "x.png"], "--start"),
    (["lab", "valley", "-o", "sgd:1", "--out", "/no/such/dir/x.png"], "does not exist"),
    (["lab", "valley", "-o", "sgd:1", "--steps", "0", "--out", "x.png"], "--steps must be"),
])
def test_lab_bad_input_is_one_line_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split())
    assert "Traceback" not in err


def test_lab_unknown_surface_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["lab", "bowl", "-o", "sgd:1"])
    assert exc.value.code == 2


def test_tour_cli(tmp_path, monkeypatch, capsys):
    import lrdoctor.lab._tour as tour_mod

    # The full tour is tested in tests/lab/test_tour.py; here two quick scenes are enough.
    quick = tuple(s for s in tour_mod.SCENES if s.slug in ("adam-burst", "warmup-and-decay"))
    monkeypatch.setattr(tour_mod, "SCENES", quick)
    rc = main(["lab", "--tour", "--out", str(tmp_path / "tour"), "--json", str(tmp_path / "t.json")])
    assert rc == 0
    assert (tmp_path / "tour" / "index.html").exists()
    assert len(json.loads((tmp_path / "t.json").read_text())["scenes"]) == 2
    assert "tour:" in capsys.readouterr().out

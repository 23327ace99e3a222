"""`lrdoctor diagnose PATH [--json] [--html] [--fail-on]`."""

from __future__ import annotations

import json

from lrdoctor.cli import main


def write_csv(tmp_path, rows, name="training.log"):
    p = tmp_path / name
    p.write_text("epoch,loss,val_loss\n" + "".join(f"{i},{a},{b}\n" for i, (a, b) in enumerate(rows)))
    return p


def test_json_and_html(tmp_path, capsys):
    p = write_csv(tmp_path, [(2.0 - 0.1 * i, 2.1 - 0.1 * i) for i in range(10)])
    out_json, out_html = tmp_path / "d.json", tmp_path / "d.html"
    assert main(["diagnose", str(p), "--json", str(out_json), "--html", str(out_html)]) == 0
    data = json.loads(out_json.read_text())
    f = data["findings"][0]
    assert set(f) >= {"code", "title", "severity", "evidence", "fix", "steps"}
    assert "not_checked" in data
    assert out_html.read_text().startswith("<!doctype html>")
    assert "evidence" in capsys.readouterr().out


def test_fail_on(tmp_path):
    bad = write_csv(tmp_path, [(2.0, 2.0), (5.0, 5.0), ("nan", "nan"), ("nan", "nan")])
    assert main(["diagnose", str(bad), "--fail-on", "critical", "--quiet"]) == 1
    assert main(["diagnose", str(bad), "--quiet"]) == 0
    good = write_csv(tmp_path, [(2.0 - 0.1 * i, 2.1 - 0.1 * i) for i in range(10)], "g.log")
    assert main(["diagnose", str(good), "--fail-on", "warning", "--quiet"]) == 0


def test_bad_input_exit_2(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path / "missing.csv")]) == 2
    empty = tmp_path / "e.csv"
    empty.write_text("")
    assert main(["diagnose", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "empty" in err and "\n" in err
    assert main(["diagnose", str(write_csv(tmp_path, [(1, 1)])), "--json",
                 str(tmp_path / "no" / "x.json")]) == 2


def test_an_unwritable_output_is_refused_before_the_log_is_read(tmp_path, monkeypatch, capsys):
    import lrdoctor.logs

    def never(*args, **kwargs):
        raise AssertionError("the log was read before the output folder was checked")

    monkeypatch.setattr(lrdoctor.logs, "load", never)
    p = write_csv(tmp_path, [(1, 1)])
    assert main(["diagnose", str(p), "--html", str(tmp_path / "no" / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err

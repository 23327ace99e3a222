"""`lrdoctor repair --example NAME [--fault KIND] [--rounds N] [--json OUT]`."""

from __future__ import annotations

import json

import pytest

from lrdoctor.cli import main


def test_repair_end_to_end_heals_and_explain_tells_the_story(tmp_path, capsys):
    out, js = tmp_path / "rep", tmp_path / "rep.json"
    assert main(["repair", "--example", "digits-mlp", "--fault", "unshuffled-data",
                 "--epochs", "3", "--out", str(out), "--json", str(js)]) == 0
    data = json.loads(js.read_text())
    assert data["healed"] and data["history"][1]["change"] == {"shuffle": True}
    assert data["history"][0]["findings"][0]["code"] == "unshuffled-data"
    text = capsys.readouterr().out
    assert "healed" in text and "shuffle=True (for unshuffled-data)" in text
    assert main(["explain", str(out)]) == 0
    told = capsys.readouterr().out
    assert "repair round 0: the run as given: unshuffled-data" in told
    assert "repair round 1: shuffle=True (for unshuffled-data): healthy" in told


@pytest.mark.parametrize("argv, needle", [
    (["--example", "nope"], "--example must be one of"),
    (["--example", "digits-mlp", "--fault", "nope"], "--fault must be one of"),
    (["--example", "digits-mlp", "--rounds", "-1"], "--rounds must be >= 0"),
    (["--example", "digits-mlp", "--epochs", "0"], "--epochs must be >= 1"),
])
def test_bad_input_exits_2_with_one_error_line(argv, needle, capsys, tmp_path):
    assert main(["repair", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0]

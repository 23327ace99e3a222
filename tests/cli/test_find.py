"""``lrdoctor find``: example tasks, user model/data modules, JSON, plot, bad input."""

from __future__ import annotations

import json
import textwrap

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from lrdoctor.cli import main
from lrdoctor.finder import DEFAULT_RULE

QUICK = ["--steps", "60", "--repeats", "1", "--lr-range", "1e-5", "10"]


def test_example_json_and_plot(tmp_path, capsys):
    out, png = tmp_path / "f.json", tmp_path / "f.png"
    rc = main(["find", "--example", "digits-mlp", *QUICK, "--json", str(out), "--plot", str(png)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert {"suggestion", "interval", "rule", "grade", "specs"} <= set(data)
    assert data["rule"] == DEFAULT_RULE
    if data["suggestion"] is not None:
        low, high = data["interval"]
        assert low <= data["suggestion"] <= high
        assert "one_cycle(" in data["specs"]["one_cycle"]
    assert png.stat().st_size > 5000
    text = capsys.readouterr().out
    assert "LR range test" in text
    assert ("--budget-steps N checks" in text) is (data["suggestion"] is not None)


def test_user_model_and_data_from_a_file(tmp_path, capsys):
    mod = tmp_path / "mine.py"
    mod.write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def model():
            torch.manual_seed(0)
            return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

        def loaders():
            g = torch.Generator().manual_seed(0)
            x = torch.randn(512, 4, generator=g)
            y = x[:, :3].argmax(1)
            return {"train": [(x[i:i + 32], y[i:i + 32]) for i in range(0, 512, 32)]}
    """))
    out = tmp_path / "f.json"
    rc = main(["find", "--model", f"{mod}:model", "--data", f"{mod}:loaders", "--optimizer", "sgd",
               *QUICK, "--json", str(out)])
    assert rc == 0
    assert "suggestion" in json.loads(out.read_text())


def test_budget_steps_runs_the_probe_and_sizes_the_specs(tmp_path, capsys):
    out = tmp_path / "f.json"
    rc = main(["find", "--example", "digits-mlp", *QUICK, "--budget-steps", "40",
               "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["suggestion"] is not None  # digits-mlp has a clear descent
    assert data["probe"]["warm_steps"] == 10
    assert data["settings"]["budget_steps"] == 40
    assert "steps=40" in data["specs"]["cosine"]
    text = " ".join(capsys.readouterr().out.split())
    assert "budget probe" in text and "--budget-steps N checks" not in text


def test_auto_prints_and_writes_the_spec_for_exactly_total_steps(tmp_path, capsys):
    from lrdoctor.schedules import parse

    out = tmp_path / "auto.json"
    rc = main(["find", "--example", "digits-mlp", "--optimizer", "adamw", "--auto",
               "--total-steps", "400", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert {"suggestion", "interval", "rule", "reason", "spec", "total_steps"} <= set(data)
    assert parse(data["spec"]).duration == 400 and data["total_steps"] == 400
    text = " ".join(capsys.readouterr().out.split())
    assert f"run 400 steps with: {data['spec']}" in text
    assert f"why: {' '.join(data['reason'].split())}" in text


def test_every_answer_says_why(capsys):
    assert main(["find", "--example", "digits-mlp", *QUICK]) == 0
    assert "why: " in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["find", "--example", "nope"], "unknown example"),
    (["find", "--example", "digits-mlp", "--lr-range", "1", "0.1"], "below end_lr"),
    (["find", "--model", "nosuchmodule_xyz:f", "--data", "x:y"], "cannot import"),
    (["find", "--model", "os:getcwd"], "--data"),
    (["find", "--example", "digits-mlp", "--rule", "vibes"], "--rule"),
    (["find", "--example", "digits-mlp", "--budget-steps", "2"], "--budget-steps"),
    (["find", "--example", "digits-mlp", "--total-steps", "500"], "--total-steps goes with"),
    (["find", "--example", "digits-mlp", "--auto", "--budget-steps", "50"], "not --budget"),
    (["find", "--example", "digits-mlp", "--auto", "--total-steps", "5"], "--total-steps must"),
    (["find", "--example", "digits-mlp", "--json", "/no/such/dir/x.json"], "does not exist"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split())


@pytest.mark.parametrize("moved", [True, False])
def test_the_rules_table_stars_the_lr_it_suggests(moved, monkeypatch, capsys):
    import numpy as np

    import lrdoctor.torch
    from lrdoctor.finder import BudgetProbe, Curve, analyze

    lrs = np.geomspace(1e-5, 1.0, 80)
    loss = 2 - np.tanh(3 * (np.log10(lrs) + 2.5)) + np.where(lrs > 0.1, 40 * (lrs - 0.1), 0)
    res = analyze([Curve.from_losses(lrs, loss), Curve.from_losses(lrs, loss * 1.01)])
    probe = BudgetProbe(res.suggestion, res.min_loss_lr, warm_steps=3)
    while probe.running:  # the loss holds up to the top (moved) or rises at once (kept)
        probe.record(1.0 if moved else 0.1 if probe.step < 8 else 1.0)
    res = res.with_probe(probe.report())
    assert res.probe.moved is moved
    monkeypatch.setattr(lrdoctor.torch, "find_lr", lambda *a, **k: res)
    assert main(["find", "--example", "digits-mlp", *QUICK, "--budget-steps", "40"]) == 0
    starred = [line for line in capsys.readouterr().out.splitlines() if " * " in line]
    assert len(starred) == 1 and f"{res.suggestion:.3g}" in starred[0]
    assert ("budget probe" in starred[0]) is moved

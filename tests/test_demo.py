"""The end-to-end demo: the fix beats the mistake by a wide margin, and one report holds it all."""

from __future__ import annotations

import json
import math
import re

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from lrdoctor.cli import main
from lrdoctor.demo import DemoConfig, fix_schedule, load_task, plan_fix
from lrdoctor.schedules import parse


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    """The full demo through the CLI, as ``make demo`` runs it (one run; xdist would repeat a
    module fixture on each worker)."""
    rc = main(["demo", "--out", str(tmp_path / "run"), "--json", str(tmp_path / "demo.json")])
    assert rc == 0
    out, data = tmp_path / "run", json.loads((tmp_path / "demo.json").read_text())
    _fix_beats_the_mistake_by_a_wide_margin(data)
    _every_step_left_its_trace(out, data)
    _report_is_one_self_contained_file(out, data)


def _fix_beats_the_mistake_by_a_wide_margin(data):
    a, d = data["table"]
    assert a["final val accuracy"] < 0.5
    assert d["final val accuracy"] > 0.9
    assert d["final val accuracy"] - a["final val accuracy"] > 0.4


def _every_step_left_its_trace(out, data):
    for name in ("mistake", "fixed"):
        assert (out / name / "log.jsonl").stat().st_size > 0
        assert (out / name / "journal.jsonl").exists()
    # (a): the plateau in mode 'min' on accuracy cut the lr although accuracy did not get worse
    assert any("mode=min" in line for line in data["journal"]["mistake"])
    # (b): the doctor found something that is not "healthy"
    assert data["findings"] and data["findings"][0]["code"] != "healthy"
    assert {"code", "title", "severity", "evidence", "fix"} <= set(data["findings"][0])
    # (c): the finder suggested an lr, and (d) used it
    assert data["finder"]["suggestion"] is not None
    assert data["suggested_lr"] == pytest.approx(data["finder"]["suggestion"])
    lo, hi = data["finder"]["interval"]
    assert lo <= data["suggested_lr"] <= hi
    # (d) ran auto_lr's schedule for exactly its steps, and says why
    fix = data["fix"]
    assert fix["source"] == "auto" and fix["how"].startswith("auto_lr for ")
    steps = data["config"]["epochs"] * load_task(DemoConfig()).steps_per_epoch
    assert parse(fix["spec"]).duration == fix["total_steps"] == steps
    assert data["table"][1]["lr"] == fix["spec"]
    assert not data["missing"]
    assert all(math.isfinite(v) for v in data["seconds"].values())


def _report_is_one_self_contained_file(out, data):
    html = (out / "report.html").read_text()
    assert data["report"].endswith("report.html")
    images = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert len(images) >= 6 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from the network
    for heading in ("Comparison", "Curves", "Learning rate and journal events", "LR finder",
                    "Schedule preview", "valley"):
        assert heading in html
    assert "mode=min" in html  # the journal of run (a) is in the page


def test_fix_schedule_fits_the_budget():
    task = load_task(DemoConfig(epochs=4))
    spec = fix_schedule(0.1, task, DemoConfig(epochs=4))
    from lrdoctor.schedules import parse

    s = parse(spec)
    assert s.duration == task.steps_per_epoch * 4
    assert s(task.steps_per_epoch) == pytest.approx(0.1) and s(s.duration) == 0


def test_plan_fix_runs_auto_for_the_run_and_falls_back_when_it_cannot():
    config = DemoConfig(epochs=4)
    task = load_task(config)
    plan = plan_fix(task, config)
    total = task.steps_per_epoch * 4
    assert plan.source == "auto" and plan.lr == plan.finder.peak_lr
    assert parse(plan.spec).duration == total and max(parse(plan.spec).values(total)) == \
        pytest.approx(plan.lr, rel=1e-2)
    assert plan.finder.reason in plan.how and plan.to_dict()["finder_cost"] == plan.finder.cost
    # a run too short for auto_lr (under 20 steps): the finder's suggestion on warm-up + cosine
    short = DemoConfig(epochs=2, n_train=200, finder_steps=40)
    task = load_task(short)
    plan = plan_fix(task, short)
    assert task.steps_per_epoch * 2 < 20 and plan.source in ("finder", "reference")
    assert "under auto_lr's 20" in plan.how
    assert plan.spec == fix_schedule(plan.lr, task, short)


def test_demo_bad_input(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    assert main(["demo", "--out", str(tmp_path / "file")]) == 2
    assert main(["demo", "--epochs", "1", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "a file of that name exists" in err and "--epochs must be >= 2" in err

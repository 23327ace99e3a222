"""Reports: terminal renderables, JSON, and the self-contained HTML page (escaping included)."""

from __future__ import annotations

import re

import numpy as np
from rich.console import Console

from lrdoctor.doctor import diagnose
from lrdoctor.logs import Series, TrainingLog
from lrdoctor.report import Report, diagnosis_figure, render_terminal, to_json

EVIL = "<script>alert('x')</script>"


def hostile_log() -> TrainingLog:
    steps = np.arange(200)
    loss = 2.3 * np.exp(-steps / 40) + 0.1
    loss[150:] = np.nan
    return TrainingLog({"train/loss": Series(steps, loss), f"train/{EVIL}": Series(steps, loss),
                        "lr": Series(steps, np.full(200, 0.1)),
                        "grad_norm": Series(steps, np.ones(200))}, source=f"run{EVIL}.csv",
                       format="csv", warnings=[f"column {EVIL} was odd"])


def test_html_escapes_everything_from_logs(tmp_path):
    log = hostile_log()
    d = diagnose(log)
    r = Report(f"title {EVIL}", subtitle=EVIL)
    r.add_summary(EVIL, verdict="critical").add_diagnosis(d, log, title=EVIL)
    r.add_table(EVIL, [EVIL], [[EVIL]]).add_journal([EVIL]).add_text(EVIL, EVIL)
    out = r.write(tmp_path / "r.html").read_text()
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert re.search(r"src=\"data:image/png;base64,[A-Za-z0-9+/=]{100,}", out)
    assert "http://" not in out and "https://" not in out  # nothing is fetched
    assert 'name="viewport"' in out


def test_report_several_runs_and_figure(tmp_path):
    import matplotlib.pyplot as plt

    log = hostile_log()
    d = diagnose(log)
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    r = Report("two runs").add_diagnosis(d, log, title="A").add_diagnosis(d, None, title="B")
    r.add_figure("extra", fig, caption="a caption")
    html = r.render()
    assert html.count('class="finding') == 2 * len(d.findings)
    assert "a caption" in html
    assert [s["kind"] for s in r.to_dict()["sections"]] == ["diagnosis", "diagnosis", "figure"]


def test_terminal_and_json():
    d = diagnose(hostile_log())
    console = Console(record=True, width=100)
    console.print(render_terminal(d))
    text = console.export_text()
    assert "nonfinite" in text and "evidence" in text
    js = to_json(d)
    assert js["findings"][0]["severity"] == "critical"
    assert {"code", "title", "severity", "evidence", "fix", "steps"} <= set(js["findings"][0])


def test_figure_marks_findings():
    log = hostile_log()
    fig = diagnosis_figure(diagnose(log), log)
    assert len(fig.axes) == 3  # loss, lr, grad norm
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "nonfinite" in texts


def test_add_image_embeds_a_png_file_or_bytes(tmp_path):
    import matplotlib.pyplot as plt
    import pytest

    from lrdoctor.errors import LRDoctorError

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = tmp_path / "p.png"
    fig.savefig(png)
    plt.close(fig)
    report = Report("images").add_image("from a file", png, caption="c1").add_image("from bytes", png.read_bytes())
    html = report.render()
    assert html.count("data:image/png;base64,") >= 2 and "c1" in html
    with pytest.raises(LRDoctorError, match="not a PNG"):
        Report("x").add_image("text", b"hello")

"""``Diagnosis._repr_html_``: what a notebook shows, with everything from the log escaped."""

from __future__ import annotations

import numpy as np

from lrdoctor import diagnose
from lrdoctor.logs import Series, TrainingLog

EVIL = "<img src=x onerror=alert(1)>"


def test_notebook_table_lists_every_finding_escaped():
    steps = np.arange(300)
    loss = np.full(300, 2.3) + 0.01 * np.sin(steps)
    log = TrainingLog({"train/loss": Series(steps, loss), f"val/{EVIL}": Series(steps, loss)},
                      source=f"run{EVIL}.csv", format="csv")
    d = diagnose(log)
    html = d._repr_html_()
    assert html.startswith("<table") and html.count("<tr>") == len(d.findings) + 1
    for f in d.findings:
        assert f"<code>{f.code}</code>" in html
    assert "<img" not in html and "&lt;img" in html

"""Reports of a diagnosis: terminal (rich renderables), JSON, and one self-contained HTML page.

The library never prints: :func:`render_terminal` returns a rich renderable for the caller
(the CLI) to print; :func:`to_json` returns a dict; :class:`Report` builds HTML.

``Report`` is a small builder that the CLI and the demo share, so one page can hold several runs::

    from lrdoctor.report import Report
    report = Report("Why won't my loss go down?", subtitle="three runs of digits-mlp")
    report.add_summary("Run B diverges: its learning rate is 100x too high.", verdict="critical")
    report.add_diagnosis(diagnosis, log, title="run B: lr x100")  # findings + curves
    report.add_figure("LR finder", fig, caption="suggestion marked")  # any matplotlib Figure
    report.add_table("scores", ["run", "val acc"], [["A", 0.97], ["B", 0.10]])
    report.add_journal(plateau.journal_lines(), title="PlateauLR journal")
    report.add_text("notes", "free text")
    report.write("report.html")        # atomic write; report.render() gives the string

Every section method returns the report (chainable). Text from logs is autoescaped by jinja2;
images are inline base64 PNGs; the page has no scripts and fetches nothing, and its layout
is readable from phone to laptop widths. ``diagnosis_figure(diagnosis, log)`` gives the curves
figure (loss raw + smoothed + validation with each finding marked at its steps, the lr track,
the gradient norm) on its own.
"""

from __future__ import annotations

from typing import Any

from lrdoctor.doctor import Diagnosis
from lrdoctor.report._html import Report
from lrdoctor.report._plots import diagnosis_figure
from lrdoctor.report._terminal import render_terminal

__all__ = ["Report", "diagnosis_figure", "render_terminal", "to_json"]


def to_json(diagnosis: Diagnosis) -> dict[str, Any]:
    """The JSON shape of DESIGN.md: ``{"findings": [{code, title, severity, evidence, fix,
    steps}, ...], "not_checked": [...], "worst": ..., ...}``."""
    return diagnosis.to_dict()

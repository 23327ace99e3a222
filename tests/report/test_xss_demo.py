"""Text from logs cannot run in the report: metric names, evidence, run titles, journal lines
and table cells carrying HTML/JS are escaped — checked statically and, when Chromium is there,
by loading the page and watching for any script, alert() or injected element."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lrdoctor.demo import RunRecord, compare, plot_curves, plot_lr_track, write_report

pytest.importorskip("matplotlib")

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror="alert(2)">',
    "<svg onload=alert(3)>",
    "javascript:alert(4)",
]


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts = 0
        self.handlers: list[str] = []
        self.bad_urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts += 1
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append(f"{tag}.{name}")
            if name in ("src", "href") and value and not value.startswith("data:image/png;base64,"):
                self.bad_urls.append(value)


def _log(path: Path, lrs: list[float], name: str) -> None:
    lines = [{"type": "meta", "version": 1, "every": 50}]
    for k, lr in enumerate(lrs):
        lines.append({"type": "scalars", "step": k, "epoch": k // 10,
                      "values": {"train/loss": 2.3 / (1 + k), "lr": lr, name: 0.5}})
    for e in range(1, 4):
        lines.append({"type": "scalars", "step": 10 * e - 1, "epoch": e,
                      "values": {"val/loss": 1.0 / e, "val/accuracy": 0.3 * e, name: 1.0}})
    lines.append({"type": "event", "step": 5, "code": "note", "message": PAYLOADS[0],
                  "data": {"name": PAYLOADS[1]}})
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")


def _record(tmp: Path, key: str, title: str) -> RunRecord:
    d = tmp / key
    d.mkdir()
    _log(d / "log.jsonl", [0.1] * 15 + [0.01] * 15, f"val/{PAYLOADS[0]}")
    history = [{"epoch": e, "step": 10 * e, "loss": 1.0 / e, "lr": 0.1, "val_loss": 1.0 / e,
                "val_accuracy": 0.3 * e} for e in range(1, 4)]
    return RunRecord(name=key, title=title, settings={"schedule": PAYLOADS[2], "plateau": PAYLOADS[3]},
                     history=history, log_path=d / "log.jsonl", journal_path=d / "journal.jsonl",
                     steps=30, seconds=1.0, diverged=False, journal=list(PAYLOADS))


@pytest.fixture
def page(tmp_path):
    from lrdoctor import logs
    from lrdoctor.doctor import diagnose

    a = _record(tmp_path, "a", f"(a) {PAYLOADS[0]}")
    d = _record(tmp_path, "d", f"(d) {PAYLOADS[1]}")
    log = logs.load(a.log_path)
    figures = {"curves": plot_curves([a, d], tmp_path / "c.png"),
               "lr_track": plot_lr_track([a, d], tmp_path / "l.png")}
    figures["finder"] = figures["schedule"] = figures["curves"]
    parts = {"verdict": PAYLOADS[0], "summary_details": {PAYLOADS[1]: PAYLOADS[2]},
             "diagnosis": diagnose(log), "log": log, "mistake": a, "fixed": d,
             "table": compare(a, d), "figures": figures, "finder_caption": PAYLOADS[3],
             "subtitle": PAYLOADS[0]}
    return write_report(parts, tmp_path / "report.html")


def test_payloads_are_escaped_in_the_html(page):
    html = page.read_text()
    scan = _Scan()
    scan.feed(html)
    assert scan.scripts == 0
    assert scan.handlers == []
    assert scan.bad_urls == []
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "<svg onload" not in html


def test_nothing_executes_in_chromium(page, tmp_path):
    from tests.report._chromium import chromium, probe

    chromium()
    seen = probe(page, tmp_path)
    assert seen["alerts"] == 0
    assert seen["scripts"] == 0, "a payload became a script element"
    assert seen["broken"] == 0 and seen["errors"] == "[]"
    assert "<img src=\"x\"" not in seen["dom"] and "<svg" not in seen["dom"].split("__probe")[0]

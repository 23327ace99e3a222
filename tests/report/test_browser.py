"""The demo's HTML report in headless Chromium: every image loads, no console errors, and a
screenshot is kept as a test artifact. Skips with the reason when Chromium is absent."""

from __future__ import annotations

import pytest

from tests.report._chromium import artifact_dir, chromium, probe, screenshot

pytest.importorskip("torch")
pytest.importorskip("sklearn")


def test_demo_report_in_chromium(tmp_path):
    """One demo (quick settings), then: every image loaded, no error, no script, and
    laptop- and phone-width screenshots kept as artifacts."""
    chromium()  # skip before spending time on the demo
    from lrdoctor.demo import DemoConfig, run_demo

    report = run_demo(tmp_path / "demo", config=DemoConfig.quick()).report
    seen = probe(report, tmp_path)
    assert seen["images"] >= 6
    assert seen["broken"] == 0, "some images did not load"
    assert seen["errors"] == "[]", seen["errors"]
    assert not [line for line in seen["console"] if "error" in line.lower()], seen["console"]
    assert seen["scripts"] == 0, "the report itself must contain no scripts"
    assert seen["alerts"] == 0
    for width, name in ((1280, "laptop"), (390, "phone")):
        png = screenshot(report, artifact_dir(tmp_path) / f"demo-report-{name}.png",
                         width=width, height=2400)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

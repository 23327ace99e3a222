"""The demo's HTML report in headless Chromium: every image loads, no console errors, and a
screenshot is kept as a test artifact. Skips with the reason when Chromium is absent."""

from __future__ import annotations

import pytest

from tests.report._chromium import artifact_dir, chromium, probe, screenshot

pytest.importorskip("torch")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    chromium()  # skip before spending time on the demo
    from lrdoctor.demo import DemoConfig, run_demo

    out = tmp_path_factory.mktemp("browser-demo")
    return run_demo(out, config=DemoConfig.quick()).report


def test_report_renders_with_every_image_and_no_errors(demo_report, tmp_path):
    seen = probe(demo_report, tmp_path)
    assert seen["images"] >= 6
    assert seen["broken"] == 0, "some images did not load"
    assert seen["errors"] == "[]", seen["errors"]
    assert not [line for line in seen["console"] if "error" in line.lower()], seen["console"]
    assert seen["scripts"] == 0, "the report itself must contain no scripts"
    assert seen["alerts"] == 0


@pytest.mark.parametrize("width, name", [(1280, "laptop"), (390, "phone")])
def test_report_screenshot(demo_report, tmp_path, width, name):
    png = screenshot(demo_report, artifact_dir(tmp_path) / f"demo-report-{name}.png",
                     width=width, height=2400)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""Headless Chromium for the report tests: find it, run it, read back what the page did."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--hide-scrollbars"]

#: Injected first into a copy of the page: records errors, image loads and any alert() call.
PROBE_HEAD = """<script>
window.__errors = []; window.__alerts = 0;
window.addEventListener('error', function (e) { window.__errors.push(String(e.message || e)); }, true);
var _err = console.error; console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, ' ')); _err.apply(console, arguments); };
window.alert = function () { window.__alerts += 1; };
</script>"""

#: Injected last: after load, writes the findings into the DOM for --dump-dom to carry out.
PROBE_TAIL = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var out = document.createElement('pre'); out.id = '__probe';
  out.textContent = 'images=' + imgs.length + ';broken=' + bad.length + ';alerts=' +
    window.__alerts + ';errors=' + JSON.stringify(window.__errors) + ';scripts=' +
    (document.scripts.length - 2);
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    """The Chromium binary, or skip the test with the reason."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.path.exists("/usr/bin/chromium"):
        return "/usr/bin/chromium"
    pytest.skip("headless Chromium is not installed (apt-get install chromium; .ci/run does it)")


def _run(args: list[str], timeout: float = 90) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="lrdoctor-chromium-")
    try:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def probe(html_path: Path, work: Path | None = None) -> dict[str, object]:
    """Load a probed copy of the page and return images, broken, alerts, errors, scripts,
    console (the console lines Chromium logged) and the dumped DOM."""
    html = html_path.read_text(encoding="utf-8")
    probed = re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + PROBE_HEAD, html, count=1)
    probed = probed.replace("</body>", PROBE_TAIL + "</body>")
    # beside the original, so relative image paths resolve as they would for the page itself
    target = html_path.with_name(f".probed-{os.getpid()}-{html_path.name}")
    target.write_text(probed, encoding="utf-8")
    try:
        proc = _run(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
                     "--dump-dom", target.as_uri()])
    finally:
        target.unlink(missing_ok=True)
    dom = proc.stdout
    m = re.search(r'<pre id="__probe">images=(\d+);broken=(\d+);alerts=(\d+);errors=(.*?);'
                  r"scripts=(-?\d+)</pre>", dom, re.DOTALL)
    assert m, f"the probe did not report (chromium exit {proc.returncode}): {proc.stderr[-2000:]}"
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    return {"images": int(m.group(1)), "broken": int(m.group(2)), "alerts": int(m.group(3)),
            "errors": m.group(4), "scripts": int(m.group(5)), "console": console, "dom": dom}


def screenshot(html_path: Path, png: Path, width: int = 1280, height: int = 2400) -> Path:
    """A PNG of the page as Chromium renders it."""
    proc = _run([f"--screenshot={png}", f"--window-size={width},{height}",
                 "--virtual-time-budget=10000", html_path.as_uri()])
    assert png.exists() and png.stat().st_size > 0, proc.stderr[-2000:]
    return png


def artifact_dir(default: Path) -> Path:
    """Where screenshots go: $LRDOCTOR_TEST_ARTIFACTS if set, else the test's tmp_path."""
    target = Path(os.environ.get("LRDOCTOR_TEST_ARTIFACTS", default))
    target.mkdir(parents=True, exist_ok=True)
    return target

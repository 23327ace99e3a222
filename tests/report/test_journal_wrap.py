"""Journal lines in the HTML report wrap instead of scrolling sideways."""

from __future__ import annotations

import re

from lrdoctor.report import Report


def test_journal_lines_wrap_one_block_per_line(tmp_path):
    lines = ["epoch 3: lr 0.1 -> 0.01 because val_loss did not improve " * 4, "second <b>"]
    out = Report("t").add_journal(lines).write(tmp_path / "r.html").read_text()
    style = re.search(r"pre\.journal \{([^}]*)\}", out).group(1)
    assert "white-space: pre-wrap" in style and "overflow-x: visible" in style
    body = re.search(r'<pre class="journal">(.*?)</pre>', out, re.DOTALL).group(1)
    assert body.count("<span>") == 2 and "&lt;b&gt;" in body

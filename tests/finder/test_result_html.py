"""``FinderResult._repr_html_``: the summary and the plot inline, for notebooks."""

from __future__ import annotations

import base64
import re

from lrdoctor.finder import Curve, analyze
from tests.finder.test_core import synthetic


def test_notebook_view_has_the_summary_and_a_png():
    lrs, loss = synthetic(noise=0.02)
    result = analyze([Curve.from_losses(lrs, loss)])
    html = result._repr_html_()
    assert result.summary().split(" (")[0] in html
    png = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG")

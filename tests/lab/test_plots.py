"""Pictures: every panel draws, files are written, a GIF animates."""

from __future__ import annotations

import pytest

from lrdoctor.errors import LRDoctorError
from lrdoctor.lab import Noisy, Saddle, Valley, run
from lrdoctor.lab._plots import PANELS, animate, figure

pytest.importorskip("torch")
pytest.importorskip("matplotlib")


def _png_ok(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_figure_all_panels_with_adaptive_sgd_noisy_and_diverged(tmp_path):
    runs = [
        run(Valley(), "sgd:1e-2", steps=300),
        run(Valley(), "adam:0.1:warmup(50)", steps=300),
        run(Valley(), "nesterov:1e-2", steps=300),  # diverges: must not break the axes
        run(Noisy(Valley(), noise=2.0), "rmsprop:1e-2", steps=300),
    ]
    out = tmp_path / "all.png"
    fig = figure(Valley(), runs, path=out, panels=PANELS, title="all", logx=True)
    _png_ok(out)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == len(PANELS)


def test_figure_rejects_unknown_panels(tmp_path):
    t = run(Saddle(), "sgd:0.01", steps=10)
    with pytest.raises(LRDoctorError, match="unknown panel"):
        figure(Saddle(), [t], panels=("loss", "weather"))


def test_svg_output(tmp_path):
    t = run(Saddle(), "adam:0.01", steps=100)
    figure(Saddle(), [t], path=tmp_path / "s.svg", panels=("trajectory",))
    assert (tmp_path / "s.svg").read_text().lstrip().startswith("<?xml")


def test_gif(tmp_path):
    pytest.importorskip("PIL")
    t = run(Valley(), "sgd:1e-2", steps=100)
    out = animate(Valley(), [t], tmp_path / "a.gif", frames=8)
    assert out.read_bytes()[:6] in (b"GIF89a", b"GIF87a")

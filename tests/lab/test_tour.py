"""The tour: captioned pictures whose numbers come from the runs, and an escaped index.html."""

from __future__ import annotations

import json
import shutil

import pytest

from lrdoctor.errors import LRDoctorError
from lrdoctor.lab._tour import SCENES, tour

pytest.importorskip("torch")


@pytest.mark.slow
def test_full_tour_writes_every_scene_and_the_story_holds(tmp_path):
    calls = []
    results = tour(tmp_path, progress=lambda d, n, s: calls.append((d, n)))
    assert [r.slug for r in results] == [s.slug for s in SCENES]
    assert calls[0] == (0, len(SCENES)) and calls[-1] == (len(SCENES), len(SCENES))
    for r in results:
        assert (tmp_path / r.image).stat().st_size > 10_000
        assert r.caption
    n = {r.slug: r.numbers for r in results}
    assert n["sgd-bounce"]["min_abs_y_last_100"] > 0.99 and n["sgd-bounce"]["sign_flips_last_100"] == 100
    assert n["sgd-crawl"]["distance_ratio"] > 0.9
    floor = n["noise-floor"]
    assert floor["loss_gap_last_500"] > 0.5 * floor["loss_gap_steps_1000_1500"]  # flat
    assert floor["grad_norm_last_500_mean"] > 1 and floor["grad_norm_last_500_std"] > 0.5
    assert floor["decay_loss_gap_last_500"] < floor["loss_gap_last_500"] / 5
    assert n["adagrad-shrinks"]["adagrad_effective_lr_monotone_decreasing"]
    assert n["rmsprop-recovers"]["rmsprop_recovery_factor"] > 100
    assert n["adam-burst"]["peak_loss_no_warmup"] > 1.5 * n["adam-burst"]["initial_loss"]
    assert n["adam-burst"]["peak_loss_warmup"] <= n["adam-burst"]["initial_loss"] + 1e-9
    ends = n["warmup-and-decay"]
    assert ends["warm-up"]["peak_loss_first_50"] < ends["constant"]["peak_loss_first_50"]
    assert ends["decay"]["final_loss_gap"] < ends["constant"]["final_loss_gap"] / 10
    assert ends["warm-up + decay"]["peak_loss_first_50"] < ends["decay"]["peak_loss_first_50"]
    assert ends["warm-up + decay"]["final_loss_gap"] < ends["warm-up"]["final_loss_gap"] / 10
    index = (tmp_path / "index.html").read_text()
    for r in results:
        assert f'src="{r.image}"' in index
    assert json.loads((tmp_path / "tour.json").read_text())[0]["slug"] == "sgd-bounce"
    if shutil.which("chromium"):  # the page as a browser sees it (tests/report has the skip)
        from tests.report._chromium import probe

        seen = probe(tmp_path / "index.html")
        assert seen["images"] == len(SCENES) and seen["broken"] == 0 and seen["errors"] == "[]"


def test_unknown_scene(tmp_path):
    with pytest.raises(LRDoctorError, match="unknown scene"):
        tour(tmp_path, scenes=["sgd-bounce", "nope"])


def test_index_escapes_captions():
    from lrdoctor.lab._tour import SceneResult, _render_index

    html = _render_index([SceneResult("x", "<b>t</b>", "<script>alert(1)</script>", "a.png")])
    assert "<script>alert" not in html and "&lt;script&gt;" in html

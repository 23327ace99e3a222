"""Smoke test of the doctor's fault corpus (benchmarks/_corpus.py, benchmarks/_families.py).

Two families x two faults x one seed at one epoch: the fault's overrides change the config, the
run trains with the live Monitor and leaves both logs, and the same config trains the same run.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import _corpus as C
import _families as F

FAMILIES = ("cancer-mlp", "digits-wide")
FAULTS = ("lr-too-high", "label-noise")


def _runs() -> list[C.Run]:
    return [r for r in C.corpus(families=FAMILIES, seeds=(0,), faults=FAULTS)
            if r.variant in ("sgd-x30", "p0.6")]


def test_every_family_builds_data_and_a_model_of_the_right_shape() -> None:
    for name, fam in F.FAMILIES.items():
        xtr, ytr, xva, yva = F.make_data(name, 0, n_train=8)
        model = F.make_model(name, 0)
        out = model(xva[:3])
        assert len(xtr) == len(ytr) == 8
        assert out.shape[0] == 3
        expected_last = 1 if fam.task == "regression" else fam.classes
        assert out.shape[-1] == expected_last
        metrics = F.evaluate(name, model, xva[:16], yva[:16])
        assert math.isfinite(metrics["val_loss"])
        assert ("val_accuracy" in metrics) == (fam.task != "regression")


def test_injected_faults_change_the_config_and_train(tmp_path: Path) -> None:
    runs = _runs()
    assert {(r.family, r.fault) for r in runs} == {(f, k) for f in FAMILIES for k in FAULTS}
    for run in runs:
        healthy = C.full_config({"family": run.family, "seed": 0})
        faulty = C.full_config(run.config)
        changed = {k for k in faulty if faulty[k] != healthy[k]}
        assert changed, run
        if run.fault == "lr-too-high":
            assert faulty["lr"] == pytest.approx(30 * F.FAMILIES[run.family].lrs[faulty["optimizer"]])
        else:
            assert changed == {"label_noise"}
        res = C.train_run({**run.config, "epochs": 1}, tmp_path)
        assert res.steps > 0 and len(res.history) == 1
        rows = list(csv.DictReader(Path(res.csv).read_text().splitlines()))
        assert set(rows[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"}
        lines = [json.loads(line) for line in Path(res.jsonl).read_text().splitlines()]
        assert lines[0]["type"] == "meta"
        assert sum(line["type"] == "scalars" for line in lines) >= res.steps
        assert C.cached({**run.config, "epochs": 1}, tmp_path).val_loss == res.val_loss


def test_label_noise_flips_the_requested_share_of_training_labels() -> None:
    _, clean, _, _ = F.make_data("digits-wide", 0)
    _, noisy, _, _ = F.make_data("digits-wide", 0, label_noise=0.6)
    wrong = float((clean != noisy).float().mean())
    assert 0.6 * 0.9 - 0.05 < wrong < 0.6 * 0.9 + 0.05  # p * (C-1)/C of them change


def test_same_config_trains_the_same_run(tmp_path: Path) -> None:
    config = {"family": "cancer-mlp", "seed": 1, "epochs": 2, "lr_style": "one-cycle"}
    a = C.train_run(config, tmp_path / "a")
    b = C.train_run(config, tmp_path / "b")
    assert a.key == b.key
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]


def test_an_unknown_knob_is_refused_with_its_name() -> None:
    with pytest.raises((KeyError, ValueError), match="momentum_beta") as info:
        C.full_config({"family": "cancer-mlp", "momentum_beta": 0.5})
    assert getattr(info.value, "knob", "momentum_beta") == "momentum_beta"


def test_fresh_families_are_registered_and_their_raw_inputs_need_normalising() -> None:
    assert set(F.FRESH) <= set(F.FAMILIES)
    for name in F.FRESH:
        raw, _, _, _ = F.make_data(name, 0, normalize_inputs=False)
        norm, _, _, _ = F.make_data(name, 0)
        flat = norm.reshape(len(norm), -1)
        assert abs(float(flat.mean())) < 0.05 and abs(float(flat.std()) - 1) < 0.05
        # raw units are far from standard (the unnormalized-input fault must bite somewhere)
        assert float(raw.abs().mean()) > 3


def test_waves_classes_differ_in_frequency_and_lead_or_lag() -> None:
    x, y, _, _ = F.make_data("waves-lstm", 0)
    assert x.shape[1:] == (24, 2) and set(y.tolist()) == {0, 1, 2, 3}
    # channel 1 leads channel 0 for classes 0-1 and lags it for 2-3: the sign of the
    # lag-1 cross-correlation separates them on average
    a, b = x[..., 0], x[..., 1]
    cross = (a[:, 1:] * b[:, :-1]).mean(1) - (a[:, :-1] * b[:, 1:]).mean(1)
    assert float(cross[y < 2].mean()) * float(cross[y >= 2].mean()) < 0

"""W&B offline runs written by wandb itself, read back with wandb's own reader."""

from __future__ import annotations

import json
import math
import sys

import pytest

from lrdoctor.cli import main
from lrdoctor.errors import LogFormatError
from lrdoctor.logs import load

wandb = pytest.importorskip("wandb")

STEPS = 30


def write_run(root, *, lr=0.1, hf_style=False):
    """A short offline run: loss and lr every step, val metrics every 10 steps (nested dicts
    too), a NaN, a text value; ``hf_style`` logs like the HF integration (its own global step
    next to wandb's ``_step``)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_DISABLE_CODE", "true")
        mp.setenv("WANDB_DIR", str(root))
        run = wandb.init(project="lrdoctor-test", dir=str(root), config={"lr": lr},
                         settings=wandb.Settings(x_disable_stats=True, console="off"))
        for k in range(STEPS):
            row = {"loss": 2.0 / (k + 1), "lr": lr}
            if k == 3:
                row["note"] = "text is not a metric"
                row["grad_norm"] = float("nan")
            if k % 10 == 9:
                row["val"] = {"loss": 2.5 / (k + 1)}
                row["epoch"] = (k + 1) // 10
            if hf_style:
                run.log({f"train/{n}" if n != "val" else "eval/loss":
                         v if n != "val" else v["loss"] for n, v in row.items()}
                        | {"train/global_step": 10 * k})
            else:
                run.log(row, step=k)
        run_dir = run.dir  # .../offline-run-<date>-<id>/files
        run_id = run.id
        run.finish()
    from pathlib import Path
    return Path(run_dir).parent, run_id


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("wb")
    first = write_run(root / "one")
    second = write_run(root / "one", lr=0.2)
    hf = write_run(root / "hf", hf_style=True)
    wandb.teardown()
    return root, first, second, hf


def check(log):
    assert log.format == "wandb"
    loss = log.get("train/loss")
    assert loss.steps.tolist() == list(range(STEPS))
    assert loss.values[:3].tolist() == pytest.approx([2.0, 1.0, 2 / 3])
    val = log.get("val/loss")
    assert val.steps.tolist() == [9, 19, 29]
    assert val.values.tolist() == pytest.approx([0.25, 2.5 / 20, 2.5 / 30])
    assert val.epochs.tolist() == [1, 2, 3]
    grad = log.get("grad_norm")
    assert grad.steps.tolist() == [3] and math.isnan(grad.values[0])
    assert not [n for n in log.names() if "note" in n or "runtime" in n or "timestamp" in n
                or "epoch" in n]


def test_run_file_and_run_folder(runs):
    _, (folder, rid), _, _ = runs
    check(load(folder))
    file = next(folder.glob("run-*.wandb"))
    log = load(file)
    check(log)
    assert log.get("lr").values.tolist() == [0.1] * STEPS
    assert log.meta["wandb"]["run_id"] == rid


def test_wandb_folder_with_several_runs(runs, tmp_path, capsys):
    _, (_, first), (folder2, second), _ = runs
    wandb_dir = folder2.parent
    with pytest.raises(LogFormatError, match="2 W&B runs") as err:
        load(wandb_dir)
    assert first in str(err.value) and second in str(err.value)
    assert load(wandb_dir, run=second).get("lr").values[0] == 0.2
    assert load(wandb_dir, run=folder2.name).get("lr").values[0] == 0.2
    with pytest.raises(LogFormatError, match="no run matches"):
        load(wandb_dir, run="nope")
    capsys.readouterr()
    assert main(["diagnose", str(wandb_dir)]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error:") and "--run" in err_lines[0]
    out = tmp_path / "d.json"
    assert main(["diagnose", str(wandb_dir), "--run", first, "--json", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["findings"]


def test_integration_global_step_is_the_step(runs):
    _, _, _, (folder, _) = runs
    log = load(folder)
    assert log.get("train/loss").steps.tolist() == [10 * k for k in range(STEPS)]
    assert log.get("val/loss").steps.tolist() == [90, 190, 290]
    assert log.get("lr").values[0] == 0.1


def test_a_run_killed_mid_write_is_read_up_to_its_last_record(runs, tmp_path):
    _, (folder, _), _, _ = runs
    data = next(folder.glob("run-*.wandb")).read_bytes()
    cut = tmp_path / "offline-run-x-cut"
    cut.mkdir()
    (cut / "run-cut.wandb").write_bytes(data[: len(data) // 2])
    log = load(cut)
    n = len(log.get("train/loss"))
    assert 0 < n < STEPS
    assert log.get("train/loss").steps.tolist() == list(range(n))
    assert any("incomplete" in w for w in log.warnings)


def test_junk_after_the_header_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "run-bad.wandb"
    bad.write_bytes(b":W&B" + bytes(range(256)) * 4)
    with pytest.raises(LogFormatError, match="wandb could not read|no numeric history"):
        load(bad)
    assert main(["diagnose", str(bad)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_missing_wandb_gives_the_install_hint(runs, monkeypatch):
    _, (folder, _), _, _ = runs
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(LogFormatError, match=r"lrdoctor\[wandb\]"):
        load(folder)

"""Readers on synthetic files, the shared real-world samples and hostile input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lrdoctor.logs import LogFormatError, Series, TrainingLog, canonical, load

SHARED = Path(__file__).resolve().parents[3] / "shared" / "logs"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_keras_csv(tmp_path):
    p = write(tmp_path, "training.log",
              "epoch,accuracy,loss,lr,val_accuracy,val_loss\n"
              "0,0.5,1.2,0.01,0.55,1.1\n1,0.7,0.8,0.01,0.65,0.9\n2,0.8,0.6,0.001,0.7,0.85\n")
    log = load(p)
    assert log.format == "keras-csv" and log.step_unit == "epoch"
    assert log.names() == ["lr", "train/accuracy", "train/loss", "val/accuracy", "val/loss"]
    s = log.get("val/loss")
    assert s.steps.tolist() == [0, 1, 2] and s.values.tolist() == [1.1, 0.9, 0.85]
    assert log.lr().values[-1] == pytest.approx(0.001)


def test_lightning_sparse_rows(tmp_path):
    write(tmp_path, "metrics.csv",
              "epoch,step,train_loss_step,train_loss_epoch,val_loss,lr-SGD\n"
              "0,9,2.0,,,\n0,19,1.5,,,\n0,19,,1.7,1.6,\n,19,,,,0.1\n1,29,1.2,,,\n")
    log = load(tmp_path)  # directory: finds metrics.csv
    assert log.format == "lightning-csv"
    assert log.get("train/loss").steps.tolist() == [9, 19, 29]
    assert log.get("train/loss_epoch").values.tolist() == [1.7]
    assert log.get("val/loss").epochs.tolist() == [0.0]
    assert log.get("lr/SGD").values.tolist() == [0.1]


def test_generic_csv_without_step_uses_row_number(tmp_path):
    log = load(write(tmp_path, "x.csv", "loss;val_loss\n3;4\n2;3\n"))
    assert log.get("train/loss").steps.tolist() == [0, 1]


def test_hf_trainer_state(tmp_path):
    state = {"global_step": 4, "max_steps": 4, "log_history": [
        {"step": 2, "epoch": 0.5, "loss": 1.0, "learning_rate": 1e-3, "grad_norm": 3.0},
        {"step": 4, "epoch": 1.0, "loss": 0.8, "learning_rate": 5e-4, "grad_norm": 2.0},
        {"step": 4, "epoch": 1.0, "eval_loss": 0.9, "eval_accuracy": 0.6},
        {"step": 4, "epoch": 1.0, "train_loss": 0.9, "train_runtime": 1.0},
    ]}
    log = load(write(tmp_path, "trainer_state.json", json.dumps(state)))
    assert log.format == "hf-trainer-state"
    assert log.get("train/loss").values.tolist() == [1.0, 0.8]  # summary entry skipped
    assert log.get("val/accuracy").steps.tolist() == [4]
    assert log.meta["max_steps"] == 4


def test_truncated_trainer_state_is_partial(tmp_path, caplog):
    state = {"log_history": [{"step": i, "loss": 1.0 / i} for i in range(1, 20)]}
    text = json.dumps(state, indent=2)
    log = load(write(tmp_path, "trainer_state.json", text[: len(text) // 2]))
    assert 0 < len(log.get("train/loss")) < 19
    assert any("cut off" in w for w in log.warnings)


def test_keras_history_json(tmp_path):
    hist = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "sparse_categorical_accuracy": [0.4, 0.8]}
    log = load(write(tmp_path, "history.json", json.dumps(hist)))
    assert log.format == "keras-history" and log.step_unit == "epoch"
    assert log.get("train/accuracy").values.tolist() == [0.4, 0.8]


def test_our_jsonl_with_events_and_truncated_last_line(tmp_path):
    lines = [
        {"type": "meta", "version": 1, "every": 10},
        {"type": "scalars", "step": 0, "epoch": 0, "values": {"train/loss": 2.0, "lr/0": 0.1}},
        {"type": "event", "step": 0, "code": "loss-activation-mismatch", "message": "softmax"},
        {"type": "scalars", "step": 1, "values": {"train/loss": 1.5, "grad_norm": 4.0}},
    ]
    text = "\n".join(json.dumps(r) for r in lines) + '\n{"type": "scalars", "ste'
    log = load(write(tmp_path, "run.jsonl", text))
    assert log.format == "lrdoctor-jsonl" and log.meta["every"] == 10
    assert log.get("train/loss").values.tolist() == [2.0, 1.5]
    assert log.events[0].code == "loss-activation-mismatch"
    assert any("last line" in w for w in log.warnings)


def test_jsonl_line_with_two_values_is_reported(tmp_path):
    p = write(tmp_path, "two.jsonl", '{"step": 0, "loss": 2}\n{"step": 1, "loss": 1.5}, 3\n'
                                     '{"step": 2, "loss": 1}\n')
    log = load(p)
    assert log.get("train/loss").steps.tolist() == [0, 2]
    assert any("lines [2]" in w for w in log.warnings)


@pytest.mark.parametrize("text", ["", "   \n", "epoch,loss\n"])
def test_empty_logs_raise_clear_error(tmp_path, text):
    with pytest.raises(LogFormatError, match="empty|no rows"):
        load(write(tmp_path, "e.csv", text))


def test_one_row_log(tmp_path):
    log = load(write(tmp_path, "one.csv", "epoch,loss\n0,2.5\n"))
    assert len(log.get("train/loss")) == 1


def test_nan_inf_cells_are_kept(tmp_path):
    log = load(write(tmp_path, "n.csv", "epoch,loss\n0,2.5\n1,nan\n2,inf\n"))
    v = log.get("train/loss").values
    assert v[0] == 2.5 and math.isnan(v[1]) and math.isinf(v[2])


def test_short_rows_and_odd_cells(tmp_path):
    # a short middle row, a blank row, a hand-written tensor, a null, words and a blank cell
    log = load(write(tmp_path, "o.csv", "step,loss,val_loss,lr\n"
                     "0,2.5,tensor(2.4),0.1\n1,2.0\n\n2,null,n/a,\n3, 1.5 ,oops, \n4,1.2,1.1,0.1\n"))
    loss, val, lr = log.get("train/loss"), log.get("val/loss"), log.get("lr")
    assert loss.steps.tolist() == [0, 1, 2, 3, 4]
    assert np.allclose(loss.values, [2.5, 2.0, math.nan, 1.5, 1.2], equal_nan=True)
    assert val.steps.tolist() == [0, 4] and val.values.tolist() == [2.4, 1.1]
    assert lr.steps.tolist() == [0, 4]
    assert any("2 cells were not numbers" in w for w in log.warnings)


def test_a_row_without_a_step_is_left_out(tmp_path):
    log = load(write(tmp_path, "s.csv", "step,loss\n0,3\n,2\nnan,1\n2,1.5\n"))
    assert log.get("train/loss").steps.tolist() == [0, 2]


def test_duplicated_and_nonmonotonic_steps_warn(tmp_path):
    log = load(write(tmp_path, "d.csv", "step,loss\n0,3\n2,2\n1,2.5\n2,1.9\n"))
    s = log.get("train/loss")
    assert s.steps.tolist() == [0, 1, 2] and s.values.tolist() == [3, 2.5, 1.9]
    assert any("not in order" in w for w in log.warnings)
    assert any("duplicated" in w for w in log.warnings)


def test_keras_restarted_epochs_keep_last_run(tmp_path):
    log = load(write(tmp_path, "r.csv", "epoch,loss\n0,3\n1,2\n0,5\n1,4\n2,3\n"))
    assert log.get("train/loss").values.tolist() == [5, 4, 3]
    assert any("restarts" in w for w in log.warnings)


def test_truncated_csv_row_dropped(tmp_path):
    log = load(write(tmp_path, "t.csv", "epoch,loss,val_loss\n0,3,3\n1,2,2.5\n2,1"))
    assert len(log.get("val/loss")) == 2 and any("truncated" in w for w in log.warnings)


def test_hostile_names_are_kept_as_text(tmp_path):
    log = load(write(tmp_path, "h.csv", 'epoch,loss,"<script>alert(1)</script>"\n0,1,2\n'))
    assert any("<script>" in n for n in log.names())


def test_garbage_raises(tmp_path):
    with pytest.raises(LogFormatError):
        load(write(tmp_path, "g.json", "{not json"))
    with pytest.raises(LogFormatError):
        load(write(tmp_path, "b.bin", "\x00\x01\x02garbage"))
    with pytest.raises(LogFormatError, match="no metric columns"):
        load(write(tmp_path, "c.csv", "epoch,created_at\n0,now\n"))
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.csv")
    with pytest.raises(LogFormatError, match="found no training log"):
        load(_empty_dir(tmp_path))


def _empty_dir(tmp_path: Path) -> Path:
    d = tmp_path / "emptydir"
    d.mkdir()
    return d


def test_series_helpers():
    s = Series(np.array([0, 1, 2]), np.array([1.0, np.nan, 3.0]))
    assert len(s.finite) == 2 and len(s.window(1, 3)) == 2
    log = TrainingLog({"grad_norm/fc1": s, "grad_norm/fc2": s})
    assert set(log.group("grad_norm")) == {"fc1", "fc2"}
    with pytest.raises(KeyError, match="grad_norm/fc1"):
        log.get("train/loss")


@pytest.mark.parametrize("raw,name", [
    ("loss", "train/loss"), ("val_loss", "val/loss"), ("eval_loss", "val/loss"),
    ("val_sparse_categorical_accuracy", "val/accuracy"), ("learning_rate", "lr"),
    ("train/learning_rate", "lr"), ("train/grad_norm", "grad_norm"), ("lr-Adam", "lr/Adam"),
    ("train_loss_step", "train/loss"), ("validation/epoch_loss", "val/loss"),
    ("test_acc", "test/accuracy"), ("epoch", None), ("train/train_loss", None),
])
def test_canonical_names(raw, name):
    assert canonical(raw) == name


@pytest.mark.skipif(not SHARED.exists(), reason="shared sample logs not present")
@pytest.mark.parametrize("path", sorted(p for p in SHARED.glob("*/*") if p.suffix != ".md")
                         if SHARED.exists() else [], ids=lambda p: p.name)
def test_shared_samples_load(path):
    if path.parent.name == "tensorboard":
        pytest.importorskip("tensorboard")
    log = load(path)
    assert len(log) >= 1
    assert any(n.endswith(("loss", "mse")) for n in log.names())
    for name in log.names():
        s = log.get(name)
        assert len(s) > 0 and np.all(np.diff(s.steps) > 0)


def test_directory_prefers_monitor_jsonl_over_other_jsonl(tmp_path):
    (tmp_path / "lrdoctor").mkdir()
    (tmp_path / "log.jsonl").write_text(
        '{"type": "meta", "version": 1, "every": 50}\n'
        '{"type": "scalars", "step": 0, "values": {"train/loss": 2.0}}\n')
    (tmp_path / "lrdoctor" / "journal.jsonl").write_text('{"step": 3, "cause": "plateau"}\n')
    log = load(tmp_path)
    assert log.format == "lrdoctor-jsonl" and log.source.endswith("log.jsonl")


def test_directory_prefers_rank0s_log_over_other_ranks_copies(tmp_path):
    # RankMonitor(write="all") leaves log.jsonl (rank 0) beside log.rank1.jsonl, log.rank2.jsonl
    meta = '{"type": "meta", "version": 1, "every": 50}\n'
    for name, loss in (("log.jsonl", 1.0), ("log.rank1.jsonl", 2.0), ("log.rank2.jsonl", 3.0)):
        (tmp_path / name).write_text(
            meta + f'{{"type": "scalars", "step": 0, "values": {{"train/loss": {loss}}}}}\n')
    log = load(tmp_path)
    assert log.source.endswith("log.jsonl") and log.get("train/loss").values[0] == 1.0

"""MLflow stores written by MLflow's own client (an mlruns/ file store, an SQLite store), read back."""

from __future__ import annotations

import json
import sqlite3
import sys

import pytest

from lrdoctor.cli import main
from lrdoctor.errors import LogFormatError
from lrdoctor.logs import load

mlflow = pytest.importorskip("mlflow")
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

STEPS = 30


def write_run(client: MlflowClient, experiment_id: str = "0", *, name: str = "a",
              lr: float = 0.1) -> str:
    """A short run as a training script logs it: loss every step, val_loss and epoch every
    10 steps, the lr, and one metric logged without a step."""
    run = client.create_run(experiment_id, run_name=name)
    rid, t = run.info.run_id, 1_700_000_000_000
    metrics = []
    for k in range(STEPS):
        metrics.append(Metric("loss", 2.0 / (k + 1), t + k, k))
        metrics.append(Metric("learning_rate", lr, t + k, k))
        if k % 10 == 9:
            metrics.append(Metric("val_loss", 2.5 / (k + 1), t + k, k))
            metrics.append(Metric("epoch", (k + 1) // 10, t + k, k))
    metrics.append(Metric("loss", 0.0625, t + 100, STEPS - 1))  # re-logged: the later one wins
    metrics += [Metric("val_accuracy", a, t + 200 + i, 0) for i, a in enumerate((0.5, 0.6, 0.7))]
    metrics.append(Metric("system/cpu_utilization_percentage", 50.0, t, 0))
    client.log_batch(rid, metrics=metrics)
    client.log_param(rid, "lr", str(lr))
    client.set_terminated(rid)
    return rid


@pytest.fixture
def file_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    root = tmp_path / "mlruns"
    return root, MlflowClient(tracking_uri=root.as_uri())


def check_run(log, rid):
    assert log.format == "mlflow"
    loss = log.get("train/loss")
    assert loss.steps.tolist() == list(range(STEPS))
    assert loss.values[:3].tolist() == pytest.approx([2.0, 1.0, 2 / 3])
    assert loss.values[-1] == 0.0625
    val = log.get("val/loss")
    assert val.steps.tolist() == [9, 19, 29]
    assert val.epochs.tolist() == [1, 2, 3]
    assert log.get("lr").values.tolist() == [0.1] * STEPS
    acc = log.get("val/accuracy")  # logged without steps: put at 0, 1, 2 in time order
    assert acc.steps.tolist() == [0, 1, 2] and acc.values.tolist() == [0.5, 0.6, 0.7]
    assert any("without steps" in w for w in log.warnings)
    assert not [n for n in log.names() if "system" in n or "epoch" in n]
    assert log.meta["mlflow"]["run_id"] == rid
    assert log.meta["mlflow"]["params"] == {"lr": "0.1"}


def test_mlruns_tree_and_run_folder(file_store, monkeypatch):
    root, client = file_store
    rid = write_run(client)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")  # the reader allows the file store itself
    check_run(load(root), rid)
    check_run(load(root / "0" / rid), rid)  # one run folder inside mlruns/
    check_run(load(root / "0"), rid)  # one experiment folder
    import os
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ


def test_several_runs_need_run(file_store, tmp_path, capsys):
    root, client = file_store
    first = write_run(client, name="first", lr=0.1)
    exp = client.create_experiment("other")
    second = write_run(client, exp, name="second", lr=0.2)
    with pytest.raises(LogFormatError, match="2 MLflow runs") as err:
        load(root)
    assert first in str(err.value) and second in str(err.value)
    assert load(root, run=second).get("lr").values[0] == 0.2
    assert load(root, run=second[:8]).get("lr").values[0] == 0.2  # a unique prefix
    assert load(root, run="first").get("lr").values[0] == 0.1  # the run name
    with pytest.raises(LogFormatError, match="no run matches"):
        load(root, run="nope")
    with pytest.raises(LogFormatError, match="not 'nope'"):
        load(root / "0" / first, run="nope")
    capsys.readouterr()
    assert main(["diagnose", str(root)]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error:") and "--run" in err_lines[0]
    out = tmp_path / "d.json"
    assert main(["diagnose", str(root), "--run", first, "--json", str(out), "--quiet"]) == 0
    assert {f["code"] for f in json.loads(out.read_text())["findings"]}
    assert main(["explain", str(root), "--run", first, "--quiet"]) == 0


def test_run_on_a_plain_log_is_refused(tmp_path):
    p = tmp_path / "training.log"
    p.write_text("epoch,loss\n0,1.0\n1,0.5\n")
    with pytest.raises(LogFormatError, match="neither"):
        load(p, run="abc")


def test_sqlite_store(tmp_path, capsys):
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("alembic")
    db = tmp_path / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    rid = write_run(client)
    check_run(load(db, run=rid), rid)
    check_run(load(db), rid)  # one run: no --run needed
    write_run(client, name="b")
    with pytest.raises(LogFormatError, match="2 MLflow runs"):
        load(db)
    capsys.readouterr()
    out = tmp_path / "d.json"
    assert main(["diagnose", str(db), "--run", rid, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["findings"]
    assert "Creating initial" not in capsys.readouterr().err


def fake_db(path):
    with sqlite3.connect(path) as con:
        for table in ("runs", "metrics", "experiments"):
            con.execute(f"CREATE TABLE {table} (x)")
    return path


def test_sqlite_without_sqlalchemy_says_what_to_install(tmp_path, monkeypatch, capsys):
    import lrdoctor.logs._mlflow as reader
    db = fake_db(tmp_path / "mlflow.db")
    monkeypatch.setattr(reader, "_missing_sql_modules", lambda: ["sqlalchemy", "alembic"])
    with pytest.raises(LogFormatError, match="pip install sqlalchemy alembic"):
        load(db)
    assert main(["diagnose", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sqlalchemy" in err[0]


def test_other_sqlite_files_are_not_mlflow(tmp_path):
    p = tmp_path / "other.db"
    with sqlite3.connect(p) as con:
        con.execute("CREATE TABLE t (x)")
    with pytest.raises(LogFormatError, match="binary"):
        load(p)


def test_missing_mlflow_gives_the_install_hint(file_store, monkeypatch):
    root, client = file_store
    write_run(client)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(LogFormatError, match=r"lrdoctor\[mlflow\]"):
        load(root)


def test_a_run_without_metrics(file_store):
    root, client = file_store
    run = client.create_run("0")
    client.log_param(run.info.run_id, "lr", "0.1")
    with pytest.raises(LogFormatError, match="no metrics"):
        load(root)

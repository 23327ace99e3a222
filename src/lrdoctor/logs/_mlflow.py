"""MLflow runs, read through MLflow's own client (``mlflow-skinny``'s ``MlflowClient``).

Needs the ``mlflow`` extra (``pip install 'lrdoctor[mlflow]'``); an SQLite store
(``mlflow.db``, MLflow's default since 3.7) also needs ``sqlalchemy`` and ``alembic``, which the
full ``mlflow`` package brings and ``mlflow-skinny`` does not. Three layouts are recognised:

- an SQLite store file (``mlflow.db``): one run is read, chosen with ``run=`` when it holds
  several;
- an ``mlruns/`` file store (MLflow's layout before 3.7: ``mlruns/<experiment>/<run>/``), or
  one experiment folder of it: the same choice;
- one run folder inside ``mlruns/`` (it holds ``meta.yaml`` and ``metrics/``).

Every metric's whole history is read (``get_metric_history``), each point at its logged step;
points logged twice at one step keep the later one. A metric whose points were all logged
without a step (MLflow then stores step 0) is put at steps 0, 1, 2, … in time order, with a
warning. Names are mapped with :func:`lrdoctor.logs.canonical`; an ``epoch`` metric becomes the
epoch of the points logged at the same step; ``system/*`` metrics (MLflow's system monitor) are
skipped. ``run=`` takes a run id, a unique prefix of one, or a unique run name.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lrdoctor.errors import LogFormatError
from lrdoctor.logs._model import LogBuilder, TrainingLog
from lrdoctor.logs._names import canonical

__all__ = ["is_mlflow", "read_mlflow"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_HINT = "pip install 'lrdoctor[mlflow]'"
_SQL_HINT = "pip install sqlalchemy alembic (or the full mlflow package)"


def is_mlflow(path: Path) -> bool:
    """True for an MLflow SQLite store, an ``mlruns/`` tree, an experiment or a run folder of
    one (checked from the files alone, without importing mlflow)."""
    if path.is_file():
        return _is_mlflow_db(path)
    return path.is_dir() and _layout(path) is not None


def _is_mlflow_db(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            if fh.read(16) != _SQLITE_MAGIC:
                return False
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro",
                                                uri=True)) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except (OSError, sqlite3.Error):
        return False
    return {"runs", "metrics", "experiments"} <= tables


def _meta(path: Path) -> dict[str, str]:
    """The flat ``key: value`` lines of an MLflow ``meta.yaml`` (enough to tell what it is)."""
    out: dict[str, str] = {}
    try:
        text = (path / "meta.yaml").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines()[:200]:
        if ":" in line and not line.startswith((" ", "\t", "-")):
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip().strip("'\"")
    return out


def _layout(path: Path) -> tuple[str, Path, str | None] | None:
    """``(kind, tracking root, run id or experiment id)`` of an MLflow folder, else None."""
    meta = _meta(path)
    if ("run_id" in meta or "run_uuid" in meta) and (path / "metrics").is_dir():
        return "run", path.parent.parent, meta.get("run_id") or meta.get("run_uuid")
    if "experiment_id" in meta and "artifact_location" in meta:
        return "experiment", path.parent, meta["experiment_id"]
    try:
        children = [c for c in path.iterdir() if c.is_dir()]
    except OSError:
        return None
    if any("experiment_id" in _meta(c) for c in children[:1000]):
        return "tree", path, None
    return None


@contextlib.contextmanager
def _file_store_allowed() -> Iterator[None]:
    """MLflow 3 refuses the ``mlruns/`` file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set;
    reading old runs is what it is kept for, so allow it for the duration of the read."""
    old = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = old


def _client(uri: str, path: Path) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as err:
        raise LogFormatError(f"{path} is an MLflow store; reading it needs mlflow: {_HINT}") from err
    if uri.startswith("sqlite:"):
        missing = _missing_sql_modules()
        if missing:
            raise LogFormatError(f"{path} is an MLflow SQLite store; reading it needs "
                                 f"{' and '.join(missing)}, which mlflow-skinny lacks: {_SQL_HINT}")
    return MlflowClient(tracking_uri=uri)


def _missing_sql_modules() -> list[str]:
    """What MLflow's SQLite store needs and this environment lacks (mlflow-skinny has neither)."""
    import importlib.util
    return [m for m in ("sqlalchemy", "alembic") if importlib.util.find_spec(m) is None]


def read_mlflow(path: Path, *, run: str | None = None) -> TrainingLog:
    """Read one run of an MLflow store (see the module docstring for the layouts)."""
    import logging
    if path.is_file():
        if not _is_mlflow_db(path):
            raise LogFormatError(f"{path} is not an MLflow SQLite store (no runs/metrics tables)")
        uri, kind, key = f"sqlite:///{path.resolve()}", "db", None
    else:
        found = _layout(path)
        if found is None:
            raise LogFormatError(f"{path} is not an MLflow run, experiment or mlruns/ folder")
        kind, root, key = found
        uri = root.resolve().as_uri()
    # alembic and mlflow announce schema checks on INFO; keep them out of the CLI's output
    quiet = [logging.getLogger(n) for n in ("alembic", "mlflow")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.WARNING)
    try:
        with _file_store_allowed():
            client = _client(uri, path)
            try:
                chosen = _choose(client, path, kind, key, run)
                return _read_run(client, chosen, path)
            except LogFormatError:
                raise
            except Exception as err:  # mlflow raises MlflowException and store-specific errors
                raise LogFormatError(f"{path}: MLflow could not read it "
                                     f"({type(err).__name__}: {_first_line(err)})") from err
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else "no message"


def _choose(client: Any, path: Path, kind: str, key: str | None, run: str | None) -> Any:
    if kind == "run":
        if run is not None and not str(key).startswith(run):
            raise LogFormatError(f"{path} is the MLflow run {key}, not {run!r}; drop --run or "
                                 "pass the mlruns/ folder")
        return client.get_run(key)
    from mlflow.entities import ViewType
    if kind == "experiment":
        experiment_ids = [key]
    else:
        experiment_ids = [e.experiment_id for e in client.search_experiments(
            view_type=ViewType.ACTIVE_ONLY)]
    runs = list(client.search_runs(experiment_ids, max_results=50000,
                                   run_view_type=ViewType.ACTIVE_ONLY,
                                   order_by=["attributes.start_time ASC"])) if experiment_ids else []
    if not runs:
        raise LogFormatError(f"{path} holds no MLflow runs yet")
    if run is None:
        if len(runs) == 1:
            return runs[0]
        ids = ", ".join(f"{r.info.run_id} ({r.info.run_name})" for r in runs[:10])
        more = f" and {len(runs) - 10} more" if len(runs) > 10 else ""
        raise LogFormatError(f"{path} holds {len(runs)} MLflow runs; choose one with --run ID "
                             f"(run=ID in Python): {ids}{more}")
    exact = [r for r in runs if r.info.run_id == run]
    matches = exact or [r for r in runs if r.info.run_id.startswith(run)] or [
        r for r in runs if r.info.run_name == run]
    if len(matches) == 1:
        return matches[0]
    ids = ", ".join(r.info.run_id for r in (matches or runs)[:10])
    what = "several runs match" if matches else "no run matches"
    raise LogFormatError(f"{path}: {what} --run {run!r}; pass a full run id: {ids}")


def _read_run(client: Any, run: Any, path: Path) -> TrainingLog:
    b = LogBuilder()
    run_id = run.info.run_id
    keys = sorted(run.data.metrics)
    histories = {k: sorted(client.get_metric_history(run_id, k),
                           key=lambda m: (m.step, m.timestamp)) for k in keys}
    epoch_of = {m.step: m.value for m in histories.pop("epoch", [])}
    for key, points in histories.items():
        if key.startswith("system/"):
            continue
        name = canonical(key)
        if name is None or not points:
            continue
        steps = [m.step for m in points]
        if len(points) > 1 and not any(steps):
            b.warn(f"MLflow metric {key!r} was logged without steps; its {len(points)} points "
                   "are put at steps 0, 1, 2, … in the order they were logged")
            points = sorted(points, key=lambda m: m.timestamp)
            steps = list(range(len(points)))
        for step, m in zip(steps, points):
            b.add(name, step, m.value, epoch_of.get(step))
    log = b.build(source=str(path), format="mlflow", step_unit="step",
                  meta={"mlflow": {"run_id": run_id, "run_name": run.info.run_name,
                                   "experiment_id": run.info.experiment_id,
                                   "status": run.info.status,
                                   "params": dict(run.data.params)}})
    if not len(log):
        raise LogFormatError(f"{path}: the MLflow run {run_id} has no metrics logged")
    return log

"""Weights & Biases runs on disk (offline or synced), read with wandb's own transaction-log reader.

Needs the ``wandb`` extra (``pip install 'lrdoctor[wandb]'``). A run's records live in
``wandb/<offline-run|run>-<date>-<id>/run-<id>.wandb``, a transaction log that only wandb's
Go core (``wandb-core``) decodes in wandb 0.31 (the Python ``datastore`` module is gone). It is
read through wandb's record printer (``wandb leet inspect --json FILE``: its ``wandb-core``
binary, called directly), which prints one JSON record a line; its ``history`` records (one per ``wandb.log`` commit) are the series.

Steps: a row's ``train/global_step`` / ``trainer/global_step`` / ``global_step`` (logged by the HF
and Lightning integrations, whose ``_step`` counts log calls, not optimizer steps) when present,
else wandb's ``_step``. An ``epoch`` / ``train/epoch`` value becomes the row's epoch. Nested keys
(``{"train": {"loss": 1}}``, stored as ``train.loss``) and the other names are mapped with
:func:`lrdoctor.logs.canonical`; wandb's own ``_runtime``/``_timestamp`` and non-numeric values
(media, tables, text) are skipped. A run killed mid-write is read up to its last whole record.
PATH may be the ``.wandb`` file, its run folder, or a ``wandb/`` folder (one run: read it;
several: ``run=`` picks one by id or folder name).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from lrdoctor.errors import LogFormatError
from lrdoctor.logs._model import LogBuilder, TrainingLog
from lrdoctor.logs._names import canonical

__all__ = ["is_wandb", "read_wandb"]

_MAGIC = b":W&B"
_HINT = "pip install 'lrdoctor[wandb]'"
_STEP_KEYS = ("train/global_step", "trainer/global_step", "global_step", "train.global_step")
_EPOCH_KEYS = ("epoch", "train/epoch", "train.epoch", "trainer/epoch")
_TIMEOUT_S = 600.0


def _is_run_file(path: Path) -> bool:
    if path.suffix != ".wandb" or not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == _MAGIC
    except OSError:
        return False


def _run_file_in(folder: Path) -> Path | None:
    try:
        files = sorted(f for f in folder.glob("run-*.wandb") if _is_run_file(f))
    except OSError:
        return None
    return files[-1] if files else None


def _runs_in(folder: Path) -> list[tuple[str, Path]]:
    """``(run folder name, .wandb file)`` of every run folder directly under ``folder``."""
    out = []
    try:
        children = sorted(c for c in folder.iterdir() if c.is_dir() and not c.is_symlink()
                          and c.name.startswith(("run-", "offline-run-")))
    except OSError:
        return []
    for child in children:
        f = _run_file_in(child)
        if f is not None:
            out.append((child.name, f))
    return out


def is_wandb(path: Path) -> bool:
    """True for a ``.wandb`` run file, a run folder holding one, or a ``wandb/`` folder of runs."""
    if path.is_file():
        return _is_run_file(path)
    return path.is_dir() and (_run_file_in(path) is not None or bool(_runs_in(path)))


def _run_id(folder_name: str) -> str:
    return folder_name.rsplit("-", 1)[-1]


def _choose(path: Path, run: str | None) -> Path:
    if path.is_file():
        return path
    own = _run_file_in(path)
    if own is not None:
        if run is not None and run not in (path.name, _run_id(path.name)):
            raise LogFormatError(f"{path} is the W&B run {_run_id(path.name)}, not {run!r}; "
                                 "drop --run or pass the wandb/ folder")
        return own
    runs = _runs_in(path)
    if run is None:
        if len(runs) == 1:
            return runs[0][1]
        names = ", ".join(_run_id(n) for n, _ in runs[:10])
        more = f" and {len(runs) - 10} more" if len(runs) > 10 else ""
        raise LogFormatError(f"{path} holds {len(runs)} W&B runs; choose one with --run ID "
                             f"(run=ID in Python): {names}{more}")
    matches = [f for n, f in runs if run in (n, _run_id(n))]
    if len(matches) == 1:
        return matches[0]
    names = ", ".join(_run_id(n) for n, _ in runs[:10])
    raise LogFormatError(f"{path}: {'several runs match' if matches else 'no run matches'} "
                         f"--run {run!r}; its runs: {names}")


def _inspect_command(file: Path) -> list[str]:
    """wandb's record printer: the ``wandb-core`` binary that ``wandb leet inspect`` runs, called
    with the arguments that command gives it (saves importing wandb, about a second), or the
    command itself where the binary is not at its usual place."""
    import importlib.util
    try:
        spec = importlib.util.find_spec("wandb")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise LogFormatError(f"{file} is a W&B run; reading it needs wandb: {_HINT}")
    core = Path(spec.origin).parent / "bin" / "wandb-core"
    file = file.resolve()
    if core.is_file() and os.access(core, os.X_OK):
        return [str(core), "leet", "inspect", "--json", "--no-observability",
                "--run-file", str(file), str(file.parent.parent)]
    return [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(file)]


def _records(file: Path) -> tuple[list[dict[str, Any]], str]:
    """The ``history`` records of a run file, decoded by wandb, and wandb's stderr."""
    cmd = _inspect_command(file)
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true",
               WANDB_ERROR_REPORTING="false", WANDB_DISABLE_CODE="true")
    rows: list[dict[str, Any]] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                          stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if b'"type":"history"' not in line[:80]:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            history = record.get("history")
            if isinstance(history, dict) and isinstance(history.get("item"), dict):
                rows.append(history)
        try:
            err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
            proc.wait(timeout=_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise LogFormatError(f"{file}: wandb's reader did not finish") from None
    if proc.returncode != 0 and not rows:
        last = next((ln for ln in reversed(err.strip().splitlines()) if ln.strip()), "")
        raise LogFormatError(f"{file}: wandb could not read this run file "
                             f"({last.strip()[:300] or f'exit status {proc.returncode}'})")
    return rows, err


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v in ("NaN", "Infinity", "-Infinity"):
        return float(v.replace("Infinity", "inf"))
    return None


def read_wandb(path: Path, *, run: str | None = None) -> TrainingLog:
    """Read one W&B run (a ``.wandb`` file, its run folder, or a ``wandb/`` folder)."""
    file = _choose(path, run)
    rows, err = _records(file)
    b = LogBuilder()
    if "incomplete" in err:
        b.warn(f"{file} ends in an incomplete record (the run was still writing, or was killed); "
               "read the records before it")
    names: dict[str, str | None] = {}
    for row in rows:
        item = row["item"]
        step = next((_number(item[k]) for k in _STEP_KEYS if k in item), None)
        if step is None:
            step = _number(item.get("_step"))
        if step is None:
            step = _number((row.get("step") or {}).get("num"))
        if step is None:
            continue
        epoch = next((_number(item[k]) for k in _EPOCH_KEYS if k in item), None)
        for key, value in item.items():
            if key not in names:
                names[key] = (None if key.startswith("_") or key in _STEP_KEYS
                              or key in _EPOCH_KEYS else canonical(key))
            name = names[key]
            v = _number(value)
            if name is not None and v is not None:
                b.add(name, step, v, epoch)
    log = b.build(source=str(path), format="wandb", step_unit="step",
                  meta={"wandb": {"run_id": _run_id(file.parent.name), "file": str(file)}})
    if not len(log):
        raise LogFormatError(f"{file}: the W&B run has no numeric history logged yet")
    return log

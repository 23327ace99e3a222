"""CSV readers: Keras CSVLogger / history CSV, Lightning CSVLogger ``metrics.csv``, generic CSV.

The x axis is the ``step`` column when there is one (Lightning), else the ``epoch`` column
(Keras; ``step_unit == "epoch"``), else the row number. Empty cells are "not logged here"
(Lightning writes sparse rows); ``nan``/``inf`` cells are kept as NaN/Inf (they are evidence).
A Keras file whose epoch column restarts (several runs appended to one file) keeps the last run
and warns. A truncated last row is dropped with a warning.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from lrdoctor.errors import LogFormatError
from lrdoctor.logs._model import LogBuilder, TrainingLog
from lrdoctor.logs._names import canonical

__all__ = ["read_csv"]

_STEP_COLS = ("step", "global_step", "iteration", "iter", "batch")


def _num(text: str) -> float | None:
    t = text.strip()
    if not t:
        return None
    try:
        return float(t)
    except ValueError:
        low = t.lower()
        if low in {"nan", "-nan", "none", "null"}:
            return math.nan
        if t.startswith("tensor(") and t.endswith(")"):  # str(tensor) written by hand
            return _num(t[7:-1].split(",")[0])
        return None


def read_csv(path: Path, *, text: str | None = None) -> TrainingLog:
    """Read a Keras, Lightning or generic CSV training log."""
    if text is None:
        text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise LogFormatError(f"{path} is empty: nothing was logged yet, or the wrong file was given")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text.replace("\x00", "")), dialect))
    except csv.Error as err:
        raise LogFormatError(f"{path} is not a readable CSV ({err}); expected a header row "
                             "such as epoch,loss,val_loss and one row per log point") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise LogFormatError(f"{path} holds no rows: nothing was logged yet, or the wrong file "
                             "was given")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    b = LogBuilder()
    if not body:
        raise LogFormatError(f"{path} holds a header ({', '.join(header[:6])}) but no rows: "
                             "the run logged nothing yet")
    if all(_num(h) is not None for h in header if h):
        raise LogFormatError(f"{path} has no header row: a training-log CSV needs column names "
                             "such as epoch,loss,val_loss")
    if len(body[-1]) < len(header):
        b.warn(f"{path}: the last row has {len(body[-1])} of {len(header)} fields "
               "(file truncated while writing?); ignored it")
        body = body[:-1]
    low = [h.lower() for h in header]
    step_col = next((low.index(c) for c in _STEP_COLS if c in low), None)
    epoch_col = low.index("epoch") if "epoch" in low else None
    flavor = "lightning-csv" if step_col is not None and low[step_col] == "step" else "csv"
    if step_col is None and epoch_col is not None:
        flavor = "keras-csv"
    step_unit = "step" if step_col is not None or epoch_col is None else "epoch"

    if flavor == "keras-csv":
        body = _last_run(path, body, epoch_col, b)

    names: dict[int, str] = {}
    for i, h in enumerate(header):
        if i in (step_col, epoch_col):
            continue
        name = canonical(h)
        if name is None:
            continue
        if name in names.values():
            b.warn(f"{path}: columns {h!r} and another both map to {name!r}; keeping the first")
            continue
        names[i] = name
    if not names:
        raise LogFormatError(f"{path}: no metric columns found among {', '.join(header[:8])}; "
                             "expected names such as loss, val_loss, accuracy, lr")
    bad = 0
    cols: dict[int, tuple[list[float], list[float], list[float]]] = {i: ([], [], []) for i in names}
    nan = math.nan
    for r, row in enumerate(body):
        step = _num(row[step_col]) if step_col is not None and step_col < len(row) else None
        epoch = _num(row[epoch_col]) if epoch_col is not None and epoch_col < len(row) else None
        x = step if step_col is not None else (epoch if epoch_col is not None else float(r))
        if x is None or not math.isfinite(x):
            continue  # e.g. a Lightning row without a step: it cannot be placed
        e = nan if epoch is None else epoch
        for i, (cs, cv, ce) in cols.items():
            if i >= len(row) or not row[i]:
                continue
            try:
                v = float(row[i])
            except ValueError:
                v = _num(row[i])
                if v is None:
                    bad += bool(row[i].strip())
                    continue
            cs.append(x)
            cv.append(v)
            ce.append(e)
    for i, (cs, cv, ce) in cols.items():
        if cs:
            b.extend(names[i], cs, cv, ce)
    if bad:
        b.warn(f"{path}: {bad} cells were not numbers; ignored them")
    log = b.build(source=str(path), format=flavor, step_unit=step_unit)
    _prefer_step_series(log)
    return log


def _last_run(path: Path, body: list[list[str]], col: int, b: LogBuilder) -> list[list[str]]:
    """Keep the rows after the last restart of the epoch column."""
    starts = [0]
    prev = None
    for r, row in enumerate(body):
        e = _num(row[col]) if col < len(row) else None
        if e is not None and prev is not None and e <= prev:
            starts.append(r)
        if e is not None:
            prev = e
    if len(starts) > 1:
        b.warn(f"{path}: the epoch column restarts {len(starts) - 1} times (several runs "
               f"appended to one file); kept the last run ({len(body) - starts[-1]} rows)")
    return body[starts[-1]:]


def _prefer_step_series(log: TrainingLog) -> None:
    """Lightning: when only ``<metric>_epoch`` exists, call it ``<metric>``."""
    for name in list(log.names()):
        if name.endswith("_epoch"):
            base = name[:-6]
            if base not in log:
                log._series[base] = log._series.pop(name)

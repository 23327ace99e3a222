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
import operator
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lrdoctor.errors import LogFormatError
from lrdoctor.logs._model import LogBuilder, TrainingLog
from lrdoctor.logs._names import canonical

__all__ = ["read_csv"]

_STEP_COLS = ("step", "global_step", "iteration", "iter", "batch")


def _num(text: str) -> float | None:
    t = text.strip()
    while t.startswith("tensor(") and t.endswith(")"):  # str(tensor) written by hand
        t = t[7:-1].split(",")[0].strip()
    if not t:
        return None
    try:
        return float(t)
    except ValueError:
        if t.lower() in {"nan", "-nan", "none", "null"}:
            return math.nan
        return None


def _delimiter(text: str) -> str:
    """The header line's most frequent of ``,``, ``;`` and tab (``,`` when it has none): a
    cut-off or odd body cannot change how the file is split."""
    head = text.lstrip("\r\n").split("\n", 1)[0]
    counts = {d: head.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _column(cells: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A column's numbers (NaN where there is none), which cells hold one, and which hold
    something that is not a number. Empty cells are "not logged here", not bad."""
    try:
        values = np.array(cells, dtype=np.float64)
        return values, np.ones(len(values), dtype=bool), np.zeros(len(values), dtype=bool)
    except ValueError:  # an empty or odd cell somewhere: cell by cell
        pass
    values = np.full(len(cells), np.nan)
    present = np.zeros(len(cells), dtype=bool)
    not_numbers = np.zeros(len(cells), dtype=bool)
    for r, cell in enumerate(cells):
        if not cell:
            continue
        v = _num(cell)
        if v is None:
            not_numbers[r] = bool(cell.strip())
        else:
            values[r], present[r] = v, True
    return values, present, not_numbers


def read_csv(path: Path, *, text: str | None = None) -> TrainingLog:
    """Read a Keras, Lightning or generic CSV training log."""
    if text is None:
        text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise LogFormatError(f"{path} is empty: nothing was logged yet, or the wrong file was given")
    text = text.replace("\x00", "")  # a NUL-padded tail (power loss) is not data
    # a file a kill or a full disk cut short ends inside its last row: that row may hold a cut
    # number ("2.5" read as "2."), so it is dropped; every writer ends its rows with a newline
    cut = not text.rstrip(" \t").endswith(("\n", "\r"))
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=_delimiter(text)))
    except csv.Error as err:
        raise LogFormatError(f"{path} is not a readable CSV ({err}); expected a header row "
                             "such as epoch,loss,val_loss and one row per log point") from None
    rows = [r for r in rows if "".join(r).strip()]
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
    last_line = text.rstrip().count("\n") + 1
    if len(body[-1]) < len(header):
        b.warn(f"{path}: the last row (line {last_line}) has {len(body[-1])} of {len(header)} "
               "fields (file truncated while writing?); ignored it")
        body = body[:-1]
    elif cut:
        b.warn(f"{path}: the last row (line {last_line}) has no line end (file truncated while "
               "writing?); ignored it")
        body = body[:-1]
    if not body:
        raise LogFormatError(f"{path} holds a header ({', '.join(header[:6])}) and one row "
                             "without a line end (cut off while writing?); if that row is "
                             "complete, end it with a newline")
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
    # column by column: one numpy conversion per column, per cell only where it fails
    width = len(header)
    for row in body:
        if len(row) < width:  # a short row: its missing cells are not logged here
            row.extend([""] * (width - len(row)))

    def column(i: int) -> list[str]:
        return list(map(operator.itemgetter(i), body))

    if step_col is not None:
        x = _column(column(step_col))[0]
    elif epoch_col is not None:
        x = _column(column(epoch_col))[0]
    else:
        x = np.arange(len(body), dtype=np.float64)
    placed = np.isfinite(x)  # e.g. a Lightning row without a step cannot be placed
    epochs = (_column(column(epoch_col))[0] if epoch_col is not None
              else np.full(len(body), np.nan))
    bad = 0
    for i, name in names.items():
        values, present, not_numbers = _column(column(i))
        keep = placed & present
        bad += int(np.count_nonzero(placed & not_numbers))
        if keep.any():
            b.extend(name, x[keep], values[keep], epochs[keep])
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

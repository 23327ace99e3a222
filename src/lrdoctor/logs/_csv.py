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
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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


Cells = tuple[np.ndarray, np.ndarray, np.ndarray]


class _Table:
    """A CSV's header and body rows ``lo:hi``; :meth:`column` gives one column's numbers, which
    cells hold one and which hold something that is not a number (see :func:`_column`)."""

    def __init__(self, header: list[str], n: int, last_width: int,
                 column: Callable[[int], Cells]) -> None:
        self.header, self.last_width, self._column = header, last_width, column
        self.lo, self.hi = 0, n

    def __len__(self) -> int:
        return self.hi - self.lo

    def column(self, i: int) -> Cells:
        return tuple(a[self.lo:self.hi] for a in self._column(i))  # type: ignore[return-value]


def _pure_table(path: Path, text: str, delimiter: str) -> _Table:
    """The standard library's csv reader; numbers a column at a time with numpy."""
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as err:
        raise LogFormatError(f"{path} is not a readable CSV ({err}); expected a header row "
                             "such as epoch,loss,val_loss and one row per log point") from None
    rows = [r for r in rows if "".join(r).strip()]
    if not rows:
        raise LogFormatError(f"{path} holds no rows: nothing was logged yet, or the wrong file "
                             "was given")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    last_width = len(body[-1]) if body else len(header)
    width = len(header)
    for row in body:
        if len(row) < width:  # a short row: its missing cells are not logged here
            row.extend([""] * (width - len(row)))
    return _Table(header, len(body), last_width,
                  lambda i: _column(list(map(operator.itemgetter(i), body))))


def _fast_table(text: str, delimiter: str) -> _Table | None:
    """The same through pyarrow's CSV reader (the ``fast`` extra), or None where it would read
    the file differently: a cell that is not a plain number, a short or long row, a quoted line
    break. Empty cells are "not logged here", as above; rows with no cell are dropped."""
    if not _pyarrow():
        return None
    first = _FILLED.search(text)
    end = text.find("\n", first.start()) if first else -1
    if end < 0:
        return None
    try:
        header = [h.strip() for h in next(csv.reader([text[first.start():end]],
                                                     delimiter=delimiter))]
    except (csv.Error, StopIteration):
        return None
    try:
        table = _pa_csv.read_csv(
            io.BytesIO(text[end + 1:].encode("utf-8")),
            read_options=_pa_csv.ReadOptions(column_names=[f"c{k}" for k in range(len(header))]),
            parse_options=_pa_csv.ParseOptions(delimiter=delimiter),
            convert_options=_pa_csv.ConvertOptions(null_values=[""], strings_can_be_null=False,
                                                   quoted_strings_can_be_null=False))
    except (_pa.ArrowInvalid, ValueError):
        return None
    if not all(_pa.types.is_integer(t) or _pa.types.is_floating(t) or _pa.types.is_null(t)
               for t in table.schema.types):
        return None
    cols = []
    for chunked in table.columns:
        present = ~np.asarray(chunked.is_null(), dtype=bool) if chunked.null_count else \
            np.ones(len(chunked), dtype=bool)
        values = (np.full(len(present), np.nan) if _pa.types.is_null(chunked.type) else
                  np.asarray(chunked.cast(_pa.float64()).to_numpy(), dtype=np.float64))
        cols.append((values, present, np.zeros(len(present), dtype=bool)))
    keep = np.logical_or.reduce([c[1] for c in cols]) if cols else np.zeros(0, dtype=bool)
    if not keep.all():  # rows of empty cells only: not rows (as the csv reader's path drops them)
        cols = [tuple(a[keep] for a in c) for c in cols]
    return _Table(header, int(keep.sum()), len(header), lambda i: cols[i])


_FILLED = re.compile(r"[^\r\n \t]")

_pa: Any = None
_pa_csv: Any = None


def _pyarrow() -> bool:
    """Import pyarrow (the ``fast`` extra) at the first CSV, not with ``import lrdoctor``; False
    without it (the standard library then reads the same numbers)."""
    global _pa, _pa_csv
    if _pa_csv is None and _pa is None:
        try:
            import pyarrow
            import pyarrow.csv
        except ImportError:  # pragma: no cover
            _pa = False
            return False
        _pa, _pa_csv = pyarrow, pyarrow.csv
    return bool(_pa_csv)


def read_csv(path: Path, *, text: str | None = None, fast: bool = True) -> TrainingLog:
    """Read a Keras, Lightning or generic CSV training log (``fast=False``: without pyarrow)."""
    if text is None:
        text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise LogFormatError(f"{path} is empty: nothing was logged yet, or the wrong file was given")
    if "\x00" in text:
        text = text.replace("\x00", "")  # a NUL-padded tail (power loss) is not data
    # a file a kill or a full disk cut short ends inside its last row: that row may hold a cut
    # number ("2.5" read as "2."), so it is dropped; every writer ends its rows with a newline
    cut = not text.rstrip(" \t").endswith(("\n", "\r"))
    delimiter = _delimiter(text)
    table = (_fast_table(text, delimiter) if fast else None) or _pure_table(path, text, delimiter)
    header = table.header
    b = LogBuilder()
    if not len(table):
        raise LogFormatError(f"{path} holds a header ({', '.join(header[:6])}) but no rows: "
                             "the run logged nothing yet")
    if all(_num(h) is not None for h in header if h):
        raise LogFormatError(f"{path} has no header row: a training-log CSV needs column names "
                             "such as epoch,loss,val_loss")
    last_line = text.rstrip().count("\n") + 1
    if table.last_width < len(header):
        b.warn(f"{path}: the last row (line {last_line}) has {table.last_width} of {len(header)} "
               "fields (file truncated while writing?); ignored it")
        table.hi -= 1
    elif cut:
        b.warn(f"{path}: the last row (line {last_line}) has no line end (file truncated while "
               "writing?); ignored it")
        table.hi -= 1
    if not len(table):
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
        assert epoch_col is not None
        _last_run(path, table, epoch_col, b)

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
    if step_col is not None:
        x = table.column(step_col)[0]
    elif epoch_col is not None:
        x = table.column(epoch_col)[0]
    else:
        x = np.arange(len(table), dtype=np.float64)
    placed = np.isfinite(x)  # e.g. a Lightning row without a step cannot be placed
    epochs = (table.column(epoch_col)[0] if epoch_col is not None
              else np.full(len(table), np.nan))
    bad = 0
    for i, name in names.items():
        values, present, not_numbers = table.column(i)
        keep = placed & present
        bad += int(np.count_nonzero(placed & not_numbers))
        if keep.any():
            b.extend(name, x[keep], values[keep], epochs[keep])
    if bad:
        b.warn(f"{path}: {bad} cells were not numbers; ignored them")
    log = b.build(source=str(path), format=flavor, step_unit=step_unit)
    _prefer_step_series(log)
    return log


def _last_run(path: Path, table: _Table, col: int, b: LogBuilder) -> None:
    """Keep the rows after the last restart of the epoch column: a row whose epoch is not above
    the one before it (the last row that has an epoch)."""
    e, has, _ = table.column(col)
    rows = np.flatnonzero(has)
    if len(rows) < 2:
        return
    restarts = rows[1:][e[rows[1:]] <= e[rows[:-1]]]
    if len(restarts):
        b.warn(f"{path}: the epoch column restarts {len(restarts)} times (several runs "
               f"appended to one file); kept the last run ({len(table) - restarts[-1]} rows)")
        table.lo += int(restarts[-1])


def _prefer_step_series(log: TrainingLog) -> None:
    """Lightning: when only ``<metric>_epoch`` exists, call it ``<metric>``."""
    for name in list(log.names()):
        if name.endswith("_epoch"):
            base = name[:-6]
            if base not in log:
                log._series[base] = log._series.pop(name)

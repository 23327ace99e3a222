"""JSON readers: HF ``trainer_state.json``, Keras History JSON, and JSON Lines (ours, or generic).

Our JSONL (written by :class:`lrdoctor.torch.Monitor`), one object a line::

    {"type": "meta", "version": 1, "every": 25, ...}
    {"type": "scalars", "step": 12, "epoch": 0.5, "values": {"train/loss": 2.31, "lr/0": 0.1}}
    {"type": "event", "step": 0, "code": "loss-activation-mismatch", "message": "...", "data": {}}

A generic JSONL line without ``type`` is read as ``{"step": …, "epoch": …, <metric>: value}``.
A truncated last line (the run was killed mid-write) is ignored with a warning; a truncated
``trainer_state.json`` is read up to its last complete ``log_history`` entry.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lrdoctor.errors import LogFormatError
from lrdoctor.logs import _columnar, _typed
from lrdoctor.logs._columnar import Columns
from lrdoctor.logs._model import Event, LogBuilder, TrainingLog
from lrdoctor.logs._names import canonical

__all__ = ["read_hf_state", "read_json", "read_jsonl", "read_keras_history"]

_HF_SUMMARY = {"train_runtime", "total_flos"}
_HF_META = ("global_step", "max_steps", "num_train_epochs", "logging_steps", "eval_steps",
            "train_batch_size", "best_metric", "best_model_checkpoint")


#: What a parse of damaged JSON can raise: a syntax error, nesting deeper than the parser
#: goes, an integer with more digits than Python converts.
_BAD_JSON = (ValueError, RecursionError)


def _loads(text: str) -> Any:
    """``json.loads``, through orjson when it is installed (the ``fast`` extra) and the text is
    strict JSON (orjson refuses the NaN/Infinity that Python's json writes: then json reads it)."""
    if _orjson is not None:
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(text)


try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - the fast extra is optional
    _orjson = None


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, float):
        return v
    if isinstance(v, int):
        try:
            return float(v)
        except OverflowError:  # an integer beyond float range
            return math.inf if v > 0 else -math.inf
    if isinstance(v, str) and v.strip().lower() in {"nan", "inf", "-inf", "infinity", "-infinity"}:
        return float(v.strip().lower().replace("infinity", "inf"))
    return None


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Cyclic GC paused while a parse builds millions of dicts that hold no cycles (each
    collection would walk all of them: a 1M-line file parses twice as fast without)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def read_json(path: Path, text: str, *, raw: bytes | None = None) -> TrainingLog:
    """A whole-file JSON log: HF trainer state or Keras History. ``raw``: the file's bytes, when
    ``text`` is exactly their UTF-8 (a big ``trainer_state.json`` is then read a column at a
    time, :func:`lrdoctor.logs._columnar.hf_history`)."""
    with _no_gc():
        if raw is not None and len(raw) >= _columnar.FAST_FROM and b'"log_history"' in raw:
            # polars only: the msgspec reader (_typed.hf_history) declined the 1M-step P6 file
            # after 0.6 s (HF total 2.65 s vs 1.6 s with polars alone, 2026-12-07 22:58), cause
            # not found yet, so it is not tried here until it reads that file
            got = _columnar.hf_history(raw, _loads)
            if got is not None:
                rest, groups, count = got
                return read_hf_state(path, rest, fast=(groups, count))
        return _read_json(path, text)


def _read_json(path: Path, text: str) -> TrainingLog:
    try:
        data = _loads(text)
    except _BAD_JSON as err:
        if '"log_history"' in text:
            return read_hf_state(path, None, text=text)
        where = (f"{err.msg} at line {err.lineno}, column {err.colno}"
                 if isinstance(err, json.JSONDecodeError) else
                 "nested too deeply" if isinstance(err, RecursionError) else " ".join(str(err).split()))
        raise LogFormatError(f"{path} is not valid JSON ({where}); if it was cut off, re-save it "
                             "or pass the run's JSONL/CSV log instead") from None
    if isinstance(data, dict) and "log_history" in data:
        return read_hf_state(path, data)
    if isinstance(data, dict) and _history_like(data.get("history", data)):
        return read_keras_history(path, data)
    if isinstance(data, list) and data and all(isinstance(d, dict) for d in data):
        return _read_records(path, data, fmt="json-records")
    raise LogFormatError(f"{path}: JSON that is neither a trainer_state.json (log_history) nor a "
                         "Keras History ({metric: [values per epoch]})")


def _history_like(d: Any) -> bool:
    return (isinstance(d, dict) and bool(d)
            and all(isinstance(v, list) for v in d.values())
            and any(v and all(_number(x) is not None for x in v) for v in d.values()))


def read_hf_state(path: Path, data: dict | None, *, text: str = "",
                  columnar: bool | None = None,
                  fast: tuple[list[Columns], int] | None = None) -> TrainingLog:
    """Hugging Face ``trainer_state.json``: entries of ``log_history`` keyed by ``step`` (read
    a column at a time from COLUMNAR_FROM entries on, or as ``columnar`` says). ``fast``: the
    entries already read into columns (their groups and count; ``data`` holds the rest)."""
    b = LogBuilder()
    if fast is not None:
        groups, count = fast
        # as below: the training summary and step-less entries are not points
        keep = [g for g in groups if not _HF_SUMMARY & set(g.keys) and "step" in g.keys]
        index = np.zeros(count, dtype=bool)
        for g in keep:
            index[g.at] = True
        position = np.cumsum(index) - 1  # an entry's number among the points
        keep = [Columns(g.keys, g.vkeys, position[g.at], g.steps, g.has_step, g.epochs,
                        g.has_epoch, g.columns) for g in keep]
        _add_columns(b, [], [], {"step": None, "epoch": None}, nested=False, more=keep)
        data = {**data, "log_history": []}
    if data is None:
        history = _salvage_log_history(text)
        b.warn(f"{path} is cut off; read the {len(history)} complete log_history entries")
        data = {"log_history": history}
    history = data.get("log_history") if fast is None else []
    if not isinstance(history, list):
        raise LogFormatError(f"{path}: log_history is not a list")
    # the end-of-training summary repeats an average loss: not a point; nor is a step-less entry
    points = [e for e in history if isinstance(e, dict) and not _HF_SUMMARY & e.keys()
              and _number(e.get("step")) is not None]
    if columnar or (columnar is None and len(points) >= COLUMNAR_FROM):
        _add_columns(b, points, range(len(points)), {"step": None, "epoch": None}, nested=False)
        points = []
    for entry in points:
        step = _number(entry.get("step"))
        epoch = _number(entry.get("epoch"))
        for key, value in entry.items():
            if key in ("step", "epoch"):
                continue
            v = _number(value)
            name = canonical(str(key))
            if v is not None and name is not None:
                b.add(name, step, v, epoch)
    meta = {k: data[k] for k in _HF_META if k in data}
    log = b.build(source=str(path), format="hf-trainer-state", step_unit="step", meta=meta)
    if not len(log):
        raise LogFormatError(f"{path}: log_history holds no metrics (the Trainer logs every "
                             "logging_steps; the run may have stopped before the first log)")
    return log


def _salvage_log_history(text: str) -> list[dict]:
    start = text.find("[", text.find('"log_history"'))
    decoder = json.JSONDecoder()
    out, i = [], start + 1
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        try:
            obj, i = decoder.raw_decode(text, i)
        except _BAD_JSON:
            return out
        if isinstance(obj, dict):
            out.append(obj)


def read_keras_history(path: Path, data: dict) -> TrainingLog:
    """Keras ``History.history`` dumped as JSON: ``{metric: [value per epoch]}``."""
    hist = data.get("history", data)
    epochs = data.get("epoch") if isinstance(data.get("epoch"), list) else None
    b = LogBuilder()
    lengths = {len(v) for v in hist.values() if isinstance(v, list)}
    if len(lengths) > 1:
        b.warn(f"{path}: metrics have different lengths {sorted(lengths)}; aligned them at epoch 0")
    for key, values in hist.items():
        name = canonical(key)
        if name is None or not isinstance(values, list):
            continue
        for i, value in enumerate(values):
            e = _number(epochs[i]) if epochs and i < len(epochs) else i
            if e is None:
                continue
            v = _number(value)
            if v is not None:
                b.add(name, e, v, e)
    return b.build(source=str(path), format="keras-history", step_unit="epoch")


def read_jsonl(path: Path, text: str, *, raw: bytes | None = None) -> TrainingLog:
    """JSON Lines: our Monitor log, or generic ``{"step": ..., metric: value}`` lines. ``raw``:
    the file's bytes, when ``text`` is exactly their UTF-8 (a big file's lines of numbers are
    then read a column at a time, :func:`lrdoctor.logs._columnar.jsonl_records`)."""
    with _no_gc():
        if raw is not None and len(raw) >= _columnar.FAST_FROM:
            lines = _typed.jsonl_records(raw)  # msgspec; else polars
            lines = _columnar.jsonl_records(raw) if lines is None else lines
            log = _read_lines(path, lines) if lines is not None else None
            if log is not None:
                return log
        return _read_jsonl(path, text)


def _read_lines(path: Path, lines: _columnar.Lines) -> TrainingLog | None:
    """:func:`_read_jsonl` of a file split by :func:`~lrdoctor.logs._columnar.jsonl_records`:
    the other lines parsed one by one, and merged with the columns in file order. None when
    more than one of them does not parse: only then could the whole-file parse of
    :func:`_read_jsonl` read them differently (a value spanning lines), so it reads the file."""
    records, where, bad = [], [], []
    is_record = np.zeros(lines.count, dtype=bool)
    is_record[lines.fast] = True
    for n, line in lines.slow:
        if not line.strip():
            continue
        try:
            obj = _loads(line)
        except _BAD_JSON:
            bad.append(n + 1)
            continue
        if isinstance(obj, dict):
            records.append(obj)
            where.append(n)
            is_record[n] = True
    if len(bad) > 1:
        return None
    position = np.cumsum(is_record) - 1  # a record's number, as _read_jsonl counts them
    more = [Columns(g.keys, g.vkeys, position[g.at], g.steps, g.has_step, g.epochs, g.has_epoch,
                    g.columns) for g in lines.groups]
    log = _read_records(path, records, fmt="jsonl", at=position[np.array(where, dtype=np.int64)],
                        more=more)
    if bad:
        where_bad = "the last line" if bad == [lines.count] else f"lines {bad[:5]}"
        msg = f"{path}: {where_bad} could not be parsed (cut off while writing?); ignored"
        log.warnings.append(msg)
        import logging
        logging.getLogger("lrdoctor.logs").warning(msg)
    return log


def _read_jsonl(path: Path, text: str) -> TrainingLog:
    lines = text.splitlines()
    records, bad = [], []
    filled = [line for line in lines if line.strip()]
    try:  # every line one whole value (the common case): one parse of them all, as an array
        whole = "[" + ",".join(filled) + "]"
        # orjson refuses the NaN/Infinity the Monitor writes: then line by line (orjson first)
        # beats one slow parse of everything by the json module
        parsed = _orjson.loads(whole) if _orjson is not None else json.loads(whole)
        if len(parsed) != len(filled):  # a line held two values, or one spanned two lines
            raise json.JSONDecodeError("not one value per line", "", 0)
    except _BAD_JSON:  # a line cut off or corrupt: line by line, to say which
        parsed = None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = _loads(line)
            except _BAD_JSON:
                bad.append(n)
                continue
            if isinstance(obj, dict):
                records.append(obj)
    if parsed is not None:
        records = [obj for obj in parsed if isinstance(obj, dict)]
    if not records:
        raise LogFormatError(f"{path}: no JSON objects on any line; expected one JSON object per line")
    log = _read_records(path, records, fmt="jsonl")
    if bad:
        where = "the last line" if bad == [len(lines)] else f"lines {bad[:5]}"
        msg = f"{path}: {where} could not be parsed (cut off while writing?); ignored"
        log.warnings.append(msg)
        import logging
        logging.getLogger("lrdoctor.logs").warning(msg)
    return log


_BOOKKEEPING = ("type", "step", "epoch", "global_step", "_step")
_STEP_KEYS = ("step", "global_step", "_step")

#: From this many records on, they are read a column at a time (:func:`_add_columns`).
COLUMNAR_FROM = 2000


def _read_records(path: Path, records: list[dict], *, fmt: str, columnar: bool | None = None,
                  at: np.ndarray | None = None, more: list[Columns] = ()) -> TrainingLog:
    """Records ``{"step", "epoch", <metric>: value}`` or the Monitor's (``type`` meta / event /
    scalars with ``values``): one point per numeric value, at the record's step (its epoch,
    else its index, when it has none). ``more``: further records already read into columns,
    numbered among these (``at[i]``: the number of ``records[i]``)."""
    b = LogBuilder()
    meta: dict[str, Any] = {}
    ours = False
    names: dict[Any, str | None] = {k: None for k in _BOOKKEEPING}  # raw key -> canonical
    if columnar is None:
        columnar = bool(more) or len(records) >= COLUMNAR_FROM
    plain: list[int] = []
    for i, rec in enumerate(records):
        kind = rec.get("type")
        if kind == "meta":
            ours = True
            meta.update({k: v for k, v in rec.items() if k != "type"})
            continue
        if kind == "event":
            ours = True
            step = _number(rec.get("step"))
            b.events.append(Event(str(rec.get("code", "note")), str(rec.get("message", "")),
                                  int(step) if step is not None and math.isfinite(step) else None,
                                  rec.get("data") if isinstance(rec.get("data"), dict) else {}))
            continue
        if columnar:
            plain.append(i)
            continue
        step = _number(rec.get("step", rec.get("global_step", rec.get("_step"))))
        epoch = _number(rec.get("epoch"))
        if step is None:
            step = epoch if epoch is not None else float(i)
        values = rec.get("values") if isinstance(rec.get("values"), dict) else rec
        for key, value in values.items():
            try:
                name = names[key]
            except KeyError:
                name = names[key] = canonical(str(key))
            if name is None:
                continue
            v = value if value.__class__ is float else _number(value)
            if v is not None:
                b.add(name, step, v, epoch)
    if plain or more:
        _add_columns(b, records, plain, names, at=at, more=more)
    fmt = "lrdoctor-jsonl" if ours else fmt
    unit = meta.get("step_unit", "step")
    log = b.build(source=str(path), format=fmt, step_unit=unit if unit in ("step", "epoch") else
                  "step", meta=meta)
    if not len(log) and not log.events:
        raise LogFormatError(f"{path}: the records hold no numeric metrics")
    return log


def _numbers(items: list) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_number` of every item, as floats (NaN where None) and a mask of the numbers."""
    if set(map(type, items)) <= {float, int}:
        try:
            return np.array(items, dtype=np.float64), np.ones(len(items), dtype=bool)
        except OverflowError:  # an integer beyond float range: item by item
            pass
    got = [_number(x) for x in items]
    ok = np.array([x is not None for x in got], dtype=bool)
    return np.array([math.nan if x is None else x for x in got], dtype=np.float64), ok


def _add_columns(b: LogBuilder, records: list[dict], plain: Iterable[int],
                 names: dict[Any, str | None], *, nested: bool = True,
                 at: np.ndarray | None = None, more: Iterable[Columns] = ()) -> None:
    """What the record-by-record loop of :func:`_read_records` adds, a column at a time: records
    with the same keys (and the same ``values`` keys) are one group, each key of a group one
    numpy conversion. Points keep the records' order, so duplicated steps resolve alike.
    ``at[i]``: the number of ``records[i]`` (default ``i``); ``more``: groups read already."""
    groups: dict[tuple, list[int]] = {}
    for i in plain:
        rec = records[i]
        vals = rec.get("values") if nested else None
        key = (tuple(rec), tuple(vals) if isinstance(vals, dict) else None)
        groups.setdefault(key, []).append(i)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[Any, Any]]]] = []
    for (keys, vkeys), idx in groups.items():
        recs = [records[i] for i in idx]
        pos = np.array(idx if at is None else at[idx], dtype=np.float64)
        step_key = next((k for k in _STEP_KEYS if k in keys), None)
        steps, has_step = (_numbers([r[step_key] for r in recs]) if step_key else
                           (np.full(len(recs), np.nan), np.zeros(len(recs), dtype=bool)))
        epochs, has_epoch = (_numbers([r["epoch"] for r in recs]) if "epoch" in keys else
                             (np.full(len(recs), np.nan), np.zeros(len(recs), dtype=bool)))
        steps = np.where(has_step, steps, np.where(has_epoch, epochs, pos))
        columns = [(k, [r["values"][k] for r in recs]) for k in vkeys] if vkeys is not None \
            else [(k, [r[k] for r in recs]) for k in keys]
        found.append((pos, steps, epochs, columns))
    for g in more:  # every value a number: nothing to leave out
        pos = g.at.astype(np.float64)
        found.append((pos, np.where(g.has_step, g.steps, np.where(g.has_epoch, g.epochs, pos)),
                      g.epochs, g.columns))
    found.sort(key=lambda f: f[0][0])  # groups in the order of their first record
    parts: dict[str, list[tuple[np.ndarray, ...]]] = {}
    for pos, steps, epochs, columns in found:
        for key, items in columns:
            try:
                name = names[key]
            except KeyError:
                name = names[key] = canonical(str(key))
            if name is None:
                continue
            if isinstance(items, np.ndarray):
                parts.setdefault(name, []).append((pos, steps, items, epochs))
                continue
            values, ok = _numbers(items)
            parts.setdefault(name, []).append((pos[ok], steps[ok], values[ok], epochs[ok]))
    for name, got in parts.items():
        at, s, v, e = (np.concatenate(cols) for cols in zip(*got)) if len(got) > 1 else got[0]
        if len(got) > 1:
            order = np.argsort(at, kind="stable")
            s, v, e = s[order], v[order], e[order]
        b.extend(name, s, v, e)

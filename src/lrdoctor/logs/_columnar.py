"""Columnar reading of big JSON logs with polars (the ``fast`` extra): the records' numbers
parsed a column at a time in Rust, on every core, with no Python object per value.

The readers in :mod:`lrdoctor.logs._json` hand a file here when it is big (``FAST_FROM`` bytes
or more). What is read here gives exactly the log the ordinary parser gives, or None (then
the caller reads the file the ordinary way). polars parses floats correctly rounded and JSON
strictly (no ``01``, no ``+1``); what it cannot see is kept from it or checked:

- a key given twice, a ``null`` and a key polars was not told of all look like a missing key
  to polars; each makes the file hold more ``":`` (a key's end) than the values polars found,
  so the two counts must agree;
- ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's json writes and reads, and polars
  refuses) are swapped for three numbers that do not occur in the file, and swapped back;
- the integer ``-0`` (json reads int 0, polars -0.0), integers beyond 64 bits: the ordinary
  parser reads the file;
- a line that is not ``{...}``, meta and event lines: left to the caller, line by line;
- the keys of each shape, in the order the ordinary parser meets them: from the first record
  of that shape, read by ``json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    import polars as pl
except ImportError:  # pragma: no cover - the fast extra is optional
    pl = None

__all__ = ["FAST_FROM", "Columns", "Lines", "available", "hf_history", "jsonl_records"]

#: Files of this many bytes or more are read here (below, the record-by-record parse is quick).
FAST_FROM = 1 << 20

#: Bytes ``str.splitlines`` breaks a line at besides ``\n``: with one in the file the ordinary
#: reader's line numbers would not be ours, so it reads the file.
_OTHER_BREAKS = (b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")
_UNICODE_BREAKS = (b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")

#: What the non-finite literals become for polars, and back (numbers no log holds; checked).
_STAND_INS = ((b": -Infinity", b": -1.2345678901234567e-301", -np.inf),
              (b": Infinity", b": 2.3456789012345678e-301", np.inf),
              (b": NaN", b": 3.4567890123456789e-301", np.nan))

#: Records read with ``json`` to learn the keys (the count check finds a key they missed).
_SAMPLE = 2000
_STEP_KEYS = ("step", "global_step", "_step")


def available() -> bool:
    """True when the columnar readers can run (polars is installed)."""
    return pl is not None


@dataclass(frozen=True)
class Columns:
    """Records of one shape, read a column at a time: ``keys`` (the record's keys) and
    ``vkeys`` (those of its ``values`` object, or None) as ``_json._add_columns`` groups them;
    ``at`` the records' positions (ascending); ``steps`` / ``epochs`` (NaN where the record has
    no such key; ``has_step`` / ``has_epoch`` say where it has); ``columns`` the metric keys'
    values, in ``vkeys`` (or ``keys``) order, as floats (every value here is a number)."""

    keys: tuple[str, ...]
    vkeys: tuple[str, ...] | None
    at: np.ndarray
    steps: np.ndarray
    has_step: np.ndarray
    epochs: np.ndarray
    has_epoch: np.ndarray
    columns: list[tuple[str, np.ndarray]]


@dataclass(frozen=True)
class Lines:
    """A JSON Lines file split as ``str.splitlines`` splits it: ``count`` lines, those numbered
    ``fast`` (0-based, ascending) read into ``groups`` (``Columns.at`` holds line numbers), the
    ``slow`` ones (line number, text) left to the caller."""

    count: int
    fast: np.ndarray
    groups: list[Columns]
    slow: list[tuple[int, str]]


def jsonl_records(raw: bytes) -> Lines | None:
    """Split JSON Lines bytes (valid UTF-8) into the lines read here and the rest; None when
    the ordinary parser should read the whole file."""
    if pl is None or any(b in raw for b in _OTHER_BREAKS) or (
            not raw.isascii() and any(b in raw for b in _UNICODE_BREAKS)):
        return None
    a = np.frombuffer(raw, dtype=np.uint8)
    breaks = np.flatnonzero(a == 10)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(raw)]))
    if raw.endswith(b"\n"):  # splitlines gives no empty line after the last line break
        starts, ends = starts[:-1], ends[:-1]
    count = len(starts)
    size = np.maximum(ends - starts, 0)
    last = np.maximum(ends - 1, 0)
    ok = (size >= 2) & (a[np.minimum(starts, len(a) - 1)] == ord("{")) & (a[last] == ord("}"))
    ok &= ~_starts_with(a, starts, size, (b'{"type": "meta"', b'{"type": "event"'))
    fast = np.flatnonzero(ok)
    if len(fast) < 2:
        return None
    text = _join(raw, starts, ends, fast)
    sample = [_one(raw[starts[i]:ends[i]]) for i in fast[_spread(len(fast))]]
    frame = _parse(text, sample, flat=False)
    if frame is None:
        return None
    kinds = frame["type"] if "type" in frame.columns else None
    if kinds is not None and kinds.dtype == pl.String:
        special = kinds.is_in(["meta", "event"]).fill_null(False).to_numpy()
        if special.any():  # their lines go to the caller too
            return None if special.all() else _without(raw, starts, ends, ok, fast[special])
    groups = _groups(frame, fast, lambda r: raw[starts[fast[r]]:ends[fast[r]]], flat=False)
    if groups is None:
        return None
    slow = [(int(i), raw[starts[i]:ends[i]].decode("utf-8")) for i in np.flatnonzero(~ok)]
    return Lines(count, fast, groups, slow)


def _without(raw: bytes, starts: np.ndarray, ends: np.ndarray, ok: np.ndarray,
             drop: np.ndarray) -> Lines | None:
    """:func:`jsonl_records` again with the lines ``drop`` left to the caller."""
    ok = ok.copy()
    ok[drop] = False
    fast = np.flatnonzero(ok)
    sample = [_one(raw[starts[i]:ends[i]]) for i in fast[_spread(len(fast))]]
    frame = _parse(_join(raw, starts, ends, fast), sample, flat=False)
    if frame is None:
        return None
    groups = _groups(frame, fast, lambda r: raw[starts[fast[r]]:ends[fast[r]]], flat=False)
    if groups is None:
        return None
    slow = [(int(i), raw[starts[i]:ends[i]].decode("utf-8")) for i in np.flatnonzero(~ok)]
    return Lines(len(starts), fast, groups, slow)



def split_history(raw: bytes, loads: Any) -> tuple[dict, int, int] | None:
    """A ``trainer_state.json``'s one ``log_history`` array located: the rest of the document
    (read by ``loads`` with that array emptied) and the offsets of its ``[`` and ``]``; None when
    the key is missing, repeated or escaped, or the rest is not the object it should be."""
    key = raw.find(b'"log_history"')
    lb = raw.find(b"[", key)
    rb = raw.find(b"]", lb)
    if key < 0 or lb < 0 or rb < 0 or raw.count(b'"log_history"') != 1 or raw[key - 1:key] == b"\\":
        return None
    if raw[key + len(b'"log_history"'):lb].strip() != b":":
        return None
    try:
        rest = loads((raw[:lb] + b"[]" + raw[rb + 1:]).decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(rest, dict) or rest.get("log_history") != []:
        return None
    return rest, lb, rb

def hf_history(raw: bytes, loads: Any) -> tuple[dict, list[Columns], int] | None:
    """A ``trainer_state.json``'s ``log_history`` array read a column at a time: the rest of
    the document (read by ``loads``, with ``log_history`` empty), the entries' groups
    (``Columns.at`` holds entry numbers) and how many entries there are; None when the
    ordinary parser should read it (an entry that is not an object of numbers, a damaged file)."""
    if pl is None:
        return None
    split = split_history(raw, loads)
    if split is None:
        return None
    rest, lb, rb = split
    body = raw[lb + 1:rb].strip()
    if not body.startswith(b"{") or not body.endswith(b"}"):
        return None
    one_line = b"\n" not in body and b"\r" not in body
    sample = _sample_entries(body)
    if sample is None:
        return None
    if one_line:  # json.dumps without indent: entries apart by "}, {", one a line for polars
        lines = body.replace(b"}, {", b"}\n{")
        frame = _parse(lines, sample, flat=True)
    else:
        frame = _parse(b"[" + body + b"]", sample, flat=True, array=True)
    if frame is None:
        return None
    n = frame.height
    text = lines if one_line else body
    end_of = b"\n" if one_line else b"}"

    def record(r: int) -> bytes:  # the text of entry r (for its keys' order), found from the
        if r < n - r:             # nearer end of the array
            pos = 0
            for _ in range(r):
                pos = text.index(end_of, pos) + 1
        else:
            pos = len(text)  # entry r ends at the (n - r)th "}" from the end, or line break
            for _ in range(n - r - one_line):
                pos = text.rindex(end_of, 0, pos)
            pos = text.rfind(end_of, 0, pos) + 1
        start = text.index(b"{", pos)
        return text[start:text.index(b"}", start) + 1]

    groups = _groups(frame, np.arange(n), record, flat=True)
    if groups is None:
        return None
    return rest, groups, n


def _sample_entries(body: bytes) -> list[Any] | None:
    """Entries spread over the array, read by ``json``, to learn the keys and their kinds."""
    decoder = json.JSONDecoder()
    out, n = [], len(body)
    for frac in [*np.linspace(0, 1, 63, endpoint=False), -1]:
        pos = (body.rfind(b"{", 0, body.rfind(b"{", 0, n - _SAMPLE) if n > _SAMPLE else 0)
               if frac < 0 else body.find(b"{", int(frac * n)) if frac else 0)
        if pos < 0:
            continue
        got = 0
        while got < _SAMPLE // 64 and pos >= 0:
            end = body.find(b"}", pos)
            if end < 0:
                break
            try:
                obj, _ = decoder.raw_decode(body[pos:end + 1].decode("utf-8"))
            except (ValueError, RecursionError):
                return None
            out.append(obj)
            got += 1
            pos = body.find(b"{", end)
    return out


def _starts_with(a: np.ndarray, starts: np.ndarray, size: np.ndarray,
                 prefixes: tuple[bytes, ...]) -> np.ndarray:
    """Which lines start with one of ``prefixes`` (16 bytes or fewer): compared 8 bytes at a
    time, through a view of the bytes that reads a word at every byte offset."""
    words = np.ndarray((max(len(a) - 7, 0),), dtype="<u8", buffer=a, strides=(1,))
    hit = np.zeros(len(starts), dtype=bool)
    for p in prefixes:
        cand = np.flatnonzero(size >= len(p))
        padded = p.ljust(16, b"\0")
        match = np.ones(len(cand), dtype=bool)
        for k in (0, 8):
            n = min(max(len(p) - k, 0), 8)
            if not n:
                continue
            mask = np.uint64((1 << (8 * n)) - 1)
            want = np.frombuffer(padded[k:k + 8], dtype="<u8")[0] & mask
            match &= (words[np.minimum(starts[cand] + k, len(words) - 1)] & mask) == want
        hit[cand[match]] = True
    return hit


def _join(raw: bytes, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray) -> bytes:
    """The lines ``rows`` (ascending), one a line: runs of consecutive lines as one slice each."""
    if not len(rows):
        return b""
    cut = np.flatnonzero(np.diff(rows) != 1)
    first = np.concatenate(([rows[0]], rows[cut + 1]))
    last = np.concatenate((rows[cut], [rows[-1]]))
    return b"\n".join(raw[starts[f]:ends[e]] for f, e in zip(first.tolist(), last.tolist()))


def _spread(n: int) -> np.ndarray:
    """About ``_SAMPLE`` record numbers: the first and last ones, and others spread over all."""
    if n <= _SAMPLE:
        return np.arange(n)
    return np.unique(np.concatenate((np.arange(_SAMPLE // 2), np.arange(n - _SAMPLE // 4, n),
                                     np.linspace(0, n - 1, _SAMPLE // 4).astype(np.int64))))


def _one(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def _schema(sample: list[Any], flat: bool) -> dict | None:
    """The polars schema of the sampled records: numbers as Float64, ``type`` a string and
    ``values`` an object of numbers (JSON Lines); None for anything else (a string, a list,
    ``null``, ``true``: the ordinary parser reads those)."""
    top: dict[str, Any] = {}
    inner: dict[str, Any] = {}
    for rec in sample:
        if not isinstance(rec, dict):
            return None
        for k, v in rec.items():
            if _is_number(v):
                kind = pl.Float64
            elif not flat and k == "type" and isinstance(v, str):
                kind = pl.String
            elif not flat and k == "values" and isinstance(v, dict):
                if not all(_is_number(x) for x in v.values()):
                    return None
                inner.update(dict.fromkeys(v, pl.Float64))
                kind = "values"
            else:
                return None
            if top.setdefault(k, kind) != kind:
                return None
    if "values" in top:
        top["values"] = pl.Struct(inner)
    return top


def _is_number(v: Any) -> bool:
    """A JSON number as polars reads it the same: a float, or an integer of 64 bits."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return isinstance(v, float) or -2**63 <= v < 2**63


def _parse(text: bytes, sample: list[Any], *, flat: bool, array: bool = False) -> Any:
    """``text`` (one record a line, or a JSON array) as a polars frame of the sample's schema,
    the non-finite stand-ins swapped back; None when it is not exactly what ``json`` reads.
    When the sample missed a key, polars learns the schema from every record and reads again."""
    schema = _schema(sample, flat)
    if not schema or b'" :' in text:  # (a key's end not counted below)
        return None
    swaps = []
    for literal, stand_in, value in _STAND_INS:
        if literal[2:] in text:  # ": NaN" and no "-1.23...e-301" of ours already there
            if stand_in[2:] in text:
                return None
            swaps.append((float(stand_in[2:]), value, text.count(literal)))
            text = text.replace(literal, stand_in)
    ends = text.count(b'":')
    read = pl.read_json if array else pl.read_ndjson
    try:
        got = _columns(read(text, schema=schema), schema)
        if got is None or got[1] != ends:  # a key the sample missed (or a null, a key twice)
            inferred = read(text, infer_schema_length=None)
            schema = _polars_schema(inferred.schema, flat)
            got = None if schema is None else _columns(inferred.cast(schema), schema)
    except (pl.exceptions.PolarsError, ValueError, OverflowError):
        return None
    if got is None or got[1] != ends:
        return None
    frame, _, cols = got
    for stand_in, value, k in swaps:
        seen = 0
        for name, v in cols.items():
            hit = v == stand_in
            n = int(np.count_nonzero(hit))
            if n:
                v = cols[name] = v.copy()
                v[hit] = value
                seen += n
        if seen != k:
            return None
    if any(np.any((v == 0) & np.signbit(v)) for v in cols.values()) and (
            b"-0," in text or b"-0}" in text or b"-0\n" in text):
        return None  # json reads the integer -0 as 0 (+0.0), polars as -0.0
    return _Frame(frame, cols)


def _columns(frame: Any, schema: dict) -> tuple[Any, int, dict[str, np.ndarray]] | None:
    """The frame, how many values it holds, and its numeric columns as numpy."""
    found = 0
    cols: dict[str, np.ndarray] = {}
    for name, kind in schema.items():
        s = frame[name]
        found += s.len() - s.null_count()
        if kind == pl.Float64:
            cols[name] = s.to_numpy()
        elif isinstance(kind, pl.Struct):
            inner = s.struct.unnest()
            for field in inner.columns:
                f = inner[field]
                found += f.len() - f.null_count()
                cols["values\0" + field] = f.to_numpy()
    return frame, found, cols


def _polars_schema(inferred: Any, flat: bool) -> dict | None:
    """The schema polars inferred, as :func:`_schema` would write it; None if it holds more."""
    numeric = (pl.Float64, pl.Int64)
    out: dict[str, Any] = {}
    for name, kind in inferred.items():
        if kind in numeric:
            out[name] = pl.Float64
        elif not flat and name == "type" and kind == pl.String:
            out[name] = pl.String
        elif not flat and name == "values" and isinstance(kind, pl.Struct) and all(
                f.dtype in numeric for f in kind.fields):
            out[name] = pl.Struct({f.name: pl.Float64 for f in kind.fields})
        else:
            return None
    return out


@dataclass(frozen=True)
class _Frame:
    """A parsed frame and its numeric columns (``values\\0<key>`` for the ``values`` object)."""

    frame: Any
    numeric: dict[str, np.ndarray]

    @property
    def columns(self) -> list[str]:
        return self.frame.columns

    @property
    def height(self) -> int:
        return self.frame.height

    def __getitem__(self, name: str) -> Any:
        return self.frame[name]


def _groups(frame: _Frame, at: np.ndarray, record: Any, *, flat: bool) -> list[Columns] | None:
    """The frame's rows grouped by the keys they have (runs of rows alike, then runs alike);
    each group's key order from its first row's text (``record(row)``), read by ``json``."""
    names = list(frame.columns)
    present = [~frame[nm].is_null().to_numpy() for nm in names]
    nested = [nm for nm in frame.numeric if nm.startswith("values\0")]
    if nested:
        inner = frame["values"].struct.unnest()
        present += [~inner[nm[7:]].is_null().to_numpy() for nm in nested]
    cols = names + nested
    valid = np.stack(present, axis=1)
    n = len(valid)
    change = np.flatnonzero(np.any(valid[1:] != valid[:-1], axis=1)) + 1
    run_start = np.concatenate(([0], change))
    run_end = np.concatenate((change, [n]))
    shapes: dict[bytes, list[int]] = {}
    for r, key in enumerate(np.packbits(valid[run_start], axis=1)):
        shapes.setdefault(key.tobytes(), []).append(r)
    out = []
    for runs in shapes.values():
        rows = np.concatenate([np.arange(run_start[r], run_end[r]) for r in runs])
        have = {c for c, v in zip(cols, valid[rows[0]]) if v}
        try:
            first = json.loads(record(int(rows[0])))
        except (ValueError, RecursionError):
            return None
        if not isinstance(first, dict):
            return None
        keys = tuple(first)
        vals = first.get("values") if not flat else None
        vkeys = tuple(vals) if isinstance(vals, dict) else None
        if set(keys) != {c for c in have if "\0" not in c} or (
                vkeys is not None and set(vkeys) != {c[7:] for c in have if "\0" in c}):
            return None  # the first row's text does not have the keys polars found
        m = len(rows)
        step_key = next((k for k in _STEP_KEYS if k in keys), None)
        steps = frame.numeric[step_key][rows] if step_key else np.full(m, np.nan)
        epochs = frame.numeric["epoch"][rows] if "epoch" in keys else np.full(m, np.nan)
        metric = ([(k, frame.numeric["values\0" + k][rows]) for k in vkeys] if vkeys is not None
                  else [(k, frame.numeric[k][rows]) for k in keys if k in frame.numeric])
        out.append(Columns(keys, vkeys, at[rows], steps, np.full(m, step_key is not None),
                           epochs, np.full(m, "epoch" in keys), metric))
    out.sort(key=lambda g: int(g.at[0]))
    return out

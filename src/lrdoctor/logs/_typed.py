"""Typed decoding of big JSON logs with msgspec (the ``fast`` extra): every record decoded
straight into a Struct of float fields learned from a sample (no dict, no key string per
record), the columns then gathered from the Structs in one pass.

The readers in :mod:`lrdoctor.logs._json` try this first on big files, then the polars reader
(:mod:`lrdoctor.logs._columnar`), then the ordinary parser. What is read here is exactly what
the ordinary parser reads, or None. msgspec parses JSON strictly and floats correctly rounded
(integers too: ``-0`` is 0, a 30-digit integer the nearest float); what else differs from
``json`` is kept from it or checked:

- a key not in the sample, a ``null``, ``true``, a string where a number was sampled: msgspec
  refuses the record (the Struct forbids unknown fields, each field is a float);
- a key given twice (msgspec keeps the last value, as ``json`` does, but the record then has
  one point less here): every key and string is two ``"``, so the file holds exactly twice as
  many ``"`` as keys and strings decoded, or it is not read here (an escaped ``\\"`` too);
- msgspec's line reader skips blank lines and takes a value spanning lines, or two on one: the
  lines must be ``{...}`` joined by ``}\\n{`` and one value each (their counts agree);
- ``NaN``, ``Infinity`` and ``-Infinity`` become stand-in numbers and back, as in
  :mod:`~lrdoctor.logs._columnar`; a number beyond float range: not read here;
- meta and event lines (the Monitor's) are decoded as empty tagged Structs and handed to the
  caller as text, like a cut-off last line;
- the keys of each row kind, in the order ``json`` meets them: from its first row, read by
  ``json``.
"""

from __future__ import annotations

import json
import math
import operator
from typing import Any

import numpy as np

from lrdoctor.logs._columnar import (
    _OTHER_BREAKS,
    _STAND_INS,
    _UNICODE_BREAKS,
    Columns,
    Lines,
    split_history,
)

try:
    import msgspec
except ImportError:  # pragma: no cover - the fast extra is optional
    msgspec = None

__all__ = ["available", "hf_history", "jsonl_records"]

#: Lines (from each end and around the file) read by ``json`` to learn the fields.
_SAMPLE = 2000
_STEP_KEYS = ("step", "global_step", "_step")
_NAN = math.nan


def available() -> bool:
    """True when the typed readers can run (msgspec is installed)."""
    return msgspec is not None


def jsonl_records(raw: bytes) -> Lines | None:
    """JSON Lines bytes (valid UTF-8) split into the lines decoded here (into columns) and the
    meta, event and cut-off ones (as text, for the caller); None when another reader should
    read the file."""
    if msgspec is None or not raw.startswith(b"{") or any(b in raw for b in _OTHER_BREAKS) or (
            not raw.isascii() and any(b in raw for b in _UNICODE_BREAKS)):
        return None
    end = len(raw) - raw.endswith(b"\n")
    count = raw.count(b"\n", 0, end) + 1  # lines, as str.splitlines counts them
    slow: dict[int, bytes] = {}
    last = raw.rfind(b"\n", 0, end) + 1
    if _one(raw[last:end]) is None:  # a last line cut off while writing: the caller's
        slow[count - 1] = raw[last:end]
        end = last - 1
    if end <= 0 or raw[end - 1:end] != b"}" or raw.count(b"}\n{", 0, end) != count - 1 - bool(slow):
        return None  # a blank line, a value spanning lines: the other readers say what it is
    sample = _sample_lines(raw, end)
    kinds = {r.get("type", "") if isinstance(r, dict) else None for r in sample}
    tagged = bool(kinds) and "" not in kinds
    if not sample or None in kinds or not kinds <= ({"", "scalars", "meta", "event"}):
        return None
    row = _struct([r for r in sample if r.get("type", "scalars") == "scalars"], tagged=tagged)
    if row is None:
        return None
    kind = row
    if tagged:
        meta = msgspec.defstruct("Meta", [], tag="meta", tag_field="type")
        event = msgspec.defstruct("Event", [], tag="event", tag_field="type")
        kind = row | meta | event
    swaps: list = []
    records = _decode(msgspec.json.Decoder(kind).decode_lines, memoryview(raw)[:end], swaps)
    if records is None or len(records) != count - len(slow):
        return None
    classes = list(map(type, records))
    lines = np.arange(len(records))
    quotes = raw.count(b'"', 0, end)
    finder = _LineFinder(raw, end)
    if classes.count(row) != len(records):  # meta and event lines: their text to the caller
        other = [i for i, c in enumerate(classes) if c is not row]
        if len(other) > 1000:
            return None
        for i in other:
            slow[i] = finder.line(i)
            quotes -= slow[i].count(b'"')
        for i in reversed(other):
            del records[i]
        lines = np.delete(lines, other)
    del classes
    got = _gather(records, row, tagged, swaps)
    del records
    if got is None or quotes != 2 * got[2]:
        return None
    groups = _groups(got[0], got[1], row, tagged, lines, finder.line)
    if groups is None:
        return None
    return Lines(count, lines, groups, [(k, slow[k].decode("utf-8")) for k in sorted(slow)])


def hf_history(raw: bytes, loads: Any) -> tuple[dict, list[Columns], int] | None:
    """A ``trainer_state.json``'s ``log_history`` decoded into columns: the rest of the
    document (read by ``loads``, with ``log_history`` empty), the entries' groups (``at``: entry
    numbers) and how many entries there are; None when another reader should read it."""
    if msgspec is None:
        return None
    split = split_history(raw, loads)
    if split is None:
        return None
    rest, lb, rb = split
    body = memoryview(raw)[lb:rb + 1]
    sample = _sample_entries(raw, lb + 1, rb)
    row = None if sample is None else _struct(sample, tagged=False)
    if row is None:
        return None
    swaps: list = []
    records = _decode(msgspec.json.Decoder(list[row]).decode, body, swaps)
    if not records:
        return None
    quotes = raw.count(b'"', lb, rb)
    n = len(records)
    got = _gather(records, row, False, swaps)
    del records
    if got is None or quotes != 2 * got[2]:
        return None
    text = raw[lb + 1:rb]

    def entry(r: int) -> bytes:  # the text of entry r (for its keys' order), found from the
        if r < n - r:            # nearer end of the array (each entry is one {...})
            pos = -1
            for _ in range(r + 1):
                pos = text.index(b"{", pos + 1)
        else:
            pos = len(text)
            for _ in range(n - r):
                pos = text.rindex(b"{", 0, pos)
        return text[pos:text.index(b"}", pos) + 1]

    groups = _groups(got[0], got[1], row, False, np.arange(n), entry)
    if groups is None:
        return None
    return rest, groups, n


class _LineFinder:
    """The text of line ``i`` of ``raw[:end]`` (lines split at ``\\n``): found by stepping from
    the start for early lines, else through the offsets of every line break (found once)."""

    def __init__(self, raw: bytes, end: int) -> None:
        self.raw, self.end = raw, end
        self.breaks: np.ndarray | None = None

    def line(self, i: int) -> bytes:
        raw, end = self.raw, self.end
        if i < 20000 and self.breaks is None:
            pos = 0
            for _ in range(i):
                pos = raw.index(b"\n", pos, end) + 1
        else:
            if self.breaks is None:
                self.breaks = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8, count=end) == 10)
            pos = int(self.breaks[i - 1]) + 1 if i else 0
        stop = raw.find(b"\n", pos, end)
        return raw[pos:end if stop < 0 else stop]


def _one(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def _sample_lines(raw: bytes, end: int) -> list[Any]:
    """About ``_SAMPLE`` lines of ``raw[:end]`` read by ``json``: the first ones, the last
    ones and runs of lines from spots between."""
    out: list[Any] = []
    pos = 0
    for _ in range(_SAMPLE // 2):
        stop = raw.find(b"\n", pos, end)
        out.append(_one(raw[pos:end if stop < 0 else stop]))
        if stop < 0:
            return out
        pos = stop + 1
    head = pos
    for spot in np.linspace(head, end, 66)[1:-1].astype(np.int64).tolist():
        p = raw.find(b"\n", spot, end) + 1
        for _ in range(_SAMPLE // 256 if p > 0 else 0):
            stop = raw.find(b"\n", p, end)
            out.append(_one(raw[p:end if stop < 0 else stop]))
            if stop < 0:
                break
            p = stop + 1
    pos = end
    for _ in range(_SAMPLE // 4):
        start = raw.rfind(b"\n", head, pos) + 1
        if start <= 0:
            break
        out.append(_one(raw[start:pos]))
        pos = start - 1
    return out


def _sample_entries(raw: bytes, start: int, stop: int) -> list[Any] | None:
    """Entries of a ``log_history`` array (between ``start`` and ``stop``) read by ``json``."""
    decoder = json.JSONDecoder()
    out = []
    spots = np.linspace(start, stop, 64, endpoint=False).astype(np.int64).tolist()
    spots.append(max(raw.rfind(b"{", start, max(stop - 40 * _SAMPLE, start + 1)), start))
    for spot in spots:
        pos = raw.find(b"{", spot, stop)
        for _ in range(_SAMPLE // 64):
            if pos < 0:
                break
            close = raw.find(b"}", pos, stop)
            if close < 0:
                break
            try:
                obj, _ = decoder.raw_decode(raw[pos:close + 1].decode("utf-8"))
            except (ValueError, RecursionError):
                return None
            out.append(obj)
            pos = raw.find(b"{", close, stop)
    return out


def _is_number(v: Any) -> bool:
    """A float or an integer (msgspec reads a float field from an integer of any length,
    correctly rounded, and refuses one beyond float range)."""
    return v.__class__ is float or v.__class__ is int


def _struct(sample: list[Any], *, tagged: bool) -> Any:
    """The Struct of the sampled records: a float field (NaN when missing) per numeric key, a
    nested Struct for ``values`` (JSON Lines), ``type`` as the tag; None for anything else."""
    top: dict[str, None] = {}
    inner: dict[str, None] = {}
    nested = False
    for rec in sample:
        if not isinstance(rec, dict):
            return None
        for k, v in rec.items():
            if k == "type" and tagged:
                continue
            if k == "values" and isinstance(v, dict):
                if not all(_is_number(x) for x in v.values()):
                    return None
                inner.update(dict.fromkeys(v))
                nested = True
            elif not _is_number(v) or k == "values":
                return None
    for rec in sample:
        top.update(dict.fromkeys(k for k in rec if k != "values" and not (tagged and k == "type")))
    options: dict[str, Any] = {"tag": "scalars", "tag_field": "type"} if tagged else {}
    try:  # (msgspec refuses a key with a quote, a backslash or a control character in it)
        fields: list[Any] = [(f"f{i}", float, msgspec.field(default=_NAN, name=k))
                             for i, k in enumerate(top)]
        if nested:
            vals = msgspec.defstruct("Values", [
                (f"f{i}", float, msgspec.field(default=_NAN, name=k))
                for i, k in enumerate(inner)], forbid_unknown_fields=True, gc=False)
            fields.append(("values", vals | None, msgspec.field(default=None, name="values")))
        return msgspec.defstruct("Row", fields, forbid_unknown_fields=True, gc=False, **options)
    except (ValueError, TypeError):
        return None


def _decode(decode: Any, text: Any, swaps: list) -> Any:
    """``decode(text)``; the non-finite literals swapped for stand-ins (noted in ``swaps``)
    when msgspec refuses them. None when it refuses the text."""
    try:
        return decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    text = bytes(text)
    if b"NaN" not in text and b"Infinity" not in text:
        return None
    for literal, stand_in, value in _STAND_INS:
        if literal[2:] in text:
            if stand_in[2:] in text:
                return None
            swaps.append((float(stand_in[2:]), value, text.count(literal)))
            text = text.replace(literal, stand_in)
    try:
        return decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _gather(records: list, row: Any, tagged: bool, swaps: list) -> tuple[
        dict[str, np.ndarray], dict[str, np.ndarray], int] | None:
    """The records' fields as float columns (``values\\0<key>`` for the ``values`` object's),
    where each is present (not NaN before the stand-ins are swapped back), and how many keys
    and strings the records hold (``type`` counts two: its key and its string). None when some
    have ``values`` and some not."""
    fields = row.__struct_encode_fields__
    names = [f for f in fields if f != "values"]
    getters = [f"f{i}" for i in range(len(names))]
    n = len(records)
    vals: tuple[str, ...] | None = None
    if "values" in fields:
        got = list(map(operator.attrgetter("values"), records))
        if got.count(None):
            return None
        vals = got[0].__struct_encode_fields__ if n else ()
        getters += [f"values.f{i}" for i in range(len(vals))]
        del got
    cols: dict[str, np.ndarray] = {}
    if getters:
        kind = np.dtype([(f"c{i}", np.float64) for i in range(len(getters))])
        get = operator.attrgetter(*getters)
        flat = np.fromiter(map(get, records) if len(getters) > 1 else
                           ((x,) for x in map(get, records)), dtype=kind, count=n)
        for i, name in enumerate([*names, *("values\0" + v for v in vals or ())]):
            cols[name] = np.ascontiguousarray(flat[f"c{i}"])
        del flat
    present = {name: ~np.isnan(v) for name, v in cols.items()}
    found = sum(int(np.count_nonzero(p)) for p in present.values())
    found += n * ((vals is not None) + 2 * tagged)
    for stand_in, value, k in swaps:
        seen = 0
        for v in cols.values():
            hit = v == stand_in
            if hit.any():
                v[hit] = value
                seen += int(np.count_nonzero(hit))
        if seen != k:
            return None
    if not any(math.isinf(value) for _, value, _ in swaps) and any(
            np.isinf(v).any() for v in cols.values()):
        return None  # (msgspec refuses numbers beyond float range: a guard)
    return cols, present, found


def _groups(cols: dict[str, np.ndarray], present: dict[str, np.ndarray], row: Any,
            tagged: bool, at: np.ndarray, record: Any) -> list[Columns] | None:
    """The rows grouped by the keys they have (runs of rows alike, then runs alike); each
    group's key order from its first row's text (``record(at)``), read by ``json``."""
    names = list(cols)
    n = len(at)
    if not n:
        return []
    if not names:
        return None
    valid = np.stack([present[c] for c in names], axis=1)
    change = np.flatnonzero(np.any(valid[1:] != valid[:-1], axis=1)) + 1
    run_start = np.concatenate(([0], change))
    run_end = np.concatenate((change, [n]))
    shapes: dict[bytes, list[int]] = {}
    for r, key in enumerate(np.packbits(valid[run_start], axis=1)):
        shapes.setdefault(key.tobytes(), []).append(r)
    nested = "values" in row.__struct_encode_fields__
    out = []
    for runs in shapes.values():
        rows = (np.arange(run_start[runs[0]], run_end[runs[0]]) if len(runs) == 1 else
                np.concatenate([np.arange(run_start[r], run_end[r]) for r in runs]))
        have = {c for c, v in zip(names, valid[rows[0]]) if v}
        first = _one(record(int(at[rows[0]])))
        if not isinstance(first, dict):
            return None
        keys = tuple(first)
        vals = first.get("values") if nested else None
        vkeys = tuple(vals) if isinstance(vals, dict) else None
        top = {k for k in keys if not (nested and k == "values") and not (tagged and k == "type")}
        if top != {c for c in have if "\0" not in c} or (nested and vkeys is None) or (
                vkeys is not None and set(vkeys) != {c[7:] for c in have if "\0" in c}):
            return None  # the first row's text does not have the keys found
        m = len(rows)
        step_key = next((k for k in _STEP_KEYS if k in keys), None)
        steps = cols[step_key][rows] if step_key else np.full(m, np.nan)
        epochs = cols["epoch"][rows] if "epoch" in keys else np.full(m, np.nan)
        metric = ([(k, cols["values\0" + k][rows]) for k in vkeys] if vkeys is not None
                  else [(k, cols[k][rows]) for k in keys if k in cols])
        out.append(Columns(keys, vkeys, at[rows], steps, np.full(m, step_key is not None),
                           epochs, np.full(m, "epoch" in keys), metric))
    out.sort(key=lambda g: int(g.at[0]))
    return out

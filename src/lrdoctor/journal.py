"""The decision journal: one entry for every decision that changes the learning rate, and for
every stop, with the evidence behind it.

Entries are appended to a JSONL file (one JSON object per line), each in one ``write`` to a
file opened for appending and fsynced before :meth:`Journal.append` returns, so a process killed
at any moment leaves every decision already taken on disk, and writers in several processes do
not interleave their lines. A writer that finds the file ending in a torn line (a kill
mid-write) or in NUL bytes (a power loss) starts on a fresh line; :meth:`Journal.load` keeps
every complete entry and reports each damaged line, with its number, in ``Journal.warnings``
(and on the ``lrdoctor.journal`` logger) instead of failing.
:meth:`Journal.explain` renders one plain sentence per entry::

    epoch 12: val_accuracy has not improved by more than 0.01% over its best 0.9120 (epoch 9)
    for 3 evaluations (patience 3) → lr 1e-3 → 5e-4 (factor 0.5)

Pure Python: no framework is imported here.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrdoctor.errors import LogFormatError, LRDoctorError

__all__ = ["CAUSES", "Entry", "Journal", "format_lr", "format_value", "sentence"]

logger = logging.getLogger("lrdoctor.journal")

#: What can cause an entry.
CAUSES = ("plateau", "schedule", "warmup-end", "restart", "early-stop", "nonfinite", "warning",
          "repair", "guard")  # repair: one lrdoctor.repair round; guard: a Guard action


def _json_float(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)  # 'nan', 'inf', '-inf': JSON has no spelling for them
    if isinstance(x, dict):
        return {str(k): _json_float(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_float(v) for v in x]
    return x


def _from_json_float(x: Any) -> Any:
    if isinstance(x, str) and x in ("nan", "inf", "-inf"):
        return float(x)
    if isinstance(x, dict):
        return {k: _from_json_float(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_from_json_float(v) for v in x]
    return x


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    """An entry's fields from its JSON object, checked (a hand-edited or damaged line)."""
    evidence, message = data.get("evidence") or {}, data.get("message") or ""
    if not isinstance(evidence, dict) or not isinstance(message, str):
        raise TypeError("journal entry: evidence must be an object and message a string")
    return {"epoch": _count(data.get("epoch"), "epoch"), "step": _count(data.get("step"), "step"),
            "old_lrs": tuple(data.get("old_lrs") or ()), "new_lrs": tuple(data.get("new_lrs") or ()),
            "evidence": evidence, "message": message}


def _count(x: Any, what: str) -> int | None:
    """An epoch or step read back: a whole number or None."""
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or x != int(x):
        raise ValueError(f"journal entry: {what} must be a whole number or null, got {x!r}")
    return int(x)


@dataclass(frozen=True)
class Entry:
    """One decision.

    ``cause`` is one of :data:`CAUSES`; ``epoch`` the 1-based evaluation it was taken at (None
    for step-only events), ``step`` the optimizer step (None when steps are not counted);
    ``old_lrs``/``new_lrs`` the learning rate of every param group before and after (equal for
    stops and warnings); ``evidence`` the numbers behind it (monitored name, value, best and
    when, bad count vs patience, threshold, cool-down, factor...); ``message`` free text for
    warnings.
    """

    cause: str
    epoch: int | None = None
    step: int | None = None
    old_lrs: tuple[float, ...] = ()
    new_lrs: tuple[float, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def __post_init__(self) -> None:
        if self.cause not in CAUSES:
            raise ValueError(f"journal cause must be one of {', '.join(CAUSES)}, got {self.cause!r}")
        object.__setattr__(self, "old_lrs", tuple(float(x) for x in self.old_lrs))
        object.__setattr__(self, "new_lrs", tuple(float(x) for x in self.new_lrs))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cause": self.cause, "epoch": self.epoch, "step": self.step,
                               "old_lrs": list(self.old_lrs), "new_lrs": list(self.new_lrs),
                               "evidence": self.evidence}
        if self.message:
            out["message"] = self.message
        return _json_float(out)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        data = _from_json_float(data)
        return cls(data["cause"], **_fields(data))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, sort_keys=True)

    def explain(self) -> str:
        """One plain sentence."""
        return sentence(self)


class Journal:
    """An append-only list of :class:`Entry`, mirrored to a JSONL file when ``path`` is given.

    ``write=False`` keeps the entries in memory only (what non-zero DDP ranks do). Opening an
    existing file appends to it; a missing parent folder is created at the first write;
    :meth:`load` reads one back.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, write: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.write = write
        self._entries: list[Entry] = []
        #: What :meth:`load` skipped or repaired, one line each (file and line number).
        self.warnings: list[str] = []

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Journal:
        """Read a JSONL journal: every complete entry, whatever surrounds it.

        A damaged line (cut off by a kill or a full disk, NUL bytes after a power loss, a hand
        edit) is skipped and named, with its line number, in ``warnings``; where a resumed
        writer glued a complete entry onto a torn one, the complete entry is kept. A file in
        which no line is an entry but some line is damaged is not a journal:
        :class:`LogFormatError` naming the first such line. Blank lines are ignored.
        """
        p = Path(path)
        raw = p.read_bytes()
        journal = cls(None)
        damaged: list[tuple[int, str]] = []
        glued: list[int] = []
        lines = raw.split(b"\n")
        for i, line in enumerate(lines, 1):
            line = line.replace(b"\x00", b"").strip()  # JSON never holds a raw NUL byte
            if not line:
                continue
            text = line.decode("utf-8", errors="replace")
            entry, problem = _parse_entry(text)
            if entry is None:
                entry = _glued_entry(text)
                if entry is None:
                    damaged.append((i, problem))
                    continue
                glued.append(i)
            journal._entries.append(entry)
        if damaged and not journal._entries and any(i < len(lines) - 1 for i, _ in damaged):
            i, problem = damaged[0]
            raise LogFormatError(f"{p}: line {i} is not a journal entry ({problem}) and no line "
                                 "is; pass the journal.jsonl that PlateauLR or the callbacks "
                                 "wrote")
        for i, problem in damaged[:10]:
            journal._warn(f"{p}: line {i} is not a complete journal entry ({problem}; cut off "
                          "while writing?); skipped it")
        if len(damaged) > 10:
            journal._warn(f"{p}: {len(damaged) - 10} more damaged lines skipped")
        for i in glued[:10]:
            journal._warn(f"{p}: line {i} starts with a cut-off entry; kept the complete entry "
                          "written after it")
        journal.path = p
        journal.write = False
        return journal

    def _warn(self, message: str) -> None:
        logger.warning(message)
        self.warnings.append(message)

    @property
    def entries(self) -> list[Entry]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def __getitem__(self, i: int) -> Entry:
        return self._entries[i]

    # -- writing ---------------------------------------------------------------------------
    def append(self, entry: Entry) -> Entry:
        """Add an entry; with a path, the line is on disk (flushed and fsynced) on return."""
        self._entries.append(entry)
        if self.path is not None and self.write:
            self._write_lines([entry], mode="a")
        return entry

    def record(self, cause: str, **fields: Any) -> Entry:
        """``append(Entry(cause, **fields))``."""
        return self.append(Entry(cause, **fields))

    def _write_lines(self, entries: Iterable[Entry], mode: str) -> None:
        assert self.path is not None
        data = "".join(e.to_json() + "\n" for e in entries).encode("utf-8")
        self._make_parent()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a torn or NUL-padded tail: start on a fresh line
            view = memoryview(data)
            while view:  # one write for a line on a local file; loop on a short one
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _make_parent(self) -> None:
        assert self.path is not None
        if self.path.is_dir():
            raise LRDoctorError(f"journal path {self.path} is a folder; pass a file path such "
                                "as run/journal.jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def restore(self, entries: Sequence[Entry | dict[str, Any]]) -> None:
        """Replace the entries (resuming from a checkpoint); the file is rewritten to match, so
        decisions logged after the checkpoint by a run that then died do not linger."""
        self._entries = [e if isinstance(e, Entry) else Entry.from_dict(e) for e in entries]
        if self.path is not None and self.write:
            self._make_parent()
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write("".join(e.to_json() + "\n" for e in self._entries))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)

    def state(self) -> list[dict[str, Any]]:
        """The entries as JSON-ready dicts (for ``state_dict``)."""
        return [e.to_dict() for e in self._entries]

    # -- explaining ------------------------------------------------------------------------
    def explain(self) -> list[str]:
        """One plain sentence per entry."""
        return [sentence(e) for e in self._entries]

    def __repr__(self) -> str:
        where = f" -> {self.path}" if self.path else ""
        return f"Journal({len(self)} entries{where})"


_PARSE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError)
_START = '{"cause"'


def _parse_entry(text: str) -> tuple[Entry | None, str]:
    """The entry on one line, or None and what is wrong with the line."""
    try:
        data = json.loads(text)
    except _PARSE_ERRORS as err:
        return None, "not JSON" if isinstance(err, json.JSONDecodeError) else type(err).__name__
    if not isinstance(data, dict):
        return None, f"a JSON {type(data).__name__}, not an object"
    try:
        if "nan" not in text and "inf" not in text:  # nothing spelt as a string to convert back
            return Entry(data["cause"], **_fields(data)), ""
        return Entry.from_dict(data), ""
    except _PARSE_ERRORS as err:
        return None, f"not an entry: {' '.join(str(err).split())[:120]}"


def _glued_entry(text: str) -> Entry | None:
    """A complete entry that a writer without the fresh-line rule appended onto a torn one."""
    at = text.find(_START, 1)
    while at > 0:
        entry, _ = _parse_entry(text[at:])
        if entry is not None:
            return entry
        at = text.find(_START, at + 1)
    return None


# -- rendering -----------------------------------------------------------------------------
def format_lr(x: float) -> str:
    """Short LR spelling: ``1e-3``, ``5e-4``, ``3.2e-5``, ``0.1``, ``0``."""
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return repr(x)
    if 1e-2 <= abs(x) < 1e3:
        return f"{x:.4g}"
    mant, exp = f"{x:.3e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"


def format_value(x: float | None) -> str:
    """A metric value: 4 decimals in the usual range, else 4 significant digits."""
    if x is None:
        return "none"
    if not math.isfinite(x):
        return repr(x)
    if x == 0 or 1e-2 <= abs(x) < 1e4:
        return f"{x:.4f}"
    return f"{x:.4g}"


def _lrs(old: Sequence[float], new: Sequence[float]) -> str:
    pairs = [f"{format_lr(a)} → {format_lr(b)}" for a, b in zip(old, new)]
    if len(pairs) == 1:
        return f"lr {pairs[0]}"
    return "lrs " + ", ".join(pairs)


def _when(e: Entry) -> str:
    if e.epoch is not None and e.step is not None:
        return f"epoch {e.epoch} (step {e.step})"
    if e.epoch is not None:
        return f"epoch {e.epoch}"
    if e.step is not None:
        return f"step {e.step}"
    return "at an unknown time"


def _margin(ev: dict[str, Any]) -> str:
    t = ev.get("threshold", ev.get("min_delta", 0.0)) or 0.0
    rel = ev.get("threshold_mode", ev.get("min_delta_mode", "abs")) == "rel"
    if rel:
        return f"{t * 100:.4g}%"
    return f"{t:g}"


def _stagnation(ev: dict[str, Any], count_key: str = "num_bad") -> str:
    name = ev.get("monitor", "the metric")
    verb = "improved"
    best = ev.get("best")
    when = ev.get("best_evaluation", ev.get("best_epoch"))
    if best is None:
        since = "has had no finite value yet"
        return f"{name} {since} for {ev.get(count_key)} evaluations (patience {ev.get('patience')})"
    best_txt = f"its best {format_value(best)}" + (f" (epoch {when})" if when is not None else "")
    return (f"{name} has not {verb} by more than {_margin(ev)} over {best_txt} for "
            f"{ev.get(count_key)} evaluations (patience {ev.get('patience')})")


def sentence(e: Entry) -> str:
    """The plain-language sentence for one entry (a plain one when its evidence is odd: a
    hand-edited entry still reads)."""
    try:
        return _sentence(e)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError):
        return f"{_when(e)}: {e.cause}, {_lrs(e.old_lrs, e.new_lrs)} (its evidence is unreadable)"


def _sentence(e: Entry) -> str:
    ev = e.evidence
    when = _when(e)
    change = _lrs(e.old_lrs, e.new_lrs)
    if e.cause == "plateau":
        mode = f", mode={ev['mode']}" if "mode" in ev else ""
        factor = f" (factor {ev['factor']:g}{mode})" if "factor" in ev else ""
        return f"{when}: {_stagnation(ev)} → {change}{factor}"
    if e.cause == "nonfinite":
        v = ev.get("value")
        head = f"{when}: {ev.get('monitor', 'the metric')} was {v!r}, not a finite number"
        if e.old_lrs != e.new_lrs:
            return f"{head}; reduced at once → {change} (factor {ev.get('factor', 0):g})"
        return (f"{head}; counted as a bad evaluation ({ev.get('num_bad')} of patience "
                f"{ev.get('patience')})")
    if e.cause == "schedule":
        spec = ev.get("schedule")
        what = f"the schedule {spec}" if spec else "the schedule"
        span = ev.get("from_step")
        over = f" over steps {span}–{e.step}" if span is not None and e.step is not None else ""
        return f"{when}: {what} moved {change}{over} (not a plateau decision)"
    if e.cause == "warmup-end":
        at = ", ".join(format_lr(x) for x in e.new_lrs)
        return (f"{when}: warm-up ended at lr{'s' if len(e.new_lrs) > 1 else ''} {at}; "
                "plateau reductions are allowed from here")
    if e.cause == "restart":
        return f"{when}: the schedule restarted, {change}"
    if e.cause == "early-stop":
        reason = ev.get("reason", "patience")
        if reason == "min_lr":
            return (f"{when}: stopping: the learning rate cannot go lower (min_lr or the reduction "
                    f"limit reached) and {_stagnation(ev)} again")
        count = "wait" if "wait" in ev else "num_bad"
        extra = ""
        if ev.get("baseline") is not None:
            extra = f"; baseline {format_value(ev['baseline'])}"
        return f"{when}: stopping early: {_stagnation(ev, count)}{extra}"
    if e.cause == "repair":  # lrdoctor.repair: the round is the epoch field
        return f"repair round {e.epoch}: {e.message}"
    if e.cause == "guard":  # lrdoctor.torch.Guard
        return f"{when}: guard {ev.get('action', 'action')}: {e.message}"
    # warning
    return f"{when}: warning: {e.message}"

"""The decision journal: one entry for every decision that changes the learning rate, and for
every stop, with the evidence behind it.

Entries are appended to a JSONL file (one JSON object per line) and each line is flushed and
fsynced before :meth:`Journal.append` returns, so a process killed at any moment leaves a file
whose every complete line parses and that holds every decision already taken.
:meth:`Journal.explain` renders one plain sentence per entry::

    epoch 12: val_accuracy has not improved by more than 0.01% over its best 0.9120 (epoch 9)
    for 3 evaluations (patience 3) → lr 1e-3 → 5e-4 (factor 0.5)

Pure Python: no framework is imported here.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrdoctor.errors import LogFormatError, LRDoctorError

__all__ = ["CAUSES", "Entry", "Journal", "format_lr", "format_value", "sentence"]

#: What can cause an entry.
CAUSES = ("plateau", "schedule", "warmup-end", "restart", "early-stop", "nonfinite", "warning")


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
        return cls(
            cause=data["cause"], epoch=data.get("epoch"), step=data.get("step"),
            old_lrs=tuple(data.get("old_lrs", ())), new_lrs=tuple(data.get("new_lrs", ())),
            evidence=dict(data.get("evidence", {})), message=data.get("message", ""),
        )

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

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Journal:
        """Read a JSONL journal. A torn last line (a kill mid-write) is dropped; any other line
        that does not parse is an error naming its line number."""
        p = Path(path)
        lines = p.read_text(encoding="utf-8").splitlines()
        journal = cls(None)
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                entry = Entry.from_dict(data)
            except (ValueError, KeyError, TypeError) as err:
                if i == len(lines):
                    break
                raise LogFormatError(f"{p}: line {i} is not a journal entry: {err}") from None
            journal._entries.append(entry)
        journal.path = p
        journal.write = False
        return journal

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
        text = "".join(e.to_json() + "\n" for e in entries)
        self._make_parent()
        with open(self.path, mode, encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

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
    """The plain-language sentence for one entry."""
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
    # warning
    return f"{when}: warning: {e.message}"

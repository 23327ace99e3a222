"""Resumable state for the Keras plateau and early-stopping callbacks.

Keras saves neither callbacks nor their counters with a model, so a ``.keras`` checkpoint
fitted on with ``fit(initial_epoch=k)`` would start best, patience, cool-down and the plateau
factor over. Each callback therefore keeps its state as a small JSON dict (``state_dict()``,
built from the core's ``PlateauState`` / ``EarlyStopState``) and, with a state file, appends
one snapshot per completed epoch to it (a JSONL line, flushed and fsynced: a process killed at
any moment leaves every complete line readable).

When ``fit`` starts at an epoch k > 0 (``initial_epoch=k``, or ``BackupAndRestore`` restoring
one), the callback resumes from the snapshot taken after epoch k — the file keeps every epoch,
so an older checkpoint resumes too — after checking that the snapshot fits: same settings,
written after epoch k, at the optimizer step the model is at. Anything else is a
:class:`~lrdoctor.errors.PlateauError` that names the mismatch and the fix; a stale state is
never mixed into a run. The journal is cut back to the entries of the first k epochs, so
decisions a crashed run logged after its checkpoint do not linger. A run that starts at epoch 0
is fresh, as with Keras' callbacks: it reads nothing and replaces the state file at its first
epoch end.
"""

from __future__ import annotations

import copy
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from lrdoctor.errors import LogFormatError, PlateauError
from lrdoctor.journal import Journal, _from_json_float, _json_float

__all__ = ["VERSION", "Resumable", "StateFile", "default_state_path", "model_step"]

VERSION = 1


def plain(data: Any) -> Any:
    """``data`` as it reads back from JSON (tuples → lists, numpy numbers → Python, ±inf/nan
    spelt as strings, the journal's way)."""
    return _from_json_float(json.loads(json.dumps(_json_float(data), default=_number)))


def _number(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    raise TypeError(f"{type(x).__name__} is not JSON-serialisable")


def default_state_path(journal: Journal | None, kind: str, monitor: str) -> Path | None:
    """Next to a journal file: ``runs/journal.jsonl`` →
    ``runs/journal.plateau-val_loss.state.jsonl`` (None without a journal file)."""
    if journal is None or journal.path is None or not journal.write:
        return None
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", monitor)
    return journal.path.with_name(f"{journal.path.stem}.{kind}-{name}.state.jsonl")


def model_step(model: Any) -> int | None:
    """The optimizer's step count (its ``iterations``), or None without an optimizer."""
    opt = getattr(model, "optimizer", None)
    if opt is None:
        return None
    opt = opt.optimizers[0] if hasattr(opt, "optimizers") else opt
    return int(keras.ops.convert_to_numpy(opt.iterations))


class StateFile:
    """A JSONL file of snapshots, one per completed epoch."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        """Every snapshot; a torn last line (a kill mid-write) is dropped, any other line that
        does not parse is an error naming it."""
        lines = self.path.read_text(encoding="utf-8").splitlines()
        out = []
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                snap = _from_json_float(json.loads(line))
                if not isinstance(snap, dict) or "epoch" not in snap:
                    raise ValueError("not a state snapshot")
            except ValueError as err:
                if i == len(lines):
                    break
                raise PlateauError(
                    f"state file {self.path}: line {i} is not a state snapshot ({err}); "
                    "pass resume=False to start afresh (the file is then replaced)"
                ) from None
            out.append(snap)
        return out

    def write(self, snaps: list[dict[str, Any]]) -> None:
        """Replace the file (a temporary file moved into place: never half-written)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write("".join(_line(s) for s in snaps))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def append(self, snap: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(_line(snap))
            fh.flush()
            os.fsync(fh.fileno())


def _line(snap: dict[str, Any]) -> str:
    return json.dumps(_json_float(snap), allow_nan=False, sort_keys=True) + "\n"


def _journal_length(journal: Journal | None) -> int | None:
    if journal is None:
        return None
    if journal.path is None or not journal.write:
        return len(journal)
    try:
        return len(Journal.load(journal.path)) if journal.path.exists() else 0
    except LogFormatError:  # a damaged journal: appended to as before, never cut on a resume
        return None


def _restore_journal(journal: Journal | None, start: int | None, epoch: int,
                     step: int | None) -> None:
    """Cut a journal file back to the first ``epoch`` epochs of this run: entries from index
    ``start`` (where the run began) that carry a later epoch or optimizer step go."""
    if journal is None or start is None or journal.path is None or not journal.write:
        return
    if not journal.path.exists():
        return
    entries = Journal.load(journal.path).entries
    start = min(start, len(entries))
    kept = entries[:start] + [
        e for e in entries[start:]
        if (e.epoch is None or e.epoch <= epoch)
        and (e.step is None or step is None or e.step <= step)
    ]
    journal.restore(kept)


class Resumable:
    """What the two callbacks share: ``state_dict`` / ``load_state_dict``, the state file and
    the resume at the first epoch of a ``fit``. A subclass sets ``_KIND`` and ``_FILE_KIND`` and
    gives ``_settings()``, ``_body()`` and ``_apply(state)``."""

    _KIND = ""
    _FILE_KIND = ""
    monitor: str
    journal: Journal | None
    model: Any

    def _init_state(self, state_path: str | os.PathLike[str] | bool | None,
                    resume: bool | None) -> None:
        if resume not in (None, True, False):
            raise PlateauError("resume must be None (resume when fit starts past epoch 0), True "
                               f"or False, got {resume!r}")
        if state_path is True:
            raise PlateauError("state_path must be a file path, None (next to a journal file) or "
                               "False (no state file), got True")
        self.resume = resume
        if state_path is None:
            self.state_path = default_state_path(self.journal, self._FILE_KIND, self.monitor)
        else:
            self.state_path = None if state_path is False else Path(state_path)
        self._pending: dict[str, Any] | None = None   # from load_state_dict, used when fit starts
        self._previous: dict[str, Any] | None = None  # this object's last snapshot, for a later fit
        self._snapshot: dict[str, Any] | None = None
        self._begun = False
        self._replace_file = True
        self._journal_start: int | None = None
        self._epochs_done, self._steps_done = 0, 0

    # -- to be given by the callback -----------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def _body(self) -> dict[str, Any]:
        raise NotImplementedError

    def _apply(self, state: dict[str, Any], source: str) -> None:
        raise NotImplementedError

    # -- the public pair ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs, as plain JSON values: the settings (checked on
        load), the epochs and optimizer steps done, the counters and the journal position."""
        state = {"kind": self._KIND, "version": VERSION, "settings": self._settings(),
                 "epoch": self._epochs_done, "step": self._steps_done,
                 "journal_start": self._journal_start, **self._body()}
        return plain(state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state`` (a :meth:`state_dict`) when the next ``fit`` starts; that fit
        must start at the epoch the state was taken after (``initial_epoch=state['epoch']``)."""
        self._check(state, "the state given to load_state_dict")
        self._pending = copy.deepcopy(state)

    # -- checks -------------------------------------------------------------------------------
    def _check(self, state: Any, source: str) -> None:
        name = self._KIND.rsplit(".", 1)[-1]
        if not isinstance(state, dict) or state.get("kind") != self._KIND:
            got = state.get("kind") if isinstance(state, dict) else type(state).__name__
            raise PlateauError(f"{source} is not a {name} state (kind {got!r}, expected "
                               f"{self._KIND!r}); pass the state_dict() or state file of a {name}")
        if state.get("version") != VERSION:
            raise PlateauError(f"{source} has state version {state.get('version')!r}, this "
                               f"lrdoctor reads version {VERSION}; resume with the lrdoctor that "
                               "wrote it, or pass resume=False to start afresh")
        ours, theirs = self._settings(), state.get("settings", {})
        diff = [k for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)]
        if diff:
            was = ", ".join(f"{k}={theirs.get(k)!r}" for k in diff)
            now = ", ".join(f"{k}={ours.get(k)!r}" for k in diff)
            raise PlateauError(f"{source} was written by a {name} with {was}, but this one has "
                               f"{now}; build it with the arguments of the run you resume, or "
                               "pass resume=False to start afresh")

    def _check_point(self, state: dict[str, Any], epoch: int, step: int | None,
                     source: str) -> None:
        if state["epoch"] != epoch:
            raise PlateauError(
                f"{source} was taken after epoch {state['epoch']}, but fit starts at epoch "
                f"{epoch + 1} (initial_epoch={epoch}); pass initial_epoch={state['epoch']} with "
                "the checkpoint of that epoch, or resume=False to start afresh")
        if step is not None and state.get("step") is not None and state["step"] != step:
            raise PlateauError(
                f"{source} was taken at optimizer step {state['step']} (after epoch {epoch}), "
                f"but the model is at step {step}: the state and the model come from different "
                f"runs or checkpoints; load the model saved after epoch {epoch} of the run that "
                "wrote the state, or pass resume=False to start afresh")

    # -- the fit's life cycle -----------------------------------------------------------------
    def _train_begin(self) -> None:
        """Called by ``on_train_begin`` before the Keras reset: remember this object's state."""
        self._previous, self._begun = self._snapshot, False

    def _begin(self, epoch: int) -> None:
        """At the first epoch of a fit: resume, or start afresh."""
        self._begun = True
        step = model_step(self.model)
        state, source, history = self._find(epoch, step)
        if state is None:
            if self.resume:
                raise PlateauError(
                    f"resume=True but there is no state to resume at epoch {epoch + 1} "
                    f"(initial_epoch={epoch}): give state_path= (or a journal file) of the run you "
                    "resume, call load_state_dict(), or pass resume=None")
            if epoch > 0 and self.resume is None:
                warnings.warn(
                    f"{type(self).__name__} resumes at epoch {epoch + 1} without its saved state, "
                    f"so {self._lost()} start over; give state_path= (or a journal file) to "
                    "resume exactly, or pass resume=False to start afresh on purpose",
                    stacklevel=3)
            self._journal_start = _journal_length(self.journal)
            self._epochs_done, self._steps_done = epoch, step or 0
            self._replace_file = True
            return
        self._check_point(state, epoch, step, source)
        self._journal_start = state.get("journal_start")
        if self._journal_start is None:  # the run had no journal file: this one starts here
            self._journal_start = _journal_length(self.journal)
        self._epochs_done, self._steps_done = state["epoch"], state.get("step") or 0
        self._apply(state, source)
        _restore_journal(self.journal, self._journal_start, epoch, step)
        if self.state_path is not None:
            StateFile(self.state_path).write(history or [state])
        self._replace_file = False

    def _lost(self) -> str:
        return "its counters"

    def _find(self, epoch: int,
              step: int | None) -> tuple[dict[str, Any] | None, str, list[Any] | None]:
        """The state to resume from, where it came from, and the state file's history up to it."""
        pending, previous = self._pending, self._previous
        self._pending = self._previous = None
        if pending is not None:
            return pending, "the state given to load_state_dict", self._history_to(pending)
        if self.resume is False or (epoch == 0 and not self.resume):
            return None, "", None
        if previous is not None and previous["epoch"] == epoch and previous["step"] == step:
            return previous, "this callback's last fit", self._history_to(previous)
        if self.state_path is None:
            return None, "", None
        source = f"state file {self.state_path}"
        if not self.state_path.exists():
            raise PlateauError(
                f"{source} does not exist, but fit starts at epoch {epoch + 1} "
                f"(initial_epoch={epoch}): give the state file written with the checkpoint you "
                "resume, or pass resume=False to start afresh")
        snaps = StateFile(self.state_path).read()
        at = [i for i, s in enumerate(snaps) if s.get("epoch") == epoch]
        if not at:
            held = f"epochs {snaps[0]['epoch']}–{snaps[-1]['epoch']}" if snaps else "nothing"
            behind = bool(snaps) and snaps[-1]["epoch"] < epoch
            hint = ("list the lrdoctor callbacks before ModelCheckpoint/BackupAndRestore so their "
                    "state is written first, resume from a checkpoint it holds, " if behind else "")
            raise PlateauError(
                f"{source} holds the state after {held}, not after epoch {epoch}, where fit starts "
                f"(initial_epoch={epoch}); {hint}or pass resume=False to start afresh")
        i = at[-1]
        self._check(snaps[i], source)
        return snaps[i], source, snaps[: i + 1]

    def _history_to(self, state: dict[str, Any]) -> list[Any] | None:
        """The state file's snapshots up to ``state`` when it holds it, else None."""
        if self.state_path is None or not self.state_path.exists():
            return None
        try:
            snaps = StateFile(self.state_path).read()
        except PlateauError:
            return None
        at = [i for i, s in enumerate(snaps) if s == plain(state)]
        return snaps[: at[-1] + 1] if at else None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self._begun:
            self._begin(epoch)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self._begun:
            self._begin(epoch)
        self._evaluate(epoch, logs)
        self._record(epoch)  # the state after this epoch, to the state file

    def _evaluate(self, epoch: int, logs: dict[str, Any] | None) -> None:
        raise NotImplementedError  # the callback's own decision for this epoch

    def _record(self, epoch: int) -> None:
        """At every epoch end: the snapshot, appended to the state file."""
        self._epochs_done, self._steps_done = epoch + 1, model_step(self.model) or 0
        self._snapshot = self.state_dict()
        if self.state_path is None:
            return
        if self._replace_file:
            StateFile(self.state_path).write([self._snapshot])
            self._replace_file = False
        else:
            StateFile(self.state_path).append(self._snapshot)

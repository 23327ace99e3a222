"""The run directory an integration writes, resume truncation, and the end-of-training diagnosis.

Framework-free: the integrations pass plain paths and numbers in.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrdoctor.journal import Journal

__all__ = ["RunFiles", "attach_journal", "truncate_after"]

logger = logging.getLogger("lrdoctor.integrations")


@dataclass(frozen=True)
class RunFiles:
    """Where an integration writes: ``log.jsonl``, ``journal.jsonl``, ``diagnosis.json`` and
    ``report.html`` under one directory.

    >>> RunFiles("runs/a").log.as_posix()
    'runs/a/log.jsonl'
    """

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def log(self) -> Path:
        return self.root / "log.jsonl"

    @property
    def journal(self) -> Path:
        return self.root / "journal.jsonl"

    @property
    def diagnosis(self) -> Path:
        return self.root / "diagnosis.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def open_journal(self, *, write: bool = True) -> Journal:
        """The run's journal; an existing file is read back so a resumed run appends to it."""
        if write:
            self.root.mkdir(parents=True, exist_ok=True)
        if not self.journal.exists():
            return Journal(self.journal, write=write)
        journal = Journal.load(self.journal)
        journal.write = write
        return journal

    def resume_at(self, step: int, journal: Journal | None = None, *, log: bool = True) -> int:
        """Forget everything after optimizer step ``step``: log records (``log=True``; the rank
        that writes) and journal entries that a run which died after its last checkpoint wrote,
        so the resumed run continues seamlessly. Returns the Monitor's evaluation count at that
        point (to continue its numbering)."""
        evaluations = truncate_after(self.log, step) if log else 0
        if journal is not None:  # journal steps count steps taken: keep those <= step
            kept = [e for e in journal.entries if e.step is None or e.step <= step]
            if len(kept) != len(journal):
                journal.restore(kept)
        return evaluations

    def finish(self, *, html: bool = True) -> Any:
        """Diagnose the log and write ``diagnosis.json`` (and ``report.html``); returns the
        :class:`~lrdoctor.diagnose.Diagnosis`, or None when the log holds nothing yet."""
        from lrdoctor import diagnose as _diagnose
        from lrdoctor.logs import load

        if not self.log.exists() or self.log.stat().st_size == 0:
            logger.warning("no training log at %s: nothing to diagnose", self.log)
            return None
        log = load(self.log)
        diagnosis = _diagnose.diagnose(log)
        self.diagnosis.write_text(json.dumps(diagnosis.to_dict(), indent=2, allow_nan=False) + "\n",
                                  encoding="utf-8")
        if html:
            from lrdoctor import report

            report.write_html(diagnosis, log, self.report)
        return diagnosis


def truncate_after(path: str | os.PathLike[str], step: int) -> int:
    """Drop the Monitor records of ``path`` whose ``"step"`` is ``step`` or later: the Monitor
    indexes optimizer steps from 0, so after ``step`` steps the resumed run redoes those (its
    evaluation records sit at ``step - 1`` and stay). Returns the largest ``"epoch"`` kept (the
    Monitor's evaluation count, 0 if none). Records without a step (run metadata) are kept, a
    torn last line is dropped, and the file is replaced atomically."""
    p = Path(path)
    if not p.exists():
        return 0
    kept, dropped, epoch = [], 0, 0
    lines = p.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if i == len(lines):  # torn by a kill mid-write
                dropped += 1
                continue
            raise
        s = record.get("step") if isinstance(record, dict) else None
        if isinstance(s, (int, float)) and s >= step:
            dropped += 1
            continue
        e = record.get("epoch") if isinstance(record, dict) else None
        if isinstance(e, (int, float)):
            epoch = max(epoch, int(e))
        kept.append(line)
    if dropped:
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, p)
    return epoch


def attach_journal(sched: Any, journal: Journal) -> None:
    """Give a :class:`~lrdoctor.torch.PlateauLR` built without a journal the run's journal.

    PlateauLR counts optimizer steps (the ``step`` of its entries) only when it was built with a
    journal or a schedule; this adds the same optimizer post-step hook when it is missing.
    """
    sched.journal = journal
    if getattr(sched, "_hook", None) is None:
        import weakref

        ref = weakref.ref(sched)

        def _after_optimizer_step(opt: Any, args: Any, kwargs: Any) -> None:
            me = ref()
            if me is not None:
                me._on_optimizer_step()

        sched._hook = sched.optimizer.register_step_post_hook(_after_optimizer_step)

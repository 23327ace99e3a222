"""The run directory an integration writes, resume truncation, and the end-of-training diagnosis.

Framework-free: the integrations pass plain paths and numbers in.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrdoctor.journal import Entry, Journal
from lrdoctor.plateau._schedule import CAUSE_OF_MARK, marks_between

__all__ = ["RunFiles", "attach_journal", "journal_marks", "truncate_after"]

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

    def start(self, step: int, *, writer: bool = True) -> tuple[Journal, int]:
        """Open the run for training that starts after ``step`` optimizer steps (0: a fresh
        run, whose old files are removed; else a resume, see :meth:`resume_at`). Returns the
        journal — the file's, continued, for the ``writer`` (rank 0); in memory elsewhere — and
        the Monitor's evaluation count to continue from."""
        if writer:
            self.root.mkdir(parents=True, exist_ok=True)
            if step == 0:
                for p in (self.log, self.journal, self.diagnosis, self.report):
                    p.unlink(missing_ok=True)
        journal = self.open_journal() if writer else Journal(self.journal, write=False)
        evaluations = self.resume_at(step, journal, log=writer) if step else 0
        return journal, evaluations

    def open_journal(self) -> Journal:
        """The run's journal, for the process that writes it; an existing file is read back so
        a resumed run continues it."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.journal.exists():
            return Journal(self.journal)
        journal = Journal.load(self.journal)
        journal.write = True
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
        """Diagnose the log and write ``diagnosis.json`` (and ``report.html`` with the journal's
        sentences); per-rank traces under ``ranks/`` add ``ranks-diverge`` findings. Returns the
        :class:`~lrdoctor.doctor.Diagnosis`, or None when nothing was logged."""
        from lrdoctor.doctor import diagnose
        from lrdoctor.logs import load
        from lrdoctor.report import to_json

        if not self.log.exists() or self.log.stat().st_size == 0:
            logger.warning("no training log at %s: nothing to diagnose", self.log)
            return None
        log = load(self.log)
        diagnosis = diagnose(log)
        if (self.root / "ranks").is_dir():
            from lrdoctor.integrations.ranks import diagnose_ranks

            extra = diagnose_ranks(self.root / "ranks")
            if extra:
                order = {"critical": 0, "warning": 1, "info": 2}
                findings = sorted((*extra, *diagnosis.findings), key=lambda f: order[f.severity])
                diagnosis = dataclasses.replace(diagnosis, findings=tuple(findings))
        text = json.dumps(to_json(diagnosis), indent=2, allow_nan=False, default=str)
        self.diagnosis.write_text(text + "\n", encoding="utf-8")
        if html:
            from lrdoctor.report import Report

            report = Report(f"lrdoctor: {self.root.name}", subtitle=str(self.log))
            report.add_diagnosis(diagnosis, log)
            if self.journal.exists():
                lines = Journal.load(self.journal).explain()
                if lines:
                    report.add_journal(lines, title="every learning-rate decision")
            report.write(self.report)
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
    """Give a :class:`~lrdoctor.torch.PlateauLR` built without a journal the run's journal."""
    sched.attach_journal(journal)


def journal_marks(journal: Journal, sched: Any, start: int, stop: int, *,
                  epoch: int | None = None) -> None:
    """Journal the warm-up end and the restarts that a ``ScheduledLR`` crossed in optimizer steps
    ``start < k <= stop`` (a PlateauLR journals its own; other schedulers are skipped)."""
    if type(sched).__name__ != "ScheduledLR" or stop <= start:
        return
    s = sched.schedules[0]
    for step, label in marks_between(s, start, stop):
        cause = CAUSE_OF_MARK.get(label)
        if cause is not None:
            journal.append(Entry(cause, epoch=epoch, step=step,
                                 old_lrs=[s(step - 1) * c for c in sched.scales],
                                 new_lrs=[s(step) * c for c in sched.scales],
                                 evidence={"label": label, "schedule": s.to_spec()}))

"""Read-only helpers that tell the plateau adapters where a schedule's warm-up ends and which
notable steps (restarts, step decays) a stretch of optimizer steps crossed."""

from __future__ import annotations

from lrdoctor.schedules import Schedule

__all__ = ["CAUSE_OF_MARK", "marks_between", "warmup_end"]

#: The journal cause of each schedule mark label; unlisted labels count as ``schedule``.
CAUSE_OF_MARK = {"warm-up end": "warmup-end", "restart": "restart"}

_HORIZON = 10**9


def warmup_end(schedule: Schedule | None) -> int:
    """The first optimizer step after the schedule's warm-up (0 if it has none).

    >>> from lrdoctor.schedules import parse
    >>> warmup_end(parse("warmup(500) >> cosine(1e-3, steps=1000)"))
    500
    """
    if schedule is None:
        return 0
    ends = [m.step for m in schedule.marks(_HORIZON) if m.label == "warm-up end"]
    return min(ends) if ends else 0


def marks_between(schedule: Schedule | None, start: int, stop: int) -> list[tuple[int, str]]:
    """Marks ``(step, label)`` with ``start < step <= stop``."""
    if schedule is None or stop <= start:
        return []
    return [(m.step, m.label) for m in schedule.marks(stop + 1) if start < m.step <= stop]

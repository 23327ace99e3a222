"""Read-only helpers that tell the plateau adapters where a schedule's warm-up ends and which
notable steps (warm-up end, restarts, step decays) it has, without ever asking a schedule for
more marks than a bounded horizon (a ``step(...)`` decay lists one mark per period)."""

from __future__ import annotations

from lrdoctor.schedules import Schedule
from lrdoctor.schedules._compose import Product, Scaled, Sequence
from lrdoctor.schedules._warmup import Ramp

__all__ = ["CAUSE_OF_MARK", "MarkCache", "marks_between", "warmup_end"]

#: The journal cause of each schedule mark label; unlisted labels count as ``schedule``.
CAUSE_OF_MARK = {"warm-up end": "warmup-end", "restart": "restart"}

_PROBE = 4096


def warmup_end(schedule: Schedule | None) -> int:
    """The first optimizer step after the schedule's warm-up (0 if it has none).

    A :class:`~lrdoctor.schedules.Ramp` first in a sequence is a warm-up, and so is any part
    that marks a ``'warm-up end'`` (``wsd``, ``inverse_sqrt`` with warm-up).

    >>> from lrdoctor.schedules import parse
    >>> warmup_end(parse("warmup(500) >> cosine(1e-3, steps=1000)"))
    500
    >>> warmup_end(parse("cosine(1e-3, steps=1000)"))
    0
    """
    if schedule is None:
        return 0
    if isinstance(schedule, Ramp):
        return schedule.steps
    if isinstance(schedule, Sequence):
        offset = 0
        for part in schedule.parts:
            end = warmup_end(part)
            if end == 0:
                break
            offset += end
            if not isinstance(part, Ramp):
                break
        return offset
    if isinstance(schedule, Scaled):
        return warmup_end(schedule.schedule)
    if isinstance(schedule, Product):
        return max(warmup_end(schedule.left), warmup_end(schedule.right))
    horizon = (schedule.duration + 1) if schedule.duration is not None else _PROBE
    ends = [m.step for m in schedule.marks(min(horizon, _PROBE)) if m.label == "warm-up end"]
    return min(ends) if ends else 0


class MarkCache:
    """``label_at(k)``: the schedule's mark label at step ``k``, from marks fetched in growing
    windows, so a per-step lookup costs O(1) amortised."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.horizon = 0
        self.by_step: dict[int, str] = {}

    def label_at(self, k: int) -> str | None:
        if k >= self.horizon:
            self.horizon = max(2 * self.horizon, k + 1024)
            # a windowed refetch: marks(h) of a long periodic schedule is capped by the schedule
            self.by_step = {m.step: m.label for m in self.schedule.marks(self.horizon)
                            if m.step >= k}
        return self.by_step.get(k)


def marks_between(schedule: Schedule | None, start: int, stop: int) -> list[tuple[int, str]]:
    """Marks ``(step, label)`` with ``start < step <= stop`` (used by the integrations to
    journal what a ``ScheduledLR`` crossed)."""
    if schedule is None or stop <= start:
        return []
    return [(m.step, m.label) for m in schedule.marks(stop + 1) if start < m.step <= stop]

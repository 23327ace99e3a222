"""Preview a schedule before training: a summary of its notable points and a picture.

:func:`summarize` is pure (numbers only); :func:`plot_schedule` draws the learning rate on a
log axis with warm-up ends, restarts and phase changes annotated, and the momentum curve below
it when the schedule carries one.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lrdoctor._output import Target, save_figure
from lrdoctor.errors import ScheduleError
from lrdoctor.schedules import Mark, Schedule, parse

__all__ = ["DENSE_STEPS", "Preview", "default_steps", "plot_schedule", "sample_steps", "summarize"]

#: Up to this many steps a preview evaluates every step; beyond, :func:`sample_steps`.
DENSE_STEPS = 20_000
#: Evenly spaced steps a longer preview evaluates, besides its key points.
GRID_STEPS = 4_000


@dataclass(frozen=True)
class Preview:
    """The numbers a person looks at first: where the schedule starts, peaks and ends."""

    spec: str
    steps: int
    start_lr: float
    peak_lr: float
    peak_step: int
    min_lr: float
    min_step: int
    end_lr: float
    duration: int | None
    marks: tuple[Mark, ...]
    has_momentum: bool
    sampled: bool = False  # True: peak and lowest are over the sampled steps (see sample_steps)

    def rows(self) -> list[tuple[str, str, str]]:
        """(what, step, lr) rows for a table."""
        out = [
            ("start", "0", _fmt(self.start_lr)),
            ("peak", str(self.peak_step), _fmt(self.peak_lr)),
            ("lowest", str(self.min_step), _fmt(self.min_lr)),
            ("end", str(self.steps - 1), _fmt(self.end_lr)),
        ]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "steps": self.steps,
            "duration": self.duration,
            "start_lr": self.start_lr,
            "peak_lr": self.peak_lr,
            "peak_step": self.peak_step,
            "min_lr": self.min_lr,
            "min_step": self.min_step,
            "end_lr": self.end_lr,
            "marks": [{"step": m.step, "label": m.label} for m in self.marks],
            "sampled": self.sampled,
        }


def _fmt(lr: float) -> str:
    return f"{lr:.4g}"


def default_steps(schedule: Schedule) -> int:
    """How far to preview: the duration (plus 5% to show the hold), else 1,000 steps."""
    if schedule.duration is None:
        return 1000
    return max(2, math.ceil(schedule.duration * 1.05))


def sample_steps(schedule: Schedule, steps: int, marks: list[Mark] | None = None) -> np.ndarray:
    """The steps a preview of ``range(steps)`` evaluates, sorted: all of them up to
    ``DENSE_STEPS``; beyond, ``GRID_STEPS`` evenly spaced ones plus the key points exactly
    (0, 1, the last step, and each mark — warm-up end, peak, restart, phase change, end — with
    the step before it), so the time taken does not grow with ``steps``."""
    if steps <= DENSE_STEPS:
        return np.arange(steps, dtype=np.int64)
    marks = _marks(schedule, steps) if marks is None else marks
    keys = {0, 1, steps - 1}
    for m in marks:
        keys.update(k for k in (m.step - 1, m.step) if 0 <= k < steps)
    grid = np.linspace(0, steps - 1, GRID_STEPS).round().astype(np.int64)
    return np.union1d(grid, np.fromiter(keys, dtype=np.int64))


def summarize(schedule: Schedule | str, steps: int | None = None) -> Preview:
    """Evaluate ``schedule`` on ``range(steps)`` (or, for long previews, on
    :func:`sample_steps`) and pick out its notable points."""
    schedule = parse(schedule)
    steps = default_steps(schedule) if steps is None else steps
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ScheduleError(f"steps must be a whole number >= 1, got {steps!r}")
    if steps > 2**62:
        raise ScheduleError(f"steps must be at most 2**62 to preview, got {steps}")
    marks = _marks(schedule, steps)
    ks = sample_steps(schedule, steps, marks)
    lrs = schedule.values(ks)
    return Preview(
        spec=schedule.to_spec(),
        steps=steps,
        start_lr=float(lrs[0]),
        peak_lr=float(lrs.max()),
        peak_step=int(ks[lrs.argmax()]),
        min_lr=float(lrs.min()),
        min_step=int(ks[lrs.argmin()]),
        end_lr=float(lrs[-1]),
        duration=schedule.duration,
        marks=tuple(marks),
        has_momentum=schedule.momentum(0) is not None,
        sampled=len(ks) < steps,
    )


def _marks(schedule: Schedule, steps: int) -> list[Mark]:
    marks = schedule.marks(steps)
    d = schedule.duration
    if d is not None and d < steps and not any(m.step == d for m in marks):
        marks.append(Mark(d, "end (holds)"))
    return marks


def plot_schedule(schedule: Schedule | str, path: Target, steps: int | None = None,
                  *, title: str | None = None) -> Path | Target:
    """Draw the schedule (log-y) with its marks annotated; write a PNG/SVG/PDF to ``path``.

    ``path`` may be a symlink (its target is written), a device or FIFO (written in place) or a
    binary file object (PNG); see :func:`lrdoctor._output.write_file`. Returns ``path`` (a
    ``Path`` when it was a name).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    schedule = parse(schedule)
    preview = summarize(schedule, steps)
    ks = sample_steps(schedule, preview.steps, list(preview.marks))
    lrs = schedule.values(ks)
    rows = 2 if preview.has_momentum else 1
    fig, axes = plt.subplots(rows, 1, figsize=(8, 3.2 * rows + 0.6), sharex=True, squeeze=False)
    ax = axes[0][0]
    positive = lrs > 0
    ax.plot(ks, np.where(positive, lrs, np.nan), color="#1f77b4", lw=1.6)
    if positive.any() and lrs[positive].max() / lrs[positive].min() > 20:
        ax.set_yscale("log")
    ax.set_ylabel("learning rate")
    ax.grid(True, which="both", alpha=0.25)
    ax.set_title(title or preview.spec, fontsize=9)
    for m in preview.marks[:20]:
        ax.axvline(m.step, color="0.5", ls=":", lw=1)
        ax.annotate(m.label, (m.step, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                    va="top", ha="right", fontsize=7, color="0.35")
    ax.plot([preview.peak_step], [preview.peak_lr], "o", color="#d62728", ms=4)
    ax.annotate(f"peak {preview.peak_lr:.3g} @ {preview.peak_step}", (preview.peak_step, preview.peak_lr),
                textcoords="offset points", xytext=(6, -10), fontsize=8, color="#d62728")
    if preview.has_momentum:
        mom = np.array([schedule.momentum(int(k)) for k in ks], dtype=float)
        axes[1][0].plot(ks, mom, color="#2ca02c", lw=1.4)
        axes[1][0].set_ylabel("momentum / beta1")
        axes[1][0].grid(True, alpha=0.25)
    axes[-1][0].set_xlabel("optimizer step")
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=110)
    finally:
        plt.close(fig)
    return Path(path) if isinstance(path, (str, os.PathLike)) else path

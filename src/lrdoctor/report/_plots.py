"""Figures for a diagnosis: loss curves with findings marked, the LR track, gradient norms."""

from __future__ import annotations

from typing import Any

import numpy as np

from lrdoctor.doctor import Diagnosis
from lrdoctor.doctor._context import blocks
from lrdoctor.logs import TrainingLog

__all__ = ["diagnosis_figure"]

_COLORS = {"critical": "#c0392b", "warning": "#d68910", "info": "#2471a3"}
_MAX_POINTS = 4000


def _thin(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(steps) <= _MAX_POINTS:
        return steps, values
    idx = np.linspace(0, len(steps) - 1, _MAX_POINTS).astype(int)
    return steps[idx], values[idx]


def diagnosis_figure(diagnosis: Diagnosis, log: TrainingLog, *, title: str | None = None) -> Any:
    """A matplotlib Figure: loss (raw, smoothed, validation) with finding markers; lr; grad norm."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    panels = ["loss"]
    if log.lr() is not None:
        panels.append("lr")
    if log.has("grad_norm"):
        panels.append("grad")
    fig = Figure(figsize=(8, 2.2 + 1.6 * len(panels)), constrained_layout=True)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    unit = log.step_unit
    plotted = False
    for name, color in (("train/loss", "#1f77b4"), ("val/loss", "#ff7f0e")):
        if not log.has(name):
            alt = [n for n in log.names(name.split("/")[0] + "/") if "loss" in n]
            if not alt:
                continue
            name = alt[0]
        s = log.get(name).finite
        if not len(s):
            continue
        x, y = _thin(s.steps, s.values)
        many = len(s) > 60
        ax.plot(x, y, color=color, alpha=0.35 if many else 0.9, lw=0.8,
                marker=None if many else "o", ms=3, label=name)
        if many:
            n = min(60, len(s) // 5)
            ax.plot(blocks(s.steps, n), blocks(s.values, n), color=color, lw=2,
                    label=f"{name} (smoothed)")
        plotted = True
    if plotted:
        lo = [log.get(n).finite.values for n in log.names() if n.endswith("loss") and len(log.get(n).finite)]
        allv = np.concatenate(lo) if lo else np.array([1.0])
        if np.all(allv > 0) and allv.max() / max(allv.min(), 1e-12) > 50:
            ax.set_yscale("log")
    for f in diagnosis.findings:
        for st in f.steps[:5]:
            ax.axvline(st, color=_COLORS[f.severity], ls="--", lw=1, alpha=0.8)
            ax.annotate(f.code, (st, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                        va="top", ha="right", fontsize=7, color=_COLORS[f.severity])
    ax.set_ylabel("loss")
    if plotted:
        ax.legend(fontsize=7, loc="upper right")
    else:
        ax.text(0.5, 0.5, "no loss in this log", transform=ax.transAxes, ha="center")
    i = 1
    if "lr" in panels:
        s = log.lr()
        axes[i].plot(*_thin(s.steps, s.values), color="#117a65", lw=1.2)
        if np.all(s.values[np.isfinite(s.values)] > 0):
            axes[i].set_yscale("log")
        axes[i].set_ylabel("learning rate")
        i += 1
    if "grad" in panels:
        s = log.get("grad_norm").finite
        axes[i].plot(*_thin(s.steps, s.values), color="#6c3483", lw=0.8)
        if len(s) and np.all(s.values > 0):
            axes[i].set_yscale("log")
        axes[i].set_ylabel("gradient norm")
    axes[-1].set_xlabel(unit)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig

"""Pictures of lab runs: trajectories over contours, loss, gradient norm, effective step size.

Every function draws into a given matplotlib ``Axes`` (or makes a figure) and never shows a
window; :func:`figure` lays out the usual four panels and :func:`animate` writes a GIF.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lrdoctor.errors import LRDoctorError
from lrdoctor.lab._run import Trajectory
from lrdoctor.lab._surfaces import Surface

__all__ = [
    "PANELS",
    "animate",
    "figure",
    "plot_contours",
    "plot_effective_lr",
    "plot_grad_norm",
    "plot_loss",
    "plot_lr",
    "plot_trajectories",
]

PANELS = ("trajectory", "loss", "grad_norm", "effective_lr", "lr")
_MAX_PATH_POINTS = 4000


def _plt() -> Any:
    import matplotlib.pyplot as plt  # headless machines fall back to Agg on their own

    return plt


def _color(i: int) -> str:
    return f"C{i % 10}"


def plot_contours(surface: Surface, ax: Any, *, resolution: int = 300) -> None:
    """Log-spaced contours of ``loss - min`` over the surface's window, minima as stars."""
    (x0, x1), (y0, y1) = surface.bounds
    xs, ys = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    z = surface.loss_np(xs, ys) - surface.min_loss
    z = np.maximum(z, 1e-12)
    lo, hi = max(float(np.quantile(z, 0.002)), 1e-4), float(z.max())
    levels = np.geomspace(lo, hi, 18) if hi > lo else None
    ax.contourf(xs, ys, z, levels=levels, cmap="Greys_r", alpha=0.35, norm=_lognorm(lo, hi))
    ax.contour(xs, ys, z, levels=levels, colors="0.45", linewidths=0.5)
    for mx, my in surface.minima:
        ax.plot([mx], [my], marker="*", color="gold", markeredgecolor="black", markersize=14,
                zorder=5, linestyle="none")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def _lognorm(lo: float, hi: float) -> Any:
    from matplotlib.colors import LogNorm

    return LogNorm(vmin=lo, vmax=max(hi, lo * 10))


def plot_trajectories(
    surface: Surface, trajectories: Sequence[Trajectory], ax: Any, *, steps: int | None = None
) -> None:
    """The paths over the contours (the first ``steps`` steps, thinned to a few thousand points)."""
    plot_contours(surface, ax)
    (x0, x1), (y0, y1) = surface.bounds
    for i, t in enumerate(trajectories):
        pts = t.points[: (steps + 1) if steps else None]
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        stride = max(1, math.ceil(len(pts) / _MAX_PATH_POINTS))
        if stride > 1 and stride % 2 == 0:
            stride += 1  # an odd stride keeps both walls of a bounce in view
        shown = pts[::stride]
        if len(shown) and not np.array_equal(shown[-1], pts[-1]):
            shown = np.vstack([shown, pts[-1:]])
        ax.plot(shown[:, 0], shown[:, 1], color=_color(i), linewidth=1.0, alpha=0.9, label=t.label)
        ax.plot(shown[:1, 0], shown[:1, 1], "o", color=_color(i), markersize=5)
        ax.plot(shown[-1:, 0], shown[-1:, 1], "x", color=_color(i), markersize=7, mew=2)
        last = pts[-1]
        if not (x0 <= last[0] <= x1 and y0 <= last[1] <= y1):
            ax.annotate("left the window", xy=(0.02, 0.95 - 0.06 * i), xycoords="axes fraction",
                        color=_color(i), fontsize=8)
    ax.set_title(f"{surface.label}: paths", fontsize=10)


def _steps_axis(ax: Any, logx: bool) -> None:
    ax.set_xlabel("optimizer step")
    if logx:
        ax.set_xscale("log")
    ax.grid(True, which="major", alpha=0.3)


def _x(t: Trajectory, n: int, logx: bool) -> np.ndarray:
    return np.arange(n) + (1 if logx else 0)


def _shown(values: np.ndarray) -> np.ndarray:
    """Positive, finite and not astronomically large (a diverged run): what a log axis can draw."""
    with np.errstate(all="ignore"):
        return np.where(np.isfinite(values) & (values > 0) & (values < 1e100), values, np.nan)


def _log_smooth(values: np.ndarray) -> np.ndarray:
    """Geometric mean over the trailing tenth of the steps so far (readable on a log-step axis)."""
    logs = np.log(np.where(values > 0, values, np.nan))
    ok = np.isfinite(logs)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, logs, 0.0))])
    cnt = np.concatenate([[0], np.cumsum(ok)])
    k = np.arange(len(values))
    lo = k - k // 10
    n = cnt[k + 1] - cnt[lo]
    with np.errstate(all="ignore"):
        return np.where(n > 0, np.exp((csum[k + 1] - csum[lo]) / np.maximum(n, 1)), np.nan)


def _set_log_y(ax: Any, arrays: Sequence[np.ndarray]) -> None:
    """Log y when the data spans more than a factor 20, linear otherwise (readable ticks)."""
    vals = np.concatenate([a[np.isfinite(a) & (a > 0)] for a in arrays] or [np.array([])])
    if len(vals) and vals.max() > 20 * vals.min():
        ax.set_yscale("log")


def plot_loss(trajectories: Sequence[Trajectory], ax: Any, *, logx: bool = False) -> None:
    """``loss - min`` per step on a log scale (noisy runs: raw faint, smoothed solid)."""
    shown = []
    for i, t in enumerate(trajectories):
        gap = _shown(t.losses[:-1] - t.surface.min_loss)
        xs = _x(t, len(gap), logx)
        if t.surface.noise > 0:
            ax.plot(xs, gap, color=_color(i), linewidth=0.5, alpha=0.25)
            ax.plot(xs, _log_smooth(gap), color=_color(i), linewidth=1.4, label=t.label)
        else:
            ax.plot(xs, gap, color=_color(i), linewidth=1.0, label=t.label)
        shown.append(gap)
    _set_log_y(ax, shown)
    ax.set_ylabel("loss − minimum")
    noisy = any(t.surface.noise > 0 for t in trajectories)
    ax.set_title("loss" + (" (smoothed; raw faint)" if noisy else ""), fontsize=10)
    _steps_axis(ax, logx)


def plot_lr(trajectories: Sequence[Trajectory], ax: Any, *, logx: bool = False) -> None:
    """The learning rate each step used (the schedule)."""
    for i, t in enumerate(trajectories):
        ax.plot(_x(t, len(t.lrs), logx), t.lrs, color=_color(i), linewidth=1.2, label=t.label)
    ax.set_ylabel("learning rate")
    ax.set_title("schedule", fontsize=10)
    _steps_axis(ax, logx)


def plot_grad_norm(trajectories: Sequence[Trajectory], ax: Any, *, logx: bool = False) -> None:
    """The gradient norm each step saw (noise included): large while the loss is stuck = bouncing."""
    for i, t in enumerate(trajectories):
        g = t.grad_norms
        ax.plot(_x(t, len(g), logx), _shown(g), color=_color(i), linewidth=0.8, label=t.label)
    _set_log_y(ax, [_shown(t.grad_norms) for t in trajectories])
    ax.set_ylabel("‖gradient‖")
    ax.set_title("gradient norm (noise included)" if any(t.surface.noise for t in trajectories)
                 else "gradient norm", fontsize=10)
    _steps_axis(ax, logx)


def plot_effective_lr(trajectories: Sequence[Trajectory], ax: Any, *, logx: bool = False) -> None:
    """Per-parameter step size: solid x, dashed y (one line when both are the plain lr)."""
    for i, t in enumerate(trajectories):
        e = t.effective_lr
        xs = _x(t, len(e), logx)
        if t.adaptive:
            ax.plot(xs, _shown(e[:, 0]), color=_color(i), linewidth=1.0, label=f"{t.label} (x)")
            ax.plot(xs, _shown(e[:, 1]), color=_color(i), linewidth=1.0, linestyle="--",
                    label=f"{t.label} (y)")
        else:
            ax.plot(xs, _shown(t.lrs), color=_color(i), linewidth=1.0,
                    linestyle=":", label=f"{t.label} (lr)")
    ax.set_yscale("log")
    ax.set_ylabel("step size per parameter")
    ax.set_title("effective step size: solid x, dashed y", fontsize=10)
    _steps_axis(ax, logx)


def figure(
    surface: Surface,
    trajectories: Sequence[Trajectory],
    *,
    path: Any = None,
    panels: Sequence[str] = PANELS,
    title: str | None = None,
    logx: bool = False,
    path_steps: int | None = None,
    dpi: int = 110,
) -> Any:
    """A row/grid of panels for the runs; saved to ``path`` (PNG, SVG, PDF) when given.

    ``path``: a file name (a symlink's target is written, a device or FIFO in place) or a
    binary file object (PNG); see :func:`lrdoctor._output.write_file`. Returns the matplotlib
    Figure (closed after saving when ``path`` is given).
    """
    unknown = [p for p in panels if p not in PANELS]
    if unknown or not panels:
        raise LRDoctorError(f"unknown panel(s) {unknown}; expected some of {', '.join(PANELS)}")
    plt = _plt()
    n = len(panels)
    cols = 2 if n == 4 else min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.0 * cols, 4.2 * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax, panel in zip(flat, panels):
        if panel == "trajectory":
            plot_trajectories(surface, trajectories, ax, steps=path_steps)
        elif panel == "loss":
            plot_loss(trajectories, ax, logx=logx)
        elif panel == "grad_norm":
            plot_grad_norm(trajectories, ax, logx=logx)
        elif panel == "lr":
            plot_lr(trajectories, ax, logx=logx)
        else:
            plot_effective_lr(trajectories, ax, logx=logx)
    for ax in flat[n:]:
        ax.set_visible(False)
    handles, labels = flat[0].get_legend_handles_labels()
    if not handles:
        handles, labels = flat[1 if n > 1 else 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(handles)), fontsize=9,
                   frameon=False)
    if title:
        fig.suptitle(title, fontsize=12)
    rows_of_legend = math.ceil(len(handles) / 3) if handles else 0
    bottom = (0.1 * rows_of_legend / rows) if handles else 0.0
    fig.tight_layout(rect=(0, min(bottom, 0.3), 1, 1 - 0.06 / rows if title else 1))
    if path is not None:
        from lrdoctor._output import save_figure

        try:
            save_figure(fig, path, dpi=dpi)
        finally:
            plt.close(fig)
    return fig


def animate(
    surface: Surface,
    trajectories: Sequence[Trajectory],
    path: Any,
    *,
    frames: int = 48,
    fps: int = 15,
    steps: int | None = None,
) -> Path:
    """A GIF of the paths growing over the contours (needs Pillow, via matplotlib's PillowWriter).

    ``path``: a file name or a binary file object, written with :func:`lrdoctor._output.write_file`
    (the frames are rendered to a temporary GIF first). Returns ``path`` as given.
    """
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise LRDoctorError("writing a GIF needs Pillow: pip install pillow") from None
    from matplotlib.animation import FuncAnimation, PillowWriter

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    plot_contours(surface, ax)
    n = min(t.steps for t in trajectories) if steps is None else steps
    lines = [ax.plot([], [], color=_color(i), linewidth=1.2, label=t.label)[0]
             for i, t in enumerate(trajectories)]
    heads = [ax.plot([], [], "o", color=_color(i), markersize=5)[0] for i in range(len(trajectories))]
    ax.legend(loc="upper right", fontsize=8)
    title = ax.set_title("")
    # Frame f shows steps up to ends[f]; geometric spacing shows both the first steps and the tail.
    ends = np.unique(np.geomspace(1, n, frames).astype(int))

    def draw(f: int) -> list[Any]:
        k = int(ends[f])
        for line, head, t in zip(lines, heads, trajectories):
            pts = t.points[: k + 1]
            stride = max(1, math.ceil(len(pts) / _MAX_PATH_POINTS))
            line.set_data(pts[::stride, 0], pts[::stride, 1])
            head.set_data(pts[-1:, 0], pts[-1:, 1])
        title.set_text(f"{surface.label}: step {k}")
        return [*lines, *heads, title]

    import tempfile

    from lrdoctor._output import write_file

    anim = FuncAnimation(fig, draw, frames=len(ends), blit=False)
    try:
        with tempfile.TemporaryDirectory(prefix="lrdoctor-gif-") as tmp:
            frames_file = Path(tmp) / "animation.gif"
            anim.save(frames_file, writer=PillowWriter(fps=fps))
            write_file(path, frames_file.read_bytes())
    finally:
        plt.close(fig)
    return Path(path) if isinstance(path, str) else path

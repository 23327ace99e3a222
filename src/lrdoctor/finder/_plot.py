"""The range-test picture: raw and smoothed loss against log LR, the picks, the interval; after a
zoomed second pass, the first pass's smoothed curve too, and the zoomed window shaded; after a
budget probe, its edge and (when it moved) the moved suggestion."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from lrdoctor.finder._result import FinderResult

__all__ = ["plot_result"]

_COLORS = {"edge": "tab:green", "steepest": "tab:orange", "valley": "tab:olive",
           "minimum": "tab:purple"}


def plot_result(result: FinderResult, *, ax: Any = None) -> Any:
    import matplotlib

    if ax is None:
        matplotlib.use(matplotlib.get_backend() or "Agg")
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7.5, 4.5))
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    if result.coarse is not None:  # the first pass, over the whole range
        ax.plot(result.coarse.lrs, result.coarse.smoothed, color="0.45", lw=1.2, ls="--",
                label="first pass (smoothed)")
        lo, hi = result.settings.get("zoom") or (result.lrs[0], result.lrs[-1])
        ax.axvspan(lo, hi, color="0.5", alpha=0.06, label="zoomed second pass")
    for i, c in enumerate(result.curves):
        ax.plot(c.lrs, c.losses, color="0.7", lw=0.8, alpha=0.8,
                label="raw loss" if i == 0 else None)
    lrs, smooth = result.lrs, result.smoothed
    ax.plot(lrs, smooth, color="tab:blue", lw=2, label="smoothed (median of repeats)")
    ax.set_xscale("log")
    finite = smooth[np.isfinite(smooth)]
    if len(finite):
        lo, head = float(finite.min()), float(np.median(finite[: max(3, len(finite) // 20)]))
        span = max(head - lo, 1e-12)
        ax.set_ylim(lo - 0.1 * span, head + 0.6 * span)
    if result.interval is not None:
        ax.axvspan(*result.interval, color="tab:green", alpha=0.12, label="interval")
    probe = result.probe
    moved = probe is not None and probe.moved and result.suggestion is not None
    for name, lr in result.picks.items():
        if lr is None:
            continue
        style = "-" if name == result.rule else ":"
        chosen = name == result.rule and not moved
        ax.axvline(lr, color=_COLORS.get(name, "k"), ls=style, lw=1.6 if style == "-" else 1.1,
                   label=f"{name}: {lr:.3g}" + (" (suggestion)" if chosen else ""))
    if moved:
        ax.axvline(result.suggestion, color="tab:cyan", lw=1.8,
                   label=f"after the budget probe: {result.suggestion:.3g} (suggestion)")
    if probe is not None and probe.edge_lr is not None:
        ax.axvline(probe.edge_lr, color="tab:cyan", ls="-.", lw=1,
                   label=f"budget probe's edge: {probe.edge_lr:.3g}")
    div = result.divergence_lr
    if div is not None:
        ax.axvline(div, color="tab:red", ls="--", lw=1, label=f"divergence: {div:.3g}")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    title = "LR range test"
    if result.suggestion is not None:
        title += f": suggested {result.suggestion:.3g} (grade {result.grade})"
    else:
        title += ": no clear descent"
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig

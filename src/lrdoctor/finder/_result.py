"""``FinderResult``: the range test's curves, the suggestion with its interval and grade, specs."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lrdoctor.errors import FinderError
from lrdoctor.finder._curve import Curve, default_beta
from lrdoctor.finder._probe import NEAR_MARGIN, ProbeReport
from lrdoctor.finder._rules import MARGIN, RULES, Pick, descent, noise

__all__ = ["DEFAULT_RULE", "GRADES", "SPEC_KINDS", "ZOOM_ABOVE", "ZOOM_BELOW", "FinderResult",
           "analyze", "zoom_range"]

#: The rule ``find_lr`` uses unless told otherwise; chosen by benchmarks/bench_finder.py.
DEFAULT_RULE = "margin"
#: Grades, best first: the interval spans <= 0.5 decade, <= 1 decade, more; no descent on any
#: ramp but a divergence (the suggestion is the fallback rule's, ``lrdoctor.finder._search``);
#: no descent and no divergence (no suggestion).
GRADES = ("good", "fair", "poor", "fallback", "none")
#: What each rule picks, for the result's ``reason``.
RULE_WHY = {
    "margin": "the lr of the lowest smoothed loss / {margin:g} (a constant lr needs room below "
              "the edge of stability)",
    "minimum": "the lr of the lowest smoothed loss / 10",
    "steepest": "the steepest descent of the smoothed loss",
    "edge": "the upper edge of the steep descent",
    "valley": "halfway down the longest descending stretch",
}
#: Schedule kinds :meth:`FinderResult.spec_for` writes.
SPEC_KINDS = ("constant", "cosine", "one_cycle", "cyclic")
#: A clear descent: the smoothed loss falls by at least this fraction of its start ...
MIN_DESCENT = 0.01
#: ... and by at least this many standard deviations of the smoothed curve's noise.
MIN_DESCENT_SIGMAS = 8.0


def descent_sigmas(curve: Curve) -> float:
    """The smoothed loss's fall before its minimum in units of the smoothed curve's noise.

    The noise of the raw losses (:func:`~lrdoctor.finder._rules.noise`, before the minimum)
    times ``sqrt(pi / 2) * sqrt((1 - beta) / (1 + beta))``: an EMA shrinks white noise by the
    second factor; the running median before it (:func:`~lrdoctor.finder.robust_smooth`) costs
    the first (a median of n points is that much noisier than their mean).
    """
    if len(curve) < 5:
        return 0.0
    i = int(np.nanargmin(curve.smoothed))
    beta = curve.beta if curve.beta is not None else default_beta(len(curve))
    sigma = noise(curve.losses[: i + 1]) * math.sqrt(math.pi / 2 * (1 - beta) / (1 + beta))
    head = float(np.median(curve.smoothed[: max(3, len(curve) // 20)]))
    fall = head - float(curve.smoothed[i])
    return math.inf if sigma == 0 and fall > 0 else (fall / sigma if sigma > 0 else 0.0)


def _median_lr(values: Sequence[float]) -> float:
    """Median in log space (a geometric median of LRs; the middle one for odd counts)."""
    return float(10 ** np.median(np.log10(np.asarray(values, float))))


def _stack(curves: Sequence[Curve], attr: str) -> np.ndarray:
    n = max(len(c) for c in curves)
    out = np.full((len(curves), n), np.nan)
    for i, c in enumerate(curves):
        out[i, : len(c)] = getattr(c, attr)
    return out


@dataclass(frozen=True)
class FinderResult:
    """The outcome of an LR range test (one or more repeats on different batches).

    ``suggestion`` is the median over repeats of the ``rule``'s pick; when no ramp showed a
    clear descent but one diverged, the fallback rule's (``grade == 'fallback'``); ``None`` only
    when no ramp descended or diverged at all (``grade == 'none'``). ``reason`` says in one
    sentence which pass and rule gave it; ``notes`` add what to watch. ``interval`` is
    ``(low, high)``: the spread of the picks over the repeats that show a clear descent (the
    others are left out and noted), or for a single such repeat the steep part
    of the curve (where the slope against log LR is at least half the steepest); it always
    contains the suggestion. ``grade`` says how sure: ``good`` (the interval spans at most half a
    decade), ``fair`` (a decade), ``poor`` (more). ``lrs``, ``losses`` and ``smoothed`` are the
    step-wise median over repeats (``curves`` holds each one). ``picks`` maps every rule's name
    to its median pick on the same curves.
    """

    curves: tuple[Curve, ...]
    rule: str
    suggestion: float | None
    interval: tuple[float, float] | None
    grade: str
    picks: dict[str, float | None] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    coarse: FinderResult | None = None
    probe: ProbeReport | None = None
    reason: str = ""

    # ---- curves --------------------------------------------------------------------------------
    @property
    def lrs(self) -> np.ndarray:
        return max(self.curves, key=len).lrs

    @property
    def losses(self) -> np.ndarray:
        return np.nanmedian(_stack(self.curves, "losses"), axis=0)

    @property
    def smoothed(self) -> np.ndarray:
        return np.nanmedian(_stack(self.curves, "smoothed"), axis=0)

    @property
    def min_loss_lr(self) -> float | None:
        """Median over repeats of the LR at the lowest smoothed loss."""
        lrs = [float(c.lrs[int(np.nanargmin(c.smoothed))]) for c in self.curves if len(c)]
        return _median_lr(lrs) if lrs else None

    @property
    def divergence_lr(self) -> float | None:
        """The lowest LR at which a repeat diverged (or hit NaN/Inf), if any did."""
        lrs = [float(c.lrs[-1]) for c in self.curves
               if c.stop in ("diverged", "nonfinite") and len(c)]
        return min(lrs) if lrs else None

    def with_probe(self, report: ProbeReport) -> FinderResult:
        """This result after a budget probe (:class:`~lrdoctor.finder.BudgetProbe`).

        When the probe ``moved``, the suggestion becomes ``min_loss_lr / NEAR_MARGIN`` and the
        interval moves by the same factor (its width, the repeats' disagreement, and so the
        grade stay); either way the probe's sentence joins the notes.
        """
        suggestion, interval = self.suggestion, self.interval
        reason = self.reason
        if report.moved and suggestion is not None:
            factor = report.min_loss_lr / NEAR_MARGIN / suggestion
            suggestion *= factor
            if interval is not None:
                interval = (interval[0] * factor, interval[1] * factor)
            reason += (f"; then the budget probe moved it up to the min-loss lr / "
                       f"{NEAR_MARGIN:.2f} (after a quarter of the run the loss held up to lr "
                       f"{report.edge_lr:.3g}, at or past the minimum)")
        elif report.edge_lr is not None and report.converged and \
                report.min_loss_lr is not None and report.edge_lr >= report.min_loss_lr:
            reason += ("; the budget probe kept it (the loss held up to the minimum, but the run "
                       "had already converged at the suggestion)")
        elif report.edge_lr is not None:
            reason += "; the budget probe kept it (the loss rose below the minimum)"
        return dataclasses.replace(self, suggestion=suggestion, interval=interval, probe=report,
                                   notes=(*self.notes, report.sentence()), reason=reason)

    # ---- schedules ---------------------------------------------------------------------------
    def bounds(self) -> tuple[float, float]:
        """Leslie Smith's bounds: high = max(suggestion, min-loss LR / 3), low = high / 4."""
        if self.suggestion is None:
            raise FinderError("the range test found no clear descent, so there is no LR to "
                              "build a schedule from; " + (self.notes[0] if self.notes else ""))
        high = self.suggestion
        if self.min_loss_lr is not None and self.grade != "fallback":
            high = max(high, self.min_loss_lr / 3)
        return high / 4, high

    def spec_for(self, kind: str = "constant", *, steps: int = 1000,
                 half_period: int | None = None) -> str:
        """A ready spec string for ``lrdoctor.schedules.parse``.

        ``constant`` and ``cosine`` use the suggestion; ``one_cycle`` peaks at the high bound of
        :meth:`bounds` (Smith 2018), ``cyclic`` runs between low and high (Smith 2017) with a
        half period of ``half_period`` (default ``steps // 8``, at least 1).
        """
        if kind not in SPEC_KINDS:
            raise FinderError(f"kind must be one of {', '.join(SPEC_KINDS)}, got {kind!r}")
        if int(steps) != steps or steps < 2:
            raise FinderError(f"steps must be an integer >= 2, got {steps!r}")
        low, high = self.bounds()
        if kind == "constant":
            return f"constant({_fmt(self.suggestion)})"
        if kind == "cosine":
            return f"cosine({_fmt(self.suggestion)}, end=0, steps={int(steps)})"
        if kind == "one_cycle":
            return f"one_cycle({_fmt(high)}, steps={int(steps)})"
        hp = max(1, int(steps) // 8) if half_period is None else int(half_period)
        return f"cyclic({_fmt(low)}, {_fmt(high)}, half_period={hp})"

    def specs(self, *, steps: int = 1000) -> dict[str, str]:
        """Every kind's spec string (empty when there is no suggestion)."""
        if self.suggestion is None:
            return {}
        return {kind: self.spec_for(kind, steps=steps) for kind in SPEC_KINDS}

    # ---- output --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "suggestion": self.suggestion,
            "interval": list(self.interval) if self.interval else None,
            "rule": self.rule,
            "grade": self.grade,
            "reason": self.reason,
            "picks": dict(self.picks),
            "min_loss_lr": self.min_loss_lr,
            "divergence_lr": self.divergence_lr,
            "notes": list(self.notes),
            "specs": self.specs(),
            "settings": dict(self.settings),
            "lrs": self.lrs.tolist(),
            "losses": self.losses.tolist(),
            "smoothed": self.smoothed.tolist(),
            "curves": [c.to_dict() for c in self.curves],
            "coarse": self.coarse.to_dict() if self.coarse is not None else None,
            "probe": self.probe.to_dict() if self.probe is not None else None,
        }

    def summary(self) -> str:
        """One line: the suggestion, interval, grade and rule."""
        if self.suggestion is None:
            return f"no suggestion (grade none): {self.reason or ' '.join(self.notes)}"
        lo, hi = self.interval or (self.suggestion, self.suggestion)
        return (f"suggested lr {_fmt(self.suggestion)} (interval {_fmt(lo)} .. {_fmt(hi)}, "
                f"grade {self.grade}, rule {self.rule})")

    def _repr_html_(self) -> str:
        """The summary line and the plot as an inline PNG, for notebooks."""
        import base64
        import html
        import io

        import matplotlib.pyplot as plt

        fig = self.plot()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        png = base64.b64encode(buf.getvalue()).decode("ascii")
        return (f"<p>{html.escape(self.summary())}</p>"
                f'<img alt="LR range test" src="data:image/png;base64,{png}">')

    def plot(self, path: Any = None, *, ax: Any = None) -> Any:
        """Raw and smoothed loss against log LR, each rule's pick, the interval, the divergence.

        Saves to ``path`` when given (a path: a symlink's target is written, a device or FIFO in
        place; or a binary file object, PNG; see :func:`lrdoctor._output.write_file`); returns
        the matplotlib ``Figure``.
        """
        from lrdoctor.finder._plot import plot_result

        fig = plot_result(self, ax=ax)
        if path is not None:
            from lrdoctor._output import save_figure

            if isinstance(path, (str, os.PathLike)):
                folder = Path(os.path.realpath(path)).parent
                if not folder.is_dir():
                    raise FinderError(f"cannot write {path}: the folder {folder} does not exist")
            save_figure(fig, path, dpi=120, bbox_inches="tight")
        return fig


#: the zoomed second pass ramps from ``m / ZOOM_BELOW`` to ``m * ZOOM_ABOVE`` around the first
#: pass's min-loss LR ``m``: 2.5 decades instead of the usual 6-8, so with half the steps
#: (find_lr's default) each decade near the minimum gets about 1.4 times as many
ZOOM_BELOW, ZOOM_ABOVE = 30.0, 10.0


def zoom_range(result: FinderResult) -> tuple[float, float] | None:
    """The LR range of a zoomed second pass: ``(m / ZOOM_BELOW, m * ZOOM_ABOVE)``.

    ``m`` is the median, over the repeats with a clear descent, of the LR at the lowest
    smoothed loss (the ``margin`` pick times :data:`~lrdoctor.finder.MARGIN`). ``None`` when the
    first pass found no clear descent: there is nothing to zoom in on.

    Why a second pass: a ramp over many decades spends most of its steps where nothing happens
    and crosses the decade around the minimum in a few dozen steps, so where it places the
    minimum depends on how fast it ramps. Ramping again over the neighbourhood of that minimum,
    from the same starting state, reads it off a slower ramp (P1 in benchmarks/RESULTS.md).
    """
    pick = result.picks.get("margin")
    if result.suggestion is None or pick is None:
        return None
    m = pick * MARGIN
    return m / ZOOM_BELOW, m * ZOOM_ABOVE


def _fmt(lr: float | None) -> str:
    return "none" if lr is None else f"{lr:.3g}"


def analyze(curves: Sequence[Curve], *, rule: str = DEFAULT_RULE,
            settings: dict[str, Any] | None = None) -> FinderResult:
    """Apply the rules to the repeats' curves: median suggestion, interval, grade, notes."""
    if rule not in RULES:
        raise FinderError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    curves = tuple(curves)
    if not curves or not any(len(c) for c in curves):
        raise FinderError("the range test recorded no losses")
    notes: list[str] = []
    drops = [descent(c.lrs, c.smoothed) for c in curves]
    sigmas = [descent_sigmas(c) for c in curves]
    # a repeat counts when its loss clearly falls; the others (a ramp that jumped straight to
    # divergence, a flat stretch) say nothing about where the good LRs are
    valid = [c for c, d, s in zip(curves, drops, sigmas)
             if d >= MIN_DESCENT and s >= MIN_DESCENT_SIGMAS]
    per_rule: dict[str, list[Pick]] = {name: [] for name in RULES}
    for c in valid:
        for name, fn in RULES.items():
            pick = fn(c.lrs, c.smoothed)
            if pick is not None:
                per_rule[name].append(pick)
    picks = {name: (_median_lr([p.lr for p in ps]) if ps else None)
             for name, ps in per_rule.items()}
    chosen = per_rule[rule]
    if not valid or not chosen:
        if not valid:
            k = int(np.argmax(sigmas))
            notes.append(
                f"no clear descent: the smoothed loss fell by at most {100 * drops[k]:.1f}% "
                f"({sigmas[k]:.1f} noise sigmas; needs >= {100 * MIN_DESCENT:.0f}% and >= "
                f"{MIN_DESCENT_SIGMAS:.0f} sigmas); widen the LR range, run more steps, or "
                "check the model and the data")
        else:
            notes.append(f"the {rule!r} rule found no descent on any repeat")
        return FinderResult(curves, rule, None, None, "none", picks, tuple(notes), settings or {},
                            reason=notes[-1])
    sig = float(np.median([s for s in sigmas if s >= MIN_DESCENT_SIGMAS]))
    suggestion = _median_lr([p.lr for p in chosen])
    if len(chosen) >= 2:
        interval = (min(p.lr for p in chosen), max(p.lr for p in chosen))
    else:  # one repeat: the steep part of the curve (slope at least half the steepest)
        steep = per_rule["steepest"][0] if per_rule["steepest"] else chosen[0]
        interval = (steep.low, steep.high)
    interval = (min(interval[0], suggestion), max(interval[1], suggestion))
    width = math.log10(interval[1] / interval[0]) if interval[0] > 0 else math.inf
    grade = "good" if width <= 0.5 else "fair" if width <= 1.0 else "poor"
    if all(c.stop in ("end", "data") for c in curves):
        last = [int(np.nanargmin(c.smoothed)) >= len(c) - max(2, len(c) // 20) for c in curves]
        if all(last):
            notes.append("the loss was still falling at the end of the ramp: raise end_lr")
            if grade == "good":
                grade = "fair"
    if any(c.stop == "data" for c in curves):
        notes.append("the loader ran out before the ramp ended: use more data or fewer steps")
    if sig < 2 * MIN_DESCENT_SIGMAS:
        notes.append(f"shallow descent ({sig:.1f} noise sigmas): treat the suggestion with care")
        grade = "poor"
    if len(valid) < len(curves):
        notes.append(f"only {len(valid)} of {len(curves)} repeats showed a clear descent "
                     "(the others diverged or stayed flat): more steps would make it surer")
        if 2 * len(valid) <= len(curves):
            grade = "poor"
        elif grade == "good":
            grade = "fair"
    drop = float(np.median([d for d, s in zip(drops, sigmas)
                           if d >= MIN_DESCENT and s >= MIN_DESCENT_SIGMAS]))
    reason = (f"{rule}: {RULE_WHY.get(rule, rule).format(margin=MARGIN)}, the median over "
              f"{len(chosen)} of {len(curves)} repeats with a clear descent (the smoothed loss "
              f"fell {100 * drop:.0f}%, {sig:.0f} noise sigmas)")
    return FinderResult(curves, rule, suggestion, interval, grade, picks, tuple(notes),
                        settings or {}, reason=reason)

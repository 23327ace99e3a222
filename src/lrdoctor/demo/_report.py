"""The demo's pictures and its one HTML report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lrdoctor._output import save_figure
from lrdoctor.demo._runs import RunRecord

__all__ = ["plot_curves", "plot_lab_valley", "plot_lr_track", "verdict", "write_report"]


# ---- pictures ---------------------------------------------------------------------------------
def _plt() -> Any:
    import matplotlib.pyplot as plt  # headless machines fall back to Agg on their own

    return plt


def _smooth(values: list[float], span: int = 15) -> list[float]:
    out, avg, w = [], None, 2.0 / (span + 1)
    for v in values:
        if not math.isfinite(v):
            out.append(math.nan)
            continue
        avg = v if avg is None else (1 - w) * avg + w * v
        out.append(avg)
    return out


def plot_curves(runs: list[RunRecord], path: Path) -> Path:
    """Training loss per step (raw faint, smoothed solid) and validation accuracy per epoch."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, r in enumerate(runs):
        s = r.series()
        ax1.plot(s["step"], s["loss"], color=f"C{i}", alpha=0.25, linewidth=0.7)
        ax1.plot(s["step"], _smooth(s["loss"]), color=f"C{i}", linewidth=1.6, label=r.title)
        epochs = [h["epoch"] for h in r.history if "val_accuracy" in h]
        acc = [h["val_accuracy"] for h in r.history if "val_accuracy" in h]
        ax2.plot(epochs, acc, "o-", color=f"C{i}", label=r.title)
    ax1.set_yscale("log")
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("training loss")
    ax1.set_title("training loss (smoothed; raw faint)")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation accuracy")
    ax2.set_ylim(0, 1)
    ax2.set_title("validation accuracy")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
    ax2.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def _journal_entries(record: RunRecord) -> list[Any]:
    from lrdoctor.journal import Journal

    if not record.journal_path.exists():
        return []
    return list(Journal.load(record.journal_path))


def plot_lr_track(runs: list[RunRecord], path: Path) -> Path:
    """The learning rate of every step (log), with each journal decision marked and numbered."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 3.6))
    for i, r in enumerate(runs):
        s = r.series()
        ax.plot(s["step"], s["lr"], color=f"C{i}", linewidth=1.6, label=r.title)
        for n, e in enumerate(_journal_entries(r), 1):
            if e.step is None or not e.new_lrs or e.cause == "schedule":
                continue  # the schedule's own moves are the line itself
            ax.plot([e.step], [e.new_lrs[0]], marker="v", color=f"C{i}", markersize=8,
                    markeredgecolor="black")
            ax.annotate(f"{'ad'[i] if i < 2 else i}{n}", (e.step, e.new_lrs[0]),
                        textcoords="offset points", xytext=(4, 6), fontsize=8, color=f"C{i}")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title("learning rate per step; ▼ = a plateau decision or warm-up end "
                 "(numbered as in the journal)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def plot_lab_valley(path: Path) -> Path:
    """The lab's valley: SGD bouncing at 1e-2 next to Adam with a warm-up."""
    from lrdoctor.lab import Valley, figure, run

    v = Valley()
    runs = [run(v, "sgd:1e-2", steps=300), run(v, "sgd:1e-7", steps=300),
            run(v, "adam:0.1:warmup(20)", steps=300)]
    figure(v, runs, path=path, panels=("trajectory", "loss"), dpi=90,
           title="The same story on a two-parameter valley (lrdoctor lab --tour)")
    return path


# ---- the report -------------------------------------------------------------------------------
def verdict(mistake: RunRecord, fixed: RunRecord, plan: Any) -> str:
    """One sentence: run (a)'s and run (d)'s final accuracy, and what run (d) ran
    (``plan``: the demo's :class:`~lrdoctor.demo.FixPlan`)."""
    a, d = mistake.final(), fixed.final()
    what = {"auto": "auto_lr's", "finder": "the LR finder's"}.get(plan.source, "the reference")
    return (f"The run with the classic mistake ends at {a:.1%} validation accuracy; the fix — "
            f"{what} schedule {plan.spec} with the plateau scheduler in the right mode — ends "
            f"at {d:.1%} ({(d - a) * 100:+.1f} points).")


def _save(fig: Any, path: Path) -> Path:
    save_figure(fig, path, dpi=110)
    return path


def write_report(parts: dict[str, Any], path: Path) -> Path:
    """One self-contained HTML file built with :class:`lrdoctor.report.Report`: summary verdict,
    findings with evidence and fix, comparison table, curves, LR track with the journals, finder
    plot, schedule preview and the lab's valley."""
    from lrdoctor.report import Report

    p = parts
    mistake, fixed = p["mistake"], p["fixed"]
    report = Report("lrdoctor demo: a classic learning-rate mistake and its fix",
                    subtitle=p["subtitle"])
    report.add_summary(p["verdict"], verdict="critical" if p["diagnosis"] is None
                       else getattr(p["diagnosis"], "worst", None))
    if p["diagnosis"] is not None:
        report.add_diagnosis(p["diagnosis"], p.get("log"),
                             title=f"What the doctor says about run {mistake.title}")
    headers = list(p["table"][0]) if p["table"] else []
    report.add_table("Comparison", headers, [[_cell(r[h], h) for h in headers] for r in p["table"]],
                     caption="; ".join(f"{k}: {v}" for k, v in p["summary_details"].items()))
    figs = p["figures"]
    report.add_image("Curves", figs["curves"],
                      caption="Training loss per step (smoothed; raw faint) and validation "
                              "accuracy per epoch, both runs.")
    report.add_image("Learning rate and journal events", figs["lr_track"],
                      caption="The learning rate of every optimizer step; each ▼ is a plateau "
                              "decision, numbered as in the journals below (a = run a, d = run d).")
    report.add_journal(mistake.journal or ["no decisions"], title=f"Journal of run {mistake.title}")
    report.add_journal(fixed.journal or ["no decisions"], title=f"Journal of run {fixed.title}")
    report.add_image("LR finder", figs["finder"], caption=p["finder_caption"])
    report.add_image("Schedule preview", figs["schedule"],
                      caption=f"The schedule of run (d): {fixed.settings['schedule']}")
    healing = p.get("repair")
    if healing is not None:
        rows = [[str(r.index), r.sentence(), "kept" if r.kept or r.index == 0 else "reverted"]
                for r in healing.history]
        report.add_table("The repair loop on run (a)'s mistake", ["round", "what happened", ""],
                         rows, caption=("healed: the doctor finds no problem left"
                                        if healing.healed else "not healed within 3 rounds")
                         + f"; final settings {_changed(healing)}. "
                           "Each change is one of the doctor's Finding.changes, applied as data; "
                           "`lrdoctor explain demo-out/repair/journal.jsonl` tells it again.")
    if "lab" in figs:
        report.add_image("The same story on a valley", figs["lab"],
                          caption="Two parameters, an ill-conditioned valley: SGD at 1e-2 bounces "
                                  "between the walls, at 1e-7 crawls; Adam with a warm-up walks "
                                  "down. Run `lrdoctor lab --tour` for the whole story.")
    return Path(report.write(path))


def _changed(healing: Any) -> str:
    """The knobs the loop ended with that differ from round 0's config."""
    first = healing.history[0].config
    diff = {k: v for k, v in healing.config.items() if first.get(k) != v}
    return ", ".join(f"{k}={v!r}" for k, v in diff.items()) or "unchanged"


def _cell(v: Any, column: str = "") -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        if "accuracy" in column:
            return f"{v:.1%}"
        if column == "seconds":
            return f"{v:.1f}"
        return f"{v:.3g}"
    return "" if v is None else str(v)



"""The end-to-end demo: a classic mistake, the doctor's diagnosis, the LR finder, the fix.

:func:`run_demo` is what ``lrdoctor demo`` (and ``make demo``) runs, on scikit-learn's digits
with a small MLP, in a few seconds of CPU time:

a. **the mistake** — SGD (momentum 0.9) at lr 0.5, ten times the usual 0.05, with a plateau
   scheduler watching validation *accuracy* in mode ``'min'`` (so every improvement counts as
   a bad epoch), under :class:`lrdoctor.torch.Monitor`;
b. **the diagnosis** of that run's log (:func:`lrdoctor.diagnose`);
c. **the LR finder** (:func:`lrdoctor.torch.find_lr`) on a fresh model;
d. **the fix** — the suggested LR on ``warmup >> cosine`` composed with
   :class:`lrdoctor.torch.PlateauLR` in mode ``'max'``, with a decision journal;
e. **a comparison table** and one self-contained HTML report with both runs.

Each step is a function of its own (:func:`train_run`, :func:`diagnose_run`, :func:`find_lr`,
:func:`compare`, :func:`write_report`); the library never prints — progress goes to an optional
``progress(stage, done, total)`` callback.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrdoctor._json import jsonable
from lrdoctor.errors import LRDoctorError

__all__ = ["DemoConfig", "DemoResult", "RunRecord", "compare", "diagnose_run", "find_lr",
           "run_demo", "train_run", "write_report"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoConfig:
    """What the demo trains. ``quick()`` is a smaller version for tests."""

    task: str = "digits-mlp"
    epochs: int = 10
    seed: int = 0
    n_train: int | None = None
    optimizer: str = "sgd"
    #: the mistake: ten times the task's reference SGD lr, plateau on accuracy in mode 'min'
    mistake_lr: float = 0.5
    mistake_patience: int = 1
    mistake_factor: float = 0.5
    #: the range test
    finder_start_lr: float = 1e-3
    finder_end_lr: float = 10.0
    finder_steps: int = 200
    finder_repeats: int = 2
    #: the fix: warm-up over this many epochs, then cosine to 0; plateau in mode 'max'
    warmup_epochs: int = 1
    fix_patience: int = 2
    fix_factor: float = 0.3
    threads: int | None = 1

    @classmethod
    def quick(cls) -> DemoConfig:
        return cls(epochs=6, finder_steps=120, finder_repeats=1)


@dataclass
class RunRecord:
    """One training run of the demo: its settings, per-epoch history and where its logs are."""

    name: str
    title: str
    settings: dict[str, Any]
    history: list[dict[str, float]]
    log_path: Path
    journal_path: Path
    steps: int
    seconds: float
    diverged: bool
    journal: list[str] = field(default_factory=list)

    def final(self, key: str = "val_accuracy") -> float:
        vals = [h[key] for h in self.history if key in h and math.isfinite(h[key])]
        return vals[-1] if vals else math.nan

    def best(self, key: str = "val_accuracy") -> float:
        vals = [h[key] for h in self.history if key in h and math.isfinite(h[key])]
        return max(vals) if vals else math.nan

    def series(self) -> dict[str, list[float]]:
        """Per-step ``train/loss`` and ``lr`` read back from the monitor's JSONL log."""
        steps, loss, lr = [], [], []
        for line in self.log_path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("type") != "scalars" or "train/loss" not in rec.get("values", {}):
                continue
            steps.append(rec["step"])
            loss.append(rec["values"]["train/loss"])
            lr.append(rec["values"].get("lr", math.nan))
        return {"step": steps, "loss": loss, "lr": lr}


@dataclass
class DemoResult:
    """Everything the demo produced; ``report`` is the HTML file to open."""

    config: DemoConfig
    mistake: RunRecord
    fixed: RunRecord
    diagnosis: Any
    finder: Any
    suggested_lr: float
    table: list[dict[str, Any]]
    report: Path
    out_dir: Path
    seconds: dict[str, float]
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        findings = [_finding_dict(f) for f in getattr(self.diagnosis, "findings", [])]
        return {
            "config": dataclasses.asdict(self.config),
            "table": self.table,
            "suggested_lr": self.suggested_lr,
            "finder": {"suggestion": getattr(self.finder, "suggestion", None),
                       "interval": list(getattr(self.finder, "interval", None) or []),
                       "grade": getattr(self.finder, "grade", None)},
            "findings": findings,
            "journal": {"mistake": self.mistake.journal, "fixed": self.fixed.journal},
            "report": str(self.report),
            "seconds": self.seconds,
            "missing": self.missing,
        }


def _finding_dict(f: Any) -> dict[str, Any]:
    keys = ("code", "title", "severity", "evidence", "fix", "steps")
    if hasattr(f, "to_dict"):
        return f.to_dict()
    return {k: getattr(f, k, None) for k in keys}


def _tick(progress: Progress | None, stage: str) -> Callable[[int, int], None]:
    def cb(done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    return cb


# ---- the steps --------------------------------------------------------------------------------
def load_task(config: DemoConfig) -> Any:
    """The example task (digits by default), from :mod:`lrdoctor.examples`."""
    from lrdoctor import examples

    extra = {"n_train": config.n_train} if config.n_train else {}
    return examples.get(config.task, seed=config.seed, epochs=config.epochs, **extra)


def train_run(task: Any, *, name: str, title: str, lr: float, out_dir: Path,
              mode: str, patience: int, factor: float, schedule: str | None = None,
              optimizer: str = "sgd", progress: Progress | None = None) -> RunRecord:
    """Train ``task`` under :class:`~lrdoctor.torch.Monitor` with a
    :class:`~lrdoctor.torch.PlateauLR` watching validation accuracy in ``mode``.

    Writes ``<out_dir>/<name>/log.jsonl`` (the monitor) and ``journal.jsonl`` (the plateau
    decisions). The plateau is stepped with val accuracy after every epoch — in mode ``'min'``
    that is the classic mistake: accuracy going up looks like no improvement.
    """
    from lrdoctor import examples
    from lrdoctor.torch import Monitor, PlateauLR

    run_dir = out_dir / name
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path, journal_path = run_dir / "log.jsonl", run_dir / "journal.jsonl"
    for p in (log_path, journal_path):
        p.unlink(missing_ok=True)
    model = task.build_model()
    opt = examples.make_optimizer(optimizer, model, lr)
    plateau = PlateauLR(opt, mode=mode, factor=factor, patience=patience, monitor="val_accuracy",
                        schedule=schedule, journal=journal_path)
    total = task.epochs
    tick = _tick(progress, name)
    tick(0, total)

    forwarded = 0

    def on_epoch(row: dict[str, float]) -> None:
        nonlocal forwarded
        if "val_accuracy" in row:
            plateau.step(row["val_accuracy"])
        # Mirror the plateau's decisions into the monitor log, with its settings, so a reader
        # of that one file (the doctor) sees what watched which metric in which mode.
        entries = list(plateau.journal or [])
        for e in entries[forwarded:]:
            monitor.event(e.cause, e.explain(), mode=mode, monitor="val_accuracy",
                          old_lrs=list(e.old_lrs), new_lrs=list(e.new_lrs), epoch=e.epoch)
        forwarded = len(entries)
        tick(int(row["epoch"]), total)

    began = time.perf_counter()
    with Monitor(model, opt, log_path) as monitor:
        monitor.event("lr-scheduler", f"PlateauLR(mode='{mode}', monitor='val_accuracy', "
                      f"patience={patience}, factor={factor:g})"
                      + (f" on {schedule}" if schedule else ""),
                      kind="PlateauLR", mode=mode, monitor="val_accuracy", patience=patience,
                      factor=factor, schedule=schedule)
        result = examples.train(task, opt, model=model, monitor=monitor, on_epoch=on_epoch)
    seconds = time.perf_counter() - began
    settings = {"optimizer": f"{optimizer} (momentum 0.9)" if optimizer == "sgd" else optimizer,
                "lr": lr, "schedule": schedule or f"constant({lr:g})",
                "plateau": f"PlateauLR(mode='{mode}', monitor='val_accuracy', "
                           f"patience={patience}, factor={factor:g})",
                "epochs": task.epochs, "batch_size": task.batch_size}
    journal = [e.explain() for e in (plateau.journal or [])]
    return RunRecord(name=name, title=title, settings=settings, history=result.history,
                     log_path=log_path, journal_path=journal_path, steps=result.steps,
                     seconds=seconds, diverged=result.diverged, journal=journal)


def diagnose_run(record: RunRecord, log: Any = None) -> Any:
    """The doctor's :class:`~lrdoctor.diagnose.Diagnosis` of a run's monitor log."""
    from lrdoctor import logs
    from lrdoctor.diagnose import diagnose

    return diagnose(log if log is not None else logs.load(record.log_path))


def find_lr(task: Any, config: DemoConfig, *, progress: Progress | None = None) -> Any:
    """The LR range test on a fresh model (:func:`lrdoctor.torch.find_lr`)."""
    from lrdoctor import examples
    from lrdoctor.torch import find_lr as _find_lr

    model = task.build_model()
    opt = examples.make_optimizer(config.optimizer, model, config.finder_start_lr)
    return _find_lr(model, opt, task.train_loader, task.loss_fn,
                    start_lr=config.finder_start_lr, end_lr=config.finder_end_lr,
                    num_steps=config.finder_steps, repeats=config.finder_repeats,
                    progress=_tick(progress, "finder"))


def fix_schedule(lr: float, task: Any, config: DemoConfig) -> str:
    """``warmup(<one epoch>) >> cosine(lr, end=0, steps=<the rest>)`` for the task's budget."""
    total = task.steps_per_epoch * task.epochs
    warm = min(task.steps_per_epoch * config.warmup_epochs, total // 2)
    lr_text = f"{lr:.3g}"
    if warm < 1:
        return f"cosine({lr_text}, end=0, steps={total})"
    return f"warmup({warm}) >> cosine({lr_text}, end=0, steps={total - warm})"


def compare(a: RunRecord, d: RunRecord) -> list[dict[str, Any]]:
    """Rows of the comparison table (one per run)."""
    rows = []
    for r in (a, d):
        last = r.history[-1] if r.history else {}
        rows.append({
            "run": r.title,
            "lr": r.settings["schedule"],
            "plateau": r.settings["plateau"],
            "final val accuracy": r.final("val_accuracy"),
            "best val accuracy": r.best("val_accuracy"),
            "final val loss": last.get("val_loss", math.nan),
            "final train loss": last.get("loss", math.nan),
            "plateau decisions": len(r.journal),
            "seconds": r.seconds,
        })
    return rows


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


def plot_curves(runs: list[RunRecord], path: Path) -> Path:  # noqa: D401
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
    fig.savefig(path, dpi=110)
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
    fig.savefig(path, dpi=110)
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
def verdict(mistake: RunRecord, fixed: RunRecord, lr: float) -> str:
    a, d = mistake.final(), fixed.final()
    return (f"The run with the classic mistake ends at {a:.1%} validation accuracy; the fix — "
            f"the LR finder's {lr:.3g} on a warm-up + cosine schedule with the plateau scheduler "
            f"in the right mode — ends at {d:.1%} ({(d - a) * 100:+.1f} points).")


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
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
    if "lab" in figs:
        report.add_image("The same story on a valley", figs["lab"],
                          caption="Two parameters, an ill-conditioned valley: SGD at 1e-2 bounces "
                                  "between the walls, at 1e-7 crawls; Adam with a warm-up walks "
                                  "down. Run `lrdoctor lab --tour` for the whole story.")
    return Path(report.write(path))


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


# ---- the whole demo ---------------------------------------------------------------------------
def run_demo(out_dir: str | Path = "demo-out", *, config: DemoConfig | None = None,
             progress: Progress | None = None) -> DemoResult:
    """Run steps (a)–(e) and write ``<out_dir>/report.html`` (plus logs, journals, PNGs and
    ``demo.json``). ``progress(stage, done, total)`` reports each stage: ``mistake``,
    ``diagnose``, ``finder``, ``fixed``, ``report``."""
    config = config or DemoConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _threads(config.threads)
    seconds: dict[str, float] = {}
    missing: list[str] = []
    task = load_task(config)
    ref_lr = task.reference_lrs.get(config.optimizer)

    began = time.perf_counter()
    mistake = train_run(task, name="mistake", lr=config.mistake_lr, out_dir=out, mode="min",
                        title=f"(a) SGD at lr {config.mistake_lr:g}, plateau on val accuracy in "
                              "mode 'min'",
                        patience=config.mistake_patience, factor=config.mistake_factor,
                        optimizer=config.optimizer, progress=progress)
    seconds["a_mistake"] = time.perf_counter() - began

    began = time.perf_counter()
    diagnosis = log = None
    _tick(progress, "diagnose")(0, 1)
    try:
        from lrdoctor import logs

        log = logs.load(mistake.log_path)
        diagnosis = diagnose_run(mistake, log)
    except ImportError as err:
        missing.append(f"lrdoctor.diagnose ({err})")
    _tick(progress, "diagnose")(1, 1)
    seconds["b_diagnose"] = time.perf_counter() - began

    began = time.perf_counter()
    finder = find_lr(task, config, progress=progress)
    suggested = finder.suggestion
    if suggested is None:  # no clear descent: fall back to the task's reference lr, say so
        suggested = float(ref_lr or config.mistake_lr / 10)
    seconds["c_finder"] = time.perf_counter() - began

    began = time.perf_counter()
    spec = fix_schedule(suggested, task, config)
    fixed = train_run(task, name="fixed", lr=suggested, out_dir=out, mode="max",
                      title=f"(d) SGD at the finder's lr {suggested:.3g}, warm-up + cosine, "
                            "plateau on val accuracy in mode 'max'",
                      patience=config.fix_patience, factor=config.fix_factor, schedule=spec,
                      optimizer=config.optimizer, progress=progress)
    seconds["d_fixed"] = time.perf_counter() - began

    began = time.perf_counter()
    _tick(progress, "report")(0, 1)
    table = compare(mistake, fixed)
    figures = {"curves": plot_curves([mistake, fixed], out / "curves.png"),
               "lr_track": plot_lr_track([mistake, fixed], out / "lr-track.png")}
    figures["finder"] = _save(finder.plot(), out / "finder.png")
    from lrdoctor.preview import plot_schedule

    plot_schedule(spec, out / "schedule.png", task.steps_per_epoch * task.epochs)
    figures["schedule"] = out / "schedule.png"
    figures["lab"] = plot_lab_valley(out / "valley.png")
    interval = finder.interval
    finder_caption = (
        f"Range test {config.finder_start_lr:g} → {config.finder_end_lr:g} over "
        f"{config.finder_steps} steps × {config.finder_repeats}: suggestion "
        + (f"{finder.suggestion:.3g} (rule '{finder.rule}', interval {interval[0]:.3g}–"
           f"{interval[1]:.3g}, grade {finder.grade})" if finder.suggestion is not None
           else f"none ({'; '.join(finder.notes)}); used the task's reference lr {suggested:.3g}"))
    summary_details = {
        "data": f"{task.description} ({task.name}), {task.epochs} epochs, batch {task.batch_size}",
        "run (a)": f"{mistake.title}: final val accuracy {mistake.final():.1%}",
        "run (d)": f"{fixed.title}: final val accuracy {fixed.final():.1%}",
        "finder": finder_caption,
        "doctor": ", ".join(getattr(diagnosis, "codes", []) or []) or "not run",
    }
    parts = {"verdict": verdict(mistake, fixed, suggested), "summary_details": summary_details,
             "diagnosis": diagnosis, "log": log, "mistake": mistake, "fixed": fixed,
             "table": table, "figures": figures, "finder_caption": finder_caption,
             "subtitle": summary_details["data"]}
    report = write_report(parts, out / "report.html")
    _tick(progress, "report")(1, 1)
    seconds["e_report"] = time.perf_counter() - began
    seconds["total"] = sum(seconds.values())
    result = DemoResult(config=config, mistake=mistake, fixed=fixed, diagnosis=diagnosis,
                        finder=finder, suggested_lr=float(suggested), table=table, report=report,
                        out_dir=out, seconds=seconds, missing=missing)
    (out / "demo.json").write_text(json.dumps(jsonable(result.to_dict()), indent=2) + "\n")
    return result


def _threads(n: int | None) -> None:
    """Use ``n`` CPU threads for torch (the demo's budget is stated for 2 cores)."""
    import torch

    if n is not None:
        if n < 1:
            raise LRDoctorError(f"threads must be >= 1, got {n}")
        torch.set_num_threads(n)



"""The end-to-end demo: a classic mistake, the doctor's diagnosis, the LR finder, the fix.

:func:`run_demo` is what ``lrdoctor demo`` (and ``make demo``) runs, on scikit-learn's digits
with a small MLP, in a few seconds of CPU time:

a. **the mistake** — SGD (momentum 0.9) at lr 0.5, ten times the usual 0.05, with a plateau
   scheduler watching validation *accuracy* in mode ``'min'`` (so every improvement counts as
   a bad epoch), under :class:`lrdoctor.torch.Monitor`;
b. **the diagnosis** of that run's log (:func:`lrdoctor.diagnose`);
c. **auto** (:func:`lrdoctor.torch.auto_lr`) on a fresh model: a range test sized to 10% of
   run (d)'s steps, and the LR and schedule to run for exactly those steps, with its reason;
d. **the fix** — auto's warm-up + decay composed with :class:`lrdoctor.torch.PlateauLR` in
   mode ``'max'``, with a decision journal (where auto cannot answer, the finder's suggestion
   on ``warmup >> cosine``; :class:`FixPlan` says which);
e. **a comparison table** and one self-contained HTML report with both runs;
f. **the repair loop** (:func:`lrdoctor.repair`) on the same mistake: the doctor's first fix is
   applied as data (``Finding.changes``), the run retrained and diagnosed again, until it is
   healthy — no human translating sentences into settings.

Each step is a function of its own (:func:`train_run`, :func:`diagnose_run`, :func:`plan_fix`,
:func:`compare`, :func:`write_report`); the library never prints — progress goes to an optional
``progress(stage, done, total)`` callback.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from lrdoctor._json import jsonable
from lrdoctor._output import write_file
from lrdoctor.demo._report import (
    _save,
    plot_curves,
    plot_lab_valley,
    plot_lr_track,
    verdict,
    write_report,
)
from lrdoctor.demo._runs import (
    DemoConfig,
    DemoResult,
    FixPlan,
    Progress,
    RunRecord,
    _tick,
    compare,
    diagnose_run,
    find_lr,
    fix_schedule,
    load_task,
    plan_fix,
    repair_run,
    train_run,
)
from lrdoctor.errors import LRDoctorError

__all__ = [
    "DemoConfig",
    "DemoResult",
    "FixPlan",
    "RunRecord",
    "compare",
    "diagnose_run",
    "find_lr",
    "fix_schedule",
    "load_task",
    "plan_fix",
    "plot_curves",
    "plot_lr_track",
    "repair_run",
    "run_demo",
    "train_run",
    "write_report",
]


# ---- the whole demo ---------------------------------------------------------------------------
def run_demo(out_dir: str | Path = "demo-out", *, config: DemoConfig | None = None,
             progress: Progress | None = None) -> DemoResult:
    """Run steps (a)–(e) and write ``<out_dir>/report.html`` (plus logs, journals, PNGs and
    ``demo.json``). ``progress(stage, done, total)`` reports each stage: ``mistake``,
    ``diagnose``, ``finder``, ``fixed``, ``repair``, ``report``."""
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
    plan = plan_fix(task, config, progress=progress)
    finder, spec = plan.finder, plan.spec
    suggested = finder.suggestion
    if suggested is None:  # no clear descent: the plan fell back to the task's reference lr
        suggested = float(ref_lr or config.mistake_lr / 10)
    seconds["c_finder"] = time.perf_counter() - began

    began = time.perf_counter()
    what = "auto's" if plan.source == "auto" else "the finder's" if plan.source == "finder" \
        else "the reference"
    fixed = train_run(task, name="fixed", lr=plan.lr, out_dir=out, mode="max",
                      title=f"(d) SGD on {what} schedule peaking at {plan.lr:.3g}, "
                            "plateau on val accuracy in mode 'max'",
                      patience=config.fix_patience, factor=config.fix_factor, schedule=spec,
                      optimizer=config.optimizer, progress=progress)
    seconds["d_fixed"] = time.perf_counter() - began

    began = time.perf_counter()
    healing = repair_run(config, out / "repair", progress=progress)
    seconds["f_repair"] = time.perf_counter() - began

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
        f"{finder.settings.get('num_steps')} steps × {finder.settings.get('repeats')}: suggestion "
        + (f"{finder.suggestion:.3g} (rule '{finder.rule}', interval {interval[0]:.3g}–"
           f"{interval[1]:.3g}, grade {finder.grade})" if finder.suggestion is not None
           else f"none ({'; '.join(finder.notes)}); used the task's reference lr {suggested:.3g}")
        + f". Run (d): {spec} — {plan.how}.")
    summary_details = {
        "data": f"{task.description} ({task.name}), {task.epochs} epochs, batch {task.batch_size}",
        "run (a)": f"{mistake.title}: final val accuracy {mistake.final():.1%}",
        "run (d)": f"{fixed.title}: final val accuracy {fixed.final():.1%}",
        "finder": finder_caption,
        "schedule (d)": f"{spec} ({plan.source})",
        "doctor": ", ".join(getattr(diagnosis, "codes", []) or []) or "not run",
    }
    parts = {"verdict": verdict(mistake, fixed, plan), "summary_details": summary_details,
             "diagnosis": diagnosis, "log": log, "mistake": mistake, "fixed": fixed,
             "table": table, "figures": figures, "finder_caption": finder_caption,
             "subtitle": summary_details["data"], "repair": healing}
    report = write_report(parts, out / "report.html")
    _tick(progress, "report")(1, 1)
    seconds["e_report"] = time.perf_counter() - began
    seconds["total"] = sum(seconds.values())
    result = DemoResult(config=config, mistake=mistake, fixed=fixed, diagnosis=diagnosis,
                        finder=finder, suggested_lr=float(suggested), table=table, report=report,
                        out_dir=out, seconds=seconds, missing=missing, repair=healing,
                        plan=plan)
    write_file(out / "demo.json", json.dumps(jsonable(result.to_dict()), indent=2) + "\n")
    return result


def _threads(n: int | None) -> None:
    """Use ``n`` CPU threads for torch (the demo's budget is stated for 2 cores)."""
    import torch

    if n is not None:
        if n < 1:
            raise LRDoctorError(f"threads must be >= 1, got {n}")
        torch.set_num_threads(n)



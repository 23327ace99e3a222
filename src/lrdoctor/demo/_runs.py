"""The demo's stages: settings, the two training runs, the diagnosis, the finder, the
comparison."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DemoConfig", "DemoResult", "FixPlan", "Progress", "RunRecord", "compare",
           "diagnose_run", "find_lr", "fix_schedule", "load_task", "plan_fix", "train_run"]

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
    #: the range test: ``auto_lr`` over this range, sized to ``finder_cost`` of run (d)'s steps
    #: unless ``finder_steps`` (and ``finder_repeats``) are given
    finder_start_lr: float = 1e-3
    finder_end_lr: float = 10.0
    finder_steps: int | None = None
    finder_repeats: int = 1
    finder_cost: float = 0.1
    #: the fix: auto_lr's warm-up + decay; where auto cannot answer (a run under 20 steps, no
    #: suggestion), warm-up over this many epochs, then cosine to 0; plateau in mode 'max'
    warmup_epochs: int = 1
    fix_patience: int = 2
    fix_factor: float = 0.3
    threads: int | None = 1

    @classmethod
    def quick(cls) -> DemoConfig:
        return cls(epochs=6)


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


@dataclass(frozen=True)
class FixPlan:
    """What run (d) trains with: ``spec`` (peaking at ``lr``) and ``how`` it was chosen.

    ``finder`` is :func:`lrdoctor.torch.auto_lr`'s :class:`~lrdoctor.torch.AutoResult` when
    ``source == 'auto'``, else the plain :class:`~lrdoctor.finder.FinderResult` (``source``
    ``'finder'``: the suggestion on :func:`fix_schedule`) or ``None``-suggestion fallback
    (``'reference'``: the task's reference LR).
    """

    finder: Any
    lr: float
    spec: str
    source: str
    how: str
    total_steps: int

    def to_dict(self) -> dict[str, Any]:
        cost = getattr(self.finder, "cost", None) if self.source == "auto" else None
        return {"lr": self.lr, "spec": self.spec, "source": self.source, "how": self.how,
                "total_steps": self.total_steps, "finder_cost": cost}


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
    repair: Any = None  # the RepairResult of step (f)
    plan: FixPlan | None = None  # where run (d)'s LR and schedule came from

    def to_dict(self) -> dict[str, Any]:
        findings = [_finding_dict(f) for f in getattr(self.diagnosis, "findings", [])]
        return {
            "config": dataclasses.asdict(self.config),
            "table": self.table,
            "suggested_lr": self.suggested_lr,
            "finder": {"suggestion": getattr(self.finder, "suggestion", None),
                       "interval": list(getattr(self.finder, "interval", None) or []),
                       "grade": getattr(self.finder, "grade", None)},
            "fix": self.plan.to_dict() if self.plan is not None else None,
            "findings": findings,
            "journal": {"mistake": self.mistake.journal, "fixed": self.fixed.journal},
            "report": str(self.report),
            "seconds": self.seconds,
            "missing": self.missing,
            "repair": self.repair.to_dict() if self.repair is not None else None,
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

    def on_epoch(row: dict[str, float]) -> None:
        if "val_accuracy" in row:
            plateau.step(row["val_accuracy"])
        tick(int(row["epoch"]), total)

    began = time.perf_counter()
    with Monitor(model, opt, log_path) as monitor:
        # its settings and decisions go into the monitor log too, so a reader of that one file
        # (the doctor) sees what watched which metric in which mode
        monitor.watch(plateau)
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
    """The doctor's :class:`~lrdoctor.doctor.Diagnosis` of a run's monitor log."""
    from lrdoctor import logs
    from lrdoctor.doctor import diagnose

    return diagnose(log if log is not None else logs.load(record.log_path))


def find_lr(task: Any, config: DemoConfig, *, progress: Progress | None = None) -> Any:
    """The LR range test on a fresh model (:func:`lrdoctor.torch.find_lr`; 100 steps unless
    ``config.finder_steps``)."""
    from lrdoctor import examples
    from lrdoctor.torch import find_lr as _find_lr

    model = task.build_model()
    opt = examples.make_optimizer(config.optimizer, model, config.finder_start_lr)
    return _find_lr(model, opt, task.train_loader, task.loss_fn,
                    start_lr=config.finder_start_lr, end_lr=config.finder_end_lr,
                    num_steps=config.finder_steps or 100, repeats=config.finder_repeats,
                    progress=_tick(progress, "finder"))


def plan_fix(task: Any, config: DemoConfig, *, progress: Progress | None = None) -> FixPlan:
    """Run (d)'s LR and schedule: :func:`lrdoctor.torch.auto_lr` for exactly the run's steps
    (its range test sized to ``config.finder_cost`` of them) on a fresh model. Where auto
    cannot answer (a run under 20 steps, no suggestion), the plain finder's suggestion (or the
    task's reference LR) on :func:`fix_schedule`; ``how`` says which."""
    from lrdoctor import examples
    from lrdoctor.errors import FinderError
    from lrdoctor.torch import auto_lr

    total = task.steps_per_epoch * task.epochs
    if total >= 20:
        model = task.build_model()
        opt = examples.make_optimizer(config.optimizer, model, config.finder_start_lr)
        sizing = {} if config.finder_steps is None else {
            "num_steps": config.finder_steps, "repeats": config.finder_repeats}
        try:
            res = auto_lr(model, opt, task.train_loader, task.loss_fn, total_steps=total,
                          start_lr=config.finder_start_lr, end_lr=config.finder_end_lr,
                          cost=config.finder_cost, progress=_tick(progress, "finder"),
                          **sizing)
        except FinderError as err:
            why = f"auto_lr gave no answer ({err})"
        else:
            how = (f"auto_lr for {total} steps: {res.reason}; peak {res.peak_lr:.3g} on "
                   f"{res.schedule} (finder cost {100 * res.cost:.0f}% of the run)")
            return FixPlan(res, res.peak_lr, res.spec, "auto", how, total)
    else:
        why = f"the run has {total} steps, under auto_lr's 20"
    finder = find_lr(task, config, progress=progress)
    if finder.suggestion is not None:
        lr, source = float(finder.suggestion), "finder"
        how = f"{why}; the finder's suggestion {lr:.3g} on warm-up + cosine: {finder.reason}"
    else:
        lr, source = float(task.reference_lrs.get(config.optimizer) or config.mistake_lr / 10), \
            "reference"
        how = f"{why}; no suggestion either ({finder.reason}): the task's reference lr {lr:.3g}"
    return FixPlan(finder, lr, fix_schedule(lr, task, config), source, how, total)


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


def repair_run(config: DemoConfig, out_dir: Path, *, progress: Progress | None = None) -> Any:
    """Step (f): :func:`lrdoctor.repair` on run (a)'s mistake (the lr and the plateau mode of
    :class:`DemoConfig`), up to 3 rounds, logs and ``journal.jsonl`` in ``out_dir``; returns
    the :class:`~lrdoctor.healing.RepairResult`."""
    from lrdoctor.examples._repair import ExampleTrainer, fault_config
    from lrdoctor.healing import repair

    cfg = fault_config(config.task, "plateau-min-on-accuracy", seed=config.seed,
                       epochs=config.epochs)
    cfg["lr"] = config.mistake_lr
    out_dir.mkdir(parents=True, exist_ok=True)
    journal = out_dir / "journal.jsonl"
    journal.unlink(missing_ok=True)
    tick = _tick(progress, "repair")
    tick(0, 3)
    result = repair(ExampleTrainer(out_dir, threads=config.threads), cfg, rounds=3,
                    journal=journal, progress=lambda i, n, _text: tick(min(i, n), n))
    tick(3, 3)
    return result


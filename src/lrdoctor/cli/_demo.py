"""``lrdoctor demo``: the classic mistake, the diagnosis, the finder, the fix — and a report."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from rich.table import Table

from lrdoctor.cli._common import CLIError, check_outputs, console, progress, write_json

__all__ = ["register"]

STAGES = {
    "mistake": "(a) training with the mistake",
    "diagnose": "(b) the doctor reads the log",
    "finder": "(c) auto: LR range test",
    "fixed": "(d) training with the fix",
    "repair": "(f) the repair loop on the mistake",
    "report": "(e) writing the report",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the end-to-end demo: a classic LR mistake, its diagnosis, the LR finder, the fix",
        description=(
            "Train a small MLP on scikit-learn's digits twice — once with a classic "
            "learning-rate mistake, once with the LR and schedule auto_lr picks for the run "
            "(a range test of 10% of its steps) and a correctly-configured plateau scheduler "
            "— and write one HTML report."
        ),
    )
    p.add_argument("--out", default="demo-out", metavar="DIR",
                   help="folder for the report, logs, journals and pictures (default demo-out)")
    p.add_argument("--quick", action="store_true", help="fewer epochs and finder steps")
    p.add_argument("--epochs", type=int, help="epochs per run (default 10)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the model is tiny, one thread is fastest)")
    p.add_argument("--json", metavar="OUT", help="write the numbers as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from lrdoctor.demo import DemoConfig, run_demo

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: a file of that name exists; give a folder")
    check_outputs(args, "json")
    config = DemoConfig.quick() if args.quick else DemoConfig()
    if args.epochs is not None:
        if args.epochs < 2:
            raise CLIError(f"--epochs must be >= 2, got {args.epochs}")
        config = dataclasses.replace(config, epochs=args.epochs)
    if args.threads < 1:
        raise CLIError(f"--threads must be >= 1, got {args.threads}")
    config = dataclasses.replace(config, threads=args.threads)

    with progress() as bar:
        tasks: dict[str, Any] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(STAGES.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = run_demo(out, config=config, progress=on_progress)

    a, d = result.mistake, result.fixed
    console.print(f"{a.title}: final val accuracy {a.final():.1%}", soft_wrap=True)
    if result.diagnosis is not None:
        console.print("[bold](b)[/] the doctor on run (a):")
        for f in result.diagnosis.findings:
            console.print(f"    [bold]{f.severity}[/] {f.title} ({f.code}): {f.evidence}",
                          soft_wrap=True)
            console.print(f"      fix: {f.fix}", soft_wrap=True)
    fr, plan = result.finder, result.plan
    if fr.suggestion is not None:
        lo, hi = fr.interval
        console.print(f"[bold](c)[/] LR finder: suggestion {fr.suggestion:.3g} "
                      f"(interval {lo:.3g}–{hi:.3g}, grade {fr.grade})")
    else:
        console.print("[bold](c)[/] LR finder: no clear suggestion; using "
                      f"{result.suggested_lr:.3g}")
    if plan is not None:
        console.print(f"    run (d): {plan.spec}", soft_wrap=True)
        console.print(f"    why: {plan.how}", soft_wrap=True)
    console.print(f"{d.title}: final val accuracy {d.final():.1%}", soft_wrap=True)
    decisions = [line for line in d.journal if "not a plateau decision" not in line]
    for line in (decisions or d.journal)[:4]:
        console.print(f"    journal: {line}", soft_wrap=True)

    table = Table(title="(e) comparison")
    for col in ("run", "schedule", "final val acc", "best val acc", "final val loss", "seconds"):
        table.add_column(col, justify="left" if col in ("run", "schedule") else "right")
    for name, row in zip(("(a) mistake", "(d) fix"), result.table):
        table.add_row(name, row["lr"], _pct(row["final val accuracy"]),
                      _pct(row["best val accuracy"]), f"{row['final val loss']:.3g}",
                      f"{row['seconds']:.1f}")
    console.print(table)
    healing = result.repair
    if healing is not None:
        verdict = "healed" if healing.healed else "not healed"
        console.print(f"[bold](f)[/] repair loop on the mistake ({verdict} in "
                      f"{healing.rounds} round{'s' if healing.rounds != 1 else ''}):")
        for r in healing.history:
            console.print(f"    {r.index}. {r.sentence()}", soft_wrap=True)
    for item in result.missing:
        console.print(f"[yellow]skipped:[/] {item}")
    if args.json:
        write_json(args.json, result.to_dict())
    console.print(f"compute {result.seconds['total']:.1f} s; report: [bold]{result.report}[/]")
    return 0


def _pct(v: float) -> str:
    return "—" if not math.isfinite(v) else f"{v:.1%}"

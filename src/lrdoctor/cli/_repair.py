"""``lrdoctor repair --example NAME [--fault KIND]``: the verified repair loop on an example task.

Trains the example with the fault injected, diagnoses it, applies the best untried change from
the findings, retrains, and stops when the doctor calls the run healthy or the rounds are
spent (:func:`lrdoctor.repair`). Every round goes to ``OUT/journal.jsonl``, which
``lrdoctor explain OUT`` reads.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from lrdoctor.cli._common import CLIError, check_outputs, console, progress, write_json

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    from lrdoctor import examples
    from lrdoctor.examples._repair import FAULTS

    p = sub.add_parser(
        "repair", help="fix a broken example run: diagnose, apply a change, retrain, verify",
        description="Train an example task with a fault injected, then repeat: diagnose, apply "
                    "the best untried change from the findings (docs/repair.md), retrain; stop "
                    "when the doctor calls the run healthy or --rounds are spent.")
    p.add_argument("--example", required=True, metavar="NAME",
                   help=f"example task: {', '.join(examples.names())}")
    p.add_argument("--fault", metavar="KIND",
                   help=f"fault to inject: {', '.join(FAULTS)} (default: none)")
    p.add_argument("--rounds", type=int, default=3, metavar="N",
                   help="retrains at most (default 3)")
    p.add_argument("--epochs", type=int, metavar="N", help="epochs per run (default: the task's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the runs (default 0)")
    p.add_argument("--random", action="store_true",
                   help="the baseline: random changes from the same vocabulary")
    p.add_argument("--out", metavar="DIR", default="repair-out",
                   help="folder for each run's log and the journal (default repair-out)")
    p.add_argument("--json", metavar="OUT", help="write the rounds as JSON (- for standard output)")
    p.add_argument("--quiet", action="store_true", help="print nothing (use with --json)")
    p.set_defaults(run=run)


def _check(args: argparse.Namespace) -> None:
    from lrdoctor import examples
    from lrdoctor.examples._repair import FAULTS

    if args.example not in examples.names():
        raise CLIError(f"--example must be one of {', '.join(examples.names())}, got "
                       f"{args.example!r}")
    if args.fault is not None and args.fault not in FAULTS:
        raise CLIError(f"--fault must be one of {', '.join(FAULTS)}, got {args.fault!r}")
    if args.rounds < 0:
        raise CLIError(f"--rounds must be >= 0, got {args.rounds}")
    if args.epochs is not None and args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; pass a folder")


def run(args: argparse.Namespace) -> int:
    from lrdoctor.healing import repair_example

    _check(args)
    check_outputs(args, "json")
    with progress(disable=args.quiet) as bar:
        task = bar.add_task("repair", total=args.rounds + 1)

        def tick(i: int, rounds: int, text: str) -> None:
            bar.update(task, completed=i, description=f"round {i}: {text[:60]}")

        result = repair_example(args.example, args.fault, rounds=args.rounds, out_dir=args.out,
                                epochs=args.epochs, seed=args.seed,
                                strategy="random" if args.random else "doctor", progress=tick)
    if args.json:
        write_json(args.json, result.to_dict())
    if not args.quiet:
        what = f"{args.example} with fault {args.fault}" if args.fault else args.example
        console.print(f"[bold]repair[/] {what} ({result.strategy}, metric {result.metric})")
        for r in result.history:
            head = "given" if r.index == 0 else f"round {r.index}"
            console.print(f"  {head}: {r.sentence()}", soft_wrap=True)
            for a in r.skipped:
                console.print(f"    [dim]skipped {a.change} ({a.code}): {a.reason}[/]",
                              soft_wrap=True)
            if r.index == 0 and r.diagnosis.problems:
                f = r.diagnosis.problems[0]
                console.print(f"    [dim]{f.title}: {f.evidence}[/]", soft_wrap=True)
        verdict = "[green]healed[/]" if result.healed else "[red]not healed[/]"
        best = result.best.metric
        metric = "" if best is None or not math.isfinite(best) else f", metric {best:.4g}"
        console.print(f"{verdict} after {result.rounds} round(s){metric}; journal: "
                      f"{Path(args.out) / 'journal.jsonl'} (lrdoctor explain {args.out})")
    return 0

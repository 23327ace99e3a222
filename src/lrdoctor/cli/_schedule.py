"""``lrdoctor schedule SPEC``: preview a schedule as a table, a plot, CSV and JSON."""

from __future__ import annotations

import argparse
import csv
import io
import math

from rich.table import Table

from lrdoctor.cli._common import CLIError, check_outputs, console, write_json, write_output, writing
from lrdoctor.preview import plot_schedule, summarize
from lrdoctor.schedules import parse

__all__ = ["register"]

EXAMPLES = """examples:
  lrdoctor schedule "warmup(500) >> cosine(3e-4, end=3e-6, steps=9500)" --plot lr.png
  lrdoctor schedule "one_cycle(0.1, steps=1000)" --csv lr.csv --json lr.json
  lrdoctor schedule "sgdr(0.1, period=100, mult=2)" --steps 1500
  lrdoctor schedule "cosine(0.1, steps=50000000)" --csv lr.csv --every 1000
"""

#: --csv/--json write one row per step up to this many rows; beyond, ``--every K`` is required
MAX_ROWS = 1_000_000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schedule",
        help="preview a schedule spec: table, plot, CSV, JSON",
        description="Evaluate a schedule spec step by step and show where it starts, peaks and ends.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("spec", help='a schedule spec, e.g. "warmup(500) >> cosine(3e-4, steps=9500)"')
    p.add_argument("--steps", type=int, help="how many optimizer steps to preview (default: the duration + 5%%, or 1000)")
    p.add_argument("--plot", metavar="PNG", help="write a picture (PNG, SVG or PDF)")
    p.add_argument("--csv", metavar="CSV", help="write step,lr[,momentum] rows (- for standard output)")
    p.add_argument("--json", metavar="JSON", help="write the summary and the values as JSON (- for standard output)")
    p.add_argument("--every", type=int, default=None, metavar="K",
                   help=f"--csv/--json: write every K-th step (0, K, 2K, ...; default 1, "
                        f"required past {MAX_ROWS:,} rows)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    schedule = parse(args.spec)
    if args.steps is not None and args.steps < 1:
        raise CLIError(f"--steps must be >= 1, got {args.steps}")
    check_outputs(args, "plot", "csv", "json")
    preview = summarize(schedule, args.steps)
    every = _every(args, preview.steps)

    console.print(f"[bold]{preview.spec}[/]", soft_wrap=True)
    table = Table()
    table.add_column("point")
    table.add_column("step", justify="right")
    table.add_column("lr", justify="right")
    for row in preview.rows():
        table.add_row(*row)
    for mark in preview.marks[:12]:
        table.add_row(mark.label, str(mark.step), f"{schedule(mark.step):.4g}")
    console.print(table)
    duration = "open-ended" if preview.duration is None else f"{preview.duration} steps"
    console.print(f"duration: {duration}; previewed {preview.steps} steps")

    if args.plot:
        with writing(args.plot) as target:
            plot_schedule(schedule, target, preview.steps)
        console.print(f"plot: {args.plot}")
    if args.csv or args.json:
        ks = range(0, preview.steps, every)
        lrs = schedule.values(ks)
        moms = [schedule.momentum(k) for k in ks] if preview.has_momentum else None
        rows = "" if every == 1 else f" (every {every}th step: {len(ks):,} of {preview.steps:,})"
    if args.csv:
        text = io.StringIO(newline="")
        w = csv.writer(text)
        w.writerow(["step", "lr", *(["momentum"] if moms else [])])
        for i, (k, lr) in enumerate(zip(ks, lrs, strict=True)):
            w.writerow([k, repr(float(lr)), *([repr(moms[i])] if moms else [])])
        write_output(args.csv, text.getvalue())
        console.print(f"csv: {args.csv}{rows}")
    if args.json:
        data = preview.to_dict() | {"every": every, "lrs": lrs.tolist()}
        if moms:
            data["momentum"] = moms
        write_json(args.json, data)
        console.print(f"json: {args.json}{rows}")
    return 0


def _every(args: argparse.Namespace, steps: int) -> int:
    """The stride of the --csv/--json rows: ``--every``, or 1 while that stays within ``MAX_ROWS``."""
    if args.every is not None:
        if args.every < 1:
            raise CLIError(f"--every must be >= 1, got {args.every}")
        return args.every
    if (args.csv or args.json) and steps > MAX_ROWS:
        k = math.ceil(steps / MAX_ROWS)
        raise CLIError(f"--csv/--json would write {steps:,} rows, one per step (more than {MAX_ROWS:,}); "
                       f"pass --every K to write every K-th step, e.g. --every {k}, or a smaller --steps")
    return 1

"""``lrdoctor diagnose PATH``: read a training log, name its problems, write JSON/HTML."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from lrdoctor.cli._common import (
    CLIError,
    check_outputs,
    console,
    console_err,
    write_json,
    write_output,
)

__all__ = ["register", "run"]

_FAIL = {"warning": ("warning", "critical"), "critical": ("critical",)}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose", help="name the problems in a training log (any framework) and their fixes",
        description="Read a training log (our JSONL, Keras CSV/History, Lightning metrics.csv, "
                    "HF trainer_state.json, TensorBoard events, generic CSV; a file or a run "
                    "folder) and print ranked findings with evidence and a fix.")
    p.add_argument("path", metavar="PATH", help="log file or run directory")
    p.add_argument("--format", default="auto",
                   help="force a reader: auto (default), jsonl, csv, hf-trainer-state, "
                        "keras-history, tensorboard, mlflow, wandb")
    p.add_argument("--run", metavar="ID", dest="run_id",
                   help="the run to read from an MLflow store (mlflow.db, mlruns/) or a wandb/ "
                        "folder that holds several")
    p.add_argument("--json", metavar="OUT", help="write the findings as JSON (- for standard output)")
    p.add_argument("--html", metavar="OUT", help="write a self-contained HTML report")
    p.add_argument("--fail-on", choices=("warning", "critical"),
                   help="exit 1 when a finding of this severity or worse is present")
    p.add_argument("--quiet", action="store_true", help="print nothing (use with --json/--html)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lrdoctor.doctor import diagnose
    from lrdoctor.logs import load
    from lrdoctor.report import Report, render_terminal, to_json

    path = Path(args.path)
    if not path.exists():
        raise CLIError(f"no such file or directory: {path} (pass a log file or a run folder)")
    check_outputs(args, "json", "html")  # now, not after reading a long log
    with console_err.status(f"reading and diagnosing {path.name}", spinner="dots") \
            if not args.quiet else contextlib.nullcontext():
        log = load(path, format=args.format, run=args.run_id)
        diagnosis = diagnose(log)
    if args.json:
        write_json(args.json, to_json(diagnosis))
    if args.html:
        report = Report(f"lrdoctor diagnosis: {path.name}", subtitle=str(path))
        report.add_summary(diagnosis.summary(), verdict=diagnosis.worst)
        report.add_diagnosis(diagnosis, log, title=path.name)
        write_output(args.html, report.render())
    if not args.quiet:
        console.print(render_terminal(diagnosis))
    if args.fail_on and any(f.severity in _FAIL[args.fail_on] for f in diagnosis.findings):
        return 1
    return 0

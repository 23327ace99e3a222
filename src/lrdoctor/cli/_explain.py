"""``lrdoctor explain PATH``: why the learning rate changed.

PATH is a decision journal (JSONL written by PlateauLR / the Keras callbacks / the
integrations), a training log of any format ``lrdoctor.logs`` reads, or a run folder holding
either or both. With a journal the entries' own sentences are printed; from a log alone every LR
change is detected and attributed (plateau of which metric and mode, scheduled decay, warm-up,
restart). Either way, when the LR fell while the training loss was still improving, the answer
to "why?" comes last.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lrdoctor.cli._common import CLIError, check_outputs, console, write_json

__all__ = ["explain_path", "register", "run"]

_JOURNAL_NAMES = ("journal.jsonl", "lrdoctor/journal.jsonl")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="say why the learning rate changed (from a journal or any training log)",
        description="Explain every learning-rate change of a run: read a decision journal "
                    "(journal.jsonl) or detect and attribute the changes in a training log "
                    "(our JSONL, Keras CSV/History, Lightning metrics.csv, HF "
                    "trainer_state.json, TensorBoard events, generic CSV), and answer 'why did my "
                    "LR drop while the training loss was improving?'.")
    p.add_argument("path", metavar="PATH", help="journal, log file or run folder")
    p.add_argument("--log", metavar="LOG", help="a training log to read alongside a journal")
    p.add_argument("--format", default="auto", help="force a log reader (see lrdoctor diagnose)")
    p.add_argument("--run", metavar="ID", dest="run_id",
                   help="the run to read from an MLflow store or a wandb/ folder holding several")
    p.add_argument("--json", metavar="OUT", help="write the explanation as JSON (- for standard output)")
    p.add_argument("--quiet", action="store_true", help="print nothing (use with --json)")
    p.set_defaults(run=run)


def is_journal(path: Path) -> bool:
    """A JSONL file whose first whole object has a journal entry's keys (a damaged line before
    it, as a kill mid-write leaves, is passed over)."""
    if not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh):
                line = line.replace("\x00", "").strip()
                if n > 50 or line[:1] not in ("{", ""):
                    return False
                if line:
                    try:
                        obj = json.loads(line)
                    except (ValueError, RecursionError):
                        continue  # a torn entry: look at the next line
                    return isinstance(obj, dict) and "cause" in obj and "old_lrs" in obj
    except OSError:
        return False
    return False


_LOG_NAMES = ("log.jsonl", "metrics.csv", "trainer_state.json", "training.log", "history.json")


def _log_in(folder: Path, journal_file: Path | None) -> Path:
    """The training log of a run folder: a known name, else any CSV/JSON(L) that is not the
    journal, else the folder itself (TensorBoard event files, nested runs)."""
    for name in _LOG_NAMES:
        if (folder / name).is_file() and not is_journal(folder / name):
            return folder / name
    others = sorted(f for f in folder.iterdir()
                    if f.suffix in (".csv", ".jsonl", ".json", ".log") and f != journal_file
                    and not is_journal(f))
    return others[0] if others else folder


def _series(log: Any) -> dict[str, tuple[Any, Any]]:
    return {name: (log.get(name).steps, log.get(name).values) for name in log.names()}


def explain_path(path: str | Path, *, log_path: str | Path | None = None, format: str = "auto",
                 run: str | None = None) -> dict[str, Any]:
    """The explanation of ``path`` as a JSON-ready dict (what ``--json`` writes)."""
    from lrdoctor.journal import Journal
    from lrdoctor.logs import load
    from lrdoctor.logs._mlflow import is_mlflow
    from lrdoctor.logs._wandb import is_wandb
    from lrdoctor.plateau._attribute import attribute, explain_journal

    p = Path(path)
    if not p.exists():
        raise CLIError(f"no such file or directory: {p} (pass a journal, a log file or a run folder)")
    journal_file: Path | None = None
    log_file: Path | None = Path(log_path) if log_path else None
    if p.is_dir():
        journal_file = next((p / n for n in _JOURNAL_NAMES if is_journal(p / n)), None)
        if log_file is None:
            log_file = p if is_mlflow(p) or is_wandb(p) else _log_in(p, journal_file)
    elif is_journal(p):
        journal_file = p
    else:
        log_file = p
    log = None
    if log_file is not None:
        try:
            log = load(log_file, format=format, run=run)
        except Exception:
            if journal_file is None:
                raise
            log = None
    if journal_file is not None:
        journal = Journal.load(journal_file)
        if not len(journal):
            raise CLIError(f"{journal_file} holds no decisions yet")
        result = explain_journal(list(journal), _series(log) if log is not None else None,
                                 step_unit="step")
        kind, source = "journal", str(journal_file)
    else:
        assert log is not None
        result = attribute(_series(log), step_unit=log.step_unit)
        kind, source = "log", str(log_file)
    out = result.to_dict()
    out.update({"source": source, "kind": kind})
    if log is not None and getattr(log, "warnings", None):
        out["notes"] = list(out.get("notes", [])) + list(log.warnings)
    if journal_file is not None and journal.warnings:  # damaged lines it skipped
        out["notes"] = list(out.get("notes", [])) + list(journal.warnings)
    return out


def run(args: argparse.Namespace) -> int:
    check_outputs(args, "json")
    out = explain_path(args.path, log_path=args.log, format=args.format, run=args.run_id)
    if args.json:
        write_json(args.json, out)
    if not args.quiet:
        what = "journal" if out["kind"] == "journal" else "training log (no journal: causes inferred)"
        console.print(f"[bold]LR changes in {out['source']}[/] — from the {what}")
        if not out["changes"]:
            console.print("  the learning rate never changed")
        for i, c in enumerate(out["changes"], 1):
            console.print(f"  {i}. {c['sentence']}", soft_wrap=True)
        for note in out.get("notes", []):
            console.print(f"[dim]note: {note}[/]", soft_wrap=True)
        if out.get("answer"):
            console.print()
            console.print(out["answer"], soft_wrap=True)
    return 0

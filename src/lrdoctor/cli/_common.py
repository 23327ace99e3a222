"""What every subcommand shares: consoles, argument errors with exit 2, JSON output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from lrdoctor._json import jsonable

__all__ = [
    "ArgumentParser",
    "CLIError",
    "check_outputs",
    "console",
    "console_err",
    "progress",
    "write_json",
]

console = Console(highlight=False)
console_err = Console(stderr=True, highlight=False)


class CLIError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 2 (argparse's own is 2 as well)."""

    def error(self, message: str) -> NoReturn:
        console_err.print(f"[bold red]error:[/] {self.prog}: {message} (see '{self.prog} --help')",
                          highlight=False, soft_wrap=True)
        sys.exit(2)


def check_outputs(args: argparse.Namespace, *options: str) -> None:
    """Refuse, before any work, an output option (``--json OUT``…) whose folder is missing."""
    for option in options:
        target = getattr(args, option, None)
        if target and not Path(target).resolve().parent.is_dir():
            raise CLIError(f"--{option} {target}: the folder {Path(target).parent} does not exist")


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON atomically (a temp file renamed over the target)."""
    target = Path(path)
    if target.parent and not target.parent.exists():
        raise CLIError(f"cannot write {target}: the folder {target.parent} does not exist")
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, target)
    return target


def progress(**kwargs: Any) -> Any:
    """A rich progress bar on stderr, quiet when stderr is not a terminal and CI is set."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console_err,
        transient=True,
        **kwargs,
    )

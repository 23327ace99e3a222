"""What every subcommand shares: consoles, argument errors with exit 2, result output.

Every result a subcommand writes (``--json``, ``--html``, ``--plot``, ``--csv``, ``--out``,
``--gif``) goes through :func:`write_output` (or :func:`output_target` for a library call that
saves a picture): ``-``, or a path that is this process's standard output (``/dev/stdout``),
writes to standard output, and the tables and messages move to standard error so the result can
be piped; any other path goes to :func:`lrdoctor._output.write_file`, which writes through
symbolic links and never renames over a device, FIFO or socket.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

from rich.console import Console

from lrdoctor._json import jsonable
from lrdoctor._output import Target, figure_format, write_file

__all__ = [
    "ArgumentParser",
    "CLIError",
    "check_outputs",
    "console",
    "console_err",
    "is_stdout",
    "output_target",
    "progress",
    "write_json",
    "write_output",
    "writing",
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


#: output options that hold a picture (bytes: refused onto a terminal, suffix checked early)
PICTURE_OPTIONS = ("plot", "out", "gif")


def is_stdout(path: str | os.PathLike[str] | None) -> bool:
    """``-``, or a path naming the very file this process's standard output is
    (``/dev/stdout``, ``/proc/self/fd/1``, a link to the file stdout is redirected to)."""
    if path is None:
        return False
    if os.fspath(path) == "-":
        return True
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError):  # no such path, or stdout has no descriptor
        return False


def check_outputs(args: argparse.Namespace, *options: str) -> None:
    """Refuse, before any work, an output option (``--json OUT``…) that cannot be written.

    Missing folder, a folder given as the file, two options sent to standard output, a picture
    sent to a terminal, or a picture suffix matplotlib cannot write: one ``CLIError`` each. When
    one option writes to standard output, the human-readable output moves to standard error.
    """
    to_stdout = []
    for option in options:
        target = getattr(args, option, None)
        if not target:
            continue
        flag = f"--{option} {target}"
        if is_stdout(target):
            to_stdout.append(option)
            if option in PICTURE_OPTIONS and _stdout_is_terminal():
                raise CLIError(f"{flag}: standard output is a terminal; redirect it "
                               f"(> picture.png) or give a file name")
            continue
        try:
            mode = os.stat(target).st_mode  # follows links
        except FileNotFoundError:
            folder = Path(os.path.realpath(target)).parent
            if not folder.is_dir():
                # a dangling link: name the folder its target needs
                shown = folder if os.path.islink(target) else Path(target).parent
                raise CLIError(f"{flag}: the folder {shown} does not exist") from None
            if not os.access(folder, os.W_OK | os.X_OK):
                raise CLIError(f"{flag}: the folder {folder} is not writable") from None
        except OSError as err:  # e.g. a path through a file, not a folder
            raise CLIError(f"{flag}: {err.strerror}") from None
        else:
            if stat.S_ISDIR(mode):
                raise CLIError(f"{flag}: this is a folder; give a file name")
        if option in PICTURE_OPTIONS and option != "gif":  # a GIF is Pillow's, not matplotlib's
            try:
                figure_format(target)
            except ValueError as err:
                raise CLIError(f"--{option}: {err}") from None
    if len(to_stdout) > 1:
        raise CLIError(f"only one output can go to standard output, got "
                       f"{', '.join('--' + o for o in to_stdout)}")
    console.stderr = bool(to_stdout)  # results own stdout; the tables go to stderr


def _stdout_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return False


class _Stdout:
    """Standard output as a binary file (text written so far is flushed first)."""

    def write(self, data: bytes) -> int:
        sys.stdout.flush()
        buffer: IO[bytes] | None = getattr(sys.stdout, "buffer", None)
        if buffer is None:  # a text-only stream (some embedders): best effort
            return sys.stdout.write(data.decode("utf-8", "replace"))
        n = buffer.write(data)
        buffer.flush()
        return n

    def flush(self) -> None:
        sys.stdout.flush()


def output_target(path: str | os.PathLike[str]) -> Target:
    """What to hand a library function that writes a result: standard output as a binary file
    for ``-`` or ``/dev/stdout``, else the path itself."""
    return _Stdout() if is_stdout(path) else path


@contextlib.contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[Target]:
    """``with writing(args.plot) as target: save(..., target)``: the target for ``path`` (see
    :func:`output_target`), and an ``OSError`` while writing becomes one ``CLIError`` line."""
    try:
        yield output_target(path)
    except OSError as err:
        reason = err.strerror or str(err)
        raise CLIError(f"cannot write {os.fspath(path)}: {reason}") from None


def write_output(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write a result (``str`` as UTF-8): ``-`` or ``/dev/stdout`` to standard output, else through
    :func:`lrdoctor._output.write_file` (links followed, devices and FIFOs written in place)."""
    with writing(path) as target:
        write_file(target, data)


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON (NaN refused) with :func:`write_output`."""
    write_output(path, json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")


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

"""The ``lrdoctor`` command line: one thin module per subcommand.

Each subcommand module defines ``register(subparsers)``, which adds its parser and sets
``run=<function(args) -> int>``. Library errors (``LRDoctorError``, a ``ValueError``) and OS
errors (a missing, unreadable or looping path) become one ``error:`` line on stderr and exit
status 2; anything else too (named as a bug); a traceback only with ``--debug``. The library's
warnings (``logging``) are printed after a command succeeds, one line each, and dropped when it
fails, so an error is the only line.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

from rich.markup import escape

from lrdoctor import __version__
from lrdoctor.cli._common import ArgumentParser, CLIError, console, console_err
from lrdoctor.errors import LRDoctorError

__all__ = ["main"]

#: Subcommands in the order ``--help`` lists them.
SUBCOMMANDS = ("schedule", "explain", "find", "diagnose", "lab", "demo", "repair")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="lrdoctor",
        description="Learning rates you can control and explain.",
    )
    parser.add_argument("--version", action="version", version=f"lrdoctor {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in SUBCOMMANDS:
        module = f"lrdoctor.cli._{name}"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 findings over --fail-on, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    held = _HeldWarnings()  # the library's warnings: shown after a success, dropped on an error
    library = logging.getLogger("lrdoctor")
    library.addHandler(held)
    done = False
    try:
        status = int(args.run(args) or 0)
        done = True
        return status
    except (CLIError, LRDoctorError, OSError) as err:
        if args.debug:
            raise
        console_err.print(f"[bold red]error:[/] {escape(_one_line(err))}", highlight=False,
                          soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console_err.print("interrupted")
        return 130
    except Exception as err:  # a bug, not bad input: still one line, and how to report it
        if args.debug:
            raise
        console_err.print(f"[bold red]error:[/] unexpected {type(err).__name__}: "
                          f"{escape(_one_line(err))} (a bug in lrdoctor; rerun with --debug and "
                          "report the traceback)", highlight=False, soft_wrap=True)
        return 2
    finally:
        library.removeHandler(held)
        if done:
            for message in held.messages:
                sys.stderr.write(message + "\n")
        console.stderr = False  # check_outputs moves it to stderr while a result uses stdout


class _HeldWarnings(logging.Handler):
    """Keeps the ``lrdoctor`` loggers' warnings (one line each) until the command ends."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(" ".join(record.getMessage().split()))


def _one_line(err: BaseException) -> str:
    text = str(err)
    if isinstance(err, OSError) and err.filename:
        text = f"{err.strerror or type(err).__name__}: {err.filename}"
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

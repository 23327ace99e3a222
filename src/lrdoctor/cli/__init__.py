"""The ``lrdoctor`` command line: one thin module per subcommand.

Each subcommand module defines ``register(subparsers)``, which adds its parser and sets
``run=<function(args) -> int>``. Library errors (``LRDoctorError``, a ``ValueError``) become a
one-line message and exit status 2; nothing else prints a traceback unless ``--debug``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence

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
    try:
        return int(args.run(args) or 0)
    except (CLIError, LRDoctorError, FileNotFoundError, IsADirectoryError, PermissionError) as err:
        if args.debug:
            raise
        console_err.print(f"[bold red]error:[/] {_one_line(err)}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console_err.print("interrupted")
        return 130
    finally:
        console.stderr = False  # check_outputs moves it to stderr while a result uses stdout


def _one_line(err: BaseException) -> str:
    text = str(err)
    if isinstance(err, (FileNotFoundError, IsADirectoryError, PermissionError)) and err.filename:
        text = f"{err.strerror}: {err.filename}"
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Shared benchmark plumbing: print a table and append it to benchmarks/RESULTS.md.

Every benchmark calls :func:`record` once per table, so each entry carries the date, the exact
command and the machine it was measured on.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def cpu() -> str:
    """The CPU model (``/proc/cpuinfo``'s model name where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """A one-line description of where the numbers were measured."""
    try:
        import torch

        tv = f", torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        tv = ""
    return f"{cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}{tv}"


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def record(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]], notes: str = "") -> None:
    """Print ``rows`` as a table and append it, with date, command and machine, to RESULTS.md."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for h in headers:
        table.add_column(str(h))
    for r in rows:
        table.add_row(*(_fmt(v) for v in r))
    Console().print(table)
    if notes:
        print(notes)

    command = os.environ.get("LRDOCTOR_BENCH_COMMAND") or " ".join([Path(sys.executable).name, *sys.argv])
    settings = sorted(f"{k}={v}" for k, v in os.environ.items()
                      if k.startswith("LRDOCTOR_BENCH_") and k != "LRDOCTOR_BENCH_COMMAND")
    command = " ".join([*settings, command])  # the environment that shaped the run, too
    lines = [
        f"## {title}",
        "",
        f"- date: {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- command: `{command}`",
        f"- machine: {machine()}",
        "",
        "| " + " | ".join(map(str, headers)) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(_fmt(v) for v in r) + " |" for r in rows),
        "",
    ]
    if notes:
        lines += [notes, ""]
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by `make bench`; newest last.\n\n")
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())

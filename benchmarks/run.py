"""Run the benchmarks: every ``benchmarks/bench_*.py`` (or those named on the command line).

    python benchmarks/run.py              # all
    python benchmarks/run.py schedule     # bench_schedule.py only
    python benchmarks/run.py doctor-p4    # bench_doctor.py p4: one part of a benchmark
    python benchmarks/run.py doctor --quick   # options go to every benchmark that runs

``make bench BENCH=doctor-p4`` runs the same. Each benchmark sees only its own parts and the
options as its command line.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    options = [a for a in argv if a.startswith("-")]
    wanted: dict[str, list[str]] = {}
    for arg in (a for a in argv if not a.startswith("-")):
        name, _, part = arg.partition("-")
        wanted.setdefault(name, []).extend([part] if part else [])
    sys.path.insert(0, str(HERE))
    saved = sys.argv
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        parts = wanted.get(name, [])
        label = " ".join([*(f"{name}-{p}" for p in parts), *options]) if parts else \
            " ".join([name, *options])
        os.environ["LRDOCTOR_BENCH_COMMAND"] = f"make bench BENCH={label}" if " " not in label \
            else f'make bench BENCH="{label}"'
        print(f"== {path.name} {' '.join(parts + options)}".rstrip(), flush=True)
        sys.argv = [str(path), *parts, *options]
        try:
            runpy.run_path(str(path), run_name="__main__")
        finally:
            sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

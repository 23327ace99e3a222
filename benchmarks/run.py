"""Run the benchmarks: every ``benchmarks/bench_*.py`` (or those named on the command line).

    python benchmarks/run.py            # all
    python benchmarks/run.py schedule   # bench_schedule.py only
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    wanted = set(argv)
    sys.path.insert(0, str(HERE))
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        os.environ["LRDOCTOR_BENCH_COMMAND"] = f"make bench BENCH={name}"
        print(f"== {path.name}", flush=True)
        runpy.run_path(str(path), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""P6: load + diagnose a 1M-step log, for every file format the readers take.

The log (1M optimizer steps: an exponentially falling
training loss with noise, a gradient norm, a constant lr, a validation loss every 10,000
steps), written as each writer would: a CSV (``step,loss,grad_norm,lr``), our Monitor's JSONL
(a meta line, then one ``scalars`` line per step) and an HF ``trainer_state.json`` (one
``log_history`` entry per step). Each file is loaded twice in this process: with the ``fast``
extra (pyarrow for CSV; polars for big JSONL and trainer_state.json files, read a column at a
time by ``lrdoctor.logs._columnar``, orjson for the rest) and without it (the standard library;
the readers give identical logs either way: tests/logs/test_csv.py, test_json.py and
test_columnar.py check that), then diagnosed. Seconds are wall time (``perf_counter``) and CPU time of this process
(``process_time``, all threads); imports are done before the clock starts (importing pyarrow
costs about 0.3 s once, at the first CSV). No training runs here (no torch threads to set).
TensorBoard is not timed: its reader (``EventAccumulator``) decodes one protobuf event at a
time in Python, and writing 1M events with ``SummaryWriter`` alone takes minutes on this box.

    python benchmarks/bench_logs.py          # ~1-2 min on 2 loaded cores
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _results import record

N = int(os.environ.get("LRDOCTOR_BENCH_STEPS", "1000000"))

#: formats whose diagnose() is not timed (none since the unshuffled-data rule counts HF's
#: fractional per-step epochs in one pass, commit b04867b)
SKIP_DIAGNOSE: set[str] = set()


def _files(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    steps = np.arange(N)
    loss = 2.3 * np.exp(-steps / 2e5) + 0.1 + 0.05 * rng.standard_normal(N)
    grad = 1.0 + 0.1 * rng.standard_normal(N)
    out = {"CSV": folder / "big.csv", "Monitor JSONL": folder / "big.jsonl",
           "HF trainer_state.json": folder / "trainer_state.json"}
    out["CSV"].write_text("step,loss,grad_norm,lr\n" + "".join(
        f"{s},{v:.6g},{g:.6g},0.1\n" for s, v, g in zip(steps, loss, grad)))
    s_, l_, g_ = steps.tolist(), loss.tolist(), grad.tolist()
    out["Monitor JSONL"].write_text('{"type": "meta", "version": 1, "every": 50}\n' + "".join(
        f'{{"type": "scalars", "step": {s}, "epoch": {s // 10_000}, "values": '
        f'{{"train/loss": {v!r}, "lr": 0.1, "grad_norm": {g!r}}}}}\n'
        for s, v, g in zip(s_, l_, g_)))
    history = [{"loss": v, "grad_norm": g, "learning_rate": 0.1, "epoch": s / 10_000, "step": s}
               for s, v, g in zip(s_, l_, g_)]
    history += [{"eval_loss": 2.3 * np.exp(-s / 2e5) + 0.15, "epoch": s / 10_000, "step": s}
                for s in range(0, N, 10_000)]
    out["HF trainer_state.json"].write_text(json.dumps({"global_step": N, "log_history": history}))
    return out


def _timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    from lrdoctor.doctor import diagnose
    from lrdoctor.logs import _columnar, _csv, _json, load

    logging.getLogger("lrdoctor").setLevel(logging.ERROR)
    _csv._pyarrow()  # the first CSV imports pyarrow: not what is timed
    fast_extra = (_csv._pa, _csv._pa_csv, _json._orjson, _columnar.pl)
    rows, codes = [], set()
    load_before = os.getloadavg()[0]
    for what, path in _files(Path(tempfile.mkdtemp())).items():
        mb = path.stat().st_size / 1e6
        for fast in (True, False):
            _csv._pa, _csv._pa_csv, _json._orjson, _columnar.pl = (fast_extra if fast else
                                                                   (False, None, None, None))
            log, load_wall, load_cpu = _timed(lambda p=path: load(p))
            if what in SKIP_DIAGNOSE:
                rows.append([what, f"{mb:.0f} MB", "fast extra" if fast else "standard library",
                             round(load_wall, 3), "not timed", "-", f"{load_cpu:.3g} (load)",
                             "load " + ("met" if load_wall <= 1.0 else "not met")])
                continue
            d, diag_wall, diag_cpu = _timed(lambda lg=log: diagnose(lg))
            codes.update(d.codes)
            total = load_wall + diag_wall
            rows.append([what, f"{mb:.0f} MB", "fast extra" if fast else "standard library",
                         round(load_wall, 3), round(diag_wall, 3), round(total, 3),
                         round(load_cpu + diag_cpu, 3), "met" if total <= 1.0 else "not met"])
        _csv._pa, _csv._pa_csv, _json._orjson, _columnar.pl = fast_extra
    record("P6 load + diagnose a 1M-step log, per format",
           ["format", "size", "parser", "load s", "diagnose s", "total s (wall)", "total s (CPU)",
            "goal <= 1 s"], rows,
           notes=f"findings on the diagnosed files: {', '.join(sorted(codes))}. TensorBoard not "
                 "timed (see the benchmark's docstring). 1-minute load average of this box "
                 f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after (2 cores). No "
                 "cells or families are held out: nothing here was tuned; the parsers were "
                 "chosen by timing these files.")


if __name__ == "__main__":
    main()

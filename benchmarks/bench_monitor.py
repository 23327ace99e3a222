"""P4: the Monitor's overhead at the default settings, at three step sizes (goal <= 1.03).

Steps of about 0.5 ms (digits-mlp), 2.4 ms (mnist1d-conv) and 36 ms (charlm) on this CPU. Each
cell is the median of several lockstep runs (``RUNS``; ``LRDOCTOR_BENCH_REPEATS_SCALE`` scales
them) (``_monitor_overhead.lockstep``): one process trains a plain and a monitored copy of one
model on the same batches, in alternation, each timed with this thread's CPU time, so the load
of a shared machine falls on both alike. The runs of the variants below are interleaved too.

The goal's column alternates the copies every epoch (which goes first flips every epoch): the
default Monitor's time budget is a share of the step time it measures (the least of its last 8
wall-time intervals between its calls), and with copies alternating every step an interval
holds the plain copy's steps too (none or two between two monitored steps, so the measured
step time lands anywhere from its own step's to about twice that) - not what a training loop
sees. The step-alternated run of the default Monitor is kept as a column (the method of the
earlier P4 entries), with the step time the Monitor measured in each mode (wall time: on a
loaded machine it also holds the waits for a core). Epoch alternation cancels the machine's
load less well than step alternation: its range is wider, hence more repeats.
Columns: the default ``Monitor`` (``budget=0.01``: gradient norm and heavy statistics on a time
budget, loss and lr every step) and ``Monitor(budget=None)`` (the exact every-step gradient
norm and every-50-step statistics: the Monitor before sampling). One torch thread.

    python benchmarks/bench_monitor.py        # or: make bench BENCH=monitor
    python benchmarks/bench_monitor.py p3     # the doctor on sampled vs unsampled Monitor logs

The ``p3`` part trains P3's fault-injection runs (bench_doctor.py, its held-out report seeds)
twice, with the default Monitor and with ``Monitor(budget=None)``, into scratch folders (not
bench_doctor's cache), and diagnoses both with the same doctor: the held-out figures with
sampled statistics next to those without.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

#: (task, epochs, repeats): each lockstep run a few seconds (charlm: one epoch of 88 steps)
RUNS = (("digits-mlp", 30, 15), ("mnist1d-conv", 4, 11), ("charlm", 1, 3))


def monitor_with(seen: list[Any] | None = None, **kwargs: Any) -> Any:
    def make(model: Any, optimizer: Any, workdir: Path) -> Any:
        from lrdoctor.torch import Monitor

        mon = Monitor(model, optimizer, Path(tempfile.mkdtemp(dir=workdir)) / "m.jsonl", **kwargs)
        if seen is not None:
            seen.append(mon)
        return ((lambda loss, x, y: mon.step(loss=loss, inputs=x, targets=y)),
                (lambda mean: mon.epoch(loss=mean)), mon.close)
    return make


def main() -> None:
    import torch
    from _monitor_overhead import lockstep
    from _results import record

    from lrdoctor import examples

    torch.set_num_threads(1)
    scale = float(os.environ.get("LRDOCTOR_BENCH_REPEATS_SCALE", "1"))
    only = [a for a in sys.argv[1:] if not a.startswith("-")]
    workdir = Path(tempfile.mkdtemp(prefix="lrdoctor-p4-"))
    monitors: dict[str, list[Any]] = {"default": [], "default, step-alternated": []}
    variants = {  # label: (make, alternate)
        "default": (monitor_with(monitors["default"]), "epoch"),
        "budget=None": (monitor_with(budget=None), "epoch"),
        "default, step-alternated": (monitor_with(monitors["default, step-alternated"]), "step"),
    }
    load = os.getloadavg()[0]
    rows = []
    for name, epochs, repeats in RUNS:
        if only and name not in only:
            continue
        repeats = max(1, round(repeats * scale))
        task = examples.get(name, seed=0)
        lockstep(task, 1, variants["default"][0], workdir)  # warm-up, not counted
        for seen in monitors.values():
            seen.clear()
        got: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        for _ in range(repeats):
            for label, (make, alternate) in variants.items():
                got[label].append(lockstep(task, epochs, make, workdir, alternate=alternate))
            load = max(load, os.getloadavg()[0])
        steps = got["default"][0]["steps"]
        row: list[Any] = [name, steps, repeats,
                          round(1e3 * statistics.median(r["plain"] for r in got["default"]) / steps, 3)]
        for label in variants:
            ratios = sorted(r["instrumented"] / r["plain"] for r in got[label])
            row += [round(statistics.median(ratios), 4), f"{ratios[0]:.4f}..{ratios[-1]:.4f}"]
        for seen in monitors.values():  # the step time each default Monitor measured, median
            row.append(round(1e3 * statistics.median(m._cadence.step_s for m in seen), 3))
        rows.append(row)
    record("P4 Monitor overhead at default settings (sampled statistics), lockstep, CPU, 1 thread",
           ["task", "steps", "repeats", "CPU ms/step without",
            "default Monitor ratio (goal <= 1.03)", "range", "budget=None ratio", "range",
            "default, step-alternated ratio", "range", "step ms the Monitor measured",
            "same, step-alternated"],
           rows, notes="Median of the lockstep runs per cell (benchmarks/bench_monitor.py; "
                       "a plain and a monitored copy trained in alternation in one process, each "
                       "timed with thread CPU time; construction, epoch flushes and close "
                       "included). The goal's column and budget=None alternate the copies every "
                       "epoch; 'step-alternated' alternates them every step, where the wall time "
                       "between two Monitor calls - the step time its budget is a share of - "
                       "also holds the plain copy's steps (compare the two measured step times, "
                       "wall time: under load they also hold waits for a core). The "
                       "default Monitor samples the gradient norm and the per-layer statistics on "
                       "a time budget (budget=0.01 of the step time; loss, lr and the non-finite "
                       "checks of what is logged stay every step); budget=None is the exact "
                       "every-step gradient norm. Runs of the variants interleaved. No held-out "
                       "data is involved (overhead only). The machine was loaded by other work "
                       f"while measuring: load average up to {load:.1f} on {os.cpu_count()} "
                       "cores.")


def p3() -> None:
    import bench_doctor as bd
    from _results import record

    from lrdoctor.torch import Monitor

    defaults = Monitor.__init__.__kwdefaults__
    saved, cache = defaults["budget"], bd.CACHE
    rows = []
    try:
        for label, budget in (("default (budget=0.01)", saved), ("budget=None", None)):
            defaults["budget"] = budget  # the training workers are forked from here
            bd.CACHE = Path(tempfile.mkdtemp(prefix="lrdoctor-p3-sampled-"))
            results, train_s = bd.train_runs(bd.REPORT_SEEDS)
            s = bd.evaluate(results, "jsonl")
            rows.append([label, len(results), round(s["macro_f1"], 3),
                         f"{len(s['false_alarms'])} of {s['n_healthy']}",
                         round(s["latency_median"], 3), round(s["latency_le_30"], 3),
                         round(train_s)])
    finally:
        defaults["budget"], bd.CACHE = saved, cache
    record("P3 held-out figures from sampled vs unsampled Monitor logs (live logs; seeds "
           + ", ".join(map(str, bd.REPORT_SEEDS)) + ")",
           ["Monitor", "runs", "macro-F1", "false alarms on healthy", "median latency",
            "detections by 30%", "training s"],
           rows, notes="bench_doctor.py's P3 runs (its tasks, faults and held-out report seeds; "
                       "no threshold was chosen on them here), trained once per Monitor setting "
                       "and diagnosed with the same doctor code (the working tree's, which other "
                       "work was editing at the time). The sampled cadence depends on the measured "
                       "step time, so the default row can vary between machines and loads. The "
                       f"machine was loaded by other work: load average {os.getloadavg()[0]:.1f} "
                       f"on {os.cpu_count()} cores at the end.")


if __name__ == "__main__":
    if "p3" in sys.argv[1:]:
        p3()
    else:
        main()

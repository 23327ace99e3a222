"""Why P1's finder has a budget probe: no fixed margin below the range test's minimum serves
every cell, and a short constant-LR probe from the start is fooled by the short horizon.

For each main P1 cell (``bench_finder.TASKS`` x SGD/Adam, seeds 0-2, the same 4x budgets and
range test, without the probe) the range test gives its min-loss LR ``m``; then the cell is
trained at ``m / d`` for each divisor ``d`` in ``DIVISORS``, recording every step's training
loss. The oracle is P1's (the grid, through bench_finder's score cache).

- **Margin sweep**: the regret of each fixed divisor, per cell (3-seed mean). The finder's
  margin rule is ``d = 4``; the budget probe moves to ``d = sqrt 2`` where it finds the loss
  still limited by progress.
- **Short probe**: for a probe of a fraction ``P`` of the run, the divisor whose mean training
  loss over steps ``[P/2, P)`` of the run is lowest - what a probe that trains each candidate
  LR for ``P`` of the run from the start and keeps the best would choose - and the regret of
  that divisor's full run, mean and worst over the cells' seeds.

    python benchmarks/bench_margin.py       # or: make bench BENCH=margin (~15 min on 2 cores)

Runs are cached in ``out/bench_margin.json`` (keyed like bench_finder's score cache).
"""

from __future__ import annotations

import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_finder as bf
from _results import record

from lrdoctor import examples
from lrdoctor.torch import find_lr

DIVISORS = (math.sqrt(2), 2.0, 2 * math.sqrt(2), 4.0, 8.0)
PROBES = (0.05, 0.1, 0.2, 0.3)
CACHE = bf.OUT / "bench_margin.json"


class _Losses:
    """A monitor for ``examples.train`` that keeps each step's training loss."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def step(self, loss: float, **_: object) -> None:
        self.losses.append(float(loss))

    def epoch(self, **_: object) -> None:
        pass


def _run(name: str, epochs: int, opt: str, lr: float, seed: int) -> tuple[float, list[float]]:
    rec = _Losses()
    return bf._train_score(name, {}, epochs, opt, lr, seed, monitor=rec), rec.losses


def _regret(metric: str, oracle: float, value: float) -> float:
    return oracle - value if metric == "accuracy" else value - oracle


def main() -> None:
    started = time.perf_counter()
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    cells = {}
    for label, (name, _) in bf.TASKS.items():
        base = examples.get(name)
        base = base.replace(epochs=base.epochs * bf.BUDGET_X)
        for opt in bf.OPTS:
            ms = []
            for s in bf.SEEDS:
                t = base.replace(seed=s)
                model = t.build_model()
                res = find_lr(model, examples.make_optimizer(opt, model, 1e-3), t.train_loader,
                              t.loss_fn, **bf.FINDER)
                ms.append(res.min_loss_lr)
            grid = {lr: np.mean([bf.score(base, opt, lr, s) for s in bf.SEEDS])
                    for lr in bf.GRID[opt]}
            oracle = (max if base.metric == "accuracy" else min)(grid.values())
            cells[f"{label}/{opt}"] = (name, base, opt, ms, oracle)
            print(f"{label}/{opt}: min-loss LRs {[f'{m:.3g}' for m in ms]}", flush=True)
    jobs = {}
    for cell, (name, base, opt, ms, _) in cells.items():
        for s, m in zip(bf.SEEDS, ms):
            for d in DIVISORS:
                key = f"{bf.CODE}|{cell}|{base.epochs}|{s}|{m / d:.4g}"
                jobs[key] = (name, base.epochs, opt, m / d, s)
    todo = [k for k in jobs if k not in cache]
    with ProcessPoolExecutor(max_workers=max(1, bf.WORKERS)) as pool:
        futures = {k: pool.submit(_run, *jobs[k]) for k in todo}
        for i, (k, f) in enumerate(futures.items()):
            cache[k] = f.result()
            if i % 10 == 9 or i == len(futures) - 1:
                CACHE.write_text(json.dumps(cache))
                print(f"  {i + 1}/{len(futures)} runs", flush=True)

    def run_of(cell: str, s: int, d: float) -> tuple[float, list[float]]:
        _, base, _, ms, _ = cells[cell]
        return cache[f"{bf.CODE}|{cell}|{base.epochs}|{s}|{ms[bf.SEEDS.index(s)] / d:.4g}"]

    sweep = []
    for cell, (_, base, _, _, oracle) in cells.items():
        sweep.append([cell, *(float(np.mean([_regret(base.metric, oracle, run_of(cell, s, d)[0])
                                             for s in bf.SEEDS])) for d in DIVISORS)])
    heads = [f"m / {d:.3g}" for d in DIVISORS]
    record("Margin sweep: regret at fixed divisors of the range test's min-loss LR",
           ["cell", *heads], sweep,
           "3-seed mean regret (accuracy pp; charlm nats) of training at the range test's "
           f"min-loss LR m divided by d, 4x budgets; range test as in P1 ({bf.FINDER}, zoomed, "
           "no budget probe); oracle = P1's grid. The margin rule is d = 4, the budget probe's "
           f"move d = sqrt 2. {len(todo)} runs new, {len(jobs) - len(todo)} from "
           f"out/bench_margin.json; wall time {time.perf_counter() - started:.0f}s.")
    rows = []
    for p in PROBES:
        acc, lm = [], []
        for cell, (_, base, _, _, oracle) in cells.items():
            for s in bf.SEEDS:
                def probe_loss(d: float, cell: str = cell, s: int = s, p: float = p) -> float:
                    losses = np.asarray(run_of(cell, s, d)[1], float)
                    n = int(p * len(losses))
                    window = losses[n // 2:n]
                    ok = len(window) and np.isfinite(window).all()
                    return float(window.mean()) if ok else math.inf
                chosen = min(DIVISORS, key=probe_loss)
                value = _regret(base.metric, oracle, run_of(cell, s, chosen)[0])
                (acc if base.metric == "accuracy" else lm).append(value)
        rows.append([p, float(np.mean(acc)), float(np.max(acc)),
                     float(np.mean(lm)) if lm else "-", float(np.max(lm)) if lm else "-"])
    record("Short constant-LR probe from the start: regret of the divisor it picks",
           ["probe / run", "mean regret pp", "worst pp (one seed)", "charlm mean nats",
            "charlm worst nats"], rows,
           "For each cell and seed, the divisor (of those in the margin sweep) whose training "
           "loss, averaged over steps [P/2, P) of the run, is lowest - a probe that trains each "
           "candidate for P of the run from the start and keeps the best - and the regret of "
           "that divisor's full run. Worst = one seed's regret (the sweep table's are 3-seed "
           "means). Same runs as the margin sweep.")


if __name__ == "__main__":
    main()

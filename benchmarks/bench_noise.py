"""P1's noise floor: how far a grid score moves when only the floating-point rounding changes.

Benchmark P1 scores an LR by training at it for a fixed budget (``bench_finder.py``). On one
machine with one thread count those runs repeat bit for bit; but a different CPU (other SIMD
kernels) or thread count sums the same numbers in another order, the rounding differs in the
last bits, and over thousands of steps the runs drift apart. This trains two of P1's oracle
cells at their oracle LR (4x budgets, seeds 0-2) with 1 and with 2 intra-op threads, nothing
else changed, and reports the validation accuracy of each: the difference is how much of a
regret number is rounding, not the rule.

    python benchmarks/bench_noise.py        # ~4 min on 2 cores
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import record

from lrdoctor import examples

CELLS = (("digits-mlp", "sgd", 0.1), ("mnist1d-conv", "adam", 0.01))  # P1's oracle LRs
SEEDS = (0, 1, 2)
THREADS = (1, 2)
BUDGET_X = 4


def accuracy(name: str, opt: str, lr: float, seed: int, threads: int) -> float:
    """Validation accuracy (%) after BUDGET_X times the example's epochs at a constant lr."""
    torch.set_num_threads(threads)
    task = examples.get(name, seed=seed)
    task = task.replace(epochs=task.epochs * BUDGET_X)
    return 100.0 * examples.train(task, opt, lr=lr).metrics["val_accuracy"]


def main() -> None:
    rows = []
    default_threads = torch.get_num_threads()
    for name, opt, lr in CELLS:
        acc = {(th, s): accuracy(name, opt, lr, s, th) for th in THREADS for s in SEEDS}
        means = {th: float(np.mean([acc[(th, s)] for s in SEEDS])) for th in THREADS}
        worst = max(abs(acc[(1, s)] - acc[(2, s)]) for s in SEEDS)
        rows.append([f"{name}/{opt} lr {lr:g}",
                     *(" / ".join(f"{acc[(th, s)]:.2f}" for s in SEEDS) for th in THREADS),
                     means[1], means[2], abs(means[1] - means[2]), worst])
        print(rows[-1], flush=True)
    torch.set_num_threads(default_threads)  # the machine line reports the process default
    record("P1 noise floor: the same runs with 1 and 2 threads",
           ["cell", "acc % per seed, 1 thread", "acc % per seed, 2 threads", "mean 1 thread",
            "mean 2 threads", "mean shift pp", "worst seed shift pp"], rows,
           f"{BUDGET_X}x budgets, seeds {list(SEEDS)}; only torch.set_num_threads differs, so "
           "only the order of floating-point sums changes. The mean shift is the part of a P1 "
           "regret (a 3-seed mean) that rounding alone can move; a different CPU moves it "
           "likewise (the two 4x P1 runs of 2026-12-02, on a Xeon and on an EPYC, give "
           "different grid scores for the same code).")


if __name__ == "__main__":
    main()

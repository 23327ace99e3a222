"""Cost of ``ScheduledLR.step()`` against the equivalent torch scheduler, in one run.

Each pair drives the same learning-rate curve on the same one-parameter optimizer; the ratio is
lrdoctor's time per step over torch's (goal <= 1.0). Times are the median of 7 repeats of
20,000 steps each, measured alternately so both see the same machine state.
"""

from __future__ import annotations

import statistics
import time
import warnings

import torch
from _results import record
from torch.optim import lr_scheduler as tls

from lrdoctor.torch import ScheduledLR

N, REPEATS = 20_000, 7


def _opt() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)


PAIRS = {
    "StepLR": (lambda o: tls.StepLR(o, step_size=30, gamma=0.5), "step(0.1, every=30, gamma=0.5)"),
    "CosineAnnealingLR": (lambda o: tls.CosineAnnealingLR(o, T_max=N), f"cosine(0.1, steps={N})"),
    "CosineAnnealingWarmRestarts": (lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=100, T_mult=2),
                                    "sgdr(0.1, period=100, mult=2)"),
    "CyclicLR": (lambda o: tls.CyclicLR(o, 1e-3, 1e-2, step_size_up=500), "cyclic(1e-3, 1e-2, half_period=500)"),
    "OneCycleLR": (lambda o: tls.OneCycleLR(o, max_lr=0.1, total_steps=N + 1), f"one_cycle(0.1, steps={N + 1})"),
    "SequentialLR(Linear, Cosine)": (
        lambda o: tls.SequentialLR(o, [tls.LinearLR(o, 1e-3, 1.0, total_iters=500),
                                       tls.CosineAnnealingLR(o, T_max=N)], milestones=[500]),
        f"warmup(500, start=1e-4) >> cosine(0.1, steps={N})",
    ),
}


def _time(make) -> float:
    sched = make(_opt())
    t = time.perf_counter()
    for _ in range(N):
        sched.step()
    return (time.perf_counter() - t) / N


def main() -> None:
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (torch_make, spec) in PAIRS.items():
            theirs, ours = [], []
            for _ in range(REPEATS):
                theirs.append(_time(torch_make))
                ours.append(_time(lambda o, spec=spec: ScheduledLR(o, spec)))
            t, o = statistics.median(theirs), statistics.median(ours)
            rows.append((name, spec, round(t * 1e6, 2), round(o * 1e6, 2), round(o / t, 3)))
    record(
        "P0 ScheduledLR.step() vs torch schedulers",
        ["torch scheduler", "lrdoctor spec", "torch us/step", "lrdoctor us/step", "ratio (goal <= 1.0)"],
        rows,
        notes=f"Median of {REPEATS} x {N:,} steps, alternating; one-parameter SGD with momentum.",
    )


if __name__ == "__main__":
    main()

"""P4: the Monitor's overhead on training, as a CPU-time ratio with/without (goal <= 1.03).

Method (lockstep). One process trains two copies of the same model - same initial weights,
same batches, same SGD - step by step in alternation: copy A plain, copy B with the default
``Monitor(model, optimizer, path)``. Which copy goes first flips every step. Each copy's steps
are timed with this thread's CPU time, exactly the loop of ``examples.train`` (evaluation off)
plus, for B, ``Monitor.step``, ``Monitor.epoch`` at each epoch end, construction and close. The
ratio is B's total over A's. Both copies see the same machine state within microseconds of each
other, so the load of a shared machine, which swings a whole run's CPU time by tens of percent,
cancels out; the spread over repeats is a few tenths of a percent.

Also measured the same way: the bare global gradient norm (one ``torch._foreach_norm`` over the
gradients after each step, nothing else) - the least any per-step gradient norm costs, and the
floor under the Monitor's number.

The former method (separate whole runs of each kind, interleaved, ratio of the best CPU times)
is kept as a column: on a loaded machine its runs differ by far more than the effect.

    python benchmarks/bench_doctor.py p4     # or: make bench BENCH=doctor-p4
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: from a 0.4 ms step (digits-mlp, 6 parameter tensors) to a ~30 ms one (charlm, a small
#: transformer with 30): the Monitor's per-step cost is nearly fixed, so its share falls with the
#: step's length
TASKS = ("digits-mlp", "mnist1d-conv", "charlm")
#: epochs of the long run per task (steps an epoch: digits-mlp 34, mnist1d-conv 47, charlm 88)
LONG_EPOCHS = {"digits-mlp": 60, "mnist1d-conv": 20, "charlm": 4}
REPEATS = 5
SEPARATE_RUNS = 7

Hooks = tuple[Callable[..., None], Callable[[float], None], Callable[[], None]]


def _optimizer(model: Any) -> Any:
    import torch

    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def with_monitor(model: Any, optimizer: Any, workdir: Path) -> Hooks:
    """The default Monitor: (per-step call, per-epoch call, close)."""
    from lrdoctor.torch import Monitor

    mon = Monitor(model, optimizer, Path(tempfile.mkdtemp(dir=workdir)) / "m.jsonl")
    return ((lambda loss, x, y: mon.step(loss=loss, inputs=x, targets=y)),
            (lambda mean: mon.epoch(loss=mean)), mon.close)


def bare_grad_norm(model: Any, optimizer: Any, workdir: Path) -> Hooks:
    """Only the per-step global gradient norm's fused ``_foreach_norm`` (kept until the epoch
    ends, as a buffered log would keep it)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    kept: list[Any] = []
    return ((lambda loss, x, y: kept.append(torch._foreach_norm([p.grad for p in params]))),
            (lambda mean: kept.clear()), (lambda: None))


def lockstep(task: Any, epochs: int, make: Callable[..., Hooks], workdir: Path, *,
             alternate: str = "step") -> dict[str, Any]:
    """Train a plain and an instrumented copy in alternation; CPU seconds of each.

    ``alternate="step"``: the copies take turns every step (which goes first flips every step).
    ``"epoch"``: they take turns every epoch on the same batches (which goes first flips every
    epoch), so between two of its steps an instrumented copy only sees its own training - what
    a Monitor measures as the step time (the wall time between its calls) is then its own step's,
    where in step alternation an interval also holds the other copy's steps; the interval across
    the turn spans ``on_epoch``, which the Monitor does not count as a step.
    """
    import torch

    if alternate not in ("step", "epoch"):
        raise ValueError(f"alternate must be 'step' or 'epoch', got {alternate!r}")
    clock = time.thread_time
    models = [task.build_model(0), task.build_model(0)]
    opts = [_optimizer(m) for m in models]
    loader, loss_fn = task.train_loader, task.loss_fn
    device = next(models[0].parameters()).device
    spent = [0.0, 0.0]
    t = clock()
    on_step, on_epoch, close = make(models[1], opts[1], workdir)
    spent[1] += clock() - t
    calls = (None, on_step)
    sums = [0.0, 0.0]
    k = 0
    # read once, outside the clocks: the property builds a fresh loader (~65 us), which was
    # charged to the monitored copy at every epoch end until 2026-12-07 23:00 (~0.4 points of
    # digits-mlp's ratio)
    steps_per_epoch = task.steps_per_epoch

    def train_step(i: int, xb: Any, yb: Any) -> None:
        model, opt, call = models[i], opts[i], calls[i]
        t = clock()
        x, y = xb.to(device), yb.to(device)      # the loop of examples.train
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError(f"{task.name}: the benchmark run diverged")
        loss.backward()
        opt.step()
        if call is not None:
            call(value, x, y)
        sums[i] += value
        spent[i] += clock() - t

    def end_epoch() -> None:
        t = clock()
        on_epoch(sums[1] / steps_per_epoch)
        spent[1] += clock() - t

    for e in range(epochs):
        sums[:] = [0.0, 0.0]
        if alternate == "step":
            for xb, yb in loader:
                for i in ((0, 1) if k % 2 == 0 else (1, 0)):
                    train_step(i, xb, yb)
                k += 1
            end_epoch()
            continue
        batches = list(loader)
        for i in ((0, 1) if e % 2 == 0 else (1, 0)):
            for xb, yb in batches:
                train_step(i, xb, yb)
            if i == 1:  # the monitored copy's evaluation point, as in a training loop
                end_epoch()
        k += len(batches)
    t = clock()
    close()
    spent[1] += clock() - t
    if not all(torch.equal(a, b) for a, b in zip(models[0].parameters(), models[1].parameters())):
        raise RuntimeError(f"{task.name}: the two copies trained differently")
    return {"steps": k, "plain": spent[0], "instrumented": spent[1]}


def separate_runs(task: Any, runs: int, workdir: Path) -> float:
    """The former method: whole examples.train runs with and without, interleaved; the ratio of
    the best CPU times."""
    from lrdoctor import examples
    from lrdoctor.torch import Monitor

    best = {False: math.inf, True: math.inf}
    for _ in range(runs):
        for monitored in (False, True):
            model = task.build_model(0)
            opt = _optimizer(model)
            path = Path(tempfile.mkdtemp(dir=workdir)) / "m.jsonl"
            c = time.process_time()
            mon = Monitor(model, opt, path) if monitored else None
            examples.train(task, opt, model=model, monitor=mon, evaluate=False)
            if mon is not None:
                mon.close()
            best[monitored] = min(best[monitored], time.process_time() - c)
    return best[True] / best[False]


def p4() -> None:
    """Measure and record the P4 table (``LRDOCTOR_P4_REPEATS`` overrides the repeats)."""
    import torch
    from _results import record

    from lrdoctor import examples

    repeats = int(os.environ.get("LRDOCTOR_P4_REPEATS", str(REPEATS)))
    torch.set_num_threads(1)
    workdir = Path(tempfile.mkdtemp(prefix="lrdoctor-p4-"))
    load = os.getloadavg()[0]
    rows = []
    for name in TASKS:
        task = examples.get(name, seed=0)
        lockstep(task, 1, with_monitor, workdir)  # warm-up, not counted
        old = separate_runs(task, SEPARATE_RUNS, workdir)
        for label, epochs in (("task length", task.epochs), ("long", LONG_EPOCHS[name])):
            mon = [lockstep(task, epochs, with_monitor, workdir) for _ in range(repeats)]
            bare = [lockstep(task, epochs, bare_grad_norm, workdir) for _ in range(repeats)]
            ratios = sorted(r["instrumented"] / r["plain"] for r in mon)
            floor = statistics.median(r["instrumented"] / r["plain"] for r in bare)
            steps = mon[0]["steps"]
            plain = statistics.median(r["plain"] for r in mon) / steps
            extra = statistics.median((r["instrumented"] - r["plain"]) for r in mon) / steps
            rows.append([name, f"{label}: {steps}", round(1e3 * plain, 3), round(1e6 * extra, 1),
                         round(statistics.median(ratios), 4),
                         f"{ratios[0]:.4f}..{ratios[-1]:.4f}", round(floor, 4),
                         round(old, 4) if label == "task length" else "-"])
        load = max(load, os.getloadavg()[0])
    record("P4 Monitor overhead, lockstep (default Monitor, CPU, 1 thread)",
           ["task", "run: steps", "CPU ms/step without", "Monitor CPU us/step",
            "CPU ratio (goal <= 1.03)", f"range of {repeats}", "bare grad-norm ratio",
            "former method ratio"],
           rows, notes=f"Median of {repeats} lockstep runs per row: one process trains a plain "
                       "and a monitored copy of the same model step by step in alternation, "
                       "each copy timed with thread CPU time; Monitor construction, per-epoch "
                       "flushes and close included (benchmarks/_monitor_overhead.py). "
                       "'bare grad-norm ratio': the same with only the per-step "
                       "torch._foreach_norm of the gradients - the floor of any exact per-step "
                       "global gradient norm. 'former method ratio': best of "
                       f"{SEPARATE_RUNS} separate interleaved runs of examples.train, as in the "
                       "earlier P4 entries. Why the method changed: on this shared 2-core "
                       "machine the CPU time of identical separate runs swings by tens of "
                       "percent with the other workers' load, far more than the effect; in "
                       "lockstep both copies share the load (compare the 'range' column). "
                       "Load average while measuring: up to "
                       f"{load:.1f} on {os.cpu_count()} cores.")

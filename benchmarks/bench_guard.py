"""The Guard, measured: injected bad batches and an LR spike, false triggers, overhead.

Runs (``lrdoctor.examples`` tasks ``digits-mlp`` and ``mnist1d-conv``, SGD momentum 0.9 at the
task's reference lr on ``cosine(lr, end=0, steps=<run>)``, 1 torch thread, seeds 0-2). Each
fault hits the run at 40% of its steps:

- ``inputs-x1000``: 3 consecutive batches with the inputs multiplied by 1000;
- ``labels-scrambled``: 3 consecutive batches whose labels are a random permutation of a
  wrong class (``(y + 1 + randint(C - 1)) % C``);
- ``lr-spike``: the lr multiplied by 100 for 3 optimizer steps;
- ``nan-batch``: one batch of NaN inputs.

Each fault is trained without and with ``Guard(model, optimizer, scheduler)`` at its defaults,
next to the clean run of the same seed. Reported per (task, fault): runs that end with a finite
loss, the largest |final val accuracy - clean| in points, the guard's actions (skips, rewinds)
and whether the journal holds one entry per action. Healthy runs (the clean runs plus the same
tasks with Adam at its reference lr) count the guard's false triggers: any action at all.

Overhead: lockstep, as the Monitor's P4 (two copies of one model, same batches, alternating
steps, CPU time of this thread; the guarded copy pays ``check`` every step, including its
snapshots every 25 steps), on the two tasks and on charlm (a ~30 ms step), and again with the
loss test only (``check_grads=False``) to show what the gradient norm costs. Keras: process CPU
time of a 150-batch ``fit`` with and without ``lrdoctor.keras.Guard`` (it overrides
``on_train_batch_end``, so Keras converts the logs on the main thread instead of a worker).
Goal: guarded / plain <= 1.03.

Tuning: patience 5, lr factor 0.5 for 50 steps and snapshots every 25 batches (3 kept) were
chosen on mnist1d-conv seed 0 with a constant lr while building the guard. A first report on
seeds 0-2 (TUNE_SEEDS) with z 6 and ratio 2 showed 2 false triggers on the 12 healthy runs
(late-training batches 3.4x and 3.8x the level, z 6.4 and 8.1; every injected fault's first bad
batch had z >= 17), after which the defaults became z 10 and ratio 3. The table reports seeds
3-5 (SEEDS), which shaped nothing.

    python benchmarks/bench_guard.py          # or: make bench BENCH=guard (~2 min on 2 cores)
    python benchmarks/bench_guard.py --quick  # one seed, one task
    python benchmarks/bench_guard.py --keras  # the Keras 3 Guard's table (digits-mlp's data)
    python benchmarks/bench_guard.py --overhead  # the overhead table alone (three settings)
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

TASKS = ("digits-mlp", "mnist1d-conv")
TUNE_SEEDS = (0, 1, 2)   # looked at while setting the defaults
SEEDS = (3, 4, 5)        # reported
FAULTS = ("inputs-x1000", "labels-scrambled", "lr-spike", "nan-batch")
AT = 0.4


def train(task_name: str, seed: int, *, fault: str | None, guard: bool, optimizer: str = "sgd",
          journal: Path | None = None) -> dict[str, Any]:
    import torch

    from lrdoctor import examples
    from lrdoctor.journal import Journal
    from lrdoctor.torch import Guard, ScheduledLR

    torch.set_num_threads(1)
    task = examples.get(task_name, seed=seed)
    model = task.build_model(seed)
    lr = task.reference_lrs[optimizer]
    opt = examples.make_optimizer(optimizer, model, lr)
    total = task.steps_per_epoch * task.epochs
    sched = ScheduledLR(opt, f"cosine({lr:g}, end=0, steps={total})")
    jr = Journal(journal) if journal is not None else None
    g = Guard(model, opt, sched, journal=jr) if guard else None
    at = int(AT * total)
    gen = torch.Generator().manual_seed(100 + seed)
    loss_fn, k, last = task.loss_fn, 0, math.nan
    classes = task.data.n_classes
    for _ in range(task.epochs):
        for xb, yb in task.train_loader:
            hit = fault is not None and (at <= k < at + (1 if fault == "nan-batch" else 3))
            if hit and fault == "inputs-x1000":
                xb = xb * 1000.0
            elif hit and fault == "labels-scrambled":
                yb = (yb + 1 + torch.randint(classes - 1, yb.shape, generator=gen)) % classes
            elif hit and fault == "nan-batch":
                xb = torch.full_like(xb, math.nan)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            if g is None or g.check(loss):
                if hit and fault == "lr-spike":
                    for group in opt.param_groups:
                        group["lr"] *= 100.0
                opt.step()
                sched.step()   # sets the scheduled lr again, ending the spike
            last = float(loss.detach())
            k += 1
    metrics = task.evaluate(model)
    actions = [] if g is None else [e.action for e in g.events]
    return {"acc": metrics["val_accuracy"], "loss": last,
            "val_finite": math.isfinite(metrics["val_loss"]),
            "finite": math.isfinite(metrics["val_loss"]) and all(
                bool(torch.isfinite(p).all()) for p in model.parameters()),
            "actions": actions, "journal": 0 if jr is None else len(jr),
            "messages": [] if g is None else [e.message for e in g.events]}


def overhead(task_name: str, steps: int, repeats: int = 3, clip: bool = False,
             **guard_kwargs: Any) -> float:
    """CPU time of guarded / plain steps, two copies in lockstep (see the module doc). With
    ``clip``, both copies clip the gradient norm to 1e3 (never binding) and the guarded one
    hands that norm to ``check(loss, grad_norm=...)``."""
    import torch

    from lrdoctor import examples
    from lrdoctor.torch import Guard

    torch.set_num_threads(1)
    task = examples.get(task_name, seed=0)
    ratios = []
    for _ in range(repeats):
        a, b = task.build_model(0), task.build_model(0)
        oa = examples.make_optimizer("sgd", a, task.reference_lrs["sgd"])
        ob = examples.make_optimizer("sgd", b, task.reference_lrs["sgd"])
        guard = Guard(b, ob, **guard_kwargs)
        ta = tb = 0.0
        k = 0
        while k < steps:
            for xb, yb in task.train_loader:
                order = ((a, oa, None), (b, ob, guard))
                for model, opt, g in (order if k % 2 else order[::-1]):
                    t0 = time.thread_time()
                    opt.zero_grad(set_to_none=True)
                    loss = task.loss_fn(model(xb), yb)
                    loss.backward()
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1e3) \
                        if clip else None
                    if g is None or g.check(loss, grad_norm=norm):
                        opt.step()
                    dt = time.thread_time() - t0
                    if g is None:
                        ta += dt
                    else:
                        tb += dt
                k += 1
                if k >= steps:
                    break
        ratios.append(tb / ta)
    return sorted(ratios)[len(ratios) // 2]


def keras_overhead(batches: int = 150, repeats: int = 3) -> float:
    """Process CPU time (Keras runs callbacks on threads) of ``fit`` with / without
    ``lrdoctor.keras.Guard``: an MLP 64-64-10 on 64 features, batch 32, SGD momentum, the two
    fits alternating, median ratio of ``repeats``."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    import numpy as np
    import torch

    from lrdoctor.keras import Guard

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batches * 32, 64)).astype("float32")
    y = (x[:, :10].argmax(1)).astype("int32")

    def fit(guarded: bool) -> float:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dense(10)])
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x[:64], y[:64], batch_size=32, verbose=0)   # build, warm up
        t0 = time.process_time()
        model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0,
                  callbacks=[Guard()] if guarded else [])
        return time.process_time() - t0

    ratios = []
    for i in range(repeats):
        if i % 2:
            g, p = fit(True), fit(False)
        else:
            p, g = fit(False), fit(True)
        ratios.append(g / p)
    return sorted(ratios)[len(ratios) // 2]


class _KerasFaults:
    """A batch generator for ``model.fit`` (a fresh permutation per epoch, seeded) that
    corrupts batches ``at``.. as ``train`` does, counted over the whole fit."""

    def __init__(self, data: Any, seed: int, fault: str | None, at: int, epochs: int):
        import numpy as np

        self.x, self.y = data.x_train.astype("float32"), data.y_train.astype("int32")
        self.classes, self.fault, self.at, self.epochs = data.n_classes, fault, at, epochs
        self.rng = np.random.default_rng(100 + seed)
        self.batches = len(self.y) // 32

    def __call__(self) -> Any:
        import numpy as np

        k = 0
        for _ in range(self.epochs):
            order = self.rng.permutation(len(self.y))
            for b in range(self.batches):
                i = order[b * 32:(b + 1) * 32]
                xb, yb = self.x[i], self.y[i]
                hit = self.fault is not None and (
                    self.at <= k < self.at + (1 if self.fault == "nan-batch" else 3))
                if hit and self.fault == "inputs-x1000":
                    xb = xb * 1000.0
                elif hit and self.fault == "labels-scrambled":
                    yb = ((yb + 1 + self.rng.integers(self.classes - 1, size=yb.shape))
                          % self.classes).astype("int32")
                elif hit and self.fault == "nan-batch":
                    xb = np.full_like(xb, np.nan)
                k += 1
                yield xb, yb


def train_keras(seed: int, *, fault: str | None, guard: bool, optimizer: str = "sgd",
                journal: Path | None = None) -> dict[str, Any]:
    """digits-mlp's data and lr in Keras 3 (MLP 64-64-10, constant lr: a Keras schedule cannot
    be spiked from a callback), 8 epochs of batch 32; faults as in ``train``."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    import numpy as np
    import torch

    from lrdoctor import examples
    from lrdoctor.journal import Journal
    from lrdoctor.keras import Guard

    torch.set_num_threads(1)
    task = examples.get("digits-mlp", seed=seed)
    keras.utils.set_random_seed(seed)
    lr = task.reference_lrs[optimizer]
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(task.data.n_classes)])
    opt = (keras.optimizers.SGD(lr, momentum=0.9) if optimizer == "sgd"
           else keras.optimizers.Adam(lr))
    model.compile(optimizer=opt, metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    epochs = 8
    gen = _KerasFaults(task.data, seed, fault, 0, epochs)
    gen.at = int(AT * gen.batches * epochs)
    jr = Journal(journal) if journal is not None else None
    callbacks: list[Any] = []
    if fault == "lr-spike":
        callbacks.append(_KerasLRSpike(gen.at))
    g = Guard(journal=jr) if guard else None
    if g is not None:
        callbacks.append(g)
    model.fit(gen(), steps_per_epoch=gen.batches, epochs=epochs, verbose=0, shuffle=False,
              callbacks=callbacks)
    val_loss, acc = model.evaluate(task.data.x_val.astype("float32"),
                                   task.data.y_val.astype("int32"), verbose=0)
    finite = math.isfinite(val_loss) and all(
        np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.weights)
    return {"acc": acc, "finite": finite,
            "actions": [] if g is None else [e.action for e in g.events],
            "journal": 0 if jr is None else len(jr),
            "messages": [] if g is None else [e.message for e in g.events]}


class _KerasLRSpike:
    """The lr times 100 for 3 batches from batch ``at`` (a Keras callback, built lazily)."""

    def __new__(cls, at: int) -> Any:
        import keras

        class Spike(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.k, self.saved = 0, None

            def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
                if at <= self.k < at + 3:
                    opt = self.model.optimizer
                    self.saved = float(keras.ops.convert_to_numpy(opt.learning_rate))
                    opt.learning_rate = self.saved * 100.0

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                if self.saved is not None:
                    self.model.optimizer.learning_rate = self.saved
                    self.saved = None
                self.k += 1

        return Spike()


def overhead_main(quick: bool) -> None:
    """``--overhead``: the lockstep overhead alone, at the defaults, with the loss test only,
    and in a loop that clips (both copies) and hands its norm to the guard."""
    from _results import record

    steps = 100 if quick else 300
    rows = []
    for name in TASKS:
        rows.append([name, round(overhead(name, steps), 4),
                     round(overhead(name, steps, check_grads=False), 4),
                     round(overhead(name, steps, clip=True), 4)])
    record("Guard overhead: guarded / plain CPU time per step (lockstep, median of 3)",
           ["task", "defaults", "loss test only", "clipping loop, norm handed over"], rows,
           notes=("lrdoctor.torch.Guard at its defaults; 'loss test only' is check_grads="
                  "False; in the last column both copies call clip_grad_norm_(params, 1e3) and "
                  "the guarded one passes its result as check(loss, grad_norm=...), so the "
                  "guard computes no norm of its own. 1 torch thread, seed 0, SGD at the "
                  "task's reference lr. Goal 1.03."))


def keras_main(quick: bool) -> None:
    """``--keras``: the fault table for lrdoctor.keras.Guard, and its overhead."""
    from _results import record

    seeds = SEEDS[:1] if quick else SEEDS
    work = Path(tempfile.mkdtemp(prefix="bench-guard-keras-"))
    clean = {s: train_keras(s, fault=None, guard=False) for s in seeds}
    false_triggers = healthy = 0
    for s in seeds:
        for opt in ("sgd", "adam"):
            false_triggers += len(train_keras(s, fault=None, guard=True, optimizer=opt)["actions"])
            healthy += 1
    rows, unnamed = [], 0
    for fault in FAULTS:
        plain = [train_keras(s, fault=fault, guard=False) for s in seeds]
        guarded = [train_keras(s, fault=fault, guard=True, journal=work / f"{fault}-{s}.jsonl")
                   for s in seeds]
        unnamed += sum(r["journal"] != len(r["actions"]) for r in guarded)
        rows.append(_fault_row("digits-mlp (keras)", fault, plain, guarded, clean, seeds))
    ratio = keras_overhead(150 if not quick else 60)
    record("Guard (Keras 3): injected faults with and without lrdoctor.keras.Guard (defaults)",
           ["task", "fault", "finite w/o", "max |Δacc| w/o (pp)", "finite with",
            "max |Δacc| with (pp)", "skips (undone)", "rewinds", "journal entries/actions"],
           rows,
           notes=(f"Keras 3 on the torch backend, digits-mlp's data, MLP 64-64-10, SGD momentum "
                  f"0.9 at lr 0.05 (constant), 8 epochs of batch 32, seeds {list(seeds)}; the "
                  "faults of the torch table at 40% of the run. A Keras skip restores the "
                  "snapshot >= 2 batches back (Keras has already applied the update). False "
                  f"triggers on {healthy} healthy runs (SGD, Adam 3e-3): {false_triggers} "
                  f"actions. Runs whose journal misses an action: {unnamed}. Overhead: fit "
                  f"with / without the Guard, process CPU time, median of 3: {ratio:.3f}. "
                  "1 torch thread. The guard's defaults were set on the torch cells (seeds "
                  "0-2) before this table existed; nothing was tuned on it."))


def _gap(runs: list[dict[str, Any]], clean: dict[int, dict[str, Any]], seeds: Any) -> float:
    """The largest |final val accuracy - clean| in points (inf when a run ended non-finite)."""
    return max(abs(r["acc"] - clean[s]["acc"]) * 100 if r["finite"] else math.inf
               for r, s in zip(runs, seeds))


def _fault_row(task: str, fault: str, plain: list[dict[str, Any]], guarded: list[dict[str, Any]],
               clean: dict[int, dict[str, Any]], seeds: Any) -> list[Any]:
    """One fault-table row (finite runs and accuracy gap without and with the Guard, its skips,
    rewinds and journaled actions), after printing the Guard's last message per run."""
    print(f"{task} {fault}: " + " | ".join(
        (r["messages"] or ["no action"])[-1][:140] for r in guarded), flush=True)
    actions = [a for r in guarded for a in r["actions"]]
    return [task, fault, f"{sum(r['finite'] for r in plain)}/{len(seeds)}",
            round(_gap(plain, clean, seeds), 2),
            f"{sum(r['finite'] for r in guarded)}/{len(seeds)}",
            round(_gap(guarded, clean, seeds), 2),
            actions.count("skip"), actions.count("rewind"),
            f"{sum(r['journal'] for r in guarded)}/{len(actions)}"]


def main(argv: list[str]) -> None:
    from _results import record

    quick = "--quick" in argv
    if "--keras" in argv:
        keras_main(quick)
        return
    if "--overhead" in argv:
        overhead_main(quick)
        return
    tasks, seeds = (TASKS[:1], SEEDS[:1]) if quick else (TASKS, SEEDS)
    work = Path(tempfile.mkdtemp(prefix="bench-guard-"))
    rows, false_triggers, healthy_runs, unnamed = [], 0, 0, 0
    for task_name in tasks:
        clean = {s: train(task_name, s, fault=None, guard=False) for s in seeds}
        for s in seeds:
            for opt in ("sgd", "adam"):
                r = train(task_name, s, fault=None, guard=True, optimizer=opt)
                healthy_runs += 1
                false_triggers += len(r["actions"])
        for fault in FAULTS:
            plain = [train(task_name, s, fault=fault, guard=False) for s in seeds]
            guarded = []
            for s in seeds:
                j = work / f"{task_name}-{fault}-{s}.jsonl"
                guarded.append(train(task_name, s, fault=fault, guard=True, journal=j))
            unnamed += sum(r["journal"] != len(r["actions"]) for r in guarded)


            rows.append(_fault_row(task_name, fault, plain, guarded, clean, seeds))
    over = [[name, round(overhead(name, 300 if not quick else 100), 4)] for name in tasks]
    if not quick:  # a longer step (a small transformer, ~30 ms): the check's share falls
        over.append(["charlm", round(overhead("charlm", 60), 4)])
    # where the cost is: the same lockstep with the loss test only (no gradient norm)
    loss_only = [[name, round(overhead(name, 300 if not quick else 100, check_grads=False), 4)]
                 for name in tasks]
    keras_ratio = keras_overhead(150 if not quick else 60)
    record("Guard: injected faults with and without lrdoctor.torch.Guard (defaults)",
           ["task", "fault", "finite w/o", "max |Δacc| w/o (pp)", "finite with",
            "max |Δacc| with (pp)", "skips", "rewinds", "journal entries/actions"], rows,
           notes=(f"Seeds {list(seeds)}; Δacc against the clean run of the same seed (inf: the "
                  f"run ended non-finite). False triggers on {healthy_runs} healthy runs "
                  f"(SGD and Adam, guard on): {false_triggers} actions. Runs whose journal "
                  f"misses an action: {unnamed}. Overhead (guarded/plain CPU time per step, "
                  f"lockstep, median of 3): "
                  + ", ".join(f"{n} {v:.3f}" for n, v in over)
                  + "; loss test only (check_grads=False): "
                  + ", ".join(f"{n} {v:.3f}" for n, v in loss_only)
                  + f"; Keras fit with / without lrdoctor.keras.Guard (process CPU time, MLP "
                  f"64-64-10, batch 32, torch backend): {keras_ratio:.3f}"
                  + ". 1 torch thread. Seeds 0-2 were looked at to set the "
                  "defaults (z 10, ratio 3 after 2 false triggers at z 6, ratio 2); seeds 3-5, "
                  "reported here, shaped nothing."))


if __name__ == "__main__":
    main(sys.argv[1:])

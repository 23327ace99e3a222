"""Overhead of each integration: the same training with and without lrdoctor, in one run.

Workload: an MLP 256-1024-1024-10 on 4,096 synthetic rows, batch 128, 3 epochs (96 optimizer
steps of ~15 ms), SGD with momentum, one torch thread.

Two measures, because the benchmark machine is shared and run-to-run noise (other processes
evicting caches, frequency changes) is larger than the effect:

* **in-run** (the headline): in each run with lrdoctor, the CPU time spent inside lrdoctor's
  entry points (the callbacks' hooks, ``RankMonitor``'s methods, the loss-capturing forward hook)
  over the run's CPU time: ratio = total / (total - lrdoctor). Both come from the same run, so
  the noise cancels; what it cannot see is indirect cost (cache pressure), and the Monitor's
  every-50-steps activation hooks inside the forward pass;
* **A/B**: the training without and with lrdoctor, alternately, ``REPEATS`` times after a
  warm-up pair: best over best and the median of the per-pair ratios (their range shows the
  noise).

Times are CPU time of the training thread (``time.thread_time``; one torch thread, no loader
workers). The one-time end-of-training cost (diagnosis + HTML report) is reported separately.

* plain torch: ``RankMonitor.step`` after each step (what ``examples/ddp_train.py`` does, here on
  one process) vs the bare loop; and the bare :class:`lrdoctor.torch.Monitor` as the reference
  every integration builds on (its own benchmark is P4 in bench_doctor.py);
* Lightning: ``LRDoctorCallback(diagnose=False)`` vs none, ``ScheduledLR`` in both;
* HF Trainer: ``LRDoctorCallback(diagnose=False)`` vs none, ``ScheduledLR`` in both;
* Keras 3 (torch backend): ``MonitorCallback`` vs none, ``lrdoctor.keras.schedule`` in both.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import torch
from _results import record

REPEATS = 5
N, D, WIDTH, CLASSES, BATCH, EPOCHS = 4096, 256, 1024, 10, 128, 3
STEPS = EPOCHS * N // BATCH
SPEC = f"warmup(8) >> cosine(0.05, end=1e-3, steps={STEPS - 8})"
clock = time.thread_time
_runs = iter(range(1 << 30))


class Meter:
    """CPU time spent inside wrapped entry points (not re-entrant: wrap outermost calls only)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def patch(self, obj: object, names: tuple[str, ...]) -> object:
        for name in names:
            fn = getattr(obj, name)

            def timed(*args, _fn=fn, **kwargs):
                t = clock()
                try:
                    return _fn(*args, **kwargs)
                finally:
                    self.seconds += clock() - t

            setattr(obj, name, timed)
        return obj


METER = Meter()
PL_HOOKS = ("on_train_start", "on_before_optimizer_step", "on_train_batch_end",
            "on_train_epoch_end", "on_validation_end", "on_fit_end")
HF_HOOKS = ("on_train_begin", "on_optimizer_step", "on_evaluate", "on_epoch_end", "on_train_end",
            "_capture_loss")
KERAS_HOOKS = ("on_train_begin", "on_train_batch_begin", "on_train_batch_end", "on_epoch_end",
               "on_train_end")

rng = np.random.default_rng(0)
X = rng.normal(size=(N, D)).astype("float32")
Y = (X[:, :CLASSES] + 0.5 * rng.normal(size=(N, CLASSES))).argmax(1).astype("int64")


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(D, WIDTH), torch.nn.ReLU(),
                               torch.nn.Linear(WIDTH, WIDTH), torch.nn.ReLU(),
                               torch.nn.Linear(WIDTH, CLASSES))


def _loader() -> torch.utils.data.DataLoader:
    ds = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
    return torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=False)


# -- plain torch -------------------------------------------------------------------------------
def plain(with_lrdoctor: bool, tmp: Path, *, bare_monitor: bool = False) -> float:
    from lrdoctor.integrations.ranks import RankMonitor
    from lrdoctor.torch import Monitor, ScheduledLR

    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = ScheduledLR(opt, SPEC)
    loader = _loader()
    t0 = clock()
    kind = Monitor if bare_monitor else RankMonitor
    mon = None
    if with_lrdoctor:
        t = clock()
        mon = kind(model, opt, tmp / f"plain{next(_runs)}.jsonl")
        METER.seconds += clock() - t
        METER.patch(mon, ("step", "epoch", "close"))
    for _ in range(EPOCHS):
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if mon is not None:
                mon.step(loss=loss, inputs=x, targets=y)
            sched.step()
        if mon is not None:
            mon.epoch(val_loss=float(loss))
    if mon is not None:
        mon.close()
    return clock() - t0


# -- Lightning -----------------------------------------------------------------------------------
def lightning(with_lrdoctor: bool, tmp: Path) -> float:
    from lrdoctor.integrations.lightning import LRDoctorCallback, _pl, scheduled

    class Module(_pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _mlp()

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
            return {"optimizer": opt, "lr_scheduler": scheduled(opt, SPEC)}

    callbacks = [METER.patch(LRDoctorCallback(tmp / f"pl{next(_runs)}", diagnose=False), PL_HOOKS)
                 ] if with_lrdoctor else []
    trainer = _pl.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False,
                          enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, callbacks=callbacks, default_root_dir=tmp)
    module = Module()
    t0 = clock()
    trainer.fit(module, _loader())
    return clock() - t0


# -- HF Trainer ----------------------------------------------------------------------------------
class _Rows(torch.utils.data.Dataset):
    def __len__(self):
        return N

    def __getitem__(self, i):
        return {"x": torch.from_numpy(X[i]), "labels": torch.tensor(Y[i])}


class _HFModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _mlp()

    def forward(self, x, labels=None):
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
        return out


def hf(with_lrdoctor: bool, tmp: Path) -> float:
    import transformers

    from lrdoctor.integrations.hf import LRDoctorCallback
    from lrdoctor.torch import ScheduledLR

    model = _HFModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    args = transformers.TrainingArguments(
        output_dir=str(tmp / f"hf{next(_runs)}"), per_device_train_batch_size=BATCH, num_train_epochs=EPOCHS,
        logging_steps=50, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
        dataloader_drop_last=False, remove_unused_columns=False, seed=0)
    callbacks = [METER.patch(LRDoctorCallback(diagnose=False), HF_HOOKS)] if with_lrdoctor else []
    trainer = transformers.Trainer(model=model, args=args, train_dataset=_Rows(),
                                   optimizers=(opt, ScheduledLR(opt, SPEC)), callbacks=callbacks)
    t0 = clock()
    trainer.train()
    return clock() - t0


# -- Keras ---------------------------------------------------------------------------------------
def keras_fit(with_lrdoctor: bool, tmp: Path) -> float:
    import keras

    from lrdoctor.keras import MonitorCallback, schedule

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(WIDTH, activation="relu"),
                              keras.layers.Dense(WIDTH, activation="relu"),
                              keras.layers.Dense(CLASSES)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule(SPEC), momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callbacks = [METER.patch(MonitorCallback(tmp / f"keras{next(_runs)}.jsonl"), KERAS_HOOKS)
                 ] if with_lrdoctor else []
    t0 = clock()
    model.fit(X, Y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=callbacks)
    return clock() - t0


def plain_monitor(with_lrdoctor: bool, tmp: Path) -> float:
    return plain(with_lrdoctor, tmp, bare_monitor=True)


def end_of_training_cost(tmp: Path) -> float:
    """Seconds for the diagnosis and the HTML report of one run's log (paid once per run)."""
    import shutil

    from lrdoctor.integrations import RunFiles

    files = RunFiles(tmp / "end")
    files.root.mkdir(exist_ok=True)
    shutil.copy(max(tmp.glob("plain*.jsonl")), files.log)
    t0 = clock()
    files.finish(html=True)
    return clock() - t0


def main() -> None:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    import logging

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, fn in [("plain torch + Monitor (reference)", plain_monitor),
                         ("plain torch + RankMonitor", plain), ("Lightning callback", lightning),
                         ("HF Trainer callback", hf), ("Keras MonitorCallback", keras_fit)]:
            fn(False, tmp), fn(True, tmp)  # warm-up pair: imports, allocator, first compiles
            ratios, bare, withs, inrun = [], [], [], []
            for i in range(REPEATS):
                for with_lrdoctor in ((False, True) if i % 2 == 0 else (True, False)):
                    METER.seconds = 0.0
                    total = fn(with_lrdoctor, tmp)
                    if with_lrdoctor:
                        withs.append(total)
                        inrun.append((total / (total - METER.seconds), METER.seconds))
                    else:
                        bare.append(total)
                ratios.append(withs[-1] / bare[-1])
            ratio_in, spent = sorted(inrun)[len(inrun) // 2]
            rows.append([name, round(ratio_in, 4), round(spent / STEPS * 1e3, 3),
                         "yes" if ratio_in <= 1.05 else "no",
                         round(min(withs) / min(bare), 3), round(statistics.median(ratios), 3),
                         f"{min(ratios):.3f}-{max(ratios):.3f}"])
        end = end_of_training_cost(tmp)
    record("Integration overhead (P: integrations, goal ratio <= 1.05)",
           ["integration", "in-run ratio", "lrdoctor ms/step", "<= 1.05", "A/B ratio (best)",
            "A/B ratio (median)", "A/B pair ratios"],
           rows,
           notes=(f"{EPOCHS} epochs x {N // BATCH} steps ({STEPS} optimizer steps of "
                  f"~{statistics.median(bare) / STEPS * 1e3:.0f} ms), MLP "
                  f"{D}-{WIDTH}-{WIDTH}-{CLASSES}, batch {BATCH}, 1 torch thread, thread CPU time. "
                  f"In-run ratio: median over {REPEATS} runs of total / (total - time inside "
                  f"lrdoctor's entry points); A/B: {REPEATS} alternating pairs after a warm-up "
                  f"pair, on a shared 2-core machine (noisy). One-time cost at the end of "
                  f"training (diagnosis + HTML report of a {STEPS}-step log): {end:.2f} s."))

if __name__ == "__main__":
    main()

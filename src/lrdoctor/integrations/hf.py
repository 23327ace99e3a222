"""Hugging Face ``Trainer``: a callback for the Monitor log, the journal, the diagnosis and the
report, and spec schedules through ``Trainer(optimizers=...)``.

::

    from lrdoctor.integrations.hf import LRDoctorCallback, optimizers

    trainer = Trainer(model=model, args=args, train_dataset=ds,
                      optimizers=optimizers(model, "warmup(50) >> cosine(5e-4, steps=450)", lr=5e-4),
                      callbacks=[LRDoctorCallback()])
    trainer.train()   # <output_dir>/lrdoctor/log.jsonl, journal.jsonl, diagnosis.json, report.html

``lrdoctor diagnose <output_dir>`` and ``lrdoctor explain <output_dir>`` read the run afterwards
(our log, else the Trainer's own ``trainer_state.json``).

The loss of each optimizer step is read from the model's output (``outputs.loss``, averaged over
gradient-accumulation micro-batches) by a forward hook, so it is the per-step loss, not the
running average the Trainer logs every ``logging_steps``. Resuming with
``trainer.train(resume_from_checkpoint=...)`` continues the log and the journal from the
checkpoint's step (a ``ScheduledLR`` resumes its exact trajectory from its state dict).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lrdoctor._lazy import require
from lrdoctor.integrations._run import RunFiles, attach_journal, journal_marks
from lrdoctor.journal import Journal

__all__ = ["LRDoctorCallback", "optimizers"]

_transformers = require("transformers", "hf")


def optimizers(model: Any, schedule: Any, *, lr: float | None = None, optimizer: Any = None,
               weight_decay: float = 0.0, **scheduled_kwargs: Any) -> tuple[Any, Any]:
    """``(optimizer, ScheduledLR)`` for ``Trainer(optimizers=...)``: AdamW at ``lr`` (default: the
    schedule's first value) unless an ``optimizer`` is given. The Trainer steps the scheduler once
    per optimizer step, which is exactly ScheduledLR's step semantics."""
    import torch

    from lrdoctor.schedules import parse
    from lrdoctor.torch import ScheduledLR

    if optimizer is None:
        s = parse(schedule) if isinstance(schedule, str) else schedule
        start = lr if lr is not None else s(0) or 1e-3
        optimizer = torch.optim.AdamW(model.parameters(), lr=start, weight_decay=weight_decay)
    return optimizer, ScheduledLR(optimizer, schedule, **scheduled_kwargs)


class LRDoctorCallback(_transformers.TrainerCallback):
    """Write the Monitor log and the journal during ``train()``; the diagnosis and the HTML
    report when it ends.

    ``out_dir`` defaults to ``<args.output_dir>/lrdoctor``. A :class:`~lrdoctor.torch.PlateauLR`
    passed as the scheduler gets the run's journal (the Trainer already calls
    ``step(metrics[metric_for_best_model])`` after each evaluation for a ``ReduceLROnPlateau``).
    ``write='all'`` gives every rank its own log; ``monitor_kwargs`` go to
    :class:`lrdoctor.torch.Monitor`.
    """

    def __init__(self, out_dir: str | os.PathLike[str] | None = None, *, diagnose: bool = True,
                 html: bool = True, write: str = "rank0",
                 monitor_kwargs: dict[str, Any] | None = None) -> None:
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.diagnose = diagnose
        self.html = html
        self.write = write
        self.monitor_kwargs = dict(monitor_kwargs or {})
        self.files: RunFiles | None = None
        self.journal: Journal | None = None
        self.monitor: Any = None
        self.diagnosis: Any = None
        self._losses: list[float] = []
        self._hook: Any = None
        self._marked_step = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       optimizer: Any = None, lr_scheduler: Any = None, **kwargs: Any) -> None:
        root = self.out_dir or Path(args.output_dir) / "lrdoctor"
        self.files = RunFiles(root)
        start = int(state.global_step)  # the checkpoint's step when resuming
        self.journal, evaluations = self.files.start(start, writer=state.is_world_process_zero)
        if type(lr_scheduler).__name__ == "PlateauLR" and lr_scheduler.journal is None:
            attach_journal(lr_scheduler, self.journal)
        from lrdoctor.integrations.ranks import RankMonitor

        self.monitor = RankMonitor(model, optimizer, self.files.log, write=self.write,
                                   start_step=start, start_epoch=evaluations,
                                   **self.monitor_kwargs)
        if type(lr_scheduler).__name__ in ("PlateauLR", "ReduceLROnPlateau"):
            # settings and decisions into the run's log: the doctor checks mode vs metric
            self.monitor.watch(lr_scheduler, metric=getattr(lr_scheduler, "monitor", None)
                               or getattr(args, "metric_for_best_model", None))
        self._hook = model.register_forward_hook(self._capture_loss)
        self._marked_step = start

    def _capture_loss(self, module: Any, args: Any, output: Any) -> None:
        if not module.training:
            return
        loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
        if loss is None and isinstance(output, (tuple, list)) and output and \
                getattr(output[0], "ndim", None) == 0:
            loss = output[0]
        if loss is not None:
            self._losses.append(float(loss.detach().float().item()))

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # After optimizer.step(), before the scheduler moves the lr: the lr this step used,
        # and the gradients are still there.
        if self.monitor is None:
            return
        losses, self._losses = self._losses, []
        loss = sum(losses) / len(losses) if losses else None
        self.monitor.step(loss=loss)

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None,
                    **kwargs: Any) -> None:
        if self.monitor is not None and metrics:
            numbers = {k: float(v) for k, v in metrics.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)}
            self.monitor.epoch(**numbers)

    def on_epoch_end(self, args: Any, state: Any, control: Any, lr_scheduler: Any = None,
                     **kwargs: Any) -> None:
        self._journal_marks(state, lr_scheduler)

    def _journal_marks(self, state: Any, lr_scheduler: Any) -> None:
        now = int(state.global_step)
        if self.journal is not None and lr_scheduler is not None:
            epoch = None if state.epoch is None else round(state.epoch)
            journal_marks(self.journal, lr_scheduler, self._marked_step, now, epoch=epoch)
        self._marked_step = now

    def on_train_end(self, args: Any, state: Any, control: Any, lr_scheduler: Any = None,
                     **kwargs: Any) -> None:
        self._journal_marks(state, lr_scheduler)
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        if self.files is not None and state.is_world_process_zero and self.diagnose:
            self.diagnosis = self.files.finish(html=self.html)

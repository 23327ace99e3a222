"""Lightning: one callback for the Monitor log, the journal, the diagnosis and the report, and
the LR range test on a ``LightningModule``.

Works with ``lightning.pytorch`` and ``pytorch_lightning`` (whichever imports; the first wins)::

    from lrdoctor.integrations.lightning import LRDoctorCallback
    trainer = Trainer(max_epochs=10, callbacks=[LRDoctorCallback("runs/a")])
    trainer.fit(module)   # runs/a/log.jsonl, journal.jsonl, diagnosis.json, report.html

Schedulers, from ``configure_optimizers``::

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=1e-3)
        return {"optimizer": opt, "lr_scheduler": scheduled(opt, "warmup(100) >> cosine(1e-3, steps=900)")}
        # or: {"optimizer": opt, "lr_scheduler": plateau(opt, monitor="val_loss", patience=2)}

The callback gives every :class:`~lrdoctor.torch.PlateauLR` that has no journal the run's
journal, and journals the warm-up end and the restarts of every
:class:`~lrdoctor.torch.ScheduledLR`. Resuming with ``trainer.fit(module, ckpt_path=...)``
continues the log and the journal from the checkpoint's step: whatever a crashed run wrote after
its last checkpoint is dropped, so the files read as one uninterrupted run.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lrdoctor._lazy import require
from lrdoctor.integrations._run import RunFiles, attach_journal, journal_marks
from lrdoctor.journal import Journal

__all__ = ["LRDoctorCallback", "attach_journal", "find_lr", "plateau", "scheduled",
           "step_fn_from_module"]


def _lightning() -> Any:
    """``lightning.pytorch`` if installed, else ``pytorch_lightning``."""
    try:
        return importlib.import_module("lightning.pytorch")
    except ImportError:
        return require("pytorch_lightning", "lightning")


_pl = _lightning()


def scheduled(optimizer: Any, schedule: Any, **kwargs: Any) -> dict[str, Any]:
    """The ``lr_scheduler`` entry for a :class:`~lrdoctor.torch.ScheduledLR`, stepped after every
    optimizer step (``interval='step'``), as its step semantics require."""
    from lrdoctor.torch import ScheduledLR

    return {"scheduler": ScheduledLR(optimizer, schedule, **kwargs), "interval": "step",
            "frequency": 1, "name": "lrdoctor"}


def plateau(optimizer: Any, *, monitor: str, **kwargs: Any) -> dict[str, Any]:
    """The ``lr_scheduler`` entry for a :class:`~lrdoctor.torch.PlateauLR` that watches the logged
    metric ``monitor`` once per epoch (after validation). ``kwargs`` go to ``PlateauLR``
    (``mode``, ``factor``, ``patience``, ``schedule=``...). Lightning passes the metric's value
    to ``step``; with a ``schedule=``, PlateauLR advances the schedule itself on every optimizer
    step."""
    from lrdoctor.torch import PlateauLR

    return {"scheduler": PlateauLR(optimizer, monitor=monitor, **kwargs), "interval": "epoch",
            "frequency": 1, "monitor": monitor, "strict": True, "name": "lrdoctor"}


class LRDoctorCallback(_pl.Callback):
    """Write the Monitor log and the journal during ``fit``; the diagnosis and the report after.

    ``out_dir`` defaults to ``<trainer.default_root_dir>/lrdoctor``. ``html=False`` skips the
    report, ``diagnose=False`` the diagnosis. ``write='all'`` gives every rank its own log (to
    compare them); by default only global rank 0 writes. ``trace_ranks=True`` writes each rank's
    local loss and LR to ``<out_dir>/ranks/`` for the ``ranks-diverge`` check.
    ``monitor_kwargs`` go to :class:`lrdoctor.torch.Monitor`.
    """

    def __init__(self, out_dir: str | os.PathLike[str] | None = None, *, diagnose: bool = True,
                 html: bool = True, write: str = "rank0", trace_ranks: bool = False,
                 monitor_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.diagnose = diagnose
        self.html = html
        self.write = write
        self.trace_ranks = trace_ranks
        self.monitor_kwargs = dict(monitor_kwargs or {})
        self.files: RunFiles | None = None
        self.journal: Journal | None = None
        self.monitor: Any = None
        self.diagnosis: Any = None
        self._seen_step = 0
        self._marked_step = 0
        self._trainer: Any = None
        self._evaluations = 0                        # validation runs completed (not sanity)
        self._pending: dict[int, float] = {}         # restored plateau metrics to replay
        self._lrs: list[float] | None = None         # the lrs of the current optimizer step

    @property
    def state_key(self) -> str:
        return "LRDoctorCallback"

    # -- start -------------------------------------------------------------------------------
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        # Runs after Lightning restored the checkpoint: global_step is where this run starts.
        root = self.out_dir or Path(trainer.default_root_dir) / "lrdoctor"
        self.files = RunFiles(root)
        start = int(trainer.global_step)
        self.journal, evaluations = self.files.start(start, writer=trainer.is_global_zero)
        for sched in self._schedulers(trainer):
            if _is_plateau(sched) and sched.journal is None:
                attach_journal(sched, self.journal)
        self._trainer = trainer
        self._replay_plateau_steps(trainer)
        from lrdoctor.integrations.ranks import RankMonitor

        trace = self.files.root / "ranks" if self.trace_ranks else None
        self.monitor = RankMonitor(pl_module, trainer.optimizers[0], self.files.log,
                                   write=self.write, trace_dir=trace, start_step=start,
                                   start_epoch=evaluations, **self.monitor_kwargs)
        for cfg in getattr(trainer, "lr_scheduler_configs", []):
            # settings and decisions into the run's log: the doctor checks mode vs metric
            if _is_plateau(cfg.scheduler) or type(cfg.scheduler).__name__ == "ReduceLROnPlateau":
                self.monitor.watch(cfg.scheduler, metric=getattr(cfg.scheduler, "monitor", None)
                                   or getattr(cfg, "monitor", None))
        self._seen_step = self._marked_step = start
        self._lrs = None

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        # The learning rates this step uses; the scheduler moves them before on_train_batch_end.
        if optimizer is trainer.optimizers[0]:
            self._lrs = [float(g["lr"]) for g in optimizer.param_groups]

    # -- during ------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = int(trainer.global_step)
        if step == self._seen_step or self.monitor is None:
            return  # accumulating gradients: no optimizer step yet
        self._seen_step = step
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self.monitor.step(loss=loss, lrs=self._lrs)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is None:
            return
        metrics = {k: _scalar(v) for k, v in trainer.callback_metrics.items()}
        self.monitor.epoch(**{k: v for k, v in metrics.items() if v is not None})
        self._journal_marks(trainer)

    def _journal_marks(self, trainer: Any) -> None:
        """Journal the warm-up ends and restarts ScheduledLR crossed since the last epoch end
        (PlateauLR journals its own)."""
        now = int(trainer.global_step)
        if self.journal is not None:
            for sched in self._schedulers(trainer):
                journal_marks(self.journal, sched, self._marked_step, now,
                              epoch=trainer.current_epoch + 1)
        self._marked_step = now

    # -- end ---------------------------------------------------------------------------------
    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        if self.files is not None and trainer.is_global_zero and self.diagnose:
            self.diagnosis = self.files.finish(html=self.html)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self._evaluations += 1

    # -- checkpoint ------------------------------------------------------------------------
    # Lightning saves end-of-epoch checkpoints before it steps epoch-interval schedulers, and on
    # resume it skips plateau schedulers for that epoch ("metrics are not saved in the
    # checkpoint"): the reduction decided right after the checkpoint is lost. The callback
    # saves the monitored value of every plateau scheduler that has not seen the latest
    # evaluation yet, and replays the decision on resume (with the journal detached: the entry
    # is already in the journal file).
    def state_dict(self) -> dict[str, Any]:
        """The run directory, the evaluation count and the plateau metrics still to apply."""
        return {"out_dir": None if self.files is None else str(self.files.root),
                "evaluations": self._evaluations, "pending_plateau": self._pending_metrics()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.out_dir is None and state_dict.get("out_dir"):
            self.out_dir = Path(state_dict["out_dir"])
        self._evaluations = int(state_dict.get("evaluations", 0))
        self._pending = {int(k): float(v) for k, v in state_dict.get("pending_plateau", {}).items()}

    def _pending_metrics(self) -> dict[int, float]:
        trainer = self._trainer
        if trainer is None:
            return {}
        out = {}
        for i, cfg in enumerate(getattr(trainer, "lr_scheduler_configs", [])):
            if not (cfg.reduce_on_plateau and cfg.interval == "epoch" and cfg.monitor):
                continue
            if int(cfg.scheduler.last_epoch) >= self._evaluations:
                continue  # it has seen every evaluation
            value = _scalar(trainer.callback_metrics.get(cfg.monitor))
            if value is not None:
                out[i] = value
        return out

    def _replay_plateau_steps(self, trainer: Any) -> None:
        pending, self._pending = self._pending, {}
        configs = getattr(trainer, "lr_scheduler_configs", [])
        for i, value in pending.items():
            if i >= len(configs):
                continue
            sched = configs[i].scheduler
            journal = getattr(sched, "journal", None)
            if journal is not None:
                sched.journal = None
            try:
                sched.step(value)
            finally:
                if journal is not None:
                    sched.journal = journal

    @staticmethod
    def _schedulers(trainer: Any) -> Iterable[Any]:
        return [cfg.scheduler for cfg in getattr(trainer, "lr_scheduler_configs", [])]


def _is_plateau(sched: Any) -> bool:
    return type(sched).__name__ == "PlateauLR" and hasattr(sched, "journal")


def _scalar(v: Any) -> float | None:
    try:
        if hasattr(v, "numel"):
            return float(v.detach().float().item()) if v.numel() == 1 else None
        return float(v)
    except (TypeError, ValueError):
        return None


# -- the LR range test on a LightningModule ----------------------------------------------------
def step_fn_from_module(module: Any) -> Any:
    """A ``step_fn(model, batch) -> loss`` for :func:`lrdoctor.torch.find_lr` that calls the
    module's own ``training_step`` (its ``self.log`` calls are silenced outside a Trainer)."""
    counter = iter(range(1 << 62))

    def step_fn(model: Any, batch: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*self.log.*")
            warnings.filterwarnings("ignore", message=".*trainer.*")
            out = module.training_step(batch, next(counter))
        loss = out.get("loss") if isinstance(out, dict) else out
        if loss is None:
            raise ValueError("training_step returned no loss (None, or a dict without 'loss'); "
                             "find_lr needs the loss tensor")
        return loss

    return step_fn


def _optimizer_of(module: Any) -> Any:
    conf = module.configure_optimizers()
    if isinstance(conf, dict):
        return conf["optimizer"]
    if isinstance(conf, (list, tuple)):
        first = conf[0]
        if isinstance(first, (list, tuple)):
            first = first[0]
        return first["optimizer"] if isinstance(first, dict) else first
    return conf


def find_lr(module: Any, train_loader: Any = None, *, optimizer: Any = None,
            datamodule: Any = None, **kwargs: Any) -> Any:
    """Run :func:`lrdoctor.torch.find_lr` on a ``LightningModule``: its ``training_step`` gives
    the loss, its ``configure_optimizers`` the optimizer (unless ``optimizer=`` is given), and
    ``train_loader`` (else ``datamodule.train_dataloader()``, else the module's own) the batches.
    Model and optimizer are restored afterwards, bit for bit; pick ``result.suggestion``, then
    build the real optimizer with it. Keyword arguments go to ``find_lr`` (``num_steps``,
    ``start_lr``, ``end_lr``, ``repeats``, ...)."""
    from lrdoctor.torch import find_lr as _find_lr

    if train_loader is None:
        source = datamodule if datamodule is not None else module
        train_loader = source.train_dataloader()
    if optimizer is None:
        optimizer = _optimizer_of(module)
    ctx = contextlib.nullcontext()
    if getattr(module, "_trainer", None) is None:  # keep self.log quiet outside a Trainer
        ctx = warnings.catch_warnings()
    with ctx:
        warnings.simplefilter("ignore", category=UserWarning)
        return _find_lr(module, optimizer, train_loader, step_fn=step_fn_from_module(module),
                        **kwargs)

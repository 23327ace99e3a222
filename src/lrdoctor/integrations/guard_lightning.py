"""Lightning: :class:`~lrdoctor.torch.Guard` as a callback.

    from lrdoctor.integrations.guard_lightning import GuardCallback
    trainer = Trainer(callbacks=[GuardCallback(journal="runs/a/guard.jsonl")])

The loss is taken in ``on_before_backward``, the check runs in ``on_before_optimizer_step``;
a batch the guard rejects has its gradients set to None, so ``optimizer.step()`` leaves every
parameter (and its optimizer state) as it was. The guard snapshots the module, the first
optimizer and its first scheduler. ``callback.guard`` is the :class:`Guard` once training starts.
"""

from __future__ import annotations

from typing import Any

from lrdoctor.integrations.lightning import _pl

__all__ = ["GuardCallback"]


class GuardCallback(_pl.Callback):
    """Skip bad batches and rewind damaged training; keyword arguments go to ``Guard``."""

    def __init__(self, **guard_kwargs: Any):
        super().__init__()
        self.guard_kwargs = guard_kwargs
        self.guard: Any = None
        self._loss: Any = None

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        from lrdoctor.torch import Guard

        opt = trainer.optimizers[0]
        configs = getattr(trainer, "lr_scheduler_configs", None) or []
        sched = configs[0].scheduler if configs else None
        self.guard = Guard(pl_module, opt, sched, **self.guard_kwargs)

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: Any) -> None:
        self._loss = loss.detach()

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self.guard is None or self._loss is None:
            return
        if not self.guard.check(self._loss):
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None
        self._loss = None

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.guard is not None:
            self.guard.close()

"""Hugging Face ``Trainer``: :class:`~lrdoctor.torch.Guard` as a ``TrainerCallback``.

    from lrdoctor.integrations.guard_hf import GuardCallback
    trainer = Trainer(model, args, train_dataset=ds, callbacks=[GuardCallback()])

The Trainer hands callbacks no loss before the optimizer step, so the callback reads it from the
model's outputs (``outputs.loss``, or ``outputs["loss"]``) with a forward hook in training mode,
averaged over the micro-batches of a gradient-accumulation step; the check runs in
``on_pre_optimizer_step`` (after the Trainer's gradient clipping). A rejected step has its
gradients set to None, so ``optimizer.step()`` changes nothing. ``callback.guard`` is the
:class:`Guard` once training begins.
"""

from __future__ import annotations

from typing import Any

from lrdoctor._lazy import require

_transformers = require("transformers", "hf")

__all__ = ["GuardCallback"]


def _loss_of(output: Any) -> Any:
    loss = getattr(output, "loss", None)
    if loss is None and isinstance(output, dict):
        loss = output.get("loss")
    return loss


class GuardCallback(_transformers.TrainerCallback):
    """Skip bad steps and rewind damaged training; keyword arguments go to ``Guard``."""

    def __init__(self, **guard_kwargs: Any):
        self.guard_kwargs = guard_kwargs
        self.guard: Any = None
        self._losses: list[Any] = []
        self._hook: Any = None

    def _capture(self, module: Any, args: Any, output: Any) -> None:
        loss = _loss_of(output)
        if module.training and loss is not None:
            self._losses.append(loss.detach().float().reshape(()))

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       optimizer: Any = None, lr_scheduler: Any = None, **kwargs: Any) -> None:
        from lrdoctor.torch import Guard

        inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper
        self.guard = Guard(model, inner, lr_scheduler, **self.guard_kwargs)
        self._hook = model.register_forward_hook(self._capture)

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None,
                              **kwargs: Any) -> None:
        import torch

        if self.guard is None or not self._losses:
            return
        loss = torch.stack(self._losses).mean()
        self._losses = []
        if not self.guard.check(loss):
            for p in self.guard._params:
                p.grad = None

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.guard is not None:
            self.guard.close()

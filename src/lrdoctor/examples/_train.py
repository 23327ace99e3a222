"""A plain training loop for the example tasks, and an optimizer factory with fixed settings."""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lrdoctor.errors import LRDoctorError
from lrdoctor.examples._task import Task

__all__ = ["OPTIMIZERS", "TrainResult", "make_optimizer", "train"]

#: Optimizer families and their fixed settings: SGD with momentum 0.9, Adam, AdamW (wd 0.01).
OPTIMIZERS = ("sgd", "adam", "adamw")


def make_optimizer(name: str, params: Any, lr: float, **kwargs: Any) -> Any:
    """``'sgd'`` (momentum 0.9), ``'adam'`` or ``'adamw'`` (weight decay 0.01) over ``params``.

    ``params`` may be a model (its ``parameters()`` are used) or an iterable / param groups.
    """
    import torch

    if hasattr(params, "parameters"):
        params = params.parameters()
    if name == "sgd":
        kwargs.setdefault("momentum", 0.9)
        return torch.optim.SGD(params, lr=lr, **kwargs)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, **kwargs)
    if name == "adamw":
        kwargs.setdefault("weight_decay", 0.01)
        return torch.optim.AdamW(params, lr=lr, **kwargs)
    raise LRDoctorError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


@dataclass(eq=False)
class TrainResult:
    """What :func:`train` returns: the trained model, per-epoch history and final metrics.

    ``history`` holds one dict per evaluation: ``epoch``, ``step``, ``loss`` (mean training
    loss of the epoch), ``lr`` (first group's), and ``evaluate``'s keys. ``diverged`` is true when
    a training loss was NaN/Inf (training stops there); ``metrics`` is the last evaluation.
    """

    model: Any
    optimizer: Any
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    diverged: bool = False
    seconds: float = 0.0


def _needs_metric(scheduler: Any) -> bool:
    """True for plateau-style schedulers whose ``step`` takes the monitored metric."""
    try:
        params = list(inspect.signature(scheduler.step).parameters.values())
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return bool(params) and params[0].default is inspect.Parameter.empty and \
        params[0].kind in positional


def train(task: Task, optimizer: Any, *, epochs: int | None = None, model: Any = None,
          lr: float | None = None, scheduler: Any = None, monitor: Any = None,
          loader: Any = None, val_loader: Any = None, max_steps: int | None = None,
          grad_clip: float | None = None, evaluate: bool = True,
          on_epoch: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``task``'s model for ``epochs`` (default ``task.epochs``) and evaluate after each.

    ``optimizer`` is either a ``torch.optim.Optimizer`` over ``model``'s parameters (then
    ``model`` is required), a name from :data:`OPTIMIZERS` (with ``lr``), or a callable
    ``params -> Optimizer``; in the last two cases ``model`` defaults to ``task.build_model()``.

    ``scheduler`` is stepped after every optimizer step (the package's step semantics), except
    a plateau scheduler whose ``step`` needs a metric: it gets the validation metric named by
    ``scheduler.mode`` ('max' -> accuracy where there is one) after each evaluation.
    ``monitor`` (e.g. ``lrdoctor.torch.Monitor``) gets ``.step(loss=, inputs=, targets=)`` after
    each optimizer step and ``.epoch(**metrics)`` after each evaluation. A NaN/Inf training
    loss stops training and sets ``diverged``.
    """
    import torch

    if model is None:
        if isinstance(optimizer, torch.optim.Optimizer):
            raise LRDoctorError("train() got an optimizer instance but no model=; pass the model "
                                "its parameters belong to, or pass a name/factory instead")
        model = task.build_model()
    if isinstance(optimizer, str):
        if lr is None:
            raise LRDoctorError(f"train() with optimizer={optimizer!r} needs lr=")
        optimizer = make_optimizer(optimizer, model, lr)
    elif not isinstance(optimizer, torch.optim.Optimizer):
        optimizer = optimizer(model.parameters())
    epochs = task.epochs if epochs is None else epochs
    if epochs < 0:
        raise LRDoctorError(f"epochs must be >= 0, got {epochs}")
    loader = task.train_loader if loader is None else loader
    val_loader = task.val_loader if val_loader is None else val_loader
    loss_fn = task.loss_fn
    by_metric = scheduler is not None and _needs_metric(scheduler)
    device = next(iter(model.parameters())).device

    result = TrainResult(model=model, optimizer=optimizer)
    start = time.perf_counter()
    model.train()
    step = 0
    for epoch in range(epochs):
        loss_sum, count = 0.0, 0
        for batch in loader:
            xb, yb = (batch["x"], batch["y"]) if isinstance(batch, Mapping) else batch
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            value = float(loss.detach())
            if not math.isfinite(value):
                result.diverged = True
                break
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            step += 1
            if scheduler is not None and not by_metric:
                scheduler.step()
            if monitor is not None:
                monitor.step(loss=value, inputs=xb, targets=yb)
            loss_sum += value
            count += 1
            if max_steps is not None and step >= max_steps:
                break
        row: dict[str, float] = {"epoch": epoch + 1, "step": step,
                                 "loss": loss_sum / count if count else math.nan,
                                 "lr": float(optimizer.param_groups[0]["lr"])}
        if evaluate and not result.diverged:
            row.update(task.evaluate(model, val_loader))
        result.history.append(row)
        if monitor is not None and not result.diverged:
            monitor.epoch(**{k: v for k, v in row.items() if k not in ("epoch", "step", "lr")})
        if on_epoch is not None:
            on_epoch(row)
        if by_metric and not result.diverged and evaluate:
            mode = getattr(scheduler, "mode", "min")
            key = "val_accuracy" if mode == "max" and "val_accuracy" in row else "val_loss"
            scheduler.step(row[key])
        if result.diverged or (max_steps is not None and step >= max_steps):
            break
    result.steps = step
    if evaluate:
        if result.diverged:
            result.metrics = task.evaluate(model, val_loader)
        elif result.history:
            result.metrics = {k: v for k, v in result.history[-1].items() if k.startswith("val_")}
        else:
            result.metrics = task.evaluate(model, val_loader)
    result.seconds = time.perf_counter() - start
    return result

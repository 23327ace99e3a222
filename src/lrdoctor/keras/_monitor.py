"""``MonitorCallback``: the Keras 3 side of :class:`lrdoctor.torch.Monitor`, writing the same
JSONL log, so ``lrdoctor.logs.load`` / ``lrdoctor diagnose`` read a Keras run like a torch run.

Every optimizer step: ``train/loss`` (the loss of that batch, not Keras' running epoch mean),
``lr`` (the learning rate the step used, schedules included) and, on the torch backend,
``grad_norm`` (the global L2 norm of the gradients, read from the parameters after the step).
Every epoch: the logs Keras reports, under canonical names (``val_loss`` → ``val/loss``,
``accuracy`` → ``train/accuracy``, the epoch-mean ``loss`` → ``train/loss_epoch``).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from lrdoctor.errors import LRDoctorError
from lrdoctor.keras._schedule import SpecSchedule
from lrdoctor.logs import canonical

__all__ = ["MonitorCallback"]


class MonitorCallback(keras.callbacks.Callback):
    """Write the training log of ``model.fit`` to ``path`` (JSON Lines, appended).

    ``gradients=None`` records ``grad_norm`` where the backend keeps gradients on the variables
    after the step (torch); ``False`` never does. The file is flushed at most every
    ``flush_seconds``, at every epoch end and when training ends. Steps are numbered from the
    optimizer's ``iterations``, so a model restored from a checkpoint continues its numbering.

    >>> # model.fit(x, y, callbacks=[MonitorCallback("run/log.jsonl")])
    """

    def __init__(self, path: str | os.PathLike[str], *, gradients: bool | None = None,
                 flush_seconds: float = 1.0) -> None:
        super().__init__()
        if flush_seconds < 0:
            raise LRDoctorError(f"flush_seconds must be >= 0, got {flush_seconds}")
        self.path = Path(path)
        self.gradients = gradients
        self.flush_seconds = flush_seconds
        self.global_step = 0
        self.epoch_count = 0
        self._file: Any = None
        self._buffer: list[str] = []
        self._last_flush = 0.0
        self._lr = float("nan")
        self._before: tuple[float, float] | None = None
        self._grad_vars: list[Any] = []

    # -- fit -------------------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed at train end
        self._last_flush = time.monotonic()
        opt = self.model.optimizer
        self.global_step = int(opt.iterations.numpy()) if opt is not None else 0
        backend = keras.backend.backend()
        use_grads = self.gradients if self.gradients is not None else backend == "torch"
        self._grad_vars = [v.value for v in self.model.trainable_variables] \
            if use_grads and backend == "torch" else []
        self._write({"type": "meta", "version": 1, "framework": "keras", "backend": backend,
                     "model": type(self.model).__name__,
                     "optimizer": type(opt).__name__ if opt is not None else None,
                     "n_params": int(sum(math.prod(v.shape) for v in
                                         self.model.trainable_variables)),
                     "created": time.time()})

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        opt = self.model.optimizer
        if opt is None:
            self._lr = float("nan")
        elif isinstance(getattr(opt, "_learning_rate", None), SpecSchedule):
            # our schedule: evaluate it in Python (what Keras applies, as float32)
            self._lr = float(np.float32(opt._learning_rate.schedule(self.global_step)))
        else:
            self._lr = _read(opt.learning_rate)
        self._before = self._tracker()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        values: dict[str, float] = {}
        loss = self._batch_loss(batch, logs or {})
        if loss is not None:
            values["train/loss"] = loss
        values["lr"] = self._lr
        if self._grad_vars:
            gnorm = self._grad_norm()
            if gnorm is not None:
                values["grad_norm"] = gnorm
        self._write({"type": "scalars", "step": self.global_step, "epoch": self.epoch_count,
                     "values": values})
        self.global_step += 1
        if time.monotonic() - self._last_flush > self.flush_seconds:
            self._flush()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch_count += 1
        values = {}
        for key, value in (logs or {}).items():
            name = canonical(key)
            if name is None or name == "lr" or name.startswith("lr/"):
                continue  # the per-step lr already holds it
            try:
                values[name] = float(value)
            except (TypeError, ValueError):
                continue
        if "train/loss" in values:  # the epoch mean, next to the per-step losses
            values["train/loss_epoch"] = values.pop("train/loss")
        self._write({"type": "scalars", "step": max(self.global_step - 1, 0),
                     "epoch": self.epoch_count, "values": values})
        self._flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- internals ---------------------------------------------------------------------------
    def _tracker(self) -> tuple[float, float] | None:
        tracker = getattr(self.model, "_loss_tracker", None)
        if tracker is None or not hasattr(tracker, "total") or not hasattr(tracker, "count"):
            return None
        return _read(tracker.total), _read(tracker.count)

    def _batch_loss(self, batch: int, logs: dict[str, Any]) -> float | None:
        """The loss of this batch: the change of Keras' loss tracker (sum and count), else the
        running mean ``logs['loss']`` de-averaged assuming equal batches."""
        after = self._tracker()
        if self._before is not None and after is not None and after[1] > self._before[1]:
            return (after[0] - self._before[0]) / (after[1] - self._before[1])
        if "loss" not in logs:
            return None
        mean = float(logs["loss"])
        prev = getattr(self, "_prev_mean", None)
        self._prev_mean = mean
        if batch == 0 or prev is None:
            return mean
        return (batch + 1) * mean - batch * prev

    def _grad_norm(self) -> float | None:
        import torch

        grads = [v.grad for v in self._grad_vars if getattr(v, "grad", None) is not None]
        if not grads:
            return None
        norms = torch._foreach_norm(grads)
        return float(torch.linalg.vector_norm(torch.stack(norms)))

    def _write(self, record: dict[str, Any]) -> None:
        self._buffer.append(json.dumps(record, allow_nan=True) + "\n")

    def _flush(self) -> None:
        if self._buffer and self._file is not None:
            self._file.write("".join(self._buffer))
            self._file.flush()
            self._buffer.clear()
        self._last_flush = time.monotonic()


def _read(variable: Any) -> float:
    """A scalar variable's value as a float; ``.item()`` on the backend tensor where it has one
    (torch, jax), which is several times cheaper than ``convert_to_numpy``."""
    value = getattr(variable, "value", variable)
    item = getattr(value, "item", None)
    if item is not None:
        return float(item())
    return float(keras.ops.convert_to_numpy(variable))

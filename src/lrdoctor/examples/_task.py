"""``Task``: one example problem — data, a model factory, loaders, loss and evaluation."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrdoctor.errors import LRDoctorError
from lrdoctor.examples._data import Data

__all__ = ["ArrayLoader", "Task"]


class ArrayLoader:
    """A light, deterministic mini-batch iterator over in-memory tensors.

    Yields ``(x, y)`` tuples of ``batch_size`` rows (or ``{"x": x, "y": y}`` dicts with
    ``as_dict=True``). With ``shuffle``, each pass draws a new permutation from a
    ``torch.Generator`` seeded once with ``seed``: the sequence of epochs is fixed by the seed.
    Much faster than ``torch.utils.data.DataLoader`` for small in-memory data; call
    :meth:`to_dataloader` where a real ``DataLoader`` is needed (e.g. with a
    ``DistributedSampler``).
    """

    def __init__(self, x: Any, y: Any, *, batch_size: int, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, as_dict: bool = False):
        import torch

        if batch_size < 1:
            raise LRDoctorError(f"batch_size must be >= 1, got {batch_size}")
        self.x = torch.as_tensor(x)
        self.y = torch.as_tensor(y)
        if len(self.x) != len(self.y):
            raise LRDoctorError(f"x has {len(self.x)} rows but y has {len(self.y)}")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.as_dict = as_dict
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        import torch

        n = len(self.x)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for i in range(len(self)):
            sl = slice(i * self.batch_size, min(n, (i + 1) * self.batch_size))
            if order is None:
                xb, yb = self.x[sl], self.y[sl]
            else:
                idx = order[sl]
                xb, yb = self.x[idx], self.y[idx]
            yield {"x": xb, "y": yb} if self.as_dict else (xb, yb)

    def to_dataloader(self, **kwargs: Any) -> Any:
        """An equivalent ``torch.utils.data.DataLoader`` over a ``TensorDataset``."""
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        kwargs.setdefault("batch_size", self.batch_size)
        kwargs.setdefault("drop_last", self.drop_last)
        if "sampler" not in kwargs:
            kwargs.setdefault("shuffle", self.shuffle)
            if kwargs["shuffle"]:
                kwargs.setdefault("generator", torch.Generator().manual_seed(self.seed))
        return DataLoader(TensorDataset(self.x, self.y), **kwargs)


@dataclass(frozen=True, eq=False)
class Task:
    """One example problem. Build with :func:`lrdoctor.examples.get`.

    ``build_model()`` returns a fresh network initialised from ``seed`` (global torch RNG left as
    it was); ``train_loader`` (shuffled), ``val_loader`` and ``test_loader`` are fresh
    :class:`ArrayLoader` objects at each access; ``loss_fn(output, target)`` is the training loss;
    ``evaluate(model, loader)`` returns ``{"val_loss", "val_accuracy"}`` (``val_loss`` only for
    ``charlm``). ``metric`` names what decides quality: ``'accuracy'`` (higher is better) or
    ``'loss'`` (lower is better); ``metric_key`` is the matching key of ``evaluate``'s dict.
    """

    name: str
    seed: int
    data: Data
    batch_size: int
    epochs: int
    metric: str
    model_options: Mapping[str, Any]
    description: str = ""
    #: learning rates that train this task sensibly, per optimizer family (for docs and demos)
    reference_lrs: Mapping[str, float] = field(default_factory=dict)

    # ---- model and loss -------------------------------------------------------------------
    def build_model(self, seed: int | None = None) -> Any:
        """A fresh network initialised from ``seed`` (default: the task's seed)."""
        import torch

        from lrdoctor.examples._models import build

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed if seed is None else seed)
            return build(self.name, dict(self.model_options), n_classes=self.data.n_classes)

    @property
    def loss_fn(self) -> Any:
        """Cross-entropy; for ``charlm`` over every position of ``(B, T, V)`` logits."""
        from torch import nn

        from lrdoctor.examples._models import SequenceCrossEntropy

        return SequenceCrossEntropy() if self.name == "charlm" else nn.CrossEntropyLoss()

    # ---- data --------------------------------------------------------------------------------
    def loader(self, split: str = "train", *, batch_size: int | None = None,
               shuffle: bool | None = None, seed: int | None = None, drop_last: bool = False,
               as_dict: bool = False) -> ArrayLoader:
        """A loader over ``split``; training data is shuffled by default, seeded by the task."""
        x, y = self.data.split(split)
        return ArrayLoader(
            x, y, batch_size=batch_size or self.batch_size,
            shuffle=(split == "train") if shuffle is None else shuffle,
            seed=(self.seed + 1) if seed is None else seed, drop_last=drop_last, as_dict=as_dict)

    @property
    def train_loader(self) -> ArrayLoader:
        return self.loader("train")

    @property
    def val_loader(self) -> ArrayLoader:
        return self.loader("val", batch_size=max(self.batch_size, 512))

    @property
    def test_loader(self) -> ArrayLoader:
        return self.loader("test", batch_size=max(self.batch_size, 512))

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)

    @property
    def metric_key(self) -> str:
        return "val_accuracy" if self.metric == "accuracy" else "val_loss"

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    # ---- evaluation ---------------------------------------------------------------------------
    def evaluate(self, model: Any, loader: Any = None, *, prefix: str = "val_") -> dict[str, float]:
        """Mean loss (and accuracy for classifiers) of ``model`` over ``loader`` (default: val).

        The model is put in eval mode for the pass and back in its previous mode after it.
        """
        import torch

        loader = self.val_loader if loader is None else loader
        was_training = model.training
        model.eval()
        device = _device_of(model)
        total, loss_sum, correct = 0, 0.0, 0
        loss_fn = self.loss_fn
        try:
            with torch.no_grad():
                for batch in loader:
                    xb, yb = (batch["x"], batch["y"]) if isinstance(batch, Mapping) else batch
                    xb, yb = xb.to(device), yb.to(device)
                    out = model(xb).float()
                    n = yb.numel()
                    loss_sum += float(loss_fn(out, yb)) * n
                    if self.metric == "accuracy":
                        correct += int((out.argmax(-1) == yb).sum())
                    total += n
        finally:
            model.train(was_training)
        if total == 0:
            raise LRDoctorError("evaluate() got an empty loader")
        result = {f"{prefix}loss": loss_sum / total}
        if self.metric == "accuracy":
            result[f"{prefix}accuracy"] = correct / total
        return result

    def score(self, metrics: Mapping[str, float]) -> float:
        """The task's quality number from ``evaluate``'s dict; non-finite losses become ``inf``."""
        value = float(metrics[self.metric_key])
        if self.metric == "loss" and not math.isfinite(value):
            return math.inf
        return value

    # ---- variants ------------------------------------------------------------------------------
    def with_data(self, **arrays: np.ndarray) -> Task:
        """This task with some arrays replaced (fault injection: scaled inputs, noisy labels...)."""
        return dataclasses.replace(self, data=self.data.replace(**arrays))

    def replace(self, **changes: Any) -> Task:
        """This task with fields replaced (``seed``, ``batch_size``, ``epochs``, ...)."""
        if "model_options" in changes:
            merged = dict(self.model_options)
            merged.update(changes["model_options"])
            changes["model_options"] = merged
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        return (f"Task({self.name!r}, seed={self.seed}, batch_size={self.batch_size}, "
                f"epochs={self.epochs}, metric={self.metric!r}, data: {self.data.summary()})")


def _device_of(model: Any) -> Any:
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")

"""Held-out sequence cells for benchmark P1 (``bench_finder.py``): recurrent and transformer models.

``lrdoctor.examples`` has no recurrent model and one transformer language model, so P1's
held-out set gets three sequence classifiers of its own, built here on data no rule of the
finder was chosen on (the finder's adaptive ramp was designed on the test suite's GRU that names
the *first* of 12 tokens, tests/torch/test_finder.py; none of these tasks is that one):

- ``gru-recall``: a GRU(32) reads 9 tokens of 6 kinds; the label is the third token, which
  must be carried through 6 more steps (a cousin of the test's task: another position, length,
  width and data);
- ``lstm-count``: an LSTM(32) reads 12 tokens of 4 kinds; the label is how many are token 0,
  capped at 4 (5 classes), a running count the state must keep;
- ``transformer-majority``: a one-layer pre-norm transformer encoder (d=32, 2 heads, mean-pooled)
  reads 12 tokens of 5 kinds drawn from a random mix; the label is the most frequent token.

The recurrent and transformer modules are ``_p2_families``'s (imported, not copied); the data,
the sizes and the tasks are this module's. Each cell is a :class:`SeqTask`, which answers the
part of :class:`lrdoctor.examples.Task`'s interface that ``bench_finder`` uses (``build_model``,
``train_loader``, ``loss_fn``, ``metric``, ``epochs``, ``steps_per_epoch``, ``replace``), and
:func:`train_score` trains one for its epochs at a constant LR and returns the validation
accuracy in % (chance where the loss went NaN/Inf).

Sizes: 1800 sequences, 1200 to train and 600 to validate, batches of 32 (38 steps an epoch).
``epochs`` (3) is the quick size; P1 trains ``BUDGET_X`` (4) times that: 12 epochs, 456 steps,
a few seconds on one idle core. The sizes were set before any finder ran on these cells, from a
few constant-LR runs (time per run, and that some grid LR learns the task in the 4x budget);
nothing of the finder was looked at or changed for them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from _p2_families import _Recurrent, _Transformer
from torch import nn

from lrdoctor.examples import ArrayLoader, make_optimizer

__all__ = ["CELLS", "SeqTask", "get", "source_hash", "train_score"]

N_VAL = 600  # the last 600 sequences validate


def _count(n: int = 1800, length: int = 12, vocab: int = 4, cap: int = 4) -> tuple:
    """Label = the number of 0 tokens, capped at ``cap``."""
    rng = np.random.default_rng(211)
    x = rng.integers(0, vocab, size=(n, length))
    y = np.minimum((x == 0).sum(1), cap)
    return x.astype(np.int64), y.astype(np.int64), cap + 1


def _recall(n: int = 1800, length: int = 9, vocab: int = 6, position: int = 2) -> tuple:
    """Label = the token at ``position``."""
    rng = np.random.default_rng(212)
    x = rng.integers(0, vocab, size=(n, length))
    return x.astype(np.int64), x[:, position].copy().astype(np.int64), vocab


def _majority(n: int = 1800, length: int = 12, vocab: int = 5) -> tuple:
    """Tokens from a Dirichlet(1.5) mix per sequence; label = the most frequent (ties: lowest)."""
    rng = np.random.default_rng(213)
    p = rng.dirichlet(np.ones(vocab) * 1.5, size=n)
    x = np.stack([rng.choice(vocab, size=length, p=pi) for pi in p])
    counts = np.stack([(x == v).sum(1) for v in range(vocab)], 1)
    return x.astype(np.int64), counts.argmax(1).astype(np.int64), vocab


@dataclass(frozen=True)
class _Spec:
    data: Callable[[], tuple]
    model: Callable[[int, int, int], nn.Module]  # (vocab, classes, length) -> module
    vocab: int
    length: int
    describe: str


_SPECS: dict[str, _Spec] = {
    "gru-recall": _Spec(_recall, lambda v, c, _: _Recurrent("gru", v, c), 6, 9,
                        "GRU(32) on 9 tokens of 6; label = the third token"),
    "lstm-count": _Spec(_count, lambda v, c, _: _Recurrent("lstm", v, c), 4, 12,
                        "LSTM(32) on 12 tokens of 4; label = how many are 0 (capped at 4)"),
    "transformer-majority": _Spec(_majority, lambda v, c, n: _Transformer(v, c, n), 5, 12,
                                  "1-layer pre-norm transformer (d=32, 2 heads) on 12 tokens of "
                                  "5; label = the most frequent"),
}
#: the cells, in report order
CELLS: tuple[str, ...] = tuple(_SPECS)
_ARRAYS: dict[str, tuple] = {}


def _arrays(name: str) -> tuple:
    """``(x_train, y_train, x_val, y_val, n_classes)``, built once per process."""
    if name not in _ARRAYS:
        x, y, classes = _SPECS[name].data()
        _ARRAYS[name] = (x[:-N_VAL], y[:-N_VAL], x[-N_VAL:], y[-N_VAL:], classes)
    return _ARRAYS[name]


@dataclass(frozen=True, eq=False)
class SeqTask:
    """One held-out sequence cell, with the ``Task`` attributes ``bench_finder`` reads."""

    name: str
    seed: int = 0
    epochs: int = 3
    batch_size: int = 32
    metric: str = "accuracy"
    model_options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in _SPECS:
            raise KeyError(f"unknown P1 cell {self.name!r}; choose one of {', '.join(CELLS)}")

    @property
    def describe(self) -> str:
        return _SPECS[self.name].describe

    @property
    def data(self) -> SimpleNamespace:
        return SimpleNamespace(n_classes=_arrays(self.name)[4])

    def replace(self, **changes: Any) -> SeqTask:
        return dataclasses.replace(self, **changes)

    def build_model(self, seed: int | None = None) -> nn.Module:
        """A fresh model from ``seed`` (default: the task's); the global RNG is left as it was."""
        spec = _SPECS[self.name]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed if seed is None else seed)
            return spec.model(spec.vocab, self.data.n_classes, spec.length)

    @property
    def loss_fn(self) -> nn.Module:
        return nn.CrossEntropyLoss()

    @property
    def train_loader(self) -> ArrayLoader:
        """Shuffled training batches, the order seeded by ``seed + 1`` (as the examples do)."""
        xt, yt, *_ = _arrays(self.name)
        return ArrayLoader(xt, yt, batch_size=self.batch_size, shuffle=True, seed=self.seed + 1)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(_arrays(self.name)[0]) / self.batch_size)


def get(name: str, **options: Any) -> SeqTask:
    """The cell ``name`` (``options`` go to :class:`SeqTask`: ``seed``, ``epochs``)."""
    return SeqTask(name, **options)


def evaluate(task: SeqTask, model: nn.Module) -> float:
    """Validation accuracy in %."""
    _, _, xv, yv, _ = _arrays(task.name)
    model.eval()
    with torch.no_grad():
        pred = model(torch.as_tensor(xv)).argmax(1)
    return 100.0 * float((pred == torch.as_tensor(yv)).float().mean())


def train_score(task: SeqTask, opt: str, lr: float) -> float:
    """Train ``task`` (seed ``task.seed``) for ``task.epochs`` with ``opt`` ('sgd': momentum 0.9,
    or 'adam') at constant ``lr``; validation accuracy in %, chance (100 / classes) when a
    training loss is NaN/Inf or the accuracy is not finite."""
    torch.set_num_threads(1)
    model = task.build_model()
    optimizer = make_optimizer(opt, model, lr)
    loss_fn = task.loss_fn
    chance = 100.0 / task.data.n_classes
    loader = task.train_loader
    model.train()
    for _ in range(task.epochs):
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            if not torch.isfinite(loss):
                return chance
            loss.backward()
            optimizer.step()
    value = evaluate(task, model)
    return value if math.isfinite(value) else chance


def source_hash() -> str:
    """What a cell's score depends on besides its arguments: this module's source and that of
    the two modules it takes from ``_p2_families`` (not that whole file, which another
    benchmark edits)."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    for obj in (_Recurrent, _Transformer):
        h.update(inspect.getsource(obj).encode())
    return h.hexdigest()[:12]

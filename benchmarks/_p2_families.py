"""Task families for benchmark P2 (``bench_auto.py``): small data, small models, seconds a run.

Every run is about 2000 optimizer steps (28-60 epochs of 1-3k examples), so a range test of
10% of it has 200 steps.

Each :class:`Family` builds its data from a fixed data seed (the splits never change) and its
model from the run's seed; :func:`train_run` trains it for a fixed number of epochs with a given
optimizer (and, where given, a per-step ``ScheduledLR``) on one thread and returns the
validation metric: accuracy in % for classifiers, MSE for regressions (lower is better).

``HELD_OUT`` are the families P2 reports: no rule of ``auto`` (the schedule, the peak's
divisor, the warm-up) was chosen looking at them. ``TUNING`` are the families the rules were
chosen on: the bundled example tasks' data and models (``lrdoctor.examples``), trained by the
same loop. The two sets share no data and no architecture family except that both have MLPs
and convolutions.

These are this benchmark's own builders (helper 7a's ``_families.py`` for the doctor's corpus
was not yet there when P2 was written).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lrdoctor.examples import ArrayLoader

__all__ = ["Family", "HELD_OUT", "TUNING", "families", "train_run"]


@dataclass(frozen=True)
class Family:
    """A task family: data (train/val arrays), a model builder, the loss, the budget."""

    name: str
    data: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    model: Callable[[], nn.Module]
    kind: str  # 'classification' (accuracy %, higher is better) or 'regression' (val MSE)
    epochs: int
    batch_size: int = 32
    describe: str = ""

    @property
    def higher_is_better(self) -> bool:
        return self.kind == "classification"

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return _cached(self.name, self.data)

    def loss_fn(self) -> Callable[..., torch.Tensor]:
        return nn.CrossEntropyLoss() if self.kind == "classification" else nn.MSELoss()

    def loader(self, seed: int) -> ArrayLoader:
        x, y, _, _ = self.arrays()
        return ArrayLoader(x, y, batch_size=self.batch_size, shuffle=True, seed=seed)

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.arrays()[0]) / self.batch_size)

    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch()

    def build(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return self.model()


_DATA: dict[str, Any] = {}


def _cached(name: str, fn: Callable[[], Any]) -> Any:
    if name not in _DATA:
        _DATA[name] = fn()
    return _DATA[name]


def _split(x: np.ndarray, y: np.ndarray, n_val: int) -> tuple[np.ndarray, ...]:
    return x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]


# ---- data -----------------------------------------------------------------------------------------


def _tokens_first(n: int = 2400, length: int = 12, vocab: int = 6) -> tuple[np.ndarray, ...]:
    """Token sequences; the label is the first token (remembered through the sequence)."""
    rng = np.random.default_rng(101)
    x = rng.integers(0, vocab, size=(n, length))
    y = x[:, 0].copy()
    return _split(x.astype(np.int64), y.astype(np.int64), 600)


def _tokens_majority(n: int = 2400, length: int = 16, vocab: int = 4) -> tuple[np.ndarray, ...]:
    """Token sequences; the label is the most frequent token (ties to the smallest)."""
    rng = np.random.default_rng(102)
    p = rng.dirichlet(np.ones(vocab) * 2.0, size=n)
    x = np.stack([rng.choice(vocab, size=length, p=pi) for pi in p])
    counts = np.stack([(x == v).sum(1) for v in range(vocab)], 1)
    return _split(x.astype(np.int64), counts.argmax(1).astype(np.int64), 600)


def _tokens_pair(n: int = 2400, length: int = 12, vocab: int = 8) -> tuple[np.ndarray, ...]:
    """Token sequences; label 1 when token 0 comes somewhere before token 1, else 0."""
    rng = np.random.default_rng(103)
    x = rng.integers(0, vocab, size=(n, length))
    y = np.zeros(n, dtype=np.int64)
    for i, row in enumerate(x):
        zeros, ones = np.flatnonzero(row == 0), np.flatnonzero(row == 1)
        y[i] = int(len(zeros) > 0 and len(ones) > 0 and zeros[0] < ones[-1])
    return _split(x.astype(np.int64), y, 600)


def _bars(n: int = 2400, size: int = 10) -> tuple[np.ndarray, ...]:
    """Noisy 10x10 images of one of four shapes (horizontal, vertical, diagonal bar, box)."""
    rng = np.random.default_rng(104)
    x = rng.normal(0, 0.6, size=(n, 1, size, size)).astype(np.float32)
    y = rng.integers(0, 4, size=n)
    for i in range(n):
        r, c = rng.integers(2, size - 2, size=2)
        if y[i] == 0:
            x[i, 0, r, max(0, c - 3):c + 3] += 1.5
        elif y[i] == 1:
            x[i, 0, max(0, r - 3):r + 3, c] += 1.5
        elif y[i] == 2:
            for k in range(-2, 3):
                if 0 <= r + k < size and 0 <= c + k < size:
                    x[i, 0, r + k, c + k] += 1.5
        else:
            x[i, 0, r - 1:r + 2, c - 1:c + 2] += 1.0
    return _split(x, y.astype(np.int64), 600)


def _tabular(n: int = 3000, seed: int = 105, features: int = 20, classes: int = 4,
             informative: int = 8) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n, n_features=features, n_informative=informative,
                               n_redundant=4, n_classes=classes, n_clusters_per_class=2,
                               flip_y=0.03, class_sep=1.0, random_state=seed)
    x = (x - x.mean(0)) / x.std(0)
    return _split(x.astype(np.float32), y.astype(np.int64), 750)


def _friedman(n: int = 3000) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=n, n_features=10, noise=0.5, random_state=106)
    y = (y - y.mean()) / y.std()
    return _split(x.astype(np.float32), y[:, None].astype(np.float32), 750)


def _waves(n: int = 3000) -> tuple[np.ndarray, ...]:
    """y = sin(3 x0) * cos(2 x1) + 0.3 x2^2 + noise, x ~ U(-2, 2)^4."""
    rng = np.random.default_rng(107)
    x = rng.uniform(-2, 2, size=(n, 4))
    y = np.sin(3 * x[:, 0]) * np.cos(2 * x[:, 1]) + 0.3 * x[:, 2] ** 2 + rng.normal(0, 0.1, n)
    y = (y - y.mean()) / y.std()
    return _split(x.astype(np.float32), y[:, None].astype(np.float32), 750)


# ---- models ---------------------------------------------------------------------------------------


class _Recurrent(nn.Module):
    def __init__(self, cell: str, vocab: int, classes: int, hidden: int = 32):
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.rnn = (nn.GRU if cell == "gru" else nn.LSTM)(16, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(x))
        return self.head(out[:, -1])


class _Transformer(nn.Module):
    def __init__(self, vocab: int, classes: int, length: int, d: int = 32):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, length, d) * 0.1)
        layer = nn.TransformerEncoderLayer(d, 2, 64, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x) + self.pos).mean(1))


def _cnn_bn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))


class _ResMLP(nn.Module):
    def __init__(self, inputs: int, classes: int, width: int = 64, blocks: int = 2):
        super().__init__()
        self.inp = nn.Linear(inputs, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(),
                          nn.Linear(width, width)) for _ in range(blocks))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for b in self.blocks:
            h = h + b(h)
        return self.out(h)


def _mlp(inputs: int, outputs: int, width: int = 64, act: type[nn.Module] = nn.ReLU) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, width), act(), nn.Linear(width, width), act(),
                         nn.Linear(width, outputs))


#: the families P2 reports (never used to choose a rule)
HELD_OUT: dict[str, Family] = {f.name: f for f in (
    Family("gru-first", _tokens_first, lambda: _Recurrent("gru", 6, 6), "classification", 35,
           describe="GRU(32) on 12 tokens; label = the first token"),
    Family("lstm-majority", _tokens_majority, lambda: _Recurrent("lstm", 4, 4),
           "classification", 35, describe="LSTM(32) on 16 tokens; label = the most frequent"),
    Family("transformer-order", _tokens_pair, lambda: _Transformer(8, 2, 12), "classification",
           35, describe="1-layer pre-norm transformer (d=32); label = token 0 before a token 1"),
    Family("cnn-bn-shapes", _bars, _cnn_bn, "classification", 35,
           describe="2 conv + BatchNorm on noisy 10x10 shapes (4 classes)"),
    Family("tabular-mlp", _tabular, lambda: _mlp(20, 4), "classification", 28,
           describe="MLP 20-64-64-4 on make_classification (4 classes)"),
    Family("resmlp-ln", lambda: _tabular(3000, 108, 40, 8, 12), lambda: _ResMLP(40, 8),
           "classification", 28, describe="residual MLP + LayerNorm, 40 features, 8 classes"),
    Family("friedman-mse", _friedman, lambda: _mlp(10, 1), "regression", 28,
           describe="MLP 10-64-64-1, MSE, Friedman #1 (standardised)"),
    Family("waves-tanh-mse", _waves, lambda: _mlp(4, 1, 64, nn.Tanh), "regression", 28,
           describe="tanh MLP 4-64-64-1, MSE, a product of waves"),
    Family("logreg-tabular", lambda: _tabular(3000, 109, 30, 5, 10), lambda: nn.Linear(30, 5),
           "classification", 28, describe="softmax regression (convex), 30 features, 5 classes"),
)}


def _example(name: str, epochs: int) -> Family:
    from lrdoctor import examples

    task = examples.get(name)
    d = task.data
    return Family(f"example:{name}", lambda: (d.x_train, d.y_train, d.x_val, d.y_val),
                  task.build_model, "classification", epochs, task.batch_size,
                  describe=f"lrdoctor.examples {name!r}")


def _tuning() -> dict[str, Family]:
    return {f.name: f for f in (_example("digits-mlp", 60), _example("digits-cnn", 60),
                                _example("mnist1d-conv", 42))}


def families(which: str) -> dict[str, Family]:
    """``'held-out'`` (what P2 reports) or ``'tuning'`` (what its rules were chosen on)."""
    return HELD_OUT if which == "held-out" else _tuning()


TUNING = "digits-mlp, digits-cnn, mnist1d-conv (lrdoctor.examples), AdamW"


def evaluate(family: Family, model: nn.Module) -> float:
    """Validation accuracy in % (classification) or MSE (regression)."""
    _, _, xv, yv = family.arrays()
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.as_tensor(xv))
        y = torch.as_tensor(yv)
        if family.kind == "classification":
            value = 100.0 * float((out.argmax(1) == y).float().mean())
        else:
            value = float(nn.functional.mse_loss(out, y))
    model.train(was)
    return value


def worst(family: Family) -> float:
    """The score of a run that diverged: chance accuracy, or the MSE of predicting the mean."""
    _, ytr, _, yv = family.arrays()
    if family.kind == "classification":
        return 100.0 / len(np.unique(ytr))
    return float(np.mean((yv - ytr.mean()) ** 2))


def train_run(family: Family, seed: int, make_optimizer: Callable[[Any], Any], *,
              schedule: str | None = None, schedule_free: bool = False) -> float:
    """Train ``family`` from ``seed`` for its epochs; the validation metric (see module doc).

    ``make_optimizer(params)`` builds the optimizer; ``schedule`` (a spec string) drives its LR
    per optimizer step through ``ScheduledLR``; ``schedule_free`` switches the optimizer's
    ``.train()`` / ``.eval()`` modes around training and evaluation (Schedule-Free AdamW).
    A NaN/Inf training loss stops the run and scores :func:`worst`.
    """
    torch.set_num_threads(1)
    model = family.build(seed)
    optimizer = make_optimizer(model.parameters())
    scheduler = None
    if schedule is not None:
        from lrdoctor.torch import ScheduledLR

        scheduler = ScheduledLR(optimizer, schedule)
    loss_fn = family.loss_fn()
    loader = family.loader(seed)
    model.train()
    if schedule_free:
        optimizer.train()
    for _ in range(family.epochs):
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            if not torch.isfinite(loss):
                return worst(family)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
    if schedule_free:
        optimizer.eval()
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            # BatchNorm statistics were gathered at the training point, not the evaluation
            # point the optimizer now holds: recompute them (as schedulefree's README says)
            with torch.no_grad():
                for k, (xb, _) in enumerate(loader):
                    model(xb)
                    if k >= 50:
                        break
    value = evaluate(family, model)
    if not math.isfinite(value):
        return worst(family)
    return value if family.kind == "classification" else min(value, worst(family))

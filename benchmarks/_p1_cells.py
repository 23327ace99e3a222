"""Sequence cells for benchmark P1 (``bench_finder.py``): recurrent and transformer models.

``lrdoctor.examples`` has no recurrent model and one transformer language model, so P1 gets
sequence classifiers of its own, built here on data of their own (the finder's adaptive ramp
was designed on the test suite's GRU that names the *first* of 12 tokens,
tests/torch/test_finder.py; none of these tasks is that one). Each has a role:

- **tuning** (a finder rule was chosen on it): ``gru-recall`` (a GRU(32) reads 9 tokens of 6;
  the label is the third token, carried through 6 more steps), held out until 2026-12-07, when
  the budget probe's convergence gate was diagnosed on it; ``gru-last`` (a GRU(32) on 8 tokens
  of 4, the label is the last token: an easy task that converges fast) and ``lstm-recall`` (an
  LSTM(32) on 10 tokens of 5, the label is the second token), added that day to choose the
  gate's constant on;
- **held-out** (no rule was chosen on it): ``lstm-count`` (an LSTM(32) reads 12 tokens of 4;
  the label is how many are token 0, capped at 4: 5 classes) and ``transformer-majority`` (a
  one-layer pre-norm transformer encoder, d=32, 2 heads, mean-pooled, reads 12 tokens of 5 drawn
  from a random mix; the label is the most frequent token);
- **fresh** (held out, added after the gate was chosen and first run in the held-out
  benchmark): ``gru-max`` (a GRU(32) on 6 tokens of 8; the label is the largest) and
  ``transformer-pairsum`` (the same transformer on 10 tokens of 4; the label is the third plus
  the eighth token, mod 4).

The recurrent and transformer modules are ``_p2_families``'s (imported, not copied); the data,
the sizes and the tasks are this module's. Each cell is a :class:`SeqTask`, which answers the
part of :class:`lrdoctor.examples.Task`'s interface that ``bench_finder`` uses (``build_model``,
``train_loader``, ``loss_fn``, ``metric``, ``epochs``, ``steps_per_epoch``, ``replace``), and
:func:`train_score` trains one for its epochs at a constant LR and returns the validation
accuracy in % (chance where the loss went NaN/Inf).

Sizes: 1800 sequences, 1200 to train and 600 to validate, batches of 32 (38 steps an epoch).
``epochs`` (3) is the quick size; P1 trains ``BUDGET_X`` (4) times that: 12 epochs, 456 steps,
a few seconds on one idle core. The sizes were set before any finder ran on these cells, from a
few constant-LR runs (time per run, and that some grid LR learns the task in the 4x budget:
for ``transformer-pairsum`` Adam does, 97.5% at 3e-3, SGD at 0.01-1 does not, 24-30%); nothing
of the finder was looked at or changed for them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
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


def _last(n: int = 1800, length: int = 8, vocab: int = 4) -> tuple:
    """Label = the last token (no memory needed: a model that converges fast)."""
    rng = np.random.default_rng(214)
    x = rng.integers(0, vocab, size=(n, length))
    return x.astype(np.int64), x[:, -1].copy().astype(np.int64), vocab


def _recall2(n: int = 1800, length: int = 10, vocab: int = 5) -> tuple:
    """Label = the second token, carried through 8 more steps."""
    rng = np.random.default_rng(215)
    x = rng.integers(0, vocab, size=(n, length))
    return x.astype(np.int64), x[:, 1].copy().astype(np.int64), vocab


def _largest(n: int = 1800, length: int = 6, vocab: int = 8) -> tuple:
    """Label = the largest token of the sequence."""
    rng = np.random.default_rng(216)
    x = rng.integers(0, vocab, size=(n, length))
    return x.astype(np.int64), x.max(1).astype(np.int64), vocab


def _pair_sum(n: int = 1800, length: int = 10, vocab: int = 4) -> tuple:
    """Label = (third token + eighth token) mod ``vocab``: two positions combined."""
    rng = np.random.default_rng(217)
    x = rng.integers(0, vocab, size=(n, length))
    return x.astype(np.int64), ((x[:, 2] + x[:, 7]) % vocab).astype(np.int64), vocab


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
    role: str  # "tuning": a finder rule was chosen on it; "held-out"; "fresh": held out, new


def _gru(v: int, c: int, _: int) -> nn.Module:
    return _Recurrent("gru", v, c)


def _lstm(v: int, c: int, _: int) -> nn.Module:
    return _Recurrent("lstm", v, c)


def _transformer(v: int, c: int, n: int) -> nn.Module:
    return _Transformer(v, c, n)


_SPECS: dict[str, _Spec] = {
    # tuning since 2026-12-07: the probe's convergence gate was diagnosed on it
    "gru-recall": _Spec(_recall, _gru, 6, 9,
                        "GRU(32) on 9 tokens of 6; label = the third token", "tuning"),
    "lstm-count": _Spec(_count, _lstm, 4, 12,
                        "LSTM(32) on 12 tokens of 4; label = how many are 0 (capped at 4)",
                        "held-out"),
    "transformer-majority": _Spec(_majority, _transformer, 5, 12,
                                  "1-layer pre-norm transformer (d=32, 2 heads) on 12 tokens of "
                                  "5; label = the most frequent", "held-out"),
    # added 2026-12-07 to choose the convergence gate's constant on
    "gru-last": _Spec(_last, _gru, 4, 8, "GRU(32) on 8 tokens of 4; label = the last token",
                      "tuning"),
    "lstm-recall": _Spec(_recall2, _lstm, 5, 10,
                         "LSTM(32) on 10 tokens of 5; label = the second token", "tuning"),
    # added 2026-12-07 after the gate was chosen, never looked at before the held-out run
    "gru-max": _Spec(_largest, _gru, 8, 6, "GRU(32) on 6 tokens of 8; label = the largest",
                     "fresh"),
    "transformer-pairsum": _Spec(_pair_sum, _transformer, 4, 10,
                                 "1-layer pre-norm transformer (d=32, 2 heads) on 10 tokens of "
                                 "4; label = (third + eighth token) mod 4", "fresh"),
}
#: the cells, in report order
CELLS: tuple[str, ...] = tuple(_SPECS)
#: the cells by role: a finder rule was chosen on ``TUNING``; ``HELD_OUT`` never (``FRESH``, a
#: part of it, was added after the last rule change and first run in the held-out benchmark)
TUNING: tuple[str, ...] = tuple(n for n in CELLS if _SPECS[n].role == "tuning")
HELD_OUT: tuple[str, ...] = tuple(n for n in CELLS if _SPECS[n].role != "tuning")
FRESH: tuple[str, ...] = tuple(n for n in CELLS if _SPECS[n].role == "fresh")
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


def source_hash(name: str) -> str:
    """What cell ``name``'s score depends on besides its arguments: the sources of its data
    and model functions, its spec, the training and evaluation code of this module and the two
    modules it takes from ``_p2_families`` (not that whole file, which another benchmark edits).
    Per cell, so that adding a cell keeps the others' cached scores."""
    spec = _SPECS[name]
    h = hashlib.sha256(repr((name, spec.vocab, spec.length, N_VAL)).encode())
    for obj in (spec.data, spec.model, _arrays, SeqTask, evaluate, train_score, _Recurrent,
                _Transformer, ArrayLoader, make_optimizer):
        h.update(inspect.getsource(obj).encode())
    return h.hexdigest()[:12]

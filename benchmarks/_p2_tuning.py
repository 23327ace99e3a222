"""More tuning families for benchmark P2 (``bench_auto.py tune``): the kinds auto failed on.

The first tuning set (the bundled examples digits-mlp, digits-cnn, mnist1d-conv) had no
recurrent model, no BatchNorm and no transformer, and the recipe chosen there (WSD at 2x the
suggestion) missed on exactly those kinds. These four families cover them on **other tasks and
other data** than the held-out families of ``_p2_families.py`` (gru-first, lstm-majority,
cnn-bn-shapes, transformer-order):

- ``gru-count``: GRU(16) on 12 tokens of 3; the label is how many more 0s than 1s there are,
  clipped to -2..2 (5 classes);
- ``lstm-sine``: LSTM(32) on 24 samples of a sine in noise (sd 1; a float per step, random
  phase and amplitude 0.5-1.5); the label is which of 4 close frequencies (0.08-0.14);
- ``cnn-bn-digits``: 2 convolutions + BatchNorm on sklearn's 8x8 digits with Gaussian noise
  (sd 0.5) added to the pixels (10 classes);
- ``transformer-pointer``: the same 1-layer pre-norm transformer block as the held-out one, on
  a pointer task: the first token (1..7) says which later position's token is the label.

They live in their own module so that the held-out families' training cache (keyed by a hash
of ``_p2_families.py``) stays valid; they are built and trained by the same code
(:class:`~_p2_families.Family`, :func:`~_p2_families.train_run`), ~2000 steps a run.
"""

from __future__ import annotations

import _p2_families as pf
import numpy as np
from torch import nn

__all__ = ["NEW_TUNING", "TUNING", "families"]


def _tokens_count(n: int = 2400, length: int = 12, vocab: int = 3) -> tuple[np.ndarray, ...]:
    """Token sequences; the label is how many more 0 tokens than 1 tokens, clipped to -2..2."""
    rng = np.random.default_rng(201)
    x = rng.integers(0, vocab, size=(n, length))
    y = np.clip((x == 0).sum(1) - (x == 1).sum(1), -2, 2) + 2
    return pf._split(x.astype(np.int64), y.astype(np.int64), 600)


def _sines(n: int = 2400, length: int = 24) -> tuple[np.ndarray, ...]:
    """Noisy sines of 4 frequencies (random phase, amplitude 0.5-1.5); label = the frequency."""
    rng = np.random.default_rng(202)
    y = rng.integers(0, 4, size=n)
    freq = np.array([0.08, 0.10, 0.12, 0.14])[y]
    phase = rng.uniform(0, 2 * np.pi, size=n)
    amp = rng.uniform(0.5, 1.5, size=n)
    t = np.arange(length)
    x = amp[:, None] * np.sin(2 * np.pi * freq[:, None] * t + phase[:, None])
    x = x + rng.normal(0, 1.0, size=x.shape)
    return pf._split(x[..., None].astype(np.float32), y.astype(np.int64), 600)


def _digits() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(203)
    order = rng.permutation(len(d.target))
    x = d.images[order] / 16.0 + rng.normal(0, 0.5, size=d.images.shape)
    x = x[:, None].astype(np.float32)
    return pf._split(x, d.target[order].astype(np.int64), 400)


def _pointer(n: int = 2400, length: int = 8, vocab: int = 8) -> tuple[np.ndarray, ...]:
    """Token 0 of each sequence is a position p in 1..7; the label is the token at p."""
    rng = np.random.default_rng(204)
    x = rng.integers(0, vocab, size=(n, length))
    x[:, 0] = rng.integers(1, length, size=n)
    y = x[np.arange(n), x[:, 0]]
    return pf._split(x.astype(np.int64), y.astype(np.int64), 600)


class _SineRNN(nn.Module):
    def __init__(self, hidden: int = 32, classes: int = 4):
        super().__init__()
        self.rnn = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def _cnn_bn_digits() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 16, 10))


#: the tuning families added for the recipe's second choice (none of them held out)
NEW_TUNING: dict[str, pf.Family] = {f.name: f for f in (
    pf.Family("gru-count", _tokens_count, lambda: pf._Recurrent("gru", 3, 5, hidden=16), "classification",
              35, describe="GRU(16) on 12 tokens of 3; label = #0s - #1s, clipped to -2..2"),
    pf.Family("lstm-sine", _sines, _SineRNN, "classification", 35,
              describe="LSTM(32) on 24 sine samples in noise; label = one of 4 frequencies"),
    pf.Family("cnn-bn-digits", _digits, _cnn_bn_digits, "classification", 45,
              describe="2 conv + BatchNorm on noisy sklearn digits 8x8 (10 classes)"),
    pf.Family("transformer-pointer", _pointer, lambda: pf._Transformer(8, 8, 8),
              "classification", 35,
              describe="1-layer pre-norm transformer (d=32); label = the token token 0 points at"),
)}


def families() -> dict[str, pf.Family]:
    """Every tuning family: the bundled examples (``_p2_families``) and :data:`NEW_TUNING`."""
    return {**pf.families("tuning"), **NEW_TUNING}


TUNING = (f"{pf.TUNING}; and gru-count, lstm-sine, cnn-bn-digits, transformer-pointer "
          "(benchmarks/_p2_tuning.py)")

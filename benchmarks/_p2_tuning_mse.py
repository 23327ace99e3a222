"""MSE regression tuning families for benchmark P2 (``bench_auto.py rule``).

The tuning set of ``_p2_tuning.py`` had no regression, and the held-out regressions were where
``auto``'s fallback peak (no descent seen in the range test) landed a decade low. These two
families are regressions with MSE on **other data** than the held-out ones
(``friedman-mse``: Friedman #1; ``waves-tanh-mse``: a product of sine waves):

- ``bumps-mse``: ReLU MLP 6-64-64-1; y = a sum of 6 Gaussian bumps in 6 dimensions + noise;
- ``ripple-tanh-mse``: tanh MLP 3-64-64-1; y = a radial ripple cos(4 r) / (1 + r) plus a linear
  term, + noise.

Their own module keeps the other families' training and finder caches valid (each module's runs
are keyed by a hash of it); they are trained by the same loop (:func:`_p2_families.train_run`),
~2000 steps a run, and are never part of the held-out report.
"""

from __future__ import annotations

import _p2_families as pf
import numpy as np
from torch import nn

__all__ = ["MSE_TUNING"]


def _bumps(n: int = 3000, dims: int = 6, bumps: int = 6) -> tuple[np.ndarray, ...]:
    """y = sum_k a_k exp(-|x - c_k|^2 / (2 s_k^2)) + noise, x ~ N(0, 1)^6 (standardised)."""
    rng = np.random.default_rng(301)
    x = rng.normal(0, 1, size=(n, dims))
    centres = rng.normal(0, 1, size=(bumps, dims))
    widths = rng.uniform(0.8, 1.6, size=bumps)
    amps = rng.uniform(-2, 2, size=bumps)
    d2 = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    y = (amps * np.exp(-d2 / (2 * widths ** 2))).sum(1) + rng.normal(0, 0.05, n)
    y = (y - y.mean()) / y.std()
    return pf._split(x.astype(np.float32), y[:, None].astype(np.float32), 750)


def _ripple(n: int = 3000) -> tuple[np.ndarray, ...]:
    """y = cos(4 r) / (1 + r) + 0.5 x2 + noise, r = |(x0, x1)|, x ~ U(-1.5, 1.5)^3."""
    rng = np.random.default_rng(302)
    x = rng.uniform(-1.5, 1.5, size=(n, 3))
    r = np.hypot(x[:, 0], x[:, 1])
    y = np.cos(4 * r) / (1 + r) + 0.5 * x[:, 2] + rng.normal(0, 0.05, n)
    y = (y - y.mean()) / y.std()
    return pf._split(x.astype(np.float32), y[:, None].astype(np.float32), 750)


#: the regression tuning families (none of them held out)
MSE_TUNING: dict[str, pf.Family] = {f.name: f for f in (
    pf.Family("bumps-mse", _bumps, lambda: pf._mlp(6, 1), "regression", 28,
              describe="MLP 6-64-64-1, MSE, a sum of Gaussian bumps in 6-D"),
    pf.Family("ripple-tanh-mse", _ripple, lambda: pf._mlp(3, 1, 64, nn.Tanh), "regression", 28,
              describe="tanh MLP 3-64-64-1, MSE, a radial ripple + a linear term"),
)}

"""Random metric sequences and settings for the differential tests (seeded, reproducible)."""

from __future__ import annotations

import numpy as np


def metric_sequence(rng: np.random.Generator, n: int, *, negative: bool = False) -> list[float]:
    """A metric trace: random walks, flat plateaus with exact repeats, quantised accuracies."""
    kind = rng.integers(0, 5)
    if kind == 0:  # noisy decreasing loss
        x = 2.0 * np.exp(-np.arange(n) / rng.uniform(3, 30)) + rng.normal(0, rng.uniform(1e-4, 0.1), n)
    elif kind == 1:  # plateaus with exact repeats
        levels = rng.uniform(0.1, 3.0, size=rng.integers(1, 4))
        x = np.repeat(levels, -(-n // len(levels)))[:n]
    elif kind == 2:  # quantised accuracy
        x = np.round(np.clip(np.cumsum(rng.normal(0.01, 0.02, n)) + 0.5, 0, 1), 2)
    elif kind == 3:  # random walk
        x = np.cumsum(rng.normal(0, 1, n)) + 10
    else:  # near-threshold changes: steps of exactly threshold-ish sizes
        x = 1.0 + np.cumsum(rng.choice([0.0, 1e-4, -1e-4, 2e-4, -5e-5], n))
    x = x.astype(float)
    if negative:
        x = -np.abs(x) - 0.1
    return [float(v) for v in x]


def plateau_settings(rng: np.random.Generator, keras: bool = False) -> dict:
    """Random ReduceLROnPlateau settings covering both modes, rel/abs, cool-down and min_lr."""
    s = {
        "mode": str(rng.choice(["min", "max"])),
        "factor": float(rng.choice([0.1, 0.5, 0.3, 0.9])),
        "patience": int(rng.integers(0, 5)),
        "cooldown": int(rng.integers(0, 4)),
        "min_lr": float(rng.choice([0.0, 1e-3, 0.05, 0.2])),
    }
    if keras:
        s["min_delta"] = float(rng.choice([0.0, 1e-4, 1e-2, 0.1]))
    else:
        s["threshold_mode"] = str(rng.choice(["rel", "abs"]))
        s["threshold"] = float(rng.choice([0.0, 1e-4, 1e-2, 0.1]))
        s["eps"] = float(rng.choice([1e-8, 1e-3]))
    return s

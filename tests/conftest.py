"""Test-wide settings: headless plotting, Keras on torch, deterministic hypothesis."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("KERAS_BACKEND", "torch")

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci")

try:  # keep two xdist workers from fighting over two cores
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - core tests run without torch
    pass

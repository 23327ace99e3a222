"""The options each example model accepts, and their defaults (torch-free)."""

from __future__ import annotations

from typing import Any

__all__ = ["MODEL_OPTIONS"]

#: The options each model accepts and their defaults.
MODEL_OPTIONS: dict[str, dict[str, Any]] = {
    "digits-mlp": {"hidden": (128, 64), "activation": "relu", "init": "default",
                   "batchnorm": False, "dropout": 0.0, "softmax_output": False},
    "digits-cnn": {"channels": (16, 32), "hidden": 64, "activation": "relu", "init": "default",
                   "batchnorm": False, "dropout": 0.0, "softmax_output": False},
    "mnist1d-conv": {"channels": 32, "activation": "relu", "init": "default",
                     "batchnorm": False, "dropout": 0.0, "softmax_output": False},
    "charlm": {"d_model": 64, "n_heads": 4, "n_layers": 2, "d_ff": 128, "seq_len": 64,
               "dropout": 0.0, "init": "default"},
}

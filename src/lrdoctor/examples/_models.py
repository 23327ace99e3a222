"""The example networks (PyTorch), each built from keyword options so faults can be injected.

Options shared by the classifiers: ``activation`` (``relu``, ``tanh``, ``sigmoid``, ``gelu``,
``leaky_relu``, ``identity``), ``init`` (``default``, ``zeros``, ``normal:<std>``, e.g.
``normal:1.0``, ``xavier``, ``kaiming``), ``batchnorm`` (bool), ``dropout`` (probability),
``softmax_output`` (bool: append a softmax, the classic mistake in front of
``CrossEntropyLoss``).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import nn

from lrdoctor.errors import LRDoctorError
from lrdoctor.examples._options import MODEL_OPTIONS

__all__ = ["CharTransformer", "MODEL_OPTIONS", "SequenceCrossEntropy", "build"]

_ACTS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}

def _act(name: str) -> nn.Module:
    if name not in _ACTS:
        raise LRDoctorError(f"activation must be one of {sorted(_ACTS)}, got {name!r}")
    return _ACTS[name]()


def _apply_init(model: nn.Module, init: str) -> None:
    if init == "default":
        return
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if init == "zeros":
                nn.init.zeros_(m.weight)
            elif init == "xavier":
                nn.init.xavier_uniform_(m.weight)
            elif init == "kaiming":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif init.startswith("normal:"):
                try:
                    std = float(init.split(":", 1)[1])
                except ValueError:
                    raise LRDoctorError(
                        f"init 'normal:<std>' needs a number, got {init!r}") from None
                nn.init.normal_(m.weight, 0.0, std)
            else:
                raise LRDoctorError(
                    f"init must be default, zeros, xavier, kaiming or normal:<std>, got {init!r}")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class _Flatten8x8(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 1, 8, 8)


class _Unsqueeze(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)


def _head(layers: list[nn.Module], softmax_output: bool) -> nn.Sequential:
    if softmax_output:
        layers.append(nn.Softmax(dim=-1))
    return nn.Sequential(*layers)


def digits_mlp(*, hidden: Any, activation: str, init: str, batchnorm: bool, dropout: float,
               softmax_output: bool, n_in: int = 64, n_out: int = 10) -> nn.Module:
    sizes = [n_in, *([hidden] if isinstance(hidden, int) else list(hidden))]
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers.append(nn.Linear(a, b))
        if batchnorm:
            layers.append(nn.BatchNorm1d(b))
        layers.append(_act(activation))
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(sizes[-1], n_out))
    model = _head(layers, softmax_output)
    _apply_init(model, init)
    return model


def digits_cnn(*, channels: Any, hidden: int, activation: str, init: str, batchnorm: bool,
               dropout: float, softmax_output: bool, n_out: int = 10) -> nn.Module:
    c1, c2 = channels
    layers: list[nn.Module] = [_Flatten8x8(), nn.Conv2d(1, c1, 3, padding=1)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(c1))
    layers += [_act(activation), nn.Conv2d(c1, c2, 3, padding=1)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(c2))
    layers += [_act(activation), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c2 * 16, hidden),
               _act(activation)]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, n_out))
    model = _head(layers, softmax_output)
    _apply_init(model, init)
    return model


def mnist1d_conv(*, channels: int, activation: str, init: str, batchnorm: bool, dropout: float,
                 softmax_output: bool, length: int = 40, n_out: int = 10) -> nn.Module:
    """The MNIST-1D paper's small conv net: three stride-2 convolutions and a linear head."""
    layers: list[nn.Module] = [_Unsqueeze()]
    c_in, n = 1, length
    for kernel in (5, 3, 3):
        layers.append(nn.Conv1d(c_in, channels, kernel, stride=2, padding=1))
        n = (n + 2 - kernel) // 2 + 1
        if batchnorm:
            layers.append(nn.BatchNorm1d(channels))
        layers.append(_act(activation))
        c_in = channels
    layers.append(nn.Flatten())
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(channels * n, n_out))
    model = _head(layers, softmax_output)
    _apply_init(model, init)
    return model


class SequenceCrossEntropy(nn.CrossEntropyLoss):
    """Cross-entropy over every position: logits (B, T, V), targets (B, T)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().forward(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


class CharTransformer(nn.Module):
    """A small causal (GPT-style, pre-norm) character transformer; logits of shape (B, T, V)."""

    def __init__(self, *, vocab: int, d_model: int, n_heads: int, n_layers: int, d_ff: int,
                 seq_len: int, dropout: float):
        super().__init__()
        self.seq_len = seq_len
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.zeros(seq_len, d_model))
        nn.init.normal_(self.pos, 0.0, 0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)
        self.register_buffer("mask", torch.triu(torch.full((seq_len, seq_len), -math.inf), 1),
                             persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        h = self.embed(tokens) + self.pos[:t]
        h = self.blocks(h, mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(h))


def charlm(*, d_model: int, n_heads: int, n_layers: int, d_ff: int, seq_len: int,
           dropout: float, init: str, vocab: int = 97) -> nn.Module:
    model = CharTransformer(vocab=vocab, d_model=d_model, n_heads=n_heads, n_layers=n_layers,
                            d_ff=d_ff, seq_len=seq_len, dropout=dropout)
    _apply_init(model, init)
    return model


_BUILDERS = {"digits-mlp": digits_mlp, "digits-cnn": digits_cnn, "mnist1d-conv": mnist1d_conv,
             "charlm": charlm}


def build(name: str, options: dict[str, Any], *, n_classes: int) -> nn.Module:
    """Build ``name``'s network with ``options`` (already validated against MODEL_OPTIONS)."""
    extra = {"vocab": n_classes} if name == "charlm" else {"n_out": n_classes}
    return _BUILDERS[name](**options, **extra)

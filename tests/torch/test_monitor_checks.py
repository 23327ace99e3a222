"""The Monitor's set-up checks: fan-in scaling applies to layers that sum over their inputs."""

from __future__ import annotations

import torch
from torch import nn

from lrdoctor.torch._monitor_checks import check_init, lookup_tables


def _lm(scale: float = 1.0) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(97, 64), nn.Linear(64, 97))
    with torch.no_grad():
        model[1].weight.mul_(scale)
    return model


def test_embedding_default_init_is_not_a_bad_initialization():
    model = _lm()       # nn.Embedding's N(0, 1): std * sqrt(64) = 8, far above the linear band
    params = list(model.named_parameters())
    assert check_init(params) != []                       # what the check said before
    assert check_init(params, skip=lookup_tables(model)) == []


def test_a_huge_linear_layer_next_to_an_embedding_is_still_found():
    model = _lm(scale=50.0)
    (code, _text, data), = check_init(list(model.named_parameters()), skip=lookup_tables(model))
    assert code == "bad-initialization" and list(data["gains"]) == ["1.weight"]

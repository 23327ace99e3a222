"""The Monitor's one-off setup checks: what goes to the ``meta`` line, the weight scale at
construction (``bad-initialization``) and the first outputs against the targets
(``loss-activation-mismatch``). Each check returns the events to write as
``(code, message, data)``."""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from typing import Any

import torch
from torch import nn

__all__ = ["check_init", "check_outputs", "describe", "lookup_tables"]

Event = tuple[str, str, dict[str, Any]]


def describe(model: nn.Module, optimizer: Any, params: list[tuple[str, torch.Tensor]],
             layers: list[str], activations: list[str]) -> dict[str, Any]:
    """The meta line: model, optimizer and its groups' hyper-parameters, dropout rates, the
    number of outputs, parameters, layers and activation modules."""
    groups = [{k: v for k, v in g.items() if k != "params" and isinstance(v, (int, float, str,
               bool, tuple, list, type(None)))} for g in optimizer.param_groups]
    dropouts = [float(m.p) for m in model.modules()
                if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout))]
    n_out = None
    last = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    if last and isinstance(last[-1], nn.Linear):
        n_out = int(last[-1].out_features)
    return {"model": type(model).__name__, "optimizer": type(optimizer).__name__,
            "param_groups": groups, "dropout": dropouts, "n_outputs": n_out,
            "n_params": int(sum(p.numel() for _, p in params)),
            "layers": layers, "activations": activations, "created": time.time()}


def lookup_tables(model: nn.Module) -> set[int]:
    """The ids of lookup-table weights (``nn.Embedding``, ``nn.EmbeddingBag``): a row is read,
    not multiplied into a sum over fan-in, so fan-in scaling does not apply (their default
    init is N(0, 1))."""
    return {id(m.weight) for m in model.modules()
            if isinstance(m, (nn.Embedding, nn.EmbeddingBag))}


def check_init(params: list[tuple[str, torch.Tensor]], *,
               skip: Collection[int] = ()) -> list[Event]:
    """Weight std × sqrt(fan_in): ~0.3-1.5 for the usual inits; far outside is a mistake.
    ``skip``: ids of weights the rule does not apply to (:func:`lookup_tables`)."""
    bad = {}
    for name, p in params:
        if (p.dim() < 2 or not name.endswith("weight") or p.numel() < 64
                or id(p) in skip):
            continue
        fan_in = p[0].numel()
        gain = float(p.detach().float().std()) * math.sqrt(fan_in)
        if not math.isfinite(gain) or gain > 4.0 or gain < 0.05:
            bad[name] = round(gain, 4)
    if not bad:
        return []
    return [("bad-initialization",
             "weight scale off fan-in scaling (std*sqrt(fan_in) should be ~0.5-1.5): "
             + ", ".join(f"{k}={v:g}" for k, v in list(bad.items())[:4]), {"gains": bad})]


def check_outputs(out: Any, targets: Any, loss_fn: Any) -> list[Event]:
    """Are the first outputs probabilities (or squashed) fed to a class-index loss, and do the
    targets fit the number of outputs?"""
    if not isinstance(out, torch.Tensor) or out.dim() < 2 or not out.is_floating_point():
        return []
    out = out.float()
    lossname = type(loss_fn).__name__ if loss_fn is not None else None
    class_targets = isinstance(targets, torch.Tensor) and not targets.is_floating_point()
    if not class_targets or lossname in ("BCELoss", "NLLLoss", "MSELoss", "L1Loss"):
        return []
    events: list[Event] = []
    lo, hi = (float(v) for v in torch.aminmax(out))
    n_classes = out.shape[1]
    data = {"min": lo, "max": hi, "n_outputs": n_classes}
    if lo >= 0.0 and hi <= 1.0:
        sums = out.sum(dim=1)
        if torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
            events.append(("loss-activation-mismatch",
                           ("model outputs are probabilities (rows sum to 1) fed to a class-index "
                           "loss; CrossEntropyLoss applies log-softmax itself"), data))
        elif n_classes > 1:
            events.append(("loss-activation-mismatch",
                           ("model outputs are squashed into [0, 1] (sigmoid) but the targets are "
                           "class indices; CrossEntropyLoss wants raw logits"), data))
    if targets.numel():
        tmin, tmax = int(targets.min()), int(targets.max())
        if tmin < 0 or (n_classes > 1 and tmax >= n_classes and out.dim() == 2):
            events.append(("loss-activation-mismatch",
                           f"targets range {tmin}..{tmax} but the model has {n_classes} outputs",
                           {"target_min": tmin, "target_max": tmax, "n_outputs": n_classes}))
    return events


#: The settings of a plateau scheduler worth logging (lrdoctor's PlateauLR and torch's class).
_PLATEAU_KNOBS = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown")


def scheduler_settings(scheduler: Any, metric: str | None = None) -> tuple[str, dict[str, Any]]:
    """A one-line description and the data of an LR scheduler's settings event.

    ``monitor`` (the watched metric's name) is ``metric``, else the scheduler's own
    ``monitor`` attribute (PlateauLR's), else absent: torch's ``ReduceLROnPlateau`` does not know
    which metric it is fed.
    """
    kind = type(scheduler).__name__
    data: dict[str, Any] = {"kind": kind}
    for knob in _PLATEAU_KNOBS:
        value = getattr(scheduler, knob, None)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            data[knob] = value
    name = metric if metric is not None else getattr(scheduler, "monitor", None)
    if isinstance(name, str):
        data["monitor"] = name
    schedules = getattr(scheduler, "schedules", None)
    if schedules:
        data["schedule"] = schedules[0].to_spec()
    shown = ", ".join(f"{k}={data[k]!r}" for k in ("mode", "monitor", "patience", "factor")
                      if k in data)
    text = f"{kind}({shown})" + (f" on {data['schedule']}" if "schedule" in data else "")
    return text, data

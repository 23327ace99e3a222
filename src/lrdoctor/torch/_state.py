"""Training state copied and put back bit for bit: the random generators (torch CPU and CUDA,
Python, numpy) and, for the LR finder, everything a range test changes in place.

The finder's :class:`Snapshot` copies tensors in place (parameters, gradients, buffers, train
modes, optimizer state and groups, a GradScaler's attributes) so that a model wrapped by DDP or
holding views keeps its identity; :class:`lrdoctor.torch.Guard` keeps ``state_dict`` copies at a
cadence and shares :func:`capture_rng` / :func:`restore_rng`.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import numpy as np
import torch

__all__ = ["Snapshot", "capture_rng", "restore_rng"]


def capture_rng() -> dict[str, Any]:
    """The state of every random generator training draws from (CUDA only when initialized)."""
    rng: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                           "numpy": np.random.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng` returned."""
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    if "cuda" in rng:
        torch.cuda.set_rng_state_all(rng["cuda"])


def _clone(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.detach().clone()
    return copy.deepcopy(v)


class Snapshot:
    """Everything the test changes, copied so :meth:`restore` puts it back bit-exactly."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: Any = None):
        self.model, self.optimizer, self.scaler = model, optimizer, scaler
        seen: set[int] = set()
        params = []
        for p in [*model.parameters(), *(q for g in optimizer.param_groups for q in g["params"])]:
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
        self.params = [(p, p.detach().clone(), None if p.grad is None else p.grad.detach().clone())
                       for p in params]
        self.buffers = [(b, b.detach().clone()) for b in model.buffers()]
        self.modes = [(m, m.training) for m in model.modules()]
        self.opt_state = {p: {k: _clone(v) for k, v in s.items()}
                          for p, s in optimizer.state.items()}
        self.opt_groups = [{k: _clone(v) for k, v in g.items() if k != "params"}
                           for g in optimizer.param_groups]
        self.scaler_attrs = None
        if scaler is not None:
            self.scaler_attrs = {k: _clone(v) for k, v in vars(scaler).items()
                                 if k != "_per_optimizer_states"}
        self.rng = capture_rng()

    def restore(self) -> None:
        with torch.no_grad():
            for p, value, grad in self.params:
                p.copy_(value)
                if grad is None:
                    p.grad = None
                elif p.grad is not None and p.grad.shape == grad.shape:
                    p.grad.copy_(grad)
                else:
                    p.grad = grad.clone()
            for b, value in self.buffers:
                b.copy_(value)
        for m, mode in self.modes:
            m.training = mode
        state = self.optimizer.state
        state.clear()
        for p, s in self.opt_state.items():
            state[p] = {k: _clone(v) for k, v in s.items()}
        for g, saved in zip(self.optimizer.param_groups, self.opt_groups):
            for k in [k for k in g if k != "params" and k not in saved]:
                del g[k]
            for k, v in saved.items():
                g[k] = _clone(v)
        if self.scaler is not None and self.scaler_attrs is not None:
            from collections import defaultdict

            for k, v in self.scaler_attrs.items():
                setattr(self.scaler, k, _clone(v))
            if hasattr(self.scaler, "_per_optimizer_states"):
                self.scaler._per_optimizer_states = defaultdict(_scaler_default_state)
        restore_rng(self.rng)


def _scaler_default_state() -> dict[str, Any]:
    from torch.amp.grad_scaler import OptState

    return {"stage": OptState.READY, "found_inf_per_device": {}}

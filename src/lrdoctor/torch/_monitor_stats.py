"""The Monitor's statistics: first-batch inspection, activation hooks, the every-N step, the
gradient noise scale. Each returns tensors (or :class:`Deferred` values over tensors) for the
row buffer, so nothing here waits for the device (but ``bincount`` sizing its counts on the
first batches): the numbers are read at the next flush.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch import nn

from lrdoctor.torch._monitor_rows import Deferred

__all__ = [
    "NoiseWindow", "RELU_LIKE", "SATURATING", "Snapshot", "activation_hook", "batch_stats",
    "heavy_stats",
]

RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus,
             nn.PReLU, nn.RReLU, nn.SELU, nn.CELU, nn.Hardswish)
SATURATING = (nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardsigmoid, nn.Softsign)
_TANH_LIKE = (nn.Tanh, nn.Hardtanh, nn.Softsign)
_FLOATS = (torch.float32, torch.float64)
_set_grad_enabled = torch._C._set_grad_enabled  # what torch.no_grad() does, without its overhead


# ------------------------------------------------------------------ first batches
def _input_values(n: int, v: list[float]) -> dict[str, float | None]:
    std, mean, lo, hi = v
    return {"input/mean": mean, "input/std": std if n > 1 else 0.0,
            "input/absmax": hi if math.isnan(hi) else max(-lo, hi)}  # NaN stays NaN


def _label_values(n: int, v: list[float]) -> dict[str, float | None]:
    top, mode, *lo = v  # lo: the smallest label when the counts start there
    return {"batch/label_purity": top / n, "batch/label_mode": mode + (lo[0] if lo else 0)}


def batch_stats(inputs: Any, targets: Any, extra: dict[str, Any]) -> None:
    """``input/mean``, ``input/std``, ``input/absmax`` of a float batch; ``batch/label_purity``
    (share of the most common label) and ``batch/label_mode`` of 1-D class-index targets."""
    if isinstance(inputs, torch.Tensor) and inputs.is_floating_point() and inputs.numel():
        x = inputs.detach()
        if x.dtype not in _FLOATS:
            x = x.float()
        std, mean = torch.std_mean(x) if x.numel() > 1 else (x.new_zeros(()), x.mean())
        lo, hi = torch.aminmax(x)
        extra["~input"] = Deferred((std, mean, lo, hi), partial(_input_values, x.numel()))
    if isinstance(targets, torch.Tensor) and not targets.is_floating_point() \
            and targets.dim() == 1 and targets.numel() > 1:
        t = targets.detach()
        if t.dtype == torch.bool:
            t = t.long()
        try:  # class indices are >= 0: count them as they are
            top, mode = torch.bincount(t).max(dim=0)
            extra["~labels"] = Deferred((top, mode), partial(_label_values, t.numel()))
        except RuntimeError:  # negative labels: count them from the smallest
            lo = t.min()
            top, mode = torch.bincount(t - lo).max(dim=0)
            extra["~labels"] = Deferred((top, mode, lo), partial(_label_values, t.numel()))


# ------------------------------------------------------------------ activations
def activation_hook(name: str, module: nn.Module, sink: dict[str, dict[str, Any]]) -> Any:
    """A forward hook that puts the first output's statistics into ``sink[name]``:
    ``act_std``; ``dead_frac`` (share of units, i.e. channels, that are <= 0 over the whole
    batch) for the ReLU family; ``saturation`` (share of outputs within 1% of the limits) for
    sigmoid/tanh-like modules."""
    relu_like = isinstance(module, RELU_LIKE)
    tanh_like = isinstance(module, _TANH_LIKE)

    def hook(_m: nn.Module, _args: Any, out: Any) -> None:
        if name in sink or not isinstance(out, torch.Tensor) or not out.numel():
            return
        o = out.detach()  # a detached tensor: the statistics record no autograd graph
        if o.dtype not in _FLOATS:
            o = o.float()
        stats: dict[str, Any] = {"act_std": o.std() if o.numel() > 1 else 0.0}
        if relu_like and o.dim() >= 2 and o.shape[1] >= 8:  # too few units: no rate
            top = o.amax(dim=0)  # a unit is a feature or a channel: its largest output
            if top.dim() > 1:    # over the batch first (contiguous), then over positions
                top = top.reshape(top.shape[0], -1).amax(dim=1)
            stats["dead_frac"] = torch.mean(top <= 0, dtype=torch.float32)
        elif tanh_like:
            stats["saturation"] = torch.mean(o.abs() > 0.99, dtype=torch.float32)
        elif not relu_like:  # sigmoid-like: within 0.01 of 0 or of 1
            stats["saturation"] = torch.mean((o - 0.5).abs() > 0.49, dtype=torch.float32)
        sink[name] = stats
    return hook


# ------------------------------------------------------------------ every N steps
def _heavy_values(layers: dict[str, tuple[str, str, list[int]]], n_p: int, n_g: int,
                  v: list[float]) -> dict[str, float | None]:
    p, g, u = v[:n_p], v[n_p:n_p + n_g], v[n_p + n_g:]
    hypot = math.hypot
    out: dict[str, float | None] = {"param_norm": hypot(*p)}
    for g_name, u_name, idx in layers.values():
        if g:
            out[g_name] = hypot(*[g[i] for i in idx])
        if u:
            w = hypot(*[p[i] for i in idx])
            if w > 0:
                out[u_name] = hypot(*[u[i] for i in idx]) / w
    out["nonfinite/params"] = float(sum(1 for x in p if not math.isfinite(x)))
    out["nonfinite/grads"] = float(sum(1 for x in g if not math.isfinite(x)))
    return out


def heavy_stats(params: list[torch.Tensor], grad_parts: Any, snapshot: Snapshot | None,
                layers: dict[str, tuple[str, str, list[int]]]) -> Deferred:
    """``param_norm``, ``grad_norm/<layer>``, ``update_ratio/<layer>`` (|Δw|/|w| since
    ``snapshot`` was taken, one step earlier), ``nonfinite/params`` and ``nonfinite/grads``
    (tensors whose norm is not finite). ``grad_parts`` are this step's per-parameter gradient
    norms (reused, not recomputed); ``layers`` maps a layer to its two names and its indices."""
    prev = torch.is_grad_enabled()
    _set_grad_enabled(False)
    try:
        pnorms = torch._foreach_norm(params) if params else []
        unorms = snapshot.update_norms(params) if snapshot is not None else []
    finally:
        _set_grad_enabled(prev)
    gnorms = list(grad_parts) if grad_parts and len(grad_parts) == len(params) else []
    return Deferred([*pnorms, *gnorms, *unorms],
                    partial(_heavy_values, layers, len(pnorms), len(gnorms)))


class Snapshot:
    """A copy of the parameters, to measure the next step's update |Δw| per tensor.

    Its buffers are allocated once and refilled (one fused copy), not cloned every time; a
    parameter that changed shape, dtype or device (``model.to(...)``) gets a new buffer."""

    def __init__(self) -> None:
        self.buffers: list[torch.Tensor] = []
        self.valid = False

    def take(self, params: list[torch.Tensor]) -> None:
        bufs = self.buffers
        if len(bufs) != len(params) or any(
                b.shape != p.shape or b.dtype != p.dtype or b.device != p.device
                for b, p in zip(bufs, params)):
            bufs = self.buffers = [torch.empty_like(p, memory_format=torch.contiguous_format)
                                   for p in params]
        prev = torch.is_grad_enabled()
        _set_grad_enabled(False)
        try:
            torch._foreach_copy_(bufs, params)
        finally:
            _set_grad_enabled(prev)
        self.valid = True

    def update_norms(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """|w_now - w_then| per tensor (under no_grad); [] when no snapshot is pending."""
        if not self.valid or len(self.buffers) != len(params):
            return []
        self.valid = False
        torch._foreach_sub_(self.buffers, params)   # the buffers become -Δw, in place
        return torch._foreach_norm(self.buffers)


# ------------------------------------------------------------------ gradient noise scale
def _noise_values(n_steps: int, n_sum: int, batch: int | None,
                  v: list[float]) -> dict[str, float | None]:
    n = n_steps
    mean_sq = sum(x * x for x in v[:-n_sum]) / n              # E|g_B|^2 = |G|^2 + tr(S)/B
    sq_mean = sum(x * x for x in v[-n_sum:]) / (n * n)       # |mean g|^2 = |G|^2 + tr(S)/(nB)
    trace_over_b = (mean_sq - sq_mean) * n / (n - 1)
    g2 = mean_sq - trace_over_b
    if batch and trace_over_b > 0 and g2 > 0.02 * mean_sq:   # else too noisy to estimate
        return {"noise_scale": batch * trace_over_b / g2, "batch/size": float(batch)}
    return {}


class NoiseWindow:
    """The simple gradient noise scale B·(E|g|²−|E g|²)/|E g|² over ``size`` consecutive steps.

    ``|g|²`` of each step comes from the per-parameter norms the Monitor already has; the
    gradients are summed in place (one fused add a step)."""

    def __init__(self, size: int, buffers: list[torch.Tensor] | None = None):
        self.size = size
        self.buffers = buffers or []   # reused from the previous window where they still fit
        self.started = False
        self.parts: list[torch.Tensor] = []
        self.n = 0
        self.batch: int | None = None
        self.done = False

    def add(self, grads: list[torch.Tensor], grad_parts: Any, inputs: Any) -> Deferred | None:
        """Add one step; the estimate when the window is full (``done`` is then set), else
        None. A step whose gradients do not match the window's abandons it (``done``)."""
        bufs = self.buffers
        if not grads or (self.started and len(grads) != len(bufs)):
            self.done = True
            return None
        prev = torch.is_grad_enabled()
        _set_grad_enabled(False)
        try:
            if not self.started:
                if len(bufs) != len(grads) or any(
                        b.shape != g.shape or b.device != g.device for b, g in zip(bufs, grads)):
                    bufs = self.buffers = [torch.empty_like(g, dtype=torch.float32 if
                                                            g.dtype not in _FLOATS else g.dtype)
                                           for g in grads]
                torch._foreach_copy_(bufs, grads)
                self.started = True
            else:
                torch._foreach_add_(bufs, grads)
        finally:
            _set_grad_enabled(prev)
        self.parts.extend(grad_parts)
        self.n += 1
        if isinstance(inputs, torch.Tensor) and inputs.dim() > 0:
            self.batch = int(inputs.shape[0])
        if self.n < self.size:
            return None
        self.done = True
        sums = torch._foreach_norm(bufs)
        return Deferred([*self.parts, *sums],
                        partial(_noise_values, self.n, len(sums), self.batch))

"""``Monitor``: live training diagnostics from hooks, written as a JSONL log for the doctor.

Call ``monitor.step(loss=..., inputs=x, targets=y)`` after each ``optimizer.step()`` and
``monitor.epoch(val_loss=..., val_accuracy=...)`` after each evaluation (Keras-style names are
mapped to canonical ones). What is recorded:

every step
    ``train/loss``, ``lr/<group>`` (``lr`` when there is one group), ``grad_norm`` (global L2
    norm of the gradients, one fused ``_foreach_norm``).
every ``every`` steps (default 50)
    ``grad_norm/<layer>``, ``update_ratio/<layer>`` (|Δw|/|w| of that step), ``param_norm``,
    ``dead_frac/<layer>`` (ReLU-family units that are zero for the whole batch),
    ``saturation/<layer>`` (sigmoid/tanh outputs within 1% of their limits), ``act_std/<layer>``,
    non-finite values in parameters and gradients (``nonfinite/params``, ``nonfinite/grads``), and
    ``noise_scale`` (the simple gradient noise scale B·(E|g|²−|E g|²)/|E g|² over ``noise_window``
    consecutive steps).
first ``inspect_batches`` steps
    ``input/mean``, ``input/std``, ``input/absmax``, ``batch/label_purity`` (share of the most
    common label in the batch) and ``batch/label_mode``.
once
    setup checks written as events: softmax/sigmoid outputs into a class-index loss, targets
    outside the output range (``loss-activation-mismatch``), weight scale far from fan-in
    scaling (``bad-initialization``); the optimizer, its hyper-parameters, the dropout rates and
    the batch size go to the ``meta`` line.

The file is appended to and flushed at most once a second, at every ``epoch`` and at ``close``,
so a killed run loses at most a second of log. The per-step work is a few scalar syncs; the
heavy statistics run only every ``every`` steps (hooks are attached just for those forwards).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrdoctor.errors import LRDoctorError
from lrdoctor.logs._names import canonical

__all__ = ["Monitor"]

_RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus,
              nn.PReLU, nn.RReLU, nn.SELU, nn.CELU, nn.Hardswish)
_SATURATING = (nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardsigmoid, nn.Softsign)
_PROB_OUT = (nn.Softmax, nn.Sigmoid, nn.Softmax2d)


def _to_floats(tensors: list[torch.Tensor]) -> list[float]:
    """Many 0-d tensors to floats with one device sync (one by one if they cannot be stacked)."""
    if not tensors:
        return []
    try:
        return torch.stack(tensors).float().tolist()
    except RuntimeError:  # mixed dtypes, shapes or devices
        return [float(t) for t in tensors]


def _fmt(v: float) -> str:
    if math.isfinite(v):
        return repr(float(v))
    return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")


def _num(x: Any) -> float:
    if isinstance(x, torch.Tensor):
        return float(x.detach().float().mean()) if x.numel() != 1 else float(x.detach())
    return float(x)


def _step_pre_hook(optimizer: Any, fn: Any) -> Any:
    """Register ``fn`` to run before each step of the real optimizer inside any wrappers
    (accelerate's ``AcceleratedOptimizer`` keeps it in ``.optimizer``); None if none can."""
    target = optimizer
    while not hasattr(target, "_optimizer_step_pre_hooks") and hasattr(target, "optimizer"):
        target = target.optimizer
    try:
        return target.register_step_pre_hook(fn)
    except AttributeError:  # no hook registry: Monitor.step() reads the groups' lr instead
        return None


class Monitor:
    """Record training health live and write it to a JSONL log that ``lrdoctor.logs`` reads.

    >>> # with Monitor(model, optimizer, "run.jsonl") as mon:
    >>> #     for x, y in loader:
    >>> #         ...; optimizer.step(); mon.step(loss=loss, inputs=x, targets=y)
    >>> #     mon.epoch(val_loss=0.3, val_accuracy=0.9)
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 path: str | os.PathLike[str], *, every: int = 50, inspect_batches: int = 20,
                 noise_window: int = 4, loss_fn: Any = None, flush_seconds: float = 1.0):
        if every < 1:
            raise LRDoctorError(f"every must be >= 1, got {every}")
        if inspect_batches < 0:
            raise LRDoctorError(f"inspect_batches must be >= 0, got {inspect_batches}")
        self.model, self.optimizer = model, optimizer
        self.path = Path(path)
        self.every, self.inspect_batches = every, inspect_batches
        self.noise_window = max(0, noise_window)
        self.loss_fn = loss_fn
        self.flush_seconds = flush_seconds
        self.global_step = 0
        self.epoch_count = 0
        self._buffer: list[str] = []
        self._pending: list[tuple[int, int, dict[str, Any]]] = []
        self._last_flush = time.monotonic()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._closed = False
        self._params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self._plist = [p for _, p in self._params]
        self._layers = self._group_layers()
        self._act_modules = [(n, m) for n, m in model.named_modules()
                             if isinstance(m, _RELU_LIKE + _SATURATING)]
        self._hooks: list[Any] = []
        self._act_stats: dict[str, dict[str, float]] = {}
        self._snapshot: list[torch.Tensor] | None = None
        self._noise: dict[str, Any] | None = None
        self._out_hook = model.register_forward_hook(self._inspect_output)
        # the lr each optimizer step used, taken just before it: a scheduler stepped between
        # optimizer.step() and Monitor.step() has already moved the groups to the next value
        self._used_lrs: list[float] | None = None
        self._lr_hook = _step_pre_hook(optimizer, self._remember_lrs)
        self._seen_nonfinite = False
        self._write({"type": "meta", "version": 1, "every": every, **self._describe()})
        self._check_init()
        if self._act_modules:
            self._arm()  # the first forward is measured (bad initialisation shows at step 0)

    # ----------------------------------------------------------------- public API
    def step(self, loss: Any = None, *, inputs: Any = None, targets: Any = None,
             **metrics: Any) -> None:
        """Record one optimizer step (call it after ``optimizer.step()``)."""
        if self._closed:
            raise LRDoctorError("Monitor.step() after close(); create a new Monitor")
        k = self.global_step
        values: dict[str, Any] = {}
        if loss is not None:
            values["train/loss"] = loss.detach() if isinstance(loss, torch.Tensor) else float(loss)
        groups = self.optimizer.param_groups
        # the lr the last optimizer step used; the groups' own if no step ran (e.g. skipped)
        lrs = self._used_lrs if self._used_lrs is not None else [float(g["lr"]) for g in groups]
        self._used_lrs = None
        if len(groups) == 1:
            values["lr"] = lrs[0]
        else:
            for i, (g, lr) in enumerate(zip(groups, lrs)):
                values[f"lr/{g.get('name', i)}"] = lr
        grads = [p.grad for p in self._plist if p.grad is not None]
        if grads:  # per-tensor norms stay tensors until the next flush: no device sync per step
            values["grad_norm"] = tuple(torch._foreach_norm(grads))
        for key, value in metrics.items():
            name = canonical(key)
            if name is not None:
                values[name] = _num(value)
        if k < self.inspect_batches:
            self._batch_stats(inputs, targets, values)
        if k % self.every == 0:
            self._heavy(values, grads)
        if self._noise is not None:
            self._noise_step(grads, inputs, values)
        self._pending.append((k, self.epoch_count, values))
        self.global_step = k + 1
        nxt = self.global_step
        if nxt % self.every == 0:
            self._arm()
            self._snapshot = [p.detach().clone() for _, p in self._params]
        elif self._hooks and nxt % self.every != 0:
            self._disarm()
        if nxt % self.every == 1 and self.noise_window > 1 and grads and nxt > 1:
            self._noise = {"sum": None, "sq": 0.0, "n": 0, "batch": None}
        if time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def epoch(self, **metrics: Any) -> None:
        """Record evaluation results (``val_loss=…``, ``val_accuracy=…``, ``accuracy=…``)."""
        self.epoch_count += 1
        values = {}
        for key, value in metrics.items():
            name = canonical(key)
            if name is not None:
                values[name] = _num(value)
        if "train/loss" in values:  # an epoch mean next to per-step losses
            values["train/loss_epoch"] = values.pop("train/loss")
        self._pending.append((max(self.global_step - 1, 0), self.epoch_count, values))
        self.flush()

    def event(self, code: str, message: str, **data: Any) -> None:
        """Write a free-form event (e.g. ``monitor.event("note", "switched to fp16")``)."""
        self._event(code, message, data)

    def flush(self) -> None:
        """Write what is buffered (converting pending tensors with one device sync)."""
        if self._pending:
            self._drain()
        if self._buffer and not self._closed:
            self._file.write("".join(self._buffer))
            self._file.flush()
            self._buffer.clear()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flush, remove every hook and close the file (idempotent)."""
        if self._closed:
            return
        self._disarm()
        self._out_hook.remove()
        if self._lr_hook is not None:
            self._lr_hook.remove()
        self.flush()
        self._file.close()
        self._closed = True

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # ----------------------------------------------------------------- internals
    def _remember_lrs(self, optimizer: torch.optim.Optimizer, *_: Any) -> None:
        self._used_lrs = [float(g["lr"]) for g in optimizer.param_groups]

    def _drain(self) -> None:
        pending, self._pending = self._pending, []
        tensors: list[torch.Tensor] = []
        for _, _, vals in pending:
            for v in vals.values():
                if isinstance(v, tuple):
                    tensors.extend(v)
                elif isinstance(v, torch.Tensor):
                    tensors.append(v)
        converted = iter(_to_floats(tensors))
        for k, epoch, vals in pending:
            line = []
            for name, v in vals.items():
                if isinstance(v, tuple):
                    f = math.sqrt(sum(x * x for x in (next(converted) for _ in v)))
                elif isinstance(v, torch.Tensor):
                    f = next(converted)
                else:
                    f = v
                if not math.isfinite(f) and not self._seen_nonfinite:
                    self._seen_nonfinite = True
                    self._event("nonfinite", f"non-finite {name} first seen at step {k}",
                                {"name": name, "step": k})
                line.append(f"{json.dumps(name)}: {_fmt(f)}")
            self._buffer.append(f'{{"type": "scalars", "step": {k}, "epoch": {epoch}, '
                                f'"values": {{{", ".join(line)}}}}}\n')

    def _write(self, record: dict[str, Any]) -> None:
        self._buffer.append(json.dumps(record, allow_nan=True) + "\n")

    def _event(self, code: str, message: str, data: dict[str, Any] | None = None) -> None:
        if self._pending and code != "nonfinite":
            self._drain()
        self._write({"type": "event", "step": self.global_step, "code": code,
                     "message": message, "data": data or {}})

    def _group_layers(self) -> dict[str, list[int]]:
        layers: dict[str, list[int]] = {}
        for i, (name, _) in enumerate(self._params):
            layer = name.rsplit(".", 1)[0] if "." in name else name
            layers.setdefault(layer, []).append(i)
        return layers

    def _describe(self) -> dict[str, Any]:
        opt = self.optimizer
        groups = [{k: v for k, v in g.items() if k != "params" and isinstance(v, (int, float, str,
                   bool, tuple, list, type(None)))} for g in opt.param_groups]
        dropouts = [float(m.p) for m in self.model.modules()
                    if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout))]
        n_out = None
        last = [m for m in self.model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
        if last and isinstance(last[-1], nn.Linear):
            n_out = int(last[-1].out_features)
        return {"model": type(self.model).__name__, "optimizer": type(opt).__name__,
                "param_groups": groups, "dropout": dropouts, "n_outputs": n_out,
                "n_params": int(sum(p.numel() for _, p in self._params)),
                "layers": list(self._layers), "activations": [n for n, _ in self._act_modules],
                "created": time.time()}

    def _check_init(self) -> None:
        """Weight std × sqrt(fan_in): ~0.3-1.5 for the usual inits; far outside is a mistake."""
        bad = {}
        for name, p in self._params:
            if p.dim() < 2 or not name.endswith("weight") or p.numel() < 64:
                continue
            fan_in = p[0].numel()
            gain = float(p.detach().float().std()) * math.sqrt(fan_in)
            if not math.isfinite(gain) or gain > 4.0 or gain < 0.05:
                bad[name] = round(gain, 4)
        if bad:
            self._event("bad-initialization",
                        "weight scale off fan-in scaling (std*sqrt(fan_in) should be ~0.5-1.5): "
                        + ", ".join(f"{k}={v:g}" for k, v in list(bad.items())[:4]),
                        {"gains": bad})

    def _inspect_output(self, module: nn.Module, args: Any, output: Any) -> None:
        """First forward only: are the outputs probabilities fed to a class-index loss?"""
        self._out_hook.remove()
        self._first_output = output.detach() if isinstance(output, torch.Tensor) else None

    def _check_outputs(self, targets: Any) -> None:
        out = getattr(self, "_first_output", None)
        self._first_output = None
        if out is None or out.dim() < 2 or not out.is_floating_point():
            return
        out = out.float()
        lossname = type(self.loss_fn).__name__ if self.loss_fn is not None else None
        class_targets = isinstance(targets, torch.Tensor) and not targets.is_floating_point()
        if not class_targets or lossname in ("BCELoss", "NLLLoss", "MSELoss", "L1Loss"):
            return
        lo, hi = float(out.min()), float(out.max())
        n_classes = out.shape[1]
        data = {"min": lo, "max": hi, "n_outputs": n_classes}
        if lo >= 0.0 and hi <= 1.0:
            sums = out.sum(dim=1)
            if torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
                self._event("loss-activation-mismatch",
                            "model outputs are probabilities (rows sum to 1) fed to a class-index "
                            "loss; CrossEntropyLoss applies log-softmax itself", data)
            elif n_classes > 1:
                self._event("loss-activation-mismatch",
                            "model outputs are squashed into [0, 1] (sigmoid) but the targets are "
                            "class indices; CrossEntropyLoss wants raw logits", data)
        if targets.numel():
            tmin, tmax = int(targets.min()), int(targets.max())
            if tmin < 0 or (n_classes > 1 and tmax >= n_classes and out.dim() == 2):
                self._event("loss-activation-mismatch",
                            f"targets range {tmin}..{tmax} but the model has {n_classes} outputs",
                            {"target_min": tmin, "target_max": tmax, "n_outputs": n_classes})

    def _batch_stats(self, inputs: Any, targets: Any, values: dict[str, float]) -> None:
        if self.global_step == 0:
            self._check_outputs(targets)
        with torch.no_grad():
            if isinstance(inputs, torch.Tensor) and inputs.is_floating_point() and inputs.numel():
                x = inputs.detach().float()
                std = x.std() if x.numel() > 1 else x.new_zeros(())
                mean, std, amax = torch.stack([x.mean(), std, x.abs().max()]).tolist()
                values["input/mean"], values["input/std"], values["input/absmax"] = mean, std, amax
            if isinstance(targets, torch.Tensor) and not targets.is_floating_point() \
                    and targets.dim() == 1 and targets.numel() > 1:
                t = targets.detach().long().flatten()
                t = t - t.min()
                top, mode = torch.bincount(t).max(dim=0)
                values["batch/label_purity"] = float(top) / t.numel()
                values["batch/label_mode"] = float(mode)

    def _arm(self) -> None:
        if self._hooks:
            return
        self._act_stats.clear()
        for name, m in self._act_modules:
            self._hooks.append(m.register_forward_hook(self._make_hook(name, m)))

    def _disarm(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    def _make_hook(self, name: str, module: nn.Module):
        relu_like = isinstance(module, _RELU_LIKE)
        tanh_like = isinstance(module, (nn.Tanh, nn.Hardtanh, nn.Softsign))

        def hook(_m: nn.Module, _args: Any, out: Any) -> None:
            if not isinstance(out, torch.Tensor) or name in self._act_stats:
                return
            with torch.no_grad():
                o = out.detach().float()
                stats = {"act_std": float(o.std()) if o.numel() > 1 else 0.0}
                if relu_like and o.dim() >= 2 and o.shape[1] >= 8:  # too few units: no rate
                    units = o.transpose(0, 1).reshape(o.shape[1], -1) if o.dim() > 2 else o.t()
                    stats["dead_frac"] = float((units <= 0).all(dim=1).float().mean())
                elif tanh_like:
                    stats["saturation"] = float((o.abs() > 0.99).float().mean())
                elif not relu_like:
                    stats["saturation"] = float(((o < 0.01) | (o > 0.99)).float().mean())
                self._act_stats[name] = stats
        return hook

    def _heavy(self, values: dict[str, float], grads: list[torch.Tensor]) -> None:
        with torch.no_grad():
            params = [p for _, p in self._params]
            pnorms = torch.stack(torch._foreach_norm([p.detach() for p in params])).tolist() \
                if params else []
            gnorms: list[float] = []
            if grads and len(grads) == len(params):
                gnorms = torch.stack(torch._foreach_norm(grads)).tolist()
            unorms: list[float] = []
            if self._snapshot is not None and len(self._snapshot) == len(params):
                diffs = torch._foreach_sub([p.detach() for p in params], self._snapshot)
                unorms = torch.stack(torch._foreach_norm(diffs)).tolist()
            self._snapshot = None
        values["param_norm"] = math.sqrt(sum(v * v for v in pnorms))
        for layer, idx in self._layers.items():
            w = math.sqrt(sum(pnorms[i] ** 2 for i in idx))
            if gnorms:
                values[f"grad_norm/{layer}"] = math.sqrt(sum(gnorms[i] ** 2 for i in idx))
            if unorms and w > 0:
                values[f"update_ratio/{layer}"] = math.sqrt(sum(unorms[i] ** 2 for i in idx)) / w
        bad_p = sum(1 for v in pnorms if not math.isfinite(v))
        bad_g = sum(1 for v in gnorms if not math.isfinite(v))
        values["nonfinite/params"] = float(bad_p)
        values["nonfinite/grads"] = float(bad_g)
        for name, stats in self._act_stats.items():
            for key, v in stats.items():
                values[f"{key}/{name}"] = v
        self._act_stats.clear()
        self._disarm()

    def _noise_step(self, grads: list[torch.Tensor], inputs: Any, values: dict[str, float]) -> None:
        st = self._noise
        assert st is not None
        if not grads:
            self._noise = None
            return
        with torch.no_grad():
            flat = torch.cat([g.detach().reshape(-1).float() for g in grads])
            st["sum"] = flat.clone() if st["sum"] is None else st["sum"].add_(flat)
            st["sq"] += float(flat.dot(flat))
        st["n"] += 1
        if isinstance(inputs, torch.Tensor) and inputs.dim() > 0:
            st["batch"] = int(inputs.shape[0])
        if st["n"] >= self.noise_window:
            n, b = st["n"], st["batch"]
            mean_sq = st["sq"] / n                    # E|g_B|^2 = |G|^2 + tr(S)/B
            sq_mean = float(st["sum"].dot(st["sum"])) / (n * n)  # |mean g|^2 = |G|^2 + tr(S)/(nB)
            trace_over_b = (mean_sq - sq_mean) * n / (n - 1)
            g2 = mean_sq - trace_over_b
            if b and trace_over_b > 0 and g2 > 0.02 * mean_sq:  # else too noisy to estimate
                values["noise_scale"] = b * trace_over_b / g2
                values["batch/size"] = float(b)
            self._noise = None

"""The Monitor's row buffer: values stay tensors until a flush turns them into JSONL lines.

A buffered row is ``(step, epoch, loss, lrs, grad_norm, extra)``: ``loss`` a float or a 0-d
tensor, ``lrs`` a list of floats (or None; consecutive rows share one list while the rates stay
the same), ``grad_norm`` a float or the per-tensor gradient norms (0-d tensors) whose L2
combination it is (or None), ``extra`` None or a dict of further values. An extra
value is a float, a 0-d tensor, a list/tuple of 0-d tensors (logged as their L2 combination) or
a :class:`Deferred` (several values computed from tensors at flush time). :func:`drain` converts
every tensor of every pending row with one device sync and formats the lines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from lrdoctor.logs._names import canonical

try:  # the fast extra: one call writes a run of floats (about 30 ns each, repr about 400 ns)
    from orjson import dumps as _dumps
except ImportError:  # pragma: no cover - without the fast extra
    _dumps = None

__all__ = ["Deferred", "canonical_name", "drain", "metric_value", "send_rows", "texts", "to_floats"]

_Tensor = torch.Tensor
_item = torch.Tensor.item

#: the canonical name of each metric name passed to step() or epoch() (a run has few)
_CANONICAL: dict[str, str | None] = {}


def canonical_name(key: str) -> str | None:
    """:func:`canonical`, cached (it splits and looks up the name: tens of µs between training
    steps, where its code is out of the caches)."""
    try:
        return _CANONICAL[key]
    except KeyError:
        name = canonical(key)
        if len(_CANONICAL) < 4096:
            _CANONICAL[key] = name
        return name


def metric_value(x: Any) -> Any:
    """A float, or a 0-d tensor (the mean of a larger one) that the next flush reads."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dim() == 0:
            return x
        return x.reshape(()) if x.numel() == 1 else x.float().mean()
    return float(x)


def send_rows(lines: list[str], sink: Callable[[int, dict[str, float]], None]) -> None:
    """Hand each ``scalars`` line to ``sink(step, values)`` (the Monitor's other lines are not
    metrics)."""
    for line in lines:
        if line.startswith('{"type": "scalars"'):
            row = json.loads(line)
            sink(int(row["step"]), row["values"])


class Deferred:
    """Values computed at flush time: ``fn(floats of tensors) -> {name: value or None}``.

    The key a Deferred is stored under in a row's ``extra`` is only a label; its own names are
    the ones written (``None`` values are left out)."""

    __slots__ = ("fn", "tensors")

    def __init__(self, tensors: Sequence[torch.Tensor],
                 fn: Callable[[list[float]], dict[str, float | None]]):
        self.tensors, self.fn = tensors, fn


def to_floats(tensors: list[torch.Tensor]) -> list[float]:
    """Many 0-d tensors to floats with one device sync (one by one on the CPU, where an
    ``item()`` is cheaper than a ``stack``, or when they cannot be stacked)."""
    if not tensors:
        return []
    if tensors[0].is_cpu:
        return list(map(_item, tensors))
    try:
        return torch.stack([t.reshape(()) for t in tensors]).tolist()
    except RuntimeError:  # mixed dtypes or devices
        return list(map(_item, tensors))


_KEYS: dict[str, str] = {}


def _key(name: str) -> str:
    """``"name": `` (JSON-escaped), cached: the names of a run are few."""
    k = _KEYS.get(name)
    if k is None:
        k = _KEYS[name] = f"{json.dumps(name)}: "
    return k


def _num(v: float) -> str:
    if v - v == 0:  # finite (NaN - NaN and inf - inf are NaN)
        return repr(float(v))
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def texts(values: list[float]) -> list[str]:
    """``repr`` of each finite float, all at once: orjson writes the same shortest round-trip
    digits, but spells a negative exponent differently (``1e-5`` or ``0.00001`` for ``1e-05``);
    those few are written with ``repr``. Without orjson, ``repr`` of each."""
    if _dumps is None or len(values) < 8:
        return list(map(repr, values))
    text = _dumps(values).decode()
    out = text[1:-1].split(",")
    if "e-" in text or "0.0000" in text:  # one of them is below 1e-4
        for i, t in enumerate(out):
            if "e-" in t or t.startswith(("0.0000", "-0.0000")):
                out[i] = repr(values[i])
    return out


def drain(rows: list[tuple[Any, ...]], out: list[str], lr_names: Callable[[int], list[str]],
          nonfinite: Callable[[str, int], None]) -> None:
    """Append the JSONL lines of ``rows`` to ``out``. ``nonfinite(name, step)`` is told about
    each non-finite value before its row's line is appended (the caller writes an event line for
    the first); ``lr_names(n)`` names ``n`` learning rates."""
    tensors: list[torch.Tensor] = []
    for _, _, loss, _, gnorm, extra in rows:
        if gnorm is None and extra is None and loss.__class__ is float:  # the common row
            continue
        if loss.__class__ is not float and isinstance(loss, _Tensor):
            tensors.append(loss)
        if gnorm.__class__ is tuple or gnorm.__class__ is list:
            tensors.extend(gnorm)
        if extra:
            for v in extra.values():
                if isinstance(v, _Tensor):
                    tensors.append(v)
                elif isinstance(v, (list, tuple)):
                    tensors.extend(v)
                elif isinstance(v, Deferred):
                    tensors.extend(v.tensors)
    floats = to_floats(tensors)
    pos = 0
    last_lrs: list[float] | None = None
    lr_text, names = "", []
    hypot, isfinite = math.hypot, math.isfinite
    # the common rows (loss, lr and maybe grad_norm, all finite) are written at the end, their
    # numbers formatted together: (place in out, step, epoch, loss, lr text, grad_norm or None)
    common: list[tuple[int, int, int, float, str, float | None]] = []
    for k, epoch, loss, lrs, g, extra in rows:
        if loss.__class__ is not float and isinstance(loss, _Tensor):
            loss = floats[pos]
            pos += 1
        if g.__class__ is tuple or g.__class__ is list:
            n = len(g)
            g = hypot(*floats[pos:pos + n])
            pos += n
        if lrs is not last_lrs and lrs:  # rows share the list while the rates stay the same
            last_lrs, names = lrs, lr_names(len(lrs))
            lr_text = ", ".join(_key(n) + _num(v) for n, v in zip(names, lrs))
            for n, v in zip(names, lrs):
                if not isfinite(v):
                    nonfinite(n, k)
        if extra is None and lrs and loss is not None and loss - loss == 0 \
                and (g is None or g - g == 0):  # a common row: its line is written below
            common.append((len(out), k, epoch, loss, lr_text, g))
            out.append("")
            continue
        vals: dict[str, float | None] = {}
        if extra:
            for name, v in extra.items():
                if isinstance(v, _Tensor):
                    vals[name] = floats[pos]
                    pos += 1
                elif isinstance(v, (list, tuple)):
                    vals[name] = hypot(*floats[pos:pos + len(v)])
                    pos += len(v)
                elif isinstance(v, Deferred):
                    n = len(v.tensors)
                    vals.update(v.fn(floats[pos:pos + n]))
                    pos += n
                else:
                    vals[name] = v
        body = []
        if loss is not None and "train/loss" not in vals:  # a metric of the same name wins
            if not isfinite(loss):
                nonfinite("train/loss", k)
            body.append(f'"train/loss": {_num(loss)}')
        if lrs:
            if vals and any(n in vals for n in names):
                body.extend(_key(n) + _num(v) for n, v in zip(names, lrs) if n not in vals)
            else:
                body.append(lr_text)
        if g is not None and "grad_norm" not in vals:
            if not isfinite(g):
                nonfinite("grad_norm", k)
            body.append(f'"grad_norm": {_num(g)}')
        for name, v in vals.items():
            if v is None:
                continue
            if not isfinite(v):
                nonfinite(name, k)
            body.append(_key(name) + _num(v))
        out.append(f'{{"type": "scalars", "step": {k}, "epoch": {epoch}, '
                   f'"values": {{{", ".join(body)}}}}}\n')
    if common:
        _write_common(common, out)


def _write_common(common: list[tuple[int, int, int, float, str, float | None]],
                  out: list[str]) -> None:
    """Fill the places of the common rows in ``out`` with their lines."""
    losses = texts([c[3] for c in common])
    norms = iter(texts([c[5] for c in common if c[5] is not None]))
    for (i, k, epoch, _, lr_text, g), loss in zip(common, losses):
        if g is None:  # between sampled steps
            out[i] = (f'{{"type": "scalars", "step": {k}, "epoch": {epoch}, "values": '
                      f'{{"train/loss": {loss}, {lr_text}}}}}\n')
        else:
            out[i] = (f'{{"type": "scalars", "step": {k}, "epoch": {epoch}, "values": '
                      f'{{"train/loss": {loss}, {lr_text}, "grad_norm": {next(norms)}}}}}\n')

"""``Monitor``: live training diagnostics from hooks, written as a JSONL log for the doctor.

Call ``monitor.step(loss=..., inputs=x, targets=y)`` after each ``optimizer.step()`` and
``monitor.epoch(val_loss=..., val_accuracy=...)`` after each evaluation (Keras-style names are
mapped to canonical ones). What is recorded:

every step
    ``train/loss``, ``lr/<group>`` (``lr`` when there is one group) and the metrics passed to
    ``step``; every logged value is checked for NaN/Inf (the first one is written as a
    ``nonfinite`` event naming its step).
sampled steps (on a time budget, ``budget=0.01`` of the step time by default, see
:mod:`lrdoctor.torch._monitor_cadence`; always the first 5 steps and the first step after each
``epoch``; never more than ``every`` steps apart)
    ``grad_norm`` (global L2 norm of the gradients, one fused ``_foreach_norm``).
heavy steps (step 0, then ``every`` steps apart or more, as the budget allows; default 50)
    ``grad_norm/<layer>``, ``update_ratio/<layer>`` (|Δw|/|w| of that step), ``param_norm``,
    ``dead_frac/<layer>`` (ReLU-family units that are zero for the whole batch),
    ``saturation/<layer>`` (sigmoid/tanh outputs within 1% of their limits), ``act_std/<layer>``,
    non-finite values in parameters and gradients (``nonfinite/params``, ``nonfinite/grads``), and
    ``noise_scale`` (the simple gradient noise scale B·(E|g|²−|E g|²)/|E g|² over ``noise_window``
    consecutive steps).
sampled steps among the first ``inspect_batches``
    ``input/mean``, ``input/std``, ``input/absmax``, ``batch/label_purity`` (share of the most
    common label in the batch) and ``batch/label_mode``.
once
    setup checks written as events: softmax/sigmoid outputs into a class-index loss, targets
    outside the output range (``loss-activation-mismatch``), weight scale far from fan-in
    scaling (``bad-initialization``); the optimizer, its hyper-parameters, the dropout rates and
    the model's output count go to the ``meta`` line.

A non-finite gradient on a step that is not sampled shows in the next step's loss (that step
made the weights NaN/Inf), which is checked every step. ``budget=None`` turns the sampling off:
a gradient norm every step, heavy steps exactly every ``every`` steps, each of the first
``inspect_batches`` batches inspected.

The file is appended to and flushed at most once a second, at an ``epoch`` end at least 0.5 s
after the previous flush, and at ``close``, so a killed run loses at most a second of log.
``sink(step, values)``, when given, is handed each scalars row as it is written (at each flush;
the same canonical names and values as the file), e.g. to log them to MLflow or W&B too
(docs/logs.md). Between flushes nothing waits for the device (after the one-off checks at
construction and on the first batch): values stay 0-d tensors in a row buffer, and a flush
converts them all with one sync and formats the lines. A plain step - not sampled, not heavy,
not next to one - takes a short path: a tuple appended to the buffer; a plain sampled step adds
one fused ``_foreach_norm`` over the gradients. A heavy step's activation hooks are attached
just for its forward, and it reuses its per-tensor gradient norms for ``grad_norm/<layer>``.
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from typing_extensions import Self

from lrdoctor.errors import LRDoctorError
from lrdoctor.journal import Journal
from lrdoctor.torch._monitor_cadence import Cadence, clock
from lrdoctor.torch._monitor_checks import (
    check_init,
    check_outputs,
    describe,
    lookup_tables,
    scheduler_settings,
)
from lrdoctor.torch._monitor_rows import canonical_name, drain, metric_value, send_rows
from lrdoctor.torch._monitor_stats import (
    RELU_LIKE,
    SATURATING,
    NoiseWindow,
    Snapshot,
    activation_hook,
    batch_stats,
    heavy_stats,
)

__all__ = ["Monitor"]

_grad_of = operator.attrgetter("grad")
_NEVER = 1 << 62
#: an epoch end flushes when the last flush is at least this old (a flush costs ~0.2 ms: short
#: epochs would otherwise pay it many times a second)
_EPOCH_FLUSH_S = 0.5
_monotonic = time.monotonic


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
                 noise_window: int = 4, loss_fn: Any = None, flush_seconds: float = 1.0,
                 sink: Callable[[int, dict[str, float]], None] | None = None,
                 budget: float | None = 0.01):
        if every < 1:
            raise LRDoctorError(f"every must be >= 1, got {every}")
        if budget is not None and not 0 < budget <= 1:
            raise LRDoctorError(f"budget must be in (0, 1] (a share of the step time) or None "
                                f"(no sampling), got {budget}")
        if inspect_batches < 0:
            raise LRDoctorError(f"inspect_batches must be >= 0, got {inspect_batches}")
        self.model, self.optimizer = model, optimizer
        self.path = Path(path)
        self.every, self.inspect_batches = every, inspect_batches
        self.noise_window = max(0, noise_window)
        self.loss_fn = loss_fn
        self._flush_s = flush_seconds
        self.sink = sink
        self.budget = budget
        self._cadence = Cadence(budget, every)
        self._heavy_cost = 0.0  # seconds of the heavy step under way, its hooks and window
        self._heavy_from = 0    # that heavy step (step 0 is one)
        self._first = True
        self.global_step = 0
        self.epoch_count = 0
        # step() takes its short path for global_step in [_fast_from, _due): see _step
        self._fast_from = self._due = 0
        # (step, epoch, loss, lrs, grad norm parts, extra values): see _monitor_rows
        self._rows: list[tuple[Any, ...]] = []
        self._buffer: list[str] = []
        self._last_flush = _monotonic()
        self._flush_at = self._last_flush + flush_seconds
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._closed = False
        self._params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self._plist = [p for _, p in self._params]
        self._layers = self._group_layers()
        self._act_modules = [(n, m) for n, m in model.named_modules()
                             if isinstance(m, RELU_LIKE + SATURATING)]
        self._act_stats: dict[str, dict[str, Any]] = {}
        self._act_hooks = [(m, activation_hook(n, m, self._act_stats))
                           for n, m in self._act_modules]
        self._hooks: list[Any] = []
        self._snapshot = Snapshot()
        self._noise: NoiseWindow | None = None
        self._noise_buffers: list[torch.Tensor] = []
        self._first_output: Any = None
        self._out_hook = model.register_forward_hook(self._inspect_output)
        # the lr each optimizer step used, taken just before it: a scheduler stepped between
        # optimizer.step() and Monitor.step() has already moved the groups to the next value
        self._used_lrs: list[float] | None = None
        self._last_lrs: list[float] = []
        self._lr_hook = _step_pre_hook(optimizer, self._remember_lrs)
        self._lr_names: list[str] = []
        self._seen_nonfinite = False
        self._watched: list[list[Any]] = []  # [journal, entries forwarded, settings data]
        self._write({"type": "meta", "version": 1, "every": every, "budget": budget,
                     **describe(model, optimizer, self._params, list(self._layers),
                                [n for n, _ in self._act_modules])})
        for event in check_init(self._params, skip=lookup_tables(model)):
            self._event(*event)
        if self._act_modules:
            self._arm()  # the first forward is measured (bad initialisation shows at step 0)

    # ----------------------------------------------------------------- public API
    def step(self, loss: Any = None, *, inputs: Any = None, targets: Any = None,
             **metrics: Any) -> None:
        """Record one optimizer step (call it after ``optimizer.step()``)."""
        k = self.global_step
        if metrics or not self._fast_from <= k < self._due:  # a step that does more
            self._step(k, loss, inputs, targets, metrics)
            return
        lrs = self._used_lrs
        if lrs is None:
            lrs = self._group_lrs()
        else:
            self._used_lrs = None
        if loss is not None and loss.__class__ is not float:
            loss = metric_value(loss)
        self._rows.append((k, self.epoch_count, loss, lrs,
                           self._sample(k) if k >= self._cadence.sample_at else None, None))
        self.global_step = k + 1
        if _monotonic() > self._flush_at:
            self.flush()

    @property
    def flush_seconds(self) -> float:
        """The longest the rows wait in memory before they are written (seconds)."""
        return self._flush_s

    @flush_seconds.setter
    def flush_seconds(self, seconds: float) -> None:
        self._flush_s = seconds
        self._flush_at = self._last_flush + seconds

    def epoch(self, **metrics: Any) -> None:
        """Record evaluation results (``val_loss=…``, ``val_accuracy=…``, ``accuracy=…``)."""
        self.epoch_count += 1
        values = {}
        for key, value in metrics.items():
            name = canonical_name(key)
            if name is not None:
                values[name] = metric_value(value)
        if "train/loss" in values:  # an epoch mean next to per-step losses
            values["train/loss_epoch"] = values.pop("train/loss")
        self._rows.append((max(self.global_step - 1, 0), self.epoch_count, None, None, None,
                           values))
        if self.budget is not None:  # the first step after an evaluation is a sampled one
            self._cadence.interrupt(self.global_step)
            self._due = min(self._due, self.global_step) if self._due >= 0 else self._due
        self._forward_decisions()
        if _monotonic() - self._last_flush >= min(self._flush_s, _EPOCH_FLUSH_S):
            self.flush()

    def watch(self, scheduler: Any, *, metric: str | None = None) -> None:
        """Log an LR scheduler's settings now, and each decision it journals from now on.

        The settings event (``lr-scheduler``: kind, ``mode``, ``monitor`` — the watched metric's
        name, ``metric`` or the scheduler's own ``monitor`` — patience, factor, schedule) lets the
        doctor check a plateau scheduler's mode against its metric from this one file. A
        :class:`~lrdoctor.torch.PlateauLR` without a journal gets an in-memory one; its entries
        (plateau reductions, warm-up end, restarts, early stop) are written as events at each
        :meth:`epoch` and at :meth:`close`.
        """
        text, data = scheduler_settings(scheduler, metric)
        self._event("lr-scheduler", text, data)
        journal = getattr(scheduler, "journal", None)
        if journal is None and hasattr(scheduler, "attach_journal"):
            journal = Journal()
            scheduler.attach_journal(journal)
        if isinstance(journal, Journal):
            self._watched.append([journal, len(journal), data])

    def _forward_decisions(self) -> None:
        for watched in self._watched:
            journal, done, data = watched
            entries = list(journal)
            for e in entries[done:]:
                self._event(e.cause, e.explain(), {
                    "mode": data.get("mode"), "monitor": data.get("monitor"),
                    "old_lrs": list(e.old_lrs), "new_lrs": list(e.new_lrs), "epoch": e.epoch},
                    step=e.step)
            watched[1] = len(entries)

    def event(self, code: str, message: str, **data: Any) -> None:
        """Write a free-form event (e.g. ``monitor.event("note", "switched to fp16")``)."""
        self._event(code, message, data)

    def flush(self) -> None:
        """Write what is buffered (converting pending tensors with one device sync)."""
        if self._rows:
            self._drain()
        if self._buffer and not self._closed:
            if self.sink is not None:
                send_rows(self._buffer, self.sink)
            self._file.write("".join(self._buffer))
            self._file.flush()
            self._buffer.clear()
        self._last_flush = now = _monotonic()
        self._flush_at = now + self._flush_s

    def close(self) -> None:
        """Flush, remove every hook and close the file (idempotent)."""
        if self._closed:
            return
        self._disarm()
        self._forward_decisions()
        self._out_hook.remove()
        if self._lr_hook is not None:
            self._lr_hook.remove()
        self.flush()
        self._file.close()
        self._closed = True
        self._due = -1  # every later step() takes the long path, which raises

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self.close()

    # ----------------------------------------------------------------- internals
    def _step(self, k: int, loss: Any, inputs: Any, targets: Any, metrics: dict[str, Any]) -> None:
        """Any step that does more than the short path: sampled and heavy steps, the steps
        that arm a heavy step's hooks, noise-window steps, steps with metrics."""
        if self._closed:
            raise LRDoctorError("Monitor.step() after close(); create a new Monitor")
        t0 = clock()
        cad = self._cadence
        if self._first and k > 0:  # a resumed step count: keep the every-N schedule
            cad.heavy_at = self._heavy_from = -(-k // self.every) * self.every
        self._first = False
        cad.started(k, t0)
        lrs = self._used_lrs
        if lrs is None:
            lrs = self._group_lrs()
        else:
            self._used_lrs = None
        heavy = k >= cad.heavy_at
        if heavy:  # until it and its window are done (a resumed step count starts with one)
            cad.heavy_at = _NEVER
        window = self._noise is not None
        sample = heavy or window or k >= cad.sample_at or self.budget is None
        grads, parts = self._grad_norms() if sample else ([], None)
        if loss is not None and loss.__class__ is not float:
            loss = metric_value(loss)
        inspect = sample and k < self.inspect_batches
        extra = None
        if metrics or inspect or heavy or window:
            extra = self._extra(k, grads, parts, inputs, targets, metrics, inspect, heavy)
        self._rows.append((k, self.epoch_count, loss, lrs, parts, extra))
        self.global_step = nxt = k + 1
        if heavy and k > 0 and self.noise_window > 1 and grads:
            self._noise = NoiseWindow(self.noise_window, self._noise_buffers)
        t1 = clock()
        if heavy or window:
            self._heavy_cost += t1 - t0
            if self._noise is None:  # the heavy step and its window are over
                cad.heavy_done(self._heavy_from, self._heavy_cost, k)
        elif sample:
            cad.sampled(k, t1 - t0)
        if sample:
            cad.sample_at = max(cad.sample_at, nxt)
        if nxt >= cad.heavy_at:
            self._heavy_from, self._heavy_cost = nxt, 0.0
            self._arm()
            self._snapshot.take(self._plist)
            self._heavy_cost += clock() - t1
        elif self._hooks:
            self._disarm()
        # the steps from nxt up to _due need none of the above: step() takes its short path
        self._fast_from = nxt
        if self._hooks or self._noise is not None:
            self._due = nxt
        elif nxt < self.inspect_batches:  # sampled steps there inspect the batch too
            self._due = max(nxt, min(cad.sample_at, cad.heavy_at - 1))
        else:  # step() does the plain sampled steps itself
            self._due = max(nxt, cad.heavy_at - 1)
        cad.ended(k, clock())
        if _monotonic() > self._flush_at:
            self.flush()

    def _sample(self, k: int) -> Any:
        """A sampled step with nothing else to do: the per-tensor gradient norms (one fused
        ``_foreach_norm``), its cost (bookkeeping included) reported to the cadence."""
        cad = self._cadence
        t0 = clock()
        try:
            parts = torch._foreach_norm(list(map(_grad_of, self._plist)))
        except (TypeError, RuntimeError):  # a parameter without a gradient, or none at all
            parts = self._grad_norms()[1]
        cad.sampled_alone(k, t0, clock())
        return parts

    def _grad_norms(self) -> tuple[list[torch.Tensor], Any]:
        """The gradients and their norms per tensor (one fused ``_foreach_norm``; combined into
        ``grad_norm`` at the next flush, so the step does not wait for the device)."""
        grads = list(map(_grad_of, self._plist))
        try:
            return grads, (torch._foreach_norm(grads) if grads else None)
        except TypeError:  # some parameters have no gradient (frozen, unused this step)
            grads = [g for g in grads if g is not None]
            return grads, (torch._foreach_norm(grads) if grads else None)

    def _group_lrs(self) -> list[float]:
        """The groups' own lr: no optimizer step ran since the last Monitor.step (skipped)."""
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def _remember_lrs(self, optimizer: torch.optim.Optimizer, *_: Any) -> None:
        groups, last = optimizer.param_groups, self._last_lrs
        if len(groups) == 1 == len(last):  # the usual case, without building a list
            lr = groups[0]["lr"]
            if lr.__class__ is float and lr == last[0]:
                self._used_lrs = last
                return
        lrs = [float(g["lr"]) for g in groups]
        if lrs == self._last_lrs:  # rows share one list while the rates stay the same
            lrs = self._last_lrs
        self._used_lrs = self._last_lrs = lrs

    def _extra(self, k: int, grads: list[torch.Tensor], parts: Any, inputs: Any, targets: Any,
               metrics: dict[str, Any], inspect: bool, heavy: bool) -> dict[str, Any]:
        """The values of a step beyond loss, lr and grad_norm (see _monitor_rows for types)."""
        extra: dict[str, Any] = {}
        for key, value in metrics.items():
            name = canonical_name(key)
            if name is not None:
                extra[name] = metric_value(value)
        if inspect:
            if k == 0:
                out, self._first_output = self._first_output, None
                for event in check_outputs(out, targets, self.loss_fn):
                    self._event(*event)
            batch_stats(inputs, targets, extra)
        if heavy:
            self._heavy(parts, extra)
        if self._noise is not None:
            estimate = self._noise.add(grads, parts, inputs)
            if estimate is not None:
                extra["~noise"] = estimate
            if self._noise.done:
                self._noise_buffers = self._noise.buffers
                self._noise = None
        return extra

    def _heavy(self, parts: Any, extra: dict[str, Any]) -> None:
        extra["~heavy"] = heavy_stats(self._plist, parts, self._snapshot, self._layers)
        for name, stats in self._act_stats.items():
            for key, v in stats.items():
                extra[f"{key}/{name}"] = v
        self._act_stats.clear()
        self._disarm()

    def _drain(self) -> None:
        rows, self._rows = self._rows, []
        drain(rows, self._buffer, self._names_of_lrs, self._nonfinite)

    def _names_of_lrs(self, n: int) -> list[str]:
        if len(self._lr_names) != n:
            groups = self.optimizer.param_groups
            self._lr_names = ["lr"] if n == 1 else [f"lr/{g.get('name', i)}"
                                                    for i, g in enumerate(groups[:n])]
        return self._lr_names

    def _nonfinite(self, name: str, k: int) -> None:
        if not self._seen_nonfinite:
            self._seen_nonfinite = True
            self._event("nonfinite", f"non-finite {name} first seen at step {k}",
                        {"name": name, "step": k}, step=k)

    def _write(self, record: dict[str, Any]) -> None:
        self._buffer.append(json.dumps(record, allow_nan=True) + "\n")

    def _event(self, code: str, message: str, data: dict[str, Any] | None = None,
               step: int | None = None) -> None:
        if self._rows and code != "nonfinite":  # keep the lines in order
            self._drain()
        self._write({"type": "event", "step": self.global_step if step is None else step,
                     "code": code, "message": message, "data": data or {}})

    def _group_layers(self) -> dict[str, tuple[str, str, list[int]]]:
        """Each layer (a parameter's module path) with its two log names and its parameters."""
        members: dict[str, list[int]] = {}
        for i, (name, _) in enumerate(self._params):
            members.setdefault(name.rsplit(".", 1)[0], []).append(i)
        return {layer: (f"grad_norm/{layer}", f"update_ratio/{layer}", idx)
                for layer, idx in members.items()}

    def _inspect_output(self, module: nn.Module, args: Any, output: Any) -> None:
        """First forward only: kept for the check of the outputs against the first targets."""
        self._out_hook.remove()
        self._first_output = output.detach() if isinstance(output, torch.Tensor) else None

    def _arm(self) -> None:
        if self._hooks:
            return
        self._act_stats.clear()
        self._hooks = [m.register_forward_hook(self._timed(hook)) for m, hook in self._act_hooks]

    def _timed(self, hook: Any) -> Any:
        """``hook``, its time counted into the heavy step's cost."""
        def run(module: nn.Module, args: Any, output: Any) -> None:
            t = clock()
            hook(module, args, output)
            self._heavy_cost += clock() - t
        return run

    def _disarm(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

"""``find_lr``: the LR range test on a PyTorch model, leaving every bit of state as it found it.

The loop: for each of ``repeats`` runs (each on the next batches of the loader), restore the
snapshot, then for ``num_steps`` optimizer steps set every param group's LR to the ramp's value
times the group's original ratio to group 0, run ``accumulation_steps`` forward/backward passes,
step (through the ``GradScaler`` if any: a skipped step does not advance the ramp), and record
the mean loss — or, with ``val_loader``, the validation loss every ``val_every`` steps. Under
``torch.distributed`` the recorded loss is all-reduced (mean over ranks), so every rank follows
the same curve; rank 0's result is broadcast. Afterwards — also on an exception or
``KeyboardInterrupt`` — parameters, gradients, buffers (BatchNorm statistics included), train/eval
modes, the optimizer's state and hyperparameters, the scaler and the CPU/CUDA (and Python,
numpy) RNG states are restored bit-exactly.

The passes (:func:`lrdoctor.finder.search`): the first ramp; when it shows no clear descent, a
slower ramp below its divergence (or a continued one past ``end_lr``); the zoom; a documented
fallback when no ramp descends. With ``budget_steps`` (or ``epochs``: ``epochs * len(loader)``
optimizer steps), a budget probe follows, from the restored state too: a quarter of the run at
the suggestion, then a short ramp (:class:`~lrdoctor.finder.BudgetProbe`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch

from lrdoctor.errors import FinderError
from lrdoctor.finder import (
    DEFAULT_RULE,
    RULES,
    BudgetProbe,
    Curve,
    FinderResult,
    RangeTest,
    search,
)
from lrdoctor.finder._curve import check_range
from lrdoctor.finder._probe import PROBE_FRACTION, PROBE_STEPS
from lrdoctor.torch._state import Snapshot

__all__ = ["FinderResult", "find_lr"]

log = logging.getLogger("lrdoctor.finder")

_X_KEYS = ("x", "input", "inputs", "features", "image", "images", "input_ids")
_Y_KEYS = ("y", "target", "targets", "label", "labels")


# ---- batches -------------------------------------------------------------------------------------


class _Batches:
    """Endless batches: restarts the loader when it runs out (unless it yields nothing).

    The first ``iter(loader)`` waits for the first batch: a shuffling DataLoader draws from the
    RNGs there, which must happen inside the test's restore guard.
    """

    def __init__(self, loader: Iterable[Any]):
        self.loader = loader
        self.it: Iterator[Any] | None = None
        self.since_restart = 0
        self.total = 0

    def next(self) -> Any:
        if self.it is None:
            self.it = iter(self.loader)
        try:
            batch = next(self.it)
        except StopIteration:
            if self.since_restart == 0:
                raise
            self.it = iter(self.loader)
            self.since_restart = 0
            batch = next(self.it)  # StopIteration again: a one-shot iterator ran dry
        self.since_restart += 1
        self.total += 1
        return batch


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)({k: _to_device(v, device) for k, v in batch.items()}) \
            if not hasattr(batch, "to") else batch.to(device)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _pick_key(batch: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in batch), None)


def _default_step(model: torch.nn.Module, batch: Any, loss_fn: Callable[..., Any] | None,
                  device: torch.device) -> torch.Tensor:
    batch = _to_device(batch, device)
    if isinstance(batch, Mapping):
        if loss_fn is None:
            out = model(**batch)
            loss = out.get("loss") if isinstance(out, Mapping) else getattr(out, "loss", None)
            if loss is None:
                raise FinderError(
                    "the model, called with the dict batch as keyword arguments, returned no "
                    "'loss'; pass loss_fn= (with 'x'/'y' style keys) or step_fn=")
            return loss
        xk, yk = _pick_key(batch, _X_KEYS), _pick_key(batch, _Y_KEYS)
        if xk is None or yk is None:
            raise FinderError(
                f"cannot tell inputs from targets in a dict batch with keys {sorted(batch)}; "
                f"use keys like {_X_KEYS[:3]} / {_Y_KEYS[:3]} "
                "or pass step_fn=(model, batch) -> loss")
        return loss_fn(model(batch[xk]), batch[yk])
    if isinstance(batch, (list, tuple)) and len(batch) >= 2:
        if loss_fn is None:
            raise FinderError("find_lr needs loss_fn= (or step_fn=) for (inputs, targets) batches")
        return loss_fn(model(batch[0]), batch[1])
    raise FinderError(f"find_lr cannot read batches of type {type(batch).__name__}; pass "
                      "step_fn=(model, batch) -> loss")


# ---- the test ------------------------------------------------------------------------------------


def _distributed() -> tuple[bool, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1, dist.get_rank()
    return False, 0


def _check(model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, start_lr: float,
           end_lr: float, num_steps: int, mode: str, repeats: int, accumulation_steps: int,
           amp: str | None, val_every: int, rule: str, loss_fn: Any, step_fn: Any,
           budget_steps: Any, epochs: Any = None) -> None:
    check_range(start_lr, end_lr, num_steps, mode)
    if int(repeats) != repeats or repeats < 1:
        raise FinderError(f"repeats must be an integer >= 1, got {repeats!r}")
    if int(accumulation_steps) != accumulation_steps or accumulation_steps < 1:
        raise FinderError(f"accumulation_steps must be an integer >= 1, got {accumulation_steps!r}")
    if int(val_every) != val_every or val_every < 1:
        raise FinderError(f"val_every must be an integer >= 1, got {val_every!r}")
    if amp not in (None, "bf16", "fp16"):
        raise FinderError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
    if rule not in RULES:
        raise FinderError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    if step_fn is not None and not callable(step_fn):
        raise FinderError("step_fn must be a callable (model, batch) -> loss")
    if loss_fn is not None and not callable(loss_fn):
        raise FinderError("loss_fn must be a callable (output, target) -> loss")
    if budget_steps is not None and (isinstance(budget_steps, bool) or
                                     not isinstance(budget_steps, int) or budget_steps < 4):
        raise FinderError(f"budget_steps must be None or an integer >= 4 (the optimizer steps "
                          f"of the training run), got {budget_steps!r}")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or
                               epochs < 1):
        raise FinderError(f"epochs must be None or an integer >= 1 (the run's epochs, to size "
                          f"the budget probe), got {epochs!r}")
    if epochs is not None and budget_steps is not None:
        raise FinderError("pass budget_steps= or epochs=, not both: both give the run's length")
    if not any(p.requires_grad for p in model.parameters()):
        raise FinderError("the model has no trainable parameters (all requires_grad=False): "
                          "unfreeze some before the range test")
    if not any(p.requires_grad for g in optimizer.param_groups for p in g["params"]):
        raise FinderError("the optimizer holds no trainable parameters")


def _ratios(optimizer: torch.optim.Optimizer) -> list[float]:
    lrs = [float(g["lr"]) for g in optimizer.param_groups]
    if lrs[0] == 0:
        if any(lrs):
            raise FinderError("param group 0 has lr=0 while others do not: the ramp keeps the "
                              "groups' ratios to group 0, so give group 0 a nonzero lr")
        return [1.0] * len(lrs)
    return [lr / lrs[0] for lr in lrs]


def _set_lr(optimizer: torch.optim.Optimizer, lr: float, ratios: list[float]) -> None:
    for g, r in zip(optimizer.param_groups, ratios):
        if isinstance(g["lr"], torch.Tensor):
            g["lr"].fill_(lr * r)
        else:
            g["lr"] = lr * r


def find_lr(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            train_loader: Iterable[Any], loss_fn: Callable[..., Any] | None = None, *,
            step_fn: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
            start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: int = 100,
            repeats: int = 3, mode: str = "exponential", rule: str = DEFAULT_RULE,
            accumulation_steps: int = 1, amp: str | None = None, grad_scaler: Any = None,
            val_loader: Iterable[Any] | None = None, val_every: int = 1,
            diverge_factor: float | None = 4.0, beta: float | None = None,
            zoom: bool = True, zoom_steps: int | None = None, budget_steps: int | None = None,
            epochs: int | None = None, adapt: bool = True,
            progress: Callable[[int, int], None] | None = None) -> FinderResult:
    """Run the LR range test and return a :class:`~lrdoctor.finder.FinderResult`.

    ``train_loader`` is any iterable of batches: ``(inputs, targets, ...)`` tuples and dicts
    are read with ``loss_fn(model(inputs), targets)`` (dicts: keys ``x``/``input``/... and
    ``y``/``target``/``labels``...; with no ``loss_fn``, ``model(**batch).loss``), anything else
    through ``step_fn(model, batch) -> loss`` (scalar tensor; do not call ``backward``).
    ``repeats`` runs continue through the loader, each from the restored state, and the rule's
    picks are combined into a median and an interval. ``accumulation_steps`` micro-batches make
    one optimizer step (the ramp advances per optimizer step). ``amp='bf16'|'fp16'`` runs the
    forward pass under ``torch.autocast``; pass the training's ``grad_scaler`` for fp16 (one
    is made on CUDA if missing). ``progress(done, total)`` is called after every step.

    ``zoom`` (default on) runs a second pass of ``repeats`` ramps of ``zoom_steps`` steps
    (default ``num_steps // 2``) over :func:`~lrdoctor.finder.zoom_range` of the first — the
    2.5 decades around its loss minimum — each from the restored state, and suggests from those
    slower ramps; the result's ``coarse`` is the first pass. On P1 (benchmarks/RESULTS.md,
    2026-12-02) it lowered charlm's regret from 0.20 to 0.14 nats and the held-out cells' from
    0.27 to 0.21 pp, left the eight main cells' within noise (0.38 -> 0.49 pp) and costs half a
    pass more; ``zoom=False`` reads the first pass alone.

    ``budget_steps`` (the optimizer steps of the run the LR is for) adds the budget probe
    (:class:`~lrdoctor.finder.BudgetProbe`): from the restored state, train a quarter of the
    run at the suggestion, then ramp toward 8x the min-loss LR. If the loss holds up to the
    min-loss LR, the suggestion moves up to that LR / sqrt(2) (``result.probe`` says what it
    saw). On P1 (benchmarks/RESULTS.md, 2026-12-03) it took charlm/SGD's regret from 0.28 to
    0.003 nats and moved no classification cell; it costs a quarter of a run more.
    ``epochs`` gives the same length as ``epochs * len(train_loader)`` optimizer steps (divided
    by ``accumulation_steps``), so the probe runs whenever the run's length is known.

    ``adapt`` (default on): when the first ramp shows no clear descent, run a slower ramp over
    the three decades below where it diverged (or continue it past ``end_lr`` when it did not
    diverge) instead of giving up; when no ramp descends but one diverged, fall back to the
    divergence LR / 10 with ``grade='fallback'``. ``suggestion is None`` only when the loss
    neither descends nor diverges anywhere. ``result.reason`` says which pass and rule chose.

    Raises :class:`~lrdoctor.errors.FinderError` on bad input (an empty loader, a NaN/Inf loss
    at the first step, ``start_lr >= end_lr``, no trainable parameters), with every piece of
    state restored.
    """
    _check(model, optimizer, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps, mode=mode,
           repeats=repeats, accumulation_steps=accumulation_steps, amp=amp, val_every=val_every,
           rule=rule, loss_fn=loss_fn, step_fn=step_fn, budget_steps=budget_steps,
           epochs=epochs)
    if epochs is not None:
        try:
            per_epoch = len(train_loader)  # type: ignore[arg-type]
        except TypeError:
            raise FinderError("epochs= needs a train_loader with a len(); pass budget_steps= "
                              "(the run's optimizer steps) instead") from None
        budget_steps = max(4, epochs * math.ceil(per_epoch / accumulation_steps))
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    if amp == "fp16" and grad_scaler is None and device.type == "cuda":
        grad_scaler = torch.amp.GradScaler("cuda")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")
    distributed, rank = _distributed()

    def autocast() -> Any:
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype)

    def compute_loss(batch: Any) -> torch.Tensor:
        with autocast():
            loss = step_fn(model, batch) if step_fn is not None else \
                _default_step(model, batch, loss_fn, device)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            shape = f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else ""
            raise FinderError(f"the loss must be a scalar tensor, got {type(loss).__name__}{shape}")
        return loss.reshape(())

    def reduce(value: torch.Tensor) -> float:
        if distributed:
            import torch.distributed as dist

            value = value.detach().clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= dist.get_world_size()
        return float(value)

    def val_loss() -> torch.Tensor:
        was = [(m, m.training) for m in model.modules()]
        model.eval()
        total = torch.zeros((), device=device)
        count = 0
        try:
            with torch.no_grad():
                for batch in val_loader:  # type: ignore[union-attr]
                    total += compute_loss(batch).detach().float()
                    count += 1
        finally:
            for m, mode_ in was:
                m.training = mode_
        if count == 0:
            raise FinderError("val_loader yielded no batches")
        return total / count

    snapshot = Snapshot(model, optimizer, grad_scaler)
    ratios = _ratios(optimizer)
    warm_steps = max(1, int(PROBE_FRACTION * budget_steps)) if budget_steps else 0
    if zoom_steps is None:
        zoom_steps = max(num_steps // 2, 10)
    elif isinstance(zoom_steps, bool) or not isinstance(zoom_steps, int) or zoom_steps < 10:
        raise FinderError(f"zoom_steps must be an integer >= 10, got {zoom_steps!r}")
    total_steps = repeats * (num_steps + (zoom_steps if zoom else 0)) + \
        (warm_steps + PROBE_STEPS if warm_steps else 0)
    done = 0
    skipped_total = 0
    steps_run = 0
    started = time.perf_counter()
    batches = _Batches(train_loader)

    def drive(test: Any, steps: int, use_val: bool) -> None:
        """Train while ``test`` runs: each optimizer step at ``test.lr()``, its loss recorded."""
        nonlocal done, skipped_total, steps_run
        model.train()
        skipped_in_row = 0
        while test.running:
            _set_lr(optimizer, test.lr(), ratios)
            optimizer.zero_grad(set_to_none=True)
            loss_sum = torch.zeros((), device=device)
            try:
                for _ in range(accumulation_steps):
                    loss = compute_loss(batches.next())
                    loss_sum += loss.detach().float()
                    scaled = loss / accumulation_steps
                    if grad_scaler is not None:
                        scaled = grad_scaler.scale(scaled)
                    scaled.backward()
            except StopIteration:
                if batches.total == 0:
                    raise FinderError("train_loader yielded no batches") from None
                test.end_of_data()
                break
            train_loss = loss_sum / accumulation_steps
            if grad_scaler is not None:
                before = float(grad_scaler.get_scale())
                grad_scaler.step(optimizer)
                grad_scaler.update()
                if float(grad_scaler.get_scale()) < before:  # inf/NaN grads: step skipped
                    skipped_total += 1
                    skipped_in_row += 1
                    if skipped_in_row >= 50:
                        log.warning("the GradScaler skipped 50 steps in a row; stopping")
                        test.end_of_data()
                    continue
                skipped_in_row = 0
            else:
                optimizer.step()
            if not use_val or (test.step + 1) % val_every == 0 or test.step == steps - 1:
                value = reduce(val_loss() if use_val else train_loss)
                if isinstance(test, RangeTest) and test.recorded == 0 and first_step[0] and \
                        not math.isfinite(value):
                    raise FinderError(
                        f"the loss is {value} at the first step (lr={test.lr():.3g}), before "
                        "the LR could matter: check the model, the data and the loss function")
                test.record(value)
                first_step[0] = False
            else:
                test.advance()
            done += 1
            steps_run += 1
            if progress is not None:
                progress(done, total_steps)

    def one_ramp(lo: float, hi: float, steps: int, record_mode: str) -> Curve:
        """One ramp from the restored state (the caller restores): the recorded curve."""
        test = RangeTest(lo, hi, steps, record_mode, beta=beta, diverge_factor=diverge_factor)
        drive(test, steps, val_loader is not None)
        return test.curve()

    first_ramp = [True]
    first_step = [True]  # a NaN/Inf loss here is bad input; in a later pass, a divergence

    def passes(lo: float, hi: float, steps: int) -> list[Curve]:
        """``repeats`` ramps, each from the restored state (the very first from the caller's)."""
        nonlocal done, total_steps
        curves = []
        if not first_ramp[0] and steps != zoom_steps:  # an adaptive pass: more steps to go
            total_steps += repeats * steps
        for r in range(repeats):
            if not first_ramp[0]:
                snapshot.restore()
            first_ramp[0] = False
            start = done
            curves.append(one_ramp(lo, hi, steps, mode))
            done = start + steps  # a ramp that stopped early counts as done
            if progress is not None:
                progress(done, total_steps)
        return curves

    def settings(**extra: Any) -> dict[str, Any]:
        return {"start_lr": start_lr, "end_lr": end_lr, "num_steps": num_steps,
                "repeats": repeats, "mode": mode, "accumulation_steps": accumulation_steps,
                "amp": amp, "validation": val_loader is not None,
                "skipped_steps": skipped_total, "steps_run": steps_run,
                "seconds": round(time.perf_counter() - started, 3), **extra}

    try:
        result = search(passes, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps,
                        rule=rule, zoom=zoom, zoom_steps=zoom_steps, adapt=adapt,
                        settings=settings)
        if warm_steps and result.suggestion is not None and result.min_loss_lr is not None \
                and result.grade != "fallback":
            snapshot.restore()
            probe = BudgetProbe(result.suggestion, result.min_loss_lr, warm_steps)
            start = done
            drive(probe, warm_steps + PROBE_STEPS, use_val=False)
            done = start + warm_steps + PROBE_STEPS  # a probe that stopped early counts as done
            if progress is not None:
                progress(done, total_steps)
            result = result.with_probe(probe.report())
            result = dataclasses.replace(result, settings={
                **result.settings, "budget_steps": budget_steps, "steps_run": steps_run,
                "seconds": round(time.perf_counter() - started, 3)})
        if progress is not None and done < total_steps:  # no zoom window, or no probe to run
            done = total_steps
            progress(done, total_steps)
    finally:
        snapshot.restore()
    if distributed:
        import torch.distributed as dist

        box = [result if rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        result = box[0]
    return result

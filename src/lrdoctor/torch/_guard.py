"""``Guard``: skip bad batches, rewind damaged training, and say what it did.

In the loop, after ``loss.backward()`` and before ``optimizer.step()``::

    if guard.check(loss):
        optimizer.step()
        scheduler.step()
    optimizer.zero_grad()

``check`` returns False when this batch must be skipped:

- the loss is NaN/Inf, or (without a GradScaler, which handles its own overflow) the gradient
  norm is;
- the loss spikes against the run's own recent statistics (the test of
  :mod:`lrdoctor._guard_core`: in log space, ``(log(loss) - m) / max(s, 0.05) > z`` and
  ``loss > ratio * exp(m)``, with ``m`` the median log loss of the last 20 accepted batches and
  ``s`` the robust batch-to-batch noise of the last ``window``, after ``min_history`` accepted
  batches);
- the gradient norm (the sum of the per-tensor norms) spikes by the same test against its own
  history (a corrupt batch whose loss looks ordinary can still carry a gradient 1000x too
  large, and its update is the damage).

The gradient norm runs on a time budget (``grad_budget``, 0.01 of the step time; the first 5
batches and at most 16 apart; ``None``: every batch); a non-finite gradient on an untested
batch shows as a non-finite loss on the next and is undone by the rewind. A tested batch costs
one fused norm over the gradients, one read-back of the loss and the
norms together (one device sync) and two comparisons against cached limits.

When ``patience`` batches in a row are skipped, the damage is already done (the loss stays up):
the guard restores the last good snapshot (model, optimizer, scheduler, the CPU and CUDA RNG
states, Python's and NumPy's RNGs, a GradScaler if given), so the batches since then are
skipped, and scales every group's LR by ``lr_factor`` rising linearly back to 1 over
``cooldown_steps`` optimizer steps (applied in an optimizer step pre-hook and undone in the
post-hook, so a scheduler never sees the scaled value). Snapshots are in-memory copies taken at accepted batches every ``snapshot_every``
batches (the last three are kept); the newest one taken at least 2 batches before the first bad
one is restored (the update of the batch just before the trouble may be the one that did the
damage). More than ``max_rewinds`` rewinds within ``rewind_window`` batches raise
:class:`~lrdoctor.errors.GuardError` naming what it saw. Every action is a :class:`GuardEvent`
in ``events`` and, with ``journal``, an entry of cause ``guard``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from lrdoctor._guard_core import KEEP, GuardCore, GuardEvent, GuardReport, GuardSettings
from lrdoctor.errors import LRDoctorError
from lrdoctor.journal import Journal
from lrdoctor.torch._state import capture_rng, restore_rng

__all__ = ["Guard", "GuardEvent"]

_clock = time.perf_counter
_FIRST = 5      # the first batches always get the gradient test
_MAX_GAP = 16   # batches between two gradient tests at most
_WINDOW = 8     # the step time is the least of this many recent intervals (load only adds)
_ALPHA = 0.3    # weight of a new measurement in the moving average of the test's cost


def _clone(obj: Any) -> Any:
    """A deep copy in which every tensor is cloned (state dicts share storage with the live
    objects, and ``load_state_dict`` may keep the tensors it is given)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_clone(v) for v in obj)
    return obj


#: values a state dict holds that are copied by reference (immutable)
_ATOMS = frozenset({int, float, bool, str, type(None)})


def _refill(obj: Any, old: Any, dst: list[torch.Tensor], src: list[torch.Tensor]) -> Any:
    """:func:`_clone` of ``obj`` that reuses the tensors of ``old`` (an earlier copy, dropped
    now) where they fit: the copies into them are collected in ``dst``/``src`` for one fused
    ``_foreach_copy_``; a tensor without a fitting one is cloned."""
    if isinstance(obj, torch.Tensor):
        if (isinstance(old, torch.Tensor) and old.shape == obj.shape and old.dtype == obj.dtype
                and old.device == obj.device and not old.is_sparse and not obj.is_sparse
                and old.is_contiguous()):
            dst.append(old)
            src.append(obj.detach())
            return old
        return obj.detach().clone()
    if isinstance(obj, dict):
        if not isinstance(old, dict):
            return _clone(obj)
        get = old.get
        return {k: v if v.__class__ in _ATOMS else _refill(v, get(k), dst, src)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if all(v.__class__ in _ATOMS for v in obj):  # e.g. a group's parameter indices
            return list(obj) if isinstance(obj, list) else obj
        if not isinstance(old, (list, tuple)) or len(old) != len(obj):
            return _clone(obj)
        items = [_refill(v, o, dst, src) for v, o in zip(obj, old)]
        return items if isinstance(obj, list) else tuple(items)
    return obj


@dataclass
class _Snapshot:
    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    scaler: dict[str, Any] | None
    rng: dict[str, Any]


class Guard(GuardReport):
    """Protect a PyTorch training loop from bad batches and loss spikes (see the module doc).

    ``guard.check(loss) -> bool`` after ``loss.backward()``: True means step, False means skip
    this batch (any rewind has already happened). ``events`` lists every action.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any = None, *, journal: Journal | str | None = None,
                 scaler: Any = None, snapshot_every: int = 25, window: int = 100,
                 min_history: int = 20, z: float = 10.0, ratio: float = 3.0, patience: int = 5,
                 lr_factor: float = 0.5, cooldown_steps: int = 50, max_rewinds: int = 3,
                 rewind_window: int = 1000, check_grads: bool = True,
                 grad_budget: float | None = 0.01):
        if grad_budget is not None and not (isinstance(grad_budget, (int, float))
                                            and 0 < grad_budget <= 1):
            raise LRDoctorError(f"Guard grad_budget must be in (0, 1] (a share of the step "
                                f"time) or None (the gradient test every batch), got "
                                f"{grad_budget!r}")
        self.settings = GuardSettings(
            snapshot_every=snapshot_every, window=window, min_history=min_history, z=float(z),
            ratio=float(ratio), patience=patience, lr_factor=float(lr_factor),
            cooldown_steps=cooldown_steps, max_rewinds=max_rewinds, rewind_window=rewind_window)
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.journal = Journal(journal) if isinstance(journal, (str, bytes)) or (
            journal is not None and not isinstance(journal, Journal)) else journal
        self.check_grads = check_grads and scaler is None
        self.grad_budget = grad_budget
        self._grad_at = 0                  # the next batch whose gradient norm is computed
        self._grad_s: float | None = None  # measured seconds of one gradient test (EMA)
        self._intervals: list[float] = []  # recent step times without the guard's own work
        self._ended: float | None = None   # when the last check ended
        self.core: GuardCore[_Snapshot] = GuardCore(self.settings)
        self.events: list[GuardEvent] = self.core.events
        self.step = 0                      # batches checked
        self._params = [p for g in optimizer.param_groups for p in g["params"]]
        devices = {p.device for p in self._params}
        self._device = devices.pop() if len(devices) == 1 else None
        self._scaled: list[float] | None = None
        self._hooks = [optimizer.register_step_pre_hook(self._pre_step),
                       optimizer.register_step_post_hook(self._post_step)]

    def __getattr__(self, name: str) -> Any:
        if name in {"snapshot_every", "window", "min_history", "z", "ratio", "patience",
                    "lr_factor", "cooldown_steps", "max_rewinds", "rewind_window"}:
            return getattr(self.settings, name)
        raise AttributeError(name)

    # ---- the check -----------------------------------------------------------------------
    def check(self, loss: Any, grad_norm: Any = None) -> bool:
        """Decide on this batch: True to step, False to skip it (see the class docstring).

        ``grad_norm``: a gradient norm the loop already has (what
        ``torch.nn.utils.clip_grad_norm_`` returns, before clipping), tested in place of the
        guard's own sum of per-tensor norms, which is then not computed (the test is against
        the norm's own history, so any one norm, used every batch, will do).
        """
        k = self.step
        self.step += 1
        if grad_norm is not None:
            value, gnorm = self._given(loss, grad_norm)
        elif self.check_grads and k >= self._grad_at:
            value, gnorm = self._measure_timed(k, loss)
        else:
            value, gnorm = (float(loss.detach()) if isinstance(loss, torch.Tensor)
                            else float(loss)), None
        core = self.core
        reason, stats = core.judge(value, gnorm)
        if reason is None:
            if core.accept(k, value, gnorm):
                core.keep(k, self._copy())
            if self.grad_budget is not None:
                self._ended = _clock()
            return True
        self._ended = None   # the next interval holds a rewind or an unusual step
        action = core.reject(k, reason, value)
        ev = core.evidence(value, gnorm, stats)
        if action == "rewind":
            self._rewind(k, reason, ev, stats)
        else:
            self._event(k, "skip", reason, core.why(reason, value, gnorm, stats)
                        + f"; batch skipped ({len(core.bad)} in a row, patience "
                        f"{self.settings.patience})", ev)
        return False

    @staticmethod
    def _given(loss: Any, grad_norm: Any) -> tuple[float, float]:
        """The loss and a given norm, read back together when both are tensors."""
        if isinstance(loss, torch.Tensor) and isinstance(grad_norm, torch.Tensor):
            g = grad_norm.detach().reshape(()).float()
            both = torch.stack([loss.detach().reshape(()).to(g.device, torch.float32), g])
            a, b = both.tolist()
            return a, b
        return float(loss), float(grad_norm)

    def _measure_timed(self, k: int, loss: Any) -> tuple[float, float | None]:
        """:meth:`_measure`, and when the next gradient test is due (the time budget)."""
        if self.grad_budget is None:
            return self._measure(loss)
        t0 = _clock()
        if self._ended is not None:   # the step since the last check, without the guard
            recent = self._intervals
            recent.append(t0 - self._ended)
            if len(recent) > _WINDOW:
                del recent[0]
        out = self._measure(loss)
        cost = _clock() - t0
        self._grad_s = cost if self._grad_s is None else self._grad_s + _ALPHA * (
            cost - self._grad_s)
        n = 1
        step_s = min(self._intervals) if self._intervals else 0.0
        if k + 1 >= _FIRST and step_s > 0:
            n = min(_MAX_GAP, max(1, math.ceil(self._grad_s / (self.grad_budget * step_s))))
        self._grad_at = k + n
        return out

    def _measure(self, loss: Any) -> tuple[float, float | None]:
        """The loss and (if checked) the sum of the per-tensor gradient norms, read back
        together (one device sync); that sum is finite exactly when every gradient is."""
        t = loss.detach() if isinstance(loss, torch.Tensor) else None
        grads = [p.grad for p in self._params if p.grad is not None] if self.check_grads else []
        if not grads:
            return (float(t) if t is not None else float(loss)), None
        if self._device is not None:
            norms = list(torch._foreach_norm(grads, 2, dtype=torch.float32))
            if t is None:
                return float(loss), sum(torch.stack(norms).tolist())
            if t.dtype != torch.float32 or t.device != self._device or t.dim():
                t = t.reshape(()).to(self._device, torch.float32)
            norms.append(t)
            vals = torch.stack(norms).tolist()
            return vals[-1], sum(vals[:-1])
        dev = grads[0].device   # parameters on several devices: one norm per tensor, moved
        total = torch.stack([n.to(dev) for n in torch._foreach_norm(grads, 2,
                                                                     dtype=torch.float32)]).sum()
        return (float(t) if t is not None else float(loss)), float(total)

    # ---- snapshots and rewinds -------------------------------------------------------------
    def _copy(self) -> _Snapshot:
        """A snapshot of now. When the oldest kept one is about to be dropped for it, its
        tensors are refilled (one fused copy) instead of new ones allocated."""
        snaps = self.core.snapshots
        old = snaps[0][1] if len(snaps) >= KEEP else None
        if old is None:
            return _Snapshot(
                _clone(self.model.state_dict()), _clone(self.optimizer.state_dict()),
                None if self.scheduler is None else _clone(self.scheduler.state_dict()),
                None if self.scaler is None else _clone(self.scaler.state_dict()),
                capture_rng())
        dst: list[torch.Tensor] = []
        src: list[torch.Tensor] = []
        snap = _Snapshot(
            _refill(self.model.state_dict(), old.model, dst, src),
            _refill(self.optimizer.state_dict(), old.optimizer, dst, src),
            None if self.scheduler is None else _refill(self.scheduler.state_dict(),
                                                        old.scheduler, dst, src),
            None if self.scaler is None else _refill(self.scaler.state_dict(), old.scaler,
                                                     dst, src),
            capture_rng())
        if dst:
            with torch.no_grad():
                torch._foreach_copy_(dst, src)
        return snap

    def snapshot(self) -> None:
        """Take a snapshot now (of the state before this batch's update)."""
        self.core.keep(self.step, self._copy())

    def _restore(self, snap: _Snapshot) -> None:
        self.model.load_state_dict(_clone(snap.model))
        self.optimizer.load_state_dict(_clone(snap.optimizer))
        if self.scheduler is not None and snap.scheduler is not None:
            self.scheduler.load_state_dict(_clone(snap.scheduler))
        if self.scaler is not None and snap.scaler is not None:
            self.scaler.load_state_dict(_clone(snap.scaler))
        restore_rng(snap.rng)
        for p in self._params:
            p.grad = None

    def _rewind(self, k: int, reason: str, ev: dict[str, Any], stats: dict[str, float]) -> None:
        core, s = self.core, self.settings
        recent = core.too_many(k)
        if recent is not None:
            err = core.stop(k, reason, ev, recent)
            self._journal(core.events[-1], None, None)
            raise err
        first = core.bad[0][0]
        label, snap = core.restore_point()
        old = [float(g["lr"]) for g in self.optimizer.param_groups]
        self._restore(snap)
        self._scaled = None
        core.rewound(k)
        new = [float(g["lr"]) * s.lr_factor for g in self.optimizer.param_groups]
        msg = (f"{core.why(reason, ev['loss'], ev.get('grad_norm_sum'), stats)} and "
               f"{s.patience} batches in a row since batch {first} were bad: restored the "
               f"snapshot of batch {label} (skipping batches {label}-{k}) and lowered "
               f"the lr by {s.lr_factor:g}x for {s.cooldown_steps} steps")
        self._event(k, "rewind", reason, msg,
                    {**ev, "first_bad": first, "restored": label, "skipped": k - label + 1,
                     "lr_factor": s.lr_factor, "cooldown_steps": s.cooldown_steps}, old, new)

    # ---- the lowered LR --------------------------------------------------------------------
    def _pre_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self.core.cool_left <= 0:
            return
        f = self.core.lr_scale()
        self._scaled = [float(g["lr"]) for g in optimizer.param_groups]
        for g in optimizer.param_groups:
            g["lr"] = float(g["lr"]) * f

    def _post_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._scaled is None:
            return
        for g, lr in zip(optimizer.param_groups, self._scaled):
            g["lr"] = lr
        self._scaled = None
        self.core.stepped()

    # ---- reporting -------------------------------------------------------------------------
    def _event(self, k: int, action: str, reason: str, message: str, evidence: dict[str, Any],
               old: list[float] | None = None, new: list[float] | None = None) -> None:
        self._journal(self.core.record(k, action, reason, message, evidence), old, new)

    def _current_lrs(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def close(self) -> None:
        """Remove the optimizer hooks (the LR is left unscaled)."""
        if self._scaled is not None:
            for g, lr in zip(self.optimizer.param_groups, self._scaled):
                g["lr"] = lr
            self._scaled = None
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def __repr__(self) -> str:
        return (f"Guard(step={self.step}, skipped={self.skipped}, rewinds={self.rewinds}, "
                f"snapshots at {[label for label, _ in self.core.snapshots]})")

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

An ordinary batch costs one fused norm over the gradients, one read-back of the loss and the
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

from dataclasses import dataclass
from typing import Any

import torch

from lrdoctor._guard_core import GuardCore, GuardEvent, GuardReport, GuardSettings
from lrdoctor.journal import Journal
from lrdoctor.torch._state import capture_rng, restore_rng

__all__ = ["Guard", "GuardEvent"]


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
                 rewind_window: int = 1000, check_grads: bool = True):
        self.settings = GuardSettings(
            snapshot_every=snapshot_every, window=window, min_history=min_history, z=float(z),
            ratio=float(ratio), patience=patience, lr_factor=float(lr_factor),
            cooldown_steps=cooldown_steps, max_rewinds=max_rewinds, rewind_window=rewind_window)
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.journal = Journal(journal) if isinstance(journal, (str, bytes)) or (
            journal is not None and not isinstance(journal, Journal)) else journal
        self.check_grads = check_grads and scaler is None
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
        value, gnorm = self._measure(loss) if grad_norm is None else \
            self._given(loss, grad_norm)
        core = self.core
        reason, stats = core.judge(value, gnorm)
        if reason is None:
            if core.accept(k, value, gnorm):
                core.keep(k, self._copy())
            return True
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
        return _Snapshot(
            _clone(self.model.state_dict()), _clone(self.optimizer.state_dict()),
            None if self.scheduler is None else _clone(self.scheduler.state_dict()),
            None if self.scaler is None else _clone(self.scaler.state_dict()), capture_rng())

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

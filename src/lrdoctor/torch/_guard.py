"""``Guard``: skip bad batches, rewind damaged training, and say what it did.

In the loop, after ``loss.backward()`` and before ``optimizer.step()``::

    if guard.check(loss):
        optimizer.step()
        scheduler.step()
    optimizer.zero_grad()

``check`` returns False when this batch must be skipped:

- the loss is NaN/Inf, or (without a GradScaler, which handles its own overflow) the gradient
  norm is;
- the loss spikes against the run's own recent statistics, in log space (a minibatch loss
  varies by a factor, not by an amount): with ``m`` the median of log(loss) over the last 20
  accepted batches (the current level) and ``s = 1.4826 * median|Δ log(loss)| / sqrt(2)`` over
  the last ``window`` accepted batches (the batch-to-batch noise, blind to the downward trend a
  plain MAD would count as noise), the batch is a spike when ``z = (log(loss) - m) /
  max(s, 0.05) > z`` and ``loss > ratio * exp(m)``, after ``min_history`` accepted batches.
  The limit is recomputed every 10 accepted batches and confirmed exactly when crossed, so a
  plain step costs one comparison;
- the gradient norm (the sum of the per-tensor norms) spikes by the same test against its own
  history (a corrupt batch whose loss looks ordinary can still carry a gradient 1000x too
  large, and its update is the damage).

When ``patience`` batches in a row are skipped, the damage is already done (the loss stays up):
the guard restores the last good snapshot (model, optimizer, scheduler, the CPU and CUDA RNG
states, Python's and NumPy's RNGs, a GradScaler if given), so the batches since then are
skipped, and scales every group's LR by ``lr_factor`` rising linearly back to 1 over
``cooldown_steps`` optimizer steps (applied in an optimizer step pre-hook and undone in the
post-hook, so a scheduler never sees the scaled value). Snapshots are in-memory copies taken at
accepted batches every ``snapshot_every`` batches (the last three are kept); the newest one
taken at least 2 batches before the first bad one is restored (the update of the batch just
before the trouble may be the one that did the damage). More than ``max_rewinds`` rewinds within ``rewind_window`` batches raise
:class:`~lrdoctor.errors.GuardError` naming what it saw. Every action is a :class:`GuardEvent`
in ``events`` and, with ``journal``, an entry of cause ``guard``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lrdoctor.errors import GuardError, LRDoctorError
from lrdoctor.journal import Entry, Journal
from lrdoctor.torch._state import capture_rng, restore_rng

__all__ = ["Guard", "GuardEvent"]

_MIN_SCALE = 0.05  # floor of the robust scale of log(loss): a 5% wobble is never a spike
_MARGIN = 2        # a snapshot restored is from >= 2 batches before the first bad one
_LEVEL = 20        # accepted batches whose median log(loss) is the current level
_REFRESH = 10      # accepted batches between recomputations of the spike limit


@dataclass(frozen=True)
class GuardEvent:
    """One action: ``action`` is 'skip', 'rewind' or 'stop'; ``reason`` 'nonfinite-loss',
    'nonfinite-grad', 'spike' or 'grad-spike'; ``step`` the batch (0-based count of ``check`` calls)."""

    step: int
    action: str
    reason: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


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
    step: int
    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    scaler: dict[str, Any] | None
    rng: dict[str, Any]


class Guard:
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
        for name, v, lo in (("snapshot_every", snapshot_every, 1), ("window", window, 2),
                            ("min_history", min_history, 2), ("patience", patience, 1),
                            ("cooldown_steps", cooldown_steps, 0), ("max_rewinds", max_rewinds, 0),
                            ("rewind_window", rewind_window, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise LRDoctorError(f"Guard {name} must be an int >= {lo}, got {v!r}")
        if min_history > window:
            raise LRDoctorError(f"Guard min_history ({min_history}) must be <= window ({window})")
        if not z > 0 or not ratio >= 1:
            raise LRDoctorError(f"Guard needs z > 0 and ratio >= 1, got z={z}, ratio={ratio}")
        if not 0 < lr_factor <= 1:
            raise LRDoctorError(f"Guard lr_factor must be in (0, 1], got {lr_factor}")
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.journal = Journal(journal) if isinstance(journal, (str, bytes)) or (
            journal is not None and not isinstance(journal, Journal)) else journal
        self.snapshot_every, self.window, self.min_history = snapshot_every, window, min_history
        self.z, self.ratio, self.patience = float(z), float(ratio), patience
        self.lr_factor, self.cooldown_steps = float(lr_factor), cooldown_steps
        self.max_rewinds, self.rewind_window = max_rewinds, rewind_window
        self.check_grads = check_grads and scaler is None
        self.events: list[GuardEvent] = []
        self.step = 0                      # batches checked
        self._history: deque[float] = deque(maxlen=window)   # log(loss) of accepted batches
        self._ghistory: deque[float] = deque(maxlen=window)  # log(grad norm sum), the same
        self._snapshots: deque[_Snapshot] = deque(maxlen=3)
        self._bad: list[tuple[int, str, float]] = []          # the current run of skips
        self._rewinds: list[int] = []
        self._cool_left = 0                # optimizer steps of lowered LR still to go
        self._scaled: list[float] | None = None
        self._limit: float | None = None   # the loss above which a batch may be a spike
        self._glimit = math.inf            # the same for the gradient norm
        self._since = 0                    # accepted batches since the limit was computed
        self._params = [p for g in optimizer.param_groups for p in g["params"]]
        self._hooks = [optimizer.register_step_pre_hook(self._pre_step),
                       optimizer.register_step_post_hook(self._post_step)]

    # ---- the check -----------------------------------------------------------------------
    def check(self, loss: Any) -> bool:
        """Decide on this batch: True to step, False to skip it (see the class docstring)."""
        k = self.step
        self.step += 1
        value, gnorm = self._measure(loss)
        reason, stats = None, {}
        if not math.isfinite(value):
            reason = "nonfinite-loss"
        elif gnorm is not None and not math.isfinite(gnorm):
            reason = "nonfinite-grad"
        elif len(self._history) >= self.min_history and value > 0:
            if self._limit is None or self._since >= _REFRESH:
                self._limit, self._since = self._spike_limit(self._history), 0
                self._glimit = self._spike_limit(self._ghistory) \
                    if len(self._ghistory) >= self.min_history else math.inf
            if value > self._limit:
                stats = self._spike_stats(value, self._history)
                if stats["z"] > self.z and value > self.ratio * stats["median"]:
                    reason = "spike"
            if reason is None and gnorm is not None and gnorm > self._glimit:
                stats = self._spike_stats(gnorm, self._ghistory)
                if stats["z"] > self.z and gnorm > self.ratio * stats["median"]:
                    reason = "grad-spike"
        if reason is None:
            self._bad.clear()
            self._history.append(math.log(max(value, 1e-30)))
            if gnorm is not None and gnorm > 0:
                self._ghistory.append(math.log(gnorm))
            self._since += 1
            last = self._snapshots[-1].step if self._snapshots else None
            if last is None or k - last >= self.snapshot_every:
                self._take(k)
            return True
        self._bad.append((k, reason, value))
        ev = {"loss": value, "grad_norm_sum": gnorm, **{k2: round(v, 6) for k2, v in stats.items()}}
        if len(self._bad) >= self.patience and self._snapshots:
            self._rewind(k, reason, ev)
        else:
            self._event(k, "skip", reason, self._why(reason, value, gnorm, stats)
                        + f"; batch skipped ({len(self._bad)} in a row, patience "
                        f"{self.patience})", ev)
        return False

    def _measure(self, loss: Any) -> tuple[float, float | None]:
        """The loss and (if checked) the global gradient norm, with one device sync."""
        t = loss.detach().float().reshape(()) if isinstance(loss, torch.Tensor) else None
        if not self.check_grads:
            return (float(t) if t is not None else float(loss)), None
        grads = [p.grad for p in self._params if p.grad is not None]
        if not grads:
            return (float(t) if t is not None else float(loss)), None
        # the sum of the per-tensor norms is finite exactly when every gradient is
        total = torch.stack(torch._foreach_norm(grads)).sum()
        if t is None:
            return float(loss), float(total)
        both = torch.stack([t.to(total.device, total.dtype), total]).tolist()
        return both[0], both[1]

    @staticmethod
    def _level_scale(history: deque[float]) -> tuple[float, float]:
        h = np.fromiter(history, dtype=float)
        level = float(np.median(h[-_LEVEL:]))
        noise = 1.4826 * float(np.median(np.abs(np.diff(h)))) / math.sqrt(2)
        return level, max(noise, _MIN_SCALE)

    def _spike_limit(self, history: deque[float]) -> float:
        level, scale = self._level_scale(history)
        return math.exp(level + min(self.z * scale, 700.0 - level)) if level < 700 else math.inf

    def _spike_stats(self, value: float, history: deque[float]) -> dict[str, float]:
        level, scale = self._level_scale(history)
        return {"z": (math.log(value) - level) / scale, "median": math.exp(level),
                "scale": scale, "window": float(len(history))}

    def _why(self, reason: str, value: float, gnorm: float | None, stats: dict[str, float]) -> str:
        if reason == "nonfinite-loss":
            return f"the loss was {value!r}"
        if reason == "nonfinite-grad":
            return f"a gradient norm was {gnorm!r} (loss {value:.4g})"
        if reason == "grad-spike":
            return (f"the gradient norm {gnorm:.4g} is {gnorm / stats['median']:.1f}x its median "
                    f"{stats['median']:.4g} over the last {_LEVEL} accepted batches (robust z "
                    f"{stats['z']:.1f} > {self.z:g}; loss {value:.4g})")
        return (f"the loss {value:.4g} is {value / stats['median']:.1f}x the median "
                f"{stats['median']:.4g} of the last {_LEVEL} accepted batches (robust z "
                f"{stats['z']:.1f} > {self.z:g} against the batch-to-batch noise of the last "
                f"{int(stats['window'])})")

    # ---- snapshots and rewinds -------------------------------------------------------------
    def _take(self, k: int) -> None:
        rng = capture_rng()
        self._snapshots.append(_Snapshot(
            k, _clone(self.model.state_dict()), _clone(self.optimizer.state_dict()),
            None if self.scheduler is None else _clone(self.scheduler.state_dict()),
            None if self.scaler is None else _clone(self.scaler.state_dict()), rng))

    def snapshot(self) -> None:
        """Take a snapshot now (of the state before this batch's update)."""
        self._take(self.step)

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

    def _rewind(self, k: int, reason: str, ev: dict[str, Any]) -> None:
        first = self._bad[0][0]
        recent = [r for r in self._rewinds if k - r < self.rewind_window]
        if len(recent) >= self.max_rewinds:
            seen = ", ".join(f"batch {s} ({why}, loss {v:.4g})" for s, why, v in self._bad[-3:])
            msg = (f"Guard stopped training at batch {k}: {len(recent)} rewinds within "
                   f"{self.rewind_window} batches (at batches "
                   f"{', '.join(map(str, recent))}) did not end the trouble; now {seen}. This "
                   "is not a few bad batches: lower the learning rate, add warm-up or gradient "
                   "clipping, or check the data (guard.events lists every action).")
            self._event(k, "stop", reason, msg, {**ev, "rewinds": recent})
            raise GuardError(msg, tuple(self.events))
        good = [s for s in self._snapshots if s.step <= first - _MARGIN]
        snap = good[-1] if good else self._snapshots[0]
        old = [float(g["lr"]) for g in self.optimizer.param_groups]
        self._restore(snap)
        while self._snapshots and self._snapshots[-1].step > snap.step:
            self._snapshots.pop()   # a newer snapshot may hold the damage
        self._scaled = None
        self._cool_left = self.cooldown_steps
        self._rewinds.append(k)
        self._bad.clear()
        new = [float(g["lr"]) * self.lr_factor for g in self.optimizer.param_groups]
        msg = (f"{self._why(reason, ev['loss'], ev.get('grad_norm_sum'), ev)} and "
               f"{self.patience} batches in a row since batch {first} were bad: restored the "
               f"snapshot of batch {snap.step} (skipping batches {snap.step}-{k}) and lowered "
               f"the lr by {self.lr_factor:g}x for {self.cooldown_steps} steps")
        self._event(k, "rewind", reason, msg,
                    {**ev, "first_bad": first, "restored": snap.step, "skipped": k - snap.step + 1,
                     "lr_factor": self.lr_factor, "cooldown_steps": self.cooldown_steps}, old, new)

    # ---- the lowered LR --------------------------------------------------------------------
    def _pre_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._cool_left <= 0:
            return
        done = self.cooldown_steps - self._cool_left
        f = self.lr_factor + (1 - self.lr_factor) * done / max(self.cooldown_steps, 1)
        self._scaled = [float(g["lr"]) for g in optimizer.param_groups]
        for g in optimizer.param_groups:
            g["lr"] = float(g["lr"]) * f

    def _post_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._scaled is None:
            return
        for g, lr in zip(optimizer.param_groups, self._scaled):
            g["lr"] = lr
        self._scaled = None
        self._cool_left -= 1

    # ---- reporting -------------------------------------------------------------------------
    def _event(self, k: int, action: str, reason: str, message: str, evidence: dict[str, Any],
               old: list[float] | None = None, new: list[float] | None = None) -> None:
        evidence = {key: v for key, v in evidence.items() if v is not None}
        self.events.append(GuardEvent(k, action, reason, message, evidence))
        if self.journal is not None:
            lrs = old or [float(g["lr"]) for g in self.optimizer.param_groups]
            self.journal.append(Entry("guard", step=k, old_lrs=tuple(lrs),
                                      new_lrs=tuple(new or lrs),
                                      evidence={"action": action, "reason": reason, **evidence},
                                      message=message))

    @property
    def skipped(self) -> int:
        """Batches skipped so far (rewinds included)."""
        return sum(e.action in ("skip", "rewind") for e in self.events)

    @property
    def rewinds(self) -> int:
        return sum(e.action == "rewind" for e in self.events)

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
                f"snapshots at {[s.step for s in self._snapshots]})")

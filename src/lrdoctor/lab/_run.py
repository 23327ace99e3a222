"""Run real ``torch.optim`` optimizers on a lab surface under an lrdoctor schedule.

Nothing here re-implements an optimizer: the runner builds ``torch.optim.SGD``, ``Adagrad``,
``RMSprop``, ``Adam`` or ``AdamW``, sets ``group['lr']`` to ``schedule(k)`` before optimizer
step k (the package's one step rule), hands it the surface's gradient and records what happened:
the trajectory, the loss, the gradient, and for adaptive methods the effective per-parameter
step size read back from the optimizer's own state.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrdoctor._lazy import require
from lrdoctor.errors import LRDoctorError, ScheduleError
from lrdoctor.lab._surfaces import Surface
from lrdoctor.schedules import Constant, Schedule, parse
from lrdoctor.schedules._warmup import Ramp

__all__ = ["OPTIMIZERS", "OptimizerSetup", "Trajectory", "parse_optimizer", "run"]

#: Optimizer names -> (torch.optim class name, default keyword arguments).
OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("SGD", {}),
    "momentum": ("SGD", {"momentum": 0.9}),
    "nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "adagrad": ("Adagrad", {}),
    "rmsprop": ("RMSprop", {}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {"weight_decay": 1e-2}),
}

#: Methods whose per-parameter step size comes from a running statistic of the gradients.
ADAPTIVE = frozenset({"adagrad", "rmsprop", "adam", "adamw"})


@dataclass(frozen=True)
class OptimizerSetup:
    """One optimizer to run: a name from :data:`OPTIMIZERS`, a learning rate, and optionally a
    schedule (which then decides the lr of every step) and extra ``torch.optim`` keywords.

    >>> OptimizerSetup("adam", 0.1, schedule="warmup(100)").label
    'adam warmup(100) >> constant(0.1)'
    """

    name: str
    lr: float
    schedule: Schedule | str | None = None
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise LRDoctorError(
                f"unknown optimizer {self.name!r}; expected one of {', '.join(OPTIMIZERS)}"
            )
        if not (math.isfinite(self.lr) and self.lr >= 0):
            raise LRDoctorError(f"{self.name}: lr must be a finite number >= 0, got {self.lr!r}")
        object.__setattr__(self, "schedule", _resolve(self.schedule, self.lr))
        if isinstance(self.options, dict):
            object.__setattr__(self, "options", tuple(sorted(self.options.items())))

    @property
    def resolved(self) -> Schedule:
        """The schedule actually run: the given one, or ``constant(lr)``."""
        return self.schedule if isinstance(self.schedule, Schedule) else Constant(self.lr)

    @property
    def label(self) -> str:
        if self.schedule is None:
            return f"{self.name} lr={self.lr:g}"
        return f"{self.name} {self.resolved.to_spec()}"

    def build(self, params: list[Any]) -> Any:
        """The ``torch.optim`` optimizer over ``params``."""
        torch = require("torch", "torch")
        cls_name, defaults = OPTIMIZERS[self.name]
        kwargs = {**defaults, **dict(self.options)}
        try:
            return getattr(torch.optim, cls_name)(params, lr=self.resolved(0), **kwargs)
        except TypeError as err:
            raise LRDoctorError(f"{self.name}: bad optimizer option: {err}") from None


def _resolve(schedule: Schedule | str | None, lr: float) -> Schedule | None:
    """Parse a spec; a lone warm-up (``warmup(100)``) ramps to ``lr`` and then holds it."""
    if schedule is None or schedule == "":
        return None
    if isinstance(schedule, Schedule):
        if isinstance(schedule, Ramp) and schedule.target_lr is None:
            return schedule >> Constant(lr)
        return schedule
    try:
        return parse(schedule)
    except ScheduleError as err:
        if "no target" not in err.reason:
            raise
        return parse(f"({schedule}) >> constant({lr!r})")


def parse_optimizer(text: str) -> OptimizerSetup:
    """Parse ``NAME:LR[:SPEC]``, e.g. ``sgd:1e-2`` or ``adam:0.1:warmup(100) >> cosine(...)``.

    ``SPEC`` is any lrdoctor schedule; a lone ``warmup(N)`` ramps to ``LR``.
    """
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[0].strip():
        raise LRDoctorError(
            f"optimizer {text!r} should be NAME:LR[:SPEC], e.g. sgd:1e-2 or "
            "adam:0.1:warmup(100); names: " + ", ".join(OPTIMIZERS)
        )
    name, lr_text = parts[0].strip().lower(), parts[1].strip()
    try:
        lr = float(lr_text)
    except ValueError:
        raise LRDoctorError(f"optimizer {text!r}: LR {lr_text!r} is not a number") from None
    spec = parts[2].strip() if len(parts) == 3 else None
    return OptimizerSetup(name, lr, schedule=spec or None)


@dataclass(frozen=True, eq=False)
class Trajectory:
    """What one run did, step by step (arrays are float64).

    ``points[k]`` is the position before step k (``points[-1]`` after the last one),
    ``losses[k]`` the surface's loss there; ``grads[k]`` and ``lrs[k]`` the gradient and the
    learning rate of step k; ``effective_lr[k]`` the per-parameter step size of step k (for
    adaptive methods ``lr / (sqrt(v̂) + eps)`` from the optimizer's state, for SGD just ``lr``).
    """

    surface: Surface
    setup: OptimizerSetup
    points: np.ndarray
    losses: np.ndarray
    grads: np.ndarray
    lrs: np.ndarray
    effective_lr: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.lrs)

    @property
    def label(self) -> str:
        return self.setup.label

    @property
    def grad_norms(self) -> np.ndarray:
        return np.hypot(self.grads[:, 0], self.grads[:, 1])

    @property
    def updates(self) -> np.ndarray:
        """``points[k+1] - points[k]``: the step each parameter actually took."""
        return np.diff(self.points, axis=0)

    @property
    def distances(self) -> np.ndarray:
        """Distance to the nearest minimum at every recorded point."""
        return self.surface.distance_to_min(self.points)

    @property
    def final_distance(self) -> float:
        return float(self.distances[-1])

    @property
    def adaptive(self) -> bool:
        return self.setup.name in ADAPTIVE

    def summary(self) -> dict[str, Any]:
        """Headline numbers, JSON-ready."""
        d = self.distances
        tail = self.points[-max(2, min(100, self.steps // 10)) :]
        return {
            "optimizer": self.setup.name,
            "label": self.label,
            "lr": self.setup.lr,
            "schedule": self.setup.resolved.to_spec(),
            "steps": self.steps,
            "start": self.points[0].tolist(),
            "end": self.points[-1].tolist(),
            "initial_loss": float(self.losses[0]),
            "final_loss": float(self.losses[-1]),
            "initial_distance": float(d[0]),
            "final_distance": float(d[-1]),
            "distance_ratio": float(d[-1] / d[0]) if d[0] > 0 else None,
            "final_grad_norm": float(self.grad_norms[-1]) if self.steps else None,
            "tail_range": (tail.max(axis=0) - tail.min(axis=0)).tolist(),
            "diverged": bool(not np.all(np.isfinite(self.points))),
        }

    def to_dict(self, *, every: int = 1) -> dict[str, Any]:
        """The summary plus the recorded series (every ``every``-th step)."""
        out = self.summary()
        out["surface"] = self.surface.name
        out["series"] = {
            "step": list(range(0, self.steps, every)),
            "x": self.points[:-1:every, 0].tolist(),
            "y": self.points[:-1:every, 1].tolist(),
            "loss": self.losses[:-1:every].tolist(),
            "grad_norm": self.grad_norms[::every].tolist(),
            "lr": self.lrs[::every].tolist(),
            "effective_lr_x": self.effective_lr[::every, 0].tolist(),
            "effective_lr_y": self.effective_lr[::every, 1].tolist(),
        }
        return out


def run(
    surface: Surface,
    setup: OptimizerSetup | str,
    *,
    steps: int,
    start: tuple[float, float] | None = None,
    autograd: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Trajectory:
    """Run ``setup`` (an :class:`OptimizerSetup` or ``"NAME:LR[:SPEC]"``) for ``steps`` steps.

    The gradient is the surface's closed form (or ``torch.autograd`` with ``autograd=True``;
    both give the same float64 numbers), plus the noise of a :class:`Noisy` surface. Stops
    early, filling with NaN, if the iterate overflows. ``progress(done, total)`` is called
    about a hundred times.
    """
    torch = require("torch", "torch")
    if isinstance(setup, str):
        setup = parse_optimizer(setup)
    if not (isinstance(steps, int) and steps >= 1):
        raise LRDoctorError(f"steps must be an integer >= 1, got {steps!r}")
    x0 = tuple(float(v) for v in (start if start is not None else surface.start))
    if len(x0) != 2 or not all(map(math.isfinite, x0)):
        raise LRDoctorError(f"start must be two finite numbers, got {start!r}")

    schedule = setup.resolved
    lrs = schedule.values(steps)
    moms = [schedule.momentum(k) for k in range(steps)] if schedule.momentum(0) is not None else None
    if not np.all(np.isfinite(lrs)) or np.any(lrs < 0):
        raise ScheduleError(f"{schedule.to_spec()}: gives a negative or non-finite lr")
    noise = np.zeros((steps, 2))
    if surface.noise > 0:
        gen = torch.Generator().manual_seed(int(getattr(surface, "seed", 0)))
        noise = surface.noise * torch.randn((steps, 2), generator=gen, dtype=torch.float64).numpy()

    p = torch.tensor(x0, dtype=torch.float64, requires_grad=autograd)
    opt = setup.build([p])
    group = opt.param_groups[0]
    use_beta1 = "betas" in group
    if moms is not None and not (use_beta1 or "momentum" in group):
        raise ScheduleError(
            f"{setup.name} has no momentum, but {schedule.to_spec()} cycles it; "
            "add cycle_momentum=false to the spec"
        )
    p_np = p.detach().numpy()  # a view: it follows the optimizer's in-place updates
    p.grad = torch.zeros_like(p)
    g_np = p.grad.numpy()

    points = np.full((steps + 1, 2), np.nan)
    grads = np.full((steps, 2), np.nan)
    stat = np.full((steps, 2), np.nan) if setup.name in ADAPTIVE else None
    aux = np.full((steps, 2), np.nan) if setup.name == "rmsprop" and group.get("centered") else None
    points[0] = p_np
    report_every = max(1, steps // 100)
    done = steps
    for k in range(steps):
        group["lr"] = float(lrs[k])
        if moms is not None:
            if use_beta1:
                group["betas"] = (moms[k], *group["betas"][1:])
            else:
                group["momentum"] = moms[k]
        if autograd:
            p.grad = None
            loss = surface.loss(p) + (torch.from_numpy(noise[k]) * p).sum()
            loss.backward()
            g_np = p.grad.numpy()
        else:
            gx, gy = surface.grad(float(p_np[0]), float(p_np[1]))
            g_np[0] = gx + noise[k, 0]
            g_np[1] = gy + noise[k, 1]
        grads[k] = g_np
        opt.step()
        if stat is not None:
            state = opt.state[p]
            stat[k] = _statistic(setup.name, state, group).numpy()
            if aux is not None:
                aux[k] = state["grad_avg"].numpy()
        points[k + 1] = p_np
        if not np.all(np.isfinite(p_np)) or np.max(np.abs(p_np)) > 1e150:
            done = k + 1
            break
        if progress is not None and (k + 1) % report_every == 0:
            progress(k + 1, steps)
    if progress is not None:
        progress(steps, steps)

    with np.errstate(all="ignore"):
        losses = surface.loss_np(points[:, 0], points[:, 1])
        eff = _effective_lr(setup.name, lrs, stat, aux, group)
    return Trajectory(
        surface=surface,
        setup=setup,
        points=points,
        losses=losses,
        grads=grads,
        lrs=lrs,
        effective_lr=eff,
        meta={"completed_steps": done, "optimizer": repr(opt).splitlines()[0]},
    )


def _statistic(name: str, state: dict[str, Any], group: dict[str, Any]) -> Any:
    """The running statistic the adaptive method divides by, straight from its state."""
    if name == "adagrad":
        return state["sum"]
    if name == "rmsprop":
        return state["square_avg"]
    if group.get("amsgrad"):
        return state["max_exp_avg_sq"]
    return state["exp_avg_sq"]


def _effective_lr(
    name: str, lrs: np.ndarray, stat: np.ndarray | None, aux: np.ndarray | None, group: dict[str, Any]
) -> np.ndarray:
    """Per-parameter step size of each step, from the recorded optimizer statistics.

    Adagrad: ``lr / (1 + (t-1)·lr_decay) / (sqrt(sum) + eps)``; RMSprop:
    ``lr / (sqrt(square_avg [- grad_avg²]) + eps)``; Adam/AdamW (multiplying the bias-corrected
    first moment): ``lr / (sqrt(v / (1 - beta2^t)) + eps)``; SGD and momentum: ``lr``.
    """
    lr = lrs[:, None]
    if stat is None:
        return np.repeat(lr, 2, axis=1)
    eps = float(group["eps"])
    t = np.arange(1, len(lrs) + 1, dtype=float)[:, None]
    if name == "adagrad":
        return lr / (1.0 + (t - 1.0) * float(group.get("lr_decay", 0.0))) / (np.sqrt(stat) + eps)
    if name == "rmsprop":
        var = stat - aux**2 if aux is not None else stat
        return lr / (np.sqrt(var) + eps)
    beta2 = float(group["betas"][1])
    return lr / (np.sqrt(stat / (1.0 - beta2**t)) + eps)


def replace(setup: OptimizerSetup, **changes: Any) -> OptimizerSetup:
    """``dataclasses.replace`` for setups (re-resolves the schedule)."""
    return dataclasses.replace(setup, **changes)

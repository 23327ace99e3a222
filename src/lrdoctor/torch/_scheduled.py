"""``ScheduledLR``: any lrdoctor schedule as a real ``torch.optim.lr_scheduler.LRScheduler``.

Unlike torch's chainable schedulers, the learning rate is recomputed from the step count in
closed form at every ``step()``: no drift, and ``state_dict()`` is just the step and the spec,
so resuming at any step gives exactly the uninterrupted trajectory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lrdoctor.errors import ScheduleError
from lrdoctor.schedules import Schedule, parse

__all__ = ["ScheduledLR", "apply_group_values"]

ScheduleLike = Schedule | str


def apply_group_values(group: dict[str, Any], lr: float, momentum: float | None, use_beta1: bool) -> None:
    """Write ``lr`` (and ``momentum`` as ``betas[0]`` or ``momentum``) into a param group.

    A tensor ``lr`` (capturable/fused optimizers) is filled in place so its identity is kept.
    """
    current = group["lr"]
    if isinstance(current, torch.Tensor):
        current.fill_(lr)
    else:
        group["lr"] = lr
    if momentum is not None:
        if use_beta1:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum


class ScheduledLR(LRScheduler):
    """Drive an optimizer's learning rate with an lrdoctor schedule, one ``step()`` per
    optimizer step.

    ``schedule`` is a :class:`~lrdoctor.schedules.Schedule`, a spec string, or a list of them,
    one per param group. After construction the groups hold ``schedule(0)``; the k-th call to
    :meth:`step` sets ``schedule(k)``. Schedules that carry a momentum curve (``one_cycle``,
    ``cyclic``) also set ``betas[0]`` or ``momentum``, as torch's ``cycle_momentum`` does.

    With ``keep_group_ratios=True`` a single schedule is scaled per group by the group's
    initial lr relative to the first group's, so a backbone at 0.1× keeps being 0.1×.

    Example::

        opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
        sched = ScheduledLR(opt, "warmup(500) >> cosine(3e-4, end=3e-6, steps=9500)")
        for batch in loader:
            loss(batch).backward(); opt.step(); opt.zero_grad(); sched.step()
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: ScheduleLike | Sequence[ScheduleLike],
        *,
        keep_group_ratios: bool = False,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ScheduledLR needs a torch.optim.Optimizer, got {type(optimizer).__name__}")
        groups = optimizer.param_groups
        self.schedules = _per_group(schedule, len(groups))
        if keep_group_ratios:
            if len(set(map(id, self.schedules))) != 1:
                raise ScheduleError("keep_group_ratios=True applies one schedule to all groups; got one per group")
            first = float(groups[0]["lr"])
            if first <= 0:
                raise ScheduleError("keep_group_ratios=True needs the first param group's lr > 0")
            self.scales = [float(g["lr"]) / first for g in groups]
        else:
            self.scales = [1.0] * len(groups)
        self._use_beta1 = "betas" in optimizer.defaults
        if (any(s.momentum(0) is not None for s in self.schedules)
                and "betas" not in optimizer.defaults and "momentum" not in optimizer.defaults):
            raise ScheduleError(
                f"{type(optimizer).__name__} has neither momentum nor betas, but the schedule "
                "cycles momentum; add cycle_momentum=false to the spec"
            )
        super().__init__(optimizer, last_epoch=-1)

    # -- the LRScheduler protocol ----------------------------------------------------------
    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The learning rates of the current step, in closed form."""
        return [s(self.last_epoch) * c for s, c in zip(self.schedules, self.scales)]

    def step(self, epoch: int | None = None) -> None:  # type: ignore[override]
        """Advance one optimizer step and set every group's lr (and momentum) for it."""
        if epoch is not None:
            raise TypeError(
                "ScheduledLR.step() takes no epoch: it counts optimizer steps; "
                "to jump, use load_state_dict({'step': k, ...})"
            )
        self._step_count += 1
        self.last_epoch += 1
        self._apply()

    def _apply(self) -> None:
        k = self.last_epoch
        lrs = []
        for group, s, c in zip(self.optimizer.param_groups, self.schedules, self.scales):
            lr = s(k) * c
            apply_group_values(group, lr, s.momentum(k), self._use_beta1)
            lrs.append(lr)
        self._last_lr = lrs

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The step count and the specs: everything needed to resume the exact trajectory."""
        return {
            "step": self.last_epoch,
            "specs": [s.to_spec() for s in self.schedules],
            "scales": list(self.scales),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume at ``state_dict['step']`` and set the groups' lr for that step."""
        try:
            step, specs = int(state_dict["step"]), state_dict["specs"]
        except (KeyError, TypeError, ValueError) as err:
            raise ScheduleError(
                f"not a ScheduledLR state dict (expected keys 'step' and 'specs'): {err}"
            ) from None
        if len(specs) != len(self.optimizer.param_groups):
            raise ScheduleError(
                f"the state holds {len(specs)} schedules but the optimizer has "
                f"{len(self.optimizer.param_groups)} param groups"
            )
        self.schedules = [parse(s) for s in specs]
        self.scales = [float(c) for c in state_dict.get("scales", [1.0] * len(specs))]
        self.last_epoch = step
        self._step_count = step + 1
        self._apply()

    @property
    def schedule(self) -> Schedule:
        """The schedule of the first param group."""
        return self.schedules[0]

    def __repr__(self) -> str:
        specs = "; ".join(dict.fromkeys(s.to_spec() for s in self.schedules))
        return f"ScheduledLR(step={self.last_epoch}, {specs})"


def _per_group(schedule: ScheduleLike | Sequence[ScheduleLike], n_groups: int) -> list[Schedule]:
    if isinstance(schedule, (str, Schedule)):
        one = parse(schedule)
        return [one] * n_groups
    items = list(schedule)
    if len(items) != n_groups:
        raise ScheduleError(
            f"got {len(items)} schedules for {n_groups} param groups; give one schedule, "
            "or exactly one per group"
        )
    return [parse(s) for s in items]

"""PyTorch's own ReduceLROnPlateau unit tests, run against ``PlateauLR``.

Source: pytorch/pytorch, ``test/optim/test_lrscheduler.py`` (class ``TestLRScheduler``; the
``test_reduce_lr_on_plateau1..8``, ``test_compound_reduce_lr_on_plateau1..5``,
``..._get_last_lr_before_step``, ``..._preserves_lr_type`` and ``..._state_dict`` tests and the
``_test_reduce_lr_on_plateau`` helper, read from the public repository, main branch, Nov 2026).
The file is not shipped with the torch wheel, so it cannot be run in place. This is a faithful
port of its assertions: same fixture (two conv param groups, the second with a tensor lr), same
metric sequences, settings and targets, same tolerance (atol=1e-5, rtol=0), with ``PlateauLR``
substituted for ``torch.optim.lr_scheduler.ReduceLROnPlateau`` — exactly what "substitute the
class and run torch's tests" means. Each test runs against both classes (``cls`` fixture) so a
failure can be told apart from a change in torch itself.

How it was run: ``pytest tests/torch/test_plateau_torch_port.py`` (part of ``make test``).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F
from torch.optim import SGD
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    ReduceLROnPlateau,
    StepLR,
)

from lrdoctor.torch import PlateauLR


class SchedulerTestNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 1, 1)
        self.conv2 = torch.nn.Conv2d(1, 1, 1)

    def forward(self, x):
        return self.conv2(F.relu(self.conv1(x)))


@pytest.fixture(params=[PlateauLR, ReduceLROnPlateau], ids=["PlateauLR", "torch"])
def cls(request):
    return request.param


@pytest.fixture
def opt():
    net = SchedulerTestNet()
    return SGD(
        [{"params": net.conv1.parameters()},
         {"params": net.conv2.parameters(), "lr": torch.tensor(0.5)}],
        lr=0.05,
    )


def _set_lr(opt, lr):
    for g in opt.param_groups:
        g["lr"] = lr


def _check(opt, schedulers, targets, metrics, epochs):
    """torch's ``_test_reduce_lr_on_plateau``."""
    if isinstance(schedulers, (LRScheduler, ReduceLROnPlateau)):
        schedulers = [schedulers]
    for epoch in range(epochs):
        opt.step()
        for scheduler in schedulers:
            if isinstance(scheduler, ReduceLROnPlateau):
                scheduler.step(metrics[epoch])
            else:
                scheduler.step()
        for group, target in zip(opt.param_groups, targets):
            torch.testing.assert_close(
                float(group["lr"]), float(target[epoch]), atol=1e-5, rtol=0,
                msg=f"LR is wrong in epoch {epoch}",
            )


# (settings, targets, metrics, epochs) of test_reduce_lr_on_plateau1..8
CASES = {
    1: ({"threshold_mode": "abs", "mode": "min", "threshold": 0.01, "patience": 5, "cooldown": 5},
        [[0.5] * 20], [10 - i * 0.0167 for i in range(20)], 10),
    2: ({"patience": 5, "cooldown": 0, "threshold_mode": "abs", "mode": "min", "threshold": 0.1},
        [[0.5] * 6 + [0.05] * 7 + [0.005] * 7 + [0.0005] * 2], [10 - i * 0.0165 for i in range(22)], 22),
    3: ({"mode": "max", "patience": 5, "cooldown": 5, "threshold_mode": "abs"},
        [[0.5] * (2 + 6) + [0.05] * (5 + 6) + [0.005] * 4], [-0.8] * 2 + [-0.234] * 20, 22),
    4: ({"mode": "max", "patience": 3, "threshold_mode": "rel", "threshold": 0.1},
        [[0.5] * 20], [1.5 * (1.025**i) for i in range(20)], 20),
    5: ({"mode": "max", "threshold_mode": "rel", "threshold": 0.1, "patience": 5, "cooldown": 5},
        [[0.5] * 6 + [0.05] * (5 + 6) + [0.005] * 4], [1.5 * (1.005**i) for i in range(20)], 20),
    6: ({"mode": "min", "threshold_mode": "rel", "threshold": 0.1},
        [[0.5] * 20], [1.5 * (0.85**i) for i in range(20)], 20),
    7: ({"mode": "min", "threshold_mode": "rel", "threshold": 0.1, "patience": 5, "cooldown": 5},
        [[0.5] * 6 + [0.05] * (5 + 6) + [0.005] * 4], [1] * 7 + [0.6] + [0.5] * 12, 20),
    8: ({"mode": "max", "threshold_mode": "rel", "min_lr": [0.4, 0.3], "threshold": 0.1, "patience": 5, "cooldown": 5},
        [[0.5] * 6 + [0.4] * 14, [0.5] * 6 + [0.3] * 14], [1.5 * (1.005**i) for i in range(20)], 20),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reduce_lr_on_plateau(cls, opt, case):
    settings, targets, metrics, epochs = CASES[case]
    _set_lr(opt, 0.5)
    _check(opt, cls(opt, **settings), targets, metrics, epochs)


def _compound(opt, cls, n):
    """test_compound_reduce_lr_on_plateau1..5: torch's targets list is emptied (``targets[1:]``)
    so those tests only check that the chain runs; ported as such, plus a check that PlateauLR
    and torch's class produce the same lrs in the chain."""
    if n == 1:
        _set_lr(opt, 0.5)
        metrics = [10 - i * 0.0167 for i in range(20)]
        return [cls(opt, threshold_mode="abs", mode="min", threshold=0.01, patience=5, cooldown=5),
                StepLR(opt, gamma=0.1, step_size=3)], metrics, 10
    if n == 2:
        _set_lr(opt, 0.5)
        metrics = [10 - i * 0.0165 for i in range(22)]
        return [cls(opt, patience=5, cooldown=0, threshold_mode="abs", mode="min", threshold=0.1),
                MultiStepLR(opt, gamma=0.1, milestones=[3, 8, 12])], metrics, 22
    if n == 3:
        _set_lr(opt, 0.5)
        metrics = [-0.8] * 2 + [-0.234] * 20
        return [cls(opt, mode="max", patience=5, cooldown=5, threshold_mode="abs"),
                ExponentialLR(opt, gamma=0.1)], metrics, 22
    if n == 4:
        _set_lr(opt, 0.05)
        metrics = [1.5 * (1.025**i) for i in range(20)]
        return [cls(opt, mode="max", patience=3, threshold_mode="rel", threshold=0.1),
                CosineAnnealingLR(opt, 10, 1e-10)], metrics, 10
    _set_lr(opt, 0.5)
    metrics = [10 - i * 0.0165 for i in range(22)]
    return [cls(opt, patience=5, cooldown=0, threshold_mode="abs", mode="min", threshold=0.1),
            LinearLR(opt, start_factor=0.4, total_iters=4)], metrics, 22


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_compound_reduce_lr_on_plateau(opt, n):
    runs = []
    for cls in (PlateauLR, ReduceLROnPlateau):
        net = SchedulerTestNet()
        o = SGD([{"params": net.conv1.parameters()},
                 {"params": net.conv2.parameters(), "lr": torch.tensor(0.5)}], lr=0.05)
        schedulers, metrics, epochs = _compound(o, cls, n)
        _check(o, schedulers, [], metrics, epochs)  # torch's (empty) targets
        lrs = []
        for epoch in range(epochs):
            o.step()
            for s in schedulers:
                s.step(metrics[epoch]) if isinstance(s, ReduceLROnPlateau) else s.step()
            lrs.append([float(g["lr"]) for g in o.param_groups])
        runs.append(lrs)
    assert runs[0] == runs[1]


def test_reduce_lr_on_plateau_get_last_lr_before_step(cls, opt):
    _set_lr(opt, 0.5)
    scheduler = cls(opt)
    assert scheduler.get_last_lr() == [0.5 for _ in opt.param_groups]


def test_reduce_lr_on_plateau_preserves_lr_type(cls, opt):
    types = [type(group["lr"]) for group in opt.param_groups]
    scheduler = cls(opt, mode="min", patience=0)
    scheduler.step(1.0)
    scheduler.step(2.0)  # triggers the reduction
    for group, type_ in zip(opt.param_groups, types):
        assert type(group["lr"]) is type_


def test_reduce_lr_on_plateau_state_dict(cls, opt):
    scheduler = cls(opt, mode="min", factor=0.1, patience=2)
    for score in [1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 5.0, 3.0, 2.0, 1.0]:
        scheduler.step(score)
    scheduler_copy = cls(opt, mode="max", factor=0.5, patience=10)
    scheduler_copy.load_state_dict(scheduler.state_dict())
    for key in scheduler.__dict__:
        if key not in {"optimizer", "is_better"}:
            a, b = scheduler.__dict__[key], scheduler_copy.__dict__[key]
            if isinstance(a, float) and math.isinf(a):
                assert a == b
            else:
                assert a == b, key


def test_epoch_argument_is_deprecated_but_works(cls, opt):
    # torch's step(metrics, epoch) warns with EPOCH_DEPRECATION_WARNING and sets last_epoch
    scheduler = cls(opt, patience=0)
    with pytest.warns(UserWarning):
        scheduler.step(1.0, 5)
    assert scheduler.last_epoch == 5

"""oscillation from a cyclic learning rate (doctor/_lr_cycles.py), on generated per-step logs."""

from __future__ import annotations

import numpy as np

from lrdoctor.doctor import diagnose
from lrdoctor.doctor._lr_cycles import lr_turns
from lrdoctor.logs import Series, TrainingLog

N, HALF = 1200, 50                       # 12 cycles of 100 steps


def _cyclic_lr(low: float = 1e-3, high: float = 1e-1) -> np.ndarray:
    t = np.arange(N)
    tri = np.abs((t / HALF) % 2 - 1)     # 1 at the troughs, 0 at the peaks
    return np.exp(np.log(high) + (np.log(low) - np.log(high)) * tri)


def _log(lr: np.ndarray, swing: float, lag: int = 10, seed: int = 0) -> TrainingLog:
    """A falling loss times exp(swing * the LR's phase, ``lag`` steps later) with 3% noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(N)
    phase = np.log(lr) - np.log(lr).mean()
    phase = np.roll(phase / max(np.ptp(phase), 1e-12) * 2, lag)
    loss = (0.3 + 2.0 * np.exp(-t / 200)) * np.exp(swing * phase) * np.exp(
        0.03 * rng.standard_normal(N))
    return TrainingLog({"train/loss": Series(t, loss), "lr": Series(t, lr)})


def test_turns_count_only_reversals_after_a_twofold_move():
    assert len(lr_turns(_cyclic_lr())) == 2 * N // (2 * HALF) - 1
    jitter = 1e-3 * (1 + 0.3 * np.sin(np.arange(N) / 3))        # +-30%: never 2x
    assert lr_turns(jitter) == []
    warm_cos = np.r_[np.linspace(1e-4, 1e-2, 100), 1e-2 * (1 + np.cos(np.linspace(0, np.pi, N - 100))) / 2 + 1e-6]
    assert len(lr_turns(warm_cos)) == 1


def test_a_loss_thrown_up_at_every_lr_peak_is_oscillation():
    d = diagnose(_log(_cyclic_lr(), swing=0.4))
    f = {x.code: x for x in d.findings}["oscillation"]
    assert f.severity == "warning" and f.data["swing"] > 0.1 and f.data["corr"] > 0.5
    assert f.data["lr_range"] > 50 and "cycles" in f.evidence


def test_a_cyclic_lr_the_loss_does_not_follow_is_no_problem():
    assert "oscillation" not in diagnose(_log(_cyclic_lr(), swing=0.0)).codes
    # a mild answer to a narrow cycle (CLR with base = max / 4): a few percent only
    assert "oscillation" not in diagnose(_log(_cyclic_lr(2.5e-2, 1e-1), swing=0.05)).codes


def test_one_lr_peak_is_no_cycle():
    t = np.arange(N)
    one_cycle = 1e-2 * np.exp(-((t - N / 3) / (N / 6)) ** 2) + 1e-4
    assert "oscillation" not in diagnose(_log(one_cycle, swing=0.4)).codes

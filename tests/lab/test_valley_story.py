"""The acceptance numbers of the lab, measured on real ``torch.optim`` runs of the valley."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lrdoctor.lab import Valley, run

pytest.importorskip("torch")

VALLEY = Valley()


def test_sgd_1e_2_keeps_bouncing_in_the_steep_coordinate_after_1e4_steps():
    t = run(VALLEY, "sgd:1e-2", steps=10_000)
    y = t.points[-101:, 1]
    # Non-vanishing: |y| has not decayed at all, and it changes sign every single step.
    assert np.min(np.abs(y)) > 0.99 * abs(VALLEY.start[1])
    assert np.all(np.sign(y[1:]) == -np.sign(y[:-1]))
    # ...while the shallow coordinate has converged: the loss is stuck, the gradient is not small.
    assert abs(t.points[-1, 0]) < 1e-30
    assert t.losses[-1] == pytest.approx(100.0)
    assert np.all(t.grad_norms[-100:] > 199.0)


def test_sgd_1e_7_is_still_far_after_1e5_steps_closed_form_and_real_run():
    n = 100_000
    x0, y0 = VALLEY.start
    # Closed form of plain gradient descent on the quadratic: each coordinate shrinks geometrically.
    x = x0 * (1 - 1e-7 * VALLEY.shallow) ** n
    y = y0 * (1 - 1e-7 * VALLEY.steep) ** n
    closed = np.hypot(x, y) / np.hypot(x0, y0)
    assert closed > 0.9
    began = time.perf_counter()
    t = run(VALLEY, "sgd:1e-7", steps=n)
    elapsed = time.perf_counter() - began
    ratio = t.distances[-1] / t.distances[0]
    assert ratio > 0.9
    assert ratio == pytest.approx(closed, rel=1e-6)
    assert elapsed < 30  # ~2.5 s on one core; generous for a loaded CI machine


@pytest.mark.parametrize("setup, steps", [
    ("adagrad:0.5", 3_000),
    ("rmsprop:1e-3", 10_000),
    ("adam:0.1", 3_000),
    ("adamw:0.1", 3_000),
    ("rmsprop:1e-2:cosine(1e-2, end=0, steps=3000)", 3_000),
])
def test_adaptive_methods_reach_the_minimum(setup, steps):
    t = run(VALLEY, setup, steps=steps)
    assert t.final_distance < 1e-3
    assert np.max(t.distances[-100:]) < 1e-3  # there, not passing through


def test_closed_form_gradient_and_autograd_give_the_same_run():
    a = run(VALLEY, "adam:0.1", steps=200)
    b = run(VALLEY, "adam:0.1", steps=200, autograd=True)
    np.testing.assert_allclose(a.points, b.points, rtol=1e-12, atol=1e-15)

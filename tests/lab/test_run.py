"""The runner: real optimizers, the step rule, effective step sizes from optimizer state."""

from __future__ import annotations

import numpy as np
import pytest

from lrdoctor.errors import LRDoctorError, ScheduleError
from lrdoctor.lab import (
    OPTIMIZERS,
    Noisy,
    OptimizerSetup,
    Rosenbrock,
    Saddle,
    Valley,
    parse_optimizer,
    run,
)
from lrdoctor.schedules import parse

torch = pytest.importorskip("torch")


def test_parse_optimizer_forms():
    assert parse_optimizer("sgd:1e-2") == OptimizerSetup("sgd", 1e-2)
    s = parse_optimizer("Adam:0.1:warmup(10) >> cosine(0.1, end=0, steps=90)")
    assert s.name == "adam" and s.resolved == parse("warmup(10) >> cosine(0.1, end=0, steps=90)")
    lone = parse_optimizer("adam:0.3:warmup(100)")
    assert lone.resolved(0) == 0.0 and lone.resolved(100) == 0.3 and lone.resolved(5000) == 0.3
    assert lone.label == "adam warmup(100) >> constant(0.3)"
    for bad, match in [("sgd", "NAME:LR"), ("sgd:fast", "not a number"), ("lion:1e-3", "unknown optimizer"),
                       ("sgd:-1", "lr must be")]:
        with pytest.raises(LRDoctorError, match=match):
            parse_optimizer(bad)
    with pytest.raises(ScheduleError):
        parse_optimizer("sgd:0.1:cosine(")


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_runs_and_is_the_real_torch_class(name):
    t = run(Rosenbrock(), f"{name}:1e-3", steps=50)
    assert t.steps == 50 and t.points.shape == (51, 2) and np.all(np.isfinite(t.points))
    assert t.meta["optimizer"].startswith(OPTIMIZERS[name][0])
    assert t.losses[-1] < t.losses[0]


def test_schedule_sets_each_steps_lr_and_matches_a_manual_torch_loop():
    spec = "warmup(5) >> cosine(0.05, end=0, steps=20)"
    t = run(Valley(), f"momentum:0.05:{spec}", steps=25)
    np.testing.assert_allclose(t.lrs, parse(spec).values(25))
    # The same run by hand with torch's own SGD and ScheduledLR-style stepping.
    p = torch.tensor(Valley().start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.0, momentum=0.9)
    sched = parse(spec)
    for k in range(25):
        opt.param_groups[0]["lr"] = sched(k)
        opt.zero_grad()
        Valley().loss(p).backward()
        opt.step()
    np.testing.assert_allclose(t.points[-1], p.detach().numpy(), rtol=1e-12)


def test_effective_lr_reads_the_optimizer_state():
    t = run(Valley(), "adam:0.1", steps=30)
    # Step 1: v̂ = g², so the effective rate is lr / (|g| + eps).
    g0 = np.abs(t.grads[0])
    np.testing.assert_allclose(t.effective_lr[0], 0.1 / (g0 + 1e-8), rtol=1e-9)
    # And the first update is ±lr in every coordinate, whatever the gradient.
    np.testing.assert_allclose(np.abs(t.updates[0]), [0.1, 0.1], rtol=1e-6)
    ada = run(Valley(), "adagrad:0.5", steps=200)
    assert np.all(np.diff(ada.effective_lr, axis=0) <= 0)  # Adagrad only shrinks
    np.testing.assert_allclose(ada.effective_lr[0], 0.5 / (np.abs(ada.grads[0]) + 1e-10))
    sgd = run(Valley(), "sgd:1e-3", steps=10)
    assert not sgd.adaptive and np.all(sgd.effective_lr == 1e-3)


def test_rmsprop_rate_recovers_while_adagrad_only_shrinks():
    rms = run(Valley(), "rmsprop:1e-3", steps=5_000)
    e = rms.effective_lr[:, 0]
    assert e[-1] > 100 * e[:500].min()


def test_noise_is_seeded_and_only_in_the_gradient():
    a = run(Noisy(Valley(), noise=1.0, seed=1), "sgd:1e-3", steps=100)
    b = run(Noisy(Valley(), noise=1.0, seed=1), "sgd:1e-3", steps=100)
    c = run(Noisy(Valley(), noise=1.0, seed=2), "sgd:1e-3", steps=100)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points, c.points)
    clean = np.array([Valley().grad(*p) for p in a.points[:-1]])
    assert 0.5 < np.std(a.grads - clean) < 1.5
    np.testing.assert_allclose(a.losses, Valley().loss_np(a.points[:, 0], a.points[:, 1]))


def test_divergence_stops_early_and_is_reported():
    t = run(Valley(), "nesterov:1e-2", steps=100_000)
    s = t.summary()
    assert s["diverged"] and t.meta["completed_steps"] < 100_000


def test_saddle_plateau_then_escape():
    t = run(Saddle(), "sgd:0.01", steps=3_000)
    assert t.final_distance < 1e-6
    near = np.hypot(t.points[:, 0], t.points[:, 1]) < 0.05  # it visits the saddle point...
    assert near.any()


def test_one_cycle_momentum_is_applied_and_rejected_without_momentum():
    t = run(Valley(), "momentum:0.01:one_cycle(0.01, steps=50)", steps=50)
    assert np.all(np.isfinite(t.points))
    with pytest.raises(ScheduleError, match="cycle_momentum=false"):
        run(Valley(), "adagrad:0.01:one_cycle(0.01, steps=50)", steps=50)


def test_bad_run_arguments():
    with pytest.raises(LRDoctorError, match="steps must be"):
        run(Valley(), "sgd:1e-3", steps=0)
    with pytest.raises(LRDoctorError, match="start must be"):
        run(Valley(), "sgd:1e-3", steps=1, start=(float("nan"), 0.0))


def test_to_dict_is_json_ready():
    import json

    d = run(Valley(), "adam:0.1", steps=20).to_dict(every=2)
    json.dumps(d, allow_nan=False)
    assert len(d["series"]["step"]) == 10 and d["surface"] == "valley"

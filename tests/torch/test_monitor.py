"""The live Monitor: what it records, its setup checks, robustness of its JSONL."""

from __future__ import annotations

import itertools
import json
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn

import lrdoctor.doctor as D
from lrdoctor.errors import LRDoctorError
from lrdoctor.logs import load
from lrdoctor.torch import Monitor


def data(n=256, d=8, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :classes].argmax(1)).long()
    return x, y


def model(act=nn.ReLU, out=4, extra=()):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), act(), nn.Linear(32, 32), act(), nn.Linear(32, out),
                         *extra)


def train(m, path, *, steps=60, lr=0.1, x=None, y=None, every=10, loss_fn=None, opt=None,
          budget=None, **kw):
    x, y = data() if x is None else (x, y)
    opt = opt or torch.optim.SGD(m.parameters(), lr=lr)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    with Monitor(m, opt, path, every=every, loss_fn=loss_fn, budget=budget, **kw) as mon:
        for k in range(steps):
            i = (k * 32) % len(y)
            xb, yb = x[i:i + 32], y[i:i + 32]
            opt.zero_grad()
            loss = loss_fn(m(xb), yb)
            loss.backward()
            opt.step()
            mon.step(loss=loss, inputs=xb, targets=yb)
            if (k + 1) % 20 == 0:
                mon.epoch(val_loss=float(loss.detach()), val_accuracy=0.5, accuracy=0.6)
    return load(path)


def test_records_every_step_and_every_n(tmp_path):
    log = train(model(), tmp_path / "m.jsonl")
    assert log.format == "lrdoctor-jsonl"
    assert len(log.get("train/loss")) == 60 and len(log.get("grad_norm")) == 60
    assert log.get("lr").values[0] == pytest.approx(0.1)
    assert log.get("grad_norm/0").steps.tolist() == [0, 10, 20, 30, 40, 50]
    assert len(log.get("update_ratio/0")) == 5  # no snapshot before step 0
    assert log.has("dead_frac/1") and log.has("param_norm")
    assert log.get("val/accuracy").values.tolist() == [0.5, 0.5, 0.5]
    assert log.has("train/accuracy")
    assert len(log.get("input/mean")) == 20 and log.has("batch/label_purity")
    assert log.meta["optimizer"] == "SGD" and log.meta["n_outputs"] == 4


def test_grad_norm_matches_clip_grad_norm(tmp_path):
    m = model()
    x, y = data()
    opt = torch.optim.SGD(m.parameters(), lr=0.0)
    with Monitor(m, opt, tmp_path / "g.jsonl") as mon:
        loss = nn.functional.cross_entropy(m(x), y)
        loss.backward()
        expected = float(nn.utils.clip_grad_norm_(m.parameters(), 1e9))
        opt.step()
        mon.step(loss=loss)
    assert load(tmp_path / "g.jsonl").get("grad_norm").values[0] == pytest.approx(expected,
                                                                                   rel=1e-5)


def test_sigmoid_saturation_and_multi_group_lr(tmp_path):
    m = model(nn.Sigmoid)
    groups = [{"params": m[0].parameters(), "lr": 0.1}, {"params": m[2:].parameters(), "lr": 0.01}]
    log = train(m, tmp_path / "s.jsonl", opt=torch.optim.SGD(groups, lr=0.1))
    assert log.has("saturation/1") and log.has("lr/0") and log.has("lr/1")


def test_softmax_before_cross_entropy_is_flagged(tmp_path):
    log = train(model(extra=(nn.Softmax(dim=1),)), tmp_path / "sm.jsonl")
    assert any(e.code == "loss-activation-mismatch" for e in log.events)
    assert D.diagnose(log).codes[0] == "loss-activation-mismatch"


def test_targets_out_of_range_flagged(tmp_path):
    m = model(out=3)
    x, y = data(classes=4)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    with Monitor(m, opt, tmp_path / "t.jsonl") as mon:
        out = m(x[:32])
        loss = out.sum()
        loss.backward()
        opt.step()
        mon.step(loss=loss, inputs=x[:32], targets=y[:32])
    ev = load(tmp_path / "t.jsonl").events
    assert any("targets range" in e.message for e in ev)


def test_huge_init_flagged(tmp_path):
    m = model()
    with torch.no_grad():
        m[2].weight.mul_(30)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    Monitor(m, opt, tmp_path / "i.jsonl").close()
    assert any(e.code == "bad-initialization" for e in load(tmp_path / "i.jsonl").events)


def test_nan_loss_is_written_and_diagnosed(tmp_path):
    log = train(model(), tmp_path / "n.jsonl", lr=1e6, steps=30)
    v = log.get("train/loss").values
    assert not all(math.isfinite(x) for x in v)
    assert "nonfinite" in D.diagnose(log).codes


def test_appends_and_survives_truncation(tmp_path):
    p = tmp_path / "a.jsonl"
    train(model(), p, steps=5)
    train(model(), p, steps=5)
    lines = p.read_text().splitlines()
    assert sum(json.loads(line)["type"] == "meta" for line in lines) == 2
    p.write_text(p.read_text()[:-30])
    log = load(p)
    assert log.has("train/loss") and log.warnings


def test_hooks_removed_and_bad_use(tmp_path):
    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    mon = Monitor(m, opt, tmp_path / "h.jsonl", every=1)
    mon.close()
    mon.close()  # idempotent
    assert all(not mod._forward_hooks for mod in m.modules())
    with pytest.raises(LRDoctorError):
        mon.step(loss=1.0)
    with pytest.raises(LRDoctorError, match="every"):
        Monitor(m, opt, tmp_path / "x.jsonl", every=0)


def test_works_with_examples_train(tmp_path):
    examples = pytest.importorskip("lrdoctor.examples")
    task = examples.get("digits-mlp", seed=0)
    m = task.build_model(0)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    with Monitor(m, opt, tmp_path / "e.jsonl") as mon:
        examples.train(task, opt, model=m, monitor=mon, epochs=2)
    d = D.diagnose(load(tmp_path / "e.jsonl"))
    assert not [f for f in d.findings if f.severity == "critical"]


@pytest.mark.parametrize("order", ["scheduler-first", "monitor-first"])
def test_logs_the_lr_each_step_used_whatever_the_call_order(tmp_path, order):
    """``opt.step(); sched.step(); mon.step()`` must not log the next step's lr; a step the
    optimizer skipped (no ``opt.step()``) logs the groups' current lr."""
    from lrdoctor.schedules import parse
    from lrdoctor.torch import ScheduledLR

    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    spec = "warmup(5) >> cosine(0.1, steps=20)"
    sched = ScheduledLR(opt, spec)
    path = tmp_path / "log.jsonl"
    with Monitor(model, opt, path) as mon:
        for k in range(25):
            loss = model(torch.randn(4, 3)).pow(2).mean()
            loss.backward()
            if k != 7:  # step 7: the optimizer step is skipped (as a GradScaler does on inf)
                opt.step()
            opt.zero_grad()
            if order == "scheduler-first":
                sched.step()
                mon.step(loss=loss)
            else:
                mon.step(loss=loss)
                sched.step()
    lr = load(path).get("lr")
    s = parse(spec)
    expected = [s(k) for k in range(25)]
    if order == "scheduler-first":
        expected[7] = s(8)  # nothing ran at step 7: the groups already hold step 8's lr
    assert list(lr.values) == pytest.approx(expected, rel=1e-12)


def _plateau_run(tmp_path, sched_of, *, metric=None, acc=(0.5, 0.6, 0.7, 0.8, 0.85, 0.9)):
    """An accuracy that rises every epoch, fed to a plateau scheduler the Monitor watches."""
    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    sched = sched_of(opt)
    x, y = data()
    path = tmp_path / "log.jsonl"
    with Monitor(m, opt, path) as mon:
        mon.watch(sched, metric=metric)
        for a in acc:
            for i in range(0, 64, 16):
                loss = nn.functional.cross_entropy(m(x[i:i + 16]), y[i:i + 16])
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.step(loss=loss)
            mon.epoch(val_accuracy=a, val_loss=1 - a)
            sched.step(a)
    return load(path), sched


def test_watch_logs_plateau_settings_and_decisions_for_the_doctor(tmp_path):
    from lrdoctor.torch import PlateauLR

    log, sched = _plateau_run(
        tmp_path, lambda opt: PlateauLR(opt, mode="min", patience=0, monitor="val_accuracy"))
    settings = [e for e in log.events if e.code == "lr-scheduler"]
    assert settings and settings[0].data["mode"] == "min"
    assert settings[0].data["monitor"] == "val_accuracy" and settings[0].data["kind"] == "PlateauLR"
    cuts = [e for e in log.events if e.code == "plateau"]
    assert len(cuts) == len([e for e in sched.journal if e.cause == "plateau"]) >= 3
    assert all(c.data["new_lrs"][0] < c.data["old_lrs"][0] for c in cuts)
    found = {f.code: f for f in D.diagnose(log).findings}
    assert found["plateau-monitor-mismatch"].severity == "critical"
    assert f"cut the lr {len(cuts)} times" in found["plateau-monitor-mismatch"].evidence


def test_watch_torch_reduce_lr_on_plateau_with_a_named_metric(tmp_path):
    wrong, _ = _plateau_run(
        tmp_path, lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min"),
        metric="val_accuracy")
    assert "plateau-monitor-mismatch" in D.diagnose(wrong).codes
    (tmp_path / "log.jsonl").unlink()
    right, _ = _plateau_run(
        tmp_path, lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max"),
        metric="val_accuracy")
    assert [e.data["mode"] for e in right.events if e.code == "lr-scheduler"] == ["max"]
    assert "plateau-monitor-mismatch" not in D.diagnose(right).codes


def test_sink_gets_every_row_the_file_gets(tmp_path):
    got: dict[str, dict[int, float]] = {}

    def sink(step, values):
        assert isinstance(step, int)
        for name, v in values.items():
            got.setdefault(name, {})[step] = v

    log = train(model(), tmp_path / "s.jsonl", sink=sink)
    assert set(got) == set(log.names())
    for name in log.names():
        s = log.get(name)
        assert sorted(got[name]) == s.steps.tolist()
        assert [got[name][k] for k in s.steps.tolist()] == pytest.approx(s.values.tolist(),
                                                                         nan_ok=True)


class FakeClock:
    """A clock the test drives: each reading costs ``per_call`` seconds, ``tick`` is a step."""

    def __init__(self, per_call=30e-6):
        self.t, self.per_call = 0.0, per_call

    def __call__(self):
        self.t += self.per_call
        return self.t


def train_timed(m, path, clock, step_s, *, steps=120, nan_at=None, **kw):
    x, y = data()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    with Monitor(m, opt, path, every=10, **kw) as mon:
        for k in range(steps):
            i = (k * 32) % len(y)
            xb, yb = x[i:i + 32], y[i:i + 32]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(m(xb), yb)
            loss.backward()
            if k == nan_at:
                next(m.parameters()).grad[0, 0] = float("nan")
            opt.step()
            clock.t += step_s
            mon.step(loss=loss, inputs=xb, targets=yb)
            if (k + 1) % 40 == 0:
                mon.epoch(val_loss=float(loss.detach()))
    return load(path)


def test_sampled_statistics_follow_the_time_budget(tmp_path, monkeypatch):
    import lrdoctor.torch._monitor as mod
    from lrdoctor.torch._monitor_cadence import FIRST_STEPS

    clock = FakeClock()
    monkeypatch.setattr(mod, "clock", clock)
    fast = train_timed(model(), tmp_path / "fast.jsonl", clock, 1e-3)  # 1 ms steps
    assert fast.get("train/loss").steps.tolist() == list(range(120))  # every step
    assert len(fast.get("lr")) == 120
    g = fast.get("grad_norm").steps.tolist()
    assert g[:FIRST_STEPS] == list(range(FIRST_STEPS))
    assert 12 <= len(g) < 60  # sampled, and never fewer than one in `every`
    assert max(b - a for a, b in itertools.pairwise(g)) <= 10
    assert {40, 80} <= set(g)  # the first step after each evaluation
    heavy = fast.get("grad_norm/0").steps.tolist()
    assert heavy[0] == 0 and all(b - a >= 10 for a, b in itertools.pairwise(heavy))
    assert fast.has("dead_frac/1") and fast.has("update_ratio/0")

    slow = train_timed(model(), tmp_path / "slow.jsonl", clock, 0.1)  # 100 ms steps
    assert len(slow.get("grad_norm")) == 120  # cheap against the step: every step
    assert slow.get("grad_norm/0").steps.tolist() == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90,
                                                      100, 110]


def test_budget_none_is_every_step(tmp_path):
    log = train(model(), tmp_path / "exact.jsonl", budget=None)
    assert len(log.get("grad_norm")) == 60


def test_a_nonfinite_gradient_between_samples_is_caught(tmp_path, monkeypatch):
    import lrdoctor.torch._monitor as mod

    clock = FakeClock()
    monkeypatch.setattr(mod, "clock", clock)
    log = train_timed(model(), tmp_path / "nan.jsonl", clock, 1e-3, steps=60, nan_at=35)
    assert 35 not in log.get("grad_norm").steps.tolist()  # not a sampled step
    ev = [e for e in log.events if e.code == "nonfinite"]
    assert ev and ev[0].step == 36 and ev[0].data["name"] == "train/loss"  # the next loss
    assert "nonfinite" in {f.code for f in D.diagnose(log).findings}


def test_budget_is_checked(tmp_path):
    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    with pytest.raises(LRDoctorError, match="budget must be"):
        Monitor(m, opt, tmp_path / "b.jsonl", budget=0)

"""The Monitor's buffered rows and its short per-step path: same log as the long path, values
that stay correct when they are only read at the flush, and the edge cases around them."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
from torch import nn

from lrdoctor.logs import load
from lrdoctor.torch import Monitor


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(),
                         nn.Linear(32, 4))


def batches(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(16, 8, generator=g)
        yield x, x[:, :4].argmax(1)


def run(path, *, steps=45, long_path=False, start_step=0, **kw):
    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    with Monitor(m, opt, path, **kw) as mon:
        mon.global_step = start_step
        for k, (x, y) in enumerate(batches(steps)):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            if long_path:
                mon._due = -1  # no step may take the short path
            mon.step(loss=loss, inputs=x, targets=y)
            if (k + 1) % 15 == 0:
                mon.epoch(val_loss=0.5)
    return path


def rows(path):
    out = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["type"] == "meta":
            rec.pop("created")
        out.append(rec)
    return out


def test_short_path_writes_what_the_long_path_writes(tmp_path):
    short = run(tmp_path / "short.jsonl", every=10, inspect_batches=5, budget=None)
    long = run(tmp_path / "long.jsonl", every=10, inspect_batches=5, long_path=True, budget=None)
    assert rows(short) == rows(long)
    log = load(short)
    assert log.get("grad_norm/0").steps.tolist() == [0, 10, 20, 30, 40]
    assert log.get("update_ratio/4").steps.tolist() == [10, 20, 30, 40]
    assert len(log.get("input/mean")) == 5 and len(log.get("train/loss")) == 45


def test_grad_norm_of_a_partly_frozen_model(tmp_path):
    m = model()
    m[0].weight.grad = None
    opt = torch.optim.SGD([p for p in m.parameters()], lr=0.0)
    with Monitor(m, opt, tmp_path / "f.jsonl") as mon:
        for x, y in batches(3):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(m(x), y).backward()
            m[0].weight.grad = None  # as if frozen after the Monitor was made
            expected = float(nn.utils.clip_grad_norm_(m.parameters(), 1e9))
            opt.step()
            mon.step(loss=0.0)
    assert load(tmp_path / "f.jsonl").get("grad_norm").values[-1] == pytest.approx(expected,
                                                                                    rel=1e-5)


def test_label_mode_is_the_label_itself(tmp_path):
    m = nn.Linear(4, 8)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    with Monitor(m, opt, tmp_path / "l.jsonl") as mon:
        for labels in ([5, 5, 5, 7], [2, 3, 3, 3], [-2, 1, -2, 0]):
            x = torch.randn(4, 4)
            m(x).sum().backward()
            opt.step()
            mon.step(loss=1.0, inputs=x, targets=torch.tensor(labels))
    log = load(tmp_path / "l.jsonl")
    assert log.get("batch/label_mode").values.tolist() == [5.0, 3.0, -2.0]
    assert log.get("batch/label_purity").values.tolist() == [0.75, 0.75, 0.5]


def test_nonfinite_event_names_the_step_it_happened(tmp_path):
    m = nn.Linear(3, 1)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    with Monitor(m, opt, tmp_path / "n.jsonl", flush_seconds=1e9) as mon:
        for k in range(12):
            loss = m(torch.randn(4, 3)).pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            mon.step(loss=float("nan") if k >= 7 else loss)
    ev = [e for e in load(tmp_path / "n.jsonl").events if e.code == "nonfinite"]
    assert len(ev) == 1 and ev[0].step == 7 and ev[0].data["name"] == "train/loss"


def test_a_metric_named_lr_replaces_the_optimizers(tmp_path):
    m = nn.Linear(3, 1)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    with Monitor(m, opt, tmp_path / "r.jsonl") as mon:
        for _ in range(3):
            m(torch.randn(4, 3)).sum().backward()
            opt.step()
            mon.step(loss=1.0, lr=0.25)  # what RankMonitor passes when it knows better
    lines = [line for line in (tmp_path / "r.jsonl").read_text().splitlines()
             if '"scalars"' in line]
    assert all(line.count('"lr"') == 1 for line in lines)
    assert load(tmp_path / "r.jsonl").get("lr").values.tolist() == [0.25] * 3


def test_resumed_step_count_keeps_the_every_n_schedule(tmp_path):
    log = load(run(tmp_path / "resume.jsonl", steps=30, start_step=37, every=10,
                   inspect_batches=0, budget=None))
    assert log.get("train/loss").steps.tolist() == list(range(37, 67))
    assert log.get("grad_norm/0").steps.tolist() == [40, 50, 60]
    assert log.get("update_ratio/0").steps.tolist() == [40, 50, 60]
    assert log.get("dead_frac/1").steps.tolist() == [40, 50, 60]


def test_tensor_losses_and_metrics_are_read_at_the_flush(tmp_path):
    m = nn.Linear(3, 1)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    with Monitor(m, opt, tmp_path / "t.jsonl", flush_seconds=1e9) as mon:
        losses = []
        for _ in range(5):
            loss = m(torch.randn(4, 3)).pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(float(loss.detach()))
            mon.step(loss=loss, accuracy=torch.tensor([0.5, 1.0]))
        assert (tmp_path / "t.jsonl").read_text().count('"scalars"') == 0  # not yet
    log = load(tmp_path / "t.jsonl")
    assert log.get("train/loss").values.tolist() == pytest.approx(losses)
    assert log.get("train/accuracy").values.tolist() == [0.75] * 5


def test_noise_scale_with_half_precision_gradients(tmp_path):
    m = model().to(torch.bfloat16)
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    with Monitor(m, opt, tmp_path / "h.jsonl", every=5, budget=None) as mon:
        for x, y in batches(30):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(m(x.bfloat16()).float(), y)
            loss.backward()
            opt.step()
            mon.step(loss=loss, inputs=x, targets=y)
    log = load(tmp_path / "h.jsonl")
    assert log.has("noise_scale") and log.get("batch/size").values[0] == 16
    assert log.get("update_ratio/0").steps.tolist() == [5, 10, 15, 20, 25]

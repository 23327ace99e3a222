"""The Monitor's row formatting: numbers written in bulk are spelled as ``repr`` spells them,
so the log's lines stay what they were (the readers and the doctor parse them)."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lrdoctor.torch import Monitor
from lrdoctor.torch._monitor_rows import texts

finite = st.floats(allow_nan=False, allow_infinity=False)
small = st.floats(min_value=-1e-3, max_value=1e-3, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(finite, small), max_size=40))
def test_bulk_texts_are_repr(values):
    assert texts(values) == [repr(v) for v in values]


def test_bulk_texts_of_the_numbers_orjson_spells_differently():
    values = [1e-05, 1.5e-07, -2.5e-05, 1e-4, 0.00012, 1e16, 1e22, 5e-324, -0.0, 0.1] * 2
    assert texts(values) == [repr(v) for v in values]


def _spelled(rec):
    def num(v):
        if isinstance(v, float) and not math.isfinite(v):
            return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
        return repr(float(v))
    body = ", ".join(f"{json.dumps(k)}: {num(v)}" for k, v in rec["values"].items())
    return f'{{"type": "scalars", "step": {rec["step"]}, "epoch": {rec["epoch"]}, ' \
           f'"values": {{{body}}}}}'


@pytest.mark.parametrize("budget", [0.01, None])
def test_lines_spell_every_number_as_repr(tmp_path, budget):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(m.parameters(), lr=3e-5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / (1 + k))
    g = torch.Generator().manual_seed(0)
    path = tmp_path / "r.jsonl"
    with Monitor(m, opt, path, every=7, budget=budget) as mon:
        for k in range(60):
            x = torch.randn(8, 6, generator=g)
            loss = nn.functional.cross_entropy(m(x), x[:, :3].argmax(1)) * 1e-6
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            mon.step(loss=loss if k % 2 else float("nan") if k == 40 else float(loss.detach()),
                     inputs=x)
            if k % 20 == 19:
                mon.epoch(val_loss=2e-5)
    lines = path.read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    scalars = [(line, rec) for line, rec in zip(lines, rows) if rec["type"] == "scalars"]
    assert len(scalars) == 63
    for line, rec in scalars:
        assert line == _spelled(rec)
    # the non-finite loss: its event comes before its row, and names its step
    event = next(i for i, rec in enumerate(rows) if rec.get("code") == "nonfinite")
    row40 = next(i for i, rec in enumerate(rows) if rec["type"] == "scalars" and rec["step"] == 40)
    assert event < row40 and rows[event]["step"] == 40


def test_flush_seconds_can_be_changed_while_training(tmp_path):
    m = nn.Linear(3, 1)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    path = tmp_path / "f.jsonl"
    with Monitor(m, opt, path, flush_seconds=1e9) as mon:
        for _ in range(3):
            m(torch.randn(4, 3)).sum().backward()
            opt.step()
            mon.step(loss=1.0)
        assert path.read_text().count('"scalars"') == 0
        mon.flush_seconds = 0.0
        m(torch.randn(4, 3)).sum().backward()
        opt.step()
        mon.step(loss=1.0)
        assert path.read_text().count('"scalars"') == 4
        assert mon.flush_seconds == 0.0

"""``lrdoctor.torch.PlateauLR``: drop-in parity with torch, schedules, journal, resume, early
stopping, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .._torchrun import two_ranks

torch = pytest.importorskip("torch")

from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim.lr_scheduler import ReduceLROnPlateau

from lrdoctor.errors import PlateauError
from lrdoctor.journal import Journal
from lrdoctor.plateau import EarlyStopConfig
from lrdoctor.torch import PlateauLR
from tests.plateau._sequences import metric_sequence, plateau_settings

REPO = Path(__file__).resolve().parents[2]


def _opt(lrs=(1.0,), tensor_lr=False):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    groups = [{"params": [p], "lr": torch.tensor(lr) if tensor_lr else lr} for p, lr in zip(params, lrs)]
    return torch.optim.SGD(groups, lr=0.1)


def _run(cls, settings, values, lrs0, tensor_lr=False):
    opt = _opt(lrs0, tensor_lr)
    sched = cls(opt, **settings)
    out = []
    for v in values:
        sched.step(v)
        out.append(tuple(float(g["lr"]) for g in opt.param_groups))
    return out, sched


def test_is_a_reduce_lr_on_plateau():
    sched = PlateauLR(_opt())
    assert isinstance(sched, ReduceLROnPlateau)
    assert sched.get_last_lr() == [1.0]


def test_same_lrs_as_torch_on_5000_random_sequences():
    rng = np.random.default_rng(2024)
    for case in range(5000):
        settings = plateau_settings(rng)
        n_groups = int(rng.integers(1, 3))
        lrs0 = [float(rng.choice([1.0, 0.1, 1e-2])) for _ in range(n_groups)]
        values = metric_sequence(rng, int(rng.integers(5, 25)))
        tensor_lr = bool(rng.random() < 0.2)
        ours, s1 = _run(PlateauLR, settings, values, lrs0, tensor_lr)
        theirs, s2 = _run(ReduceLROnPlateau, settings, values, lrs0, tensor_lr)
        assert ours == theirs, (case, settings, values)
        assert (s1.best, s1.num_bad_epochs, s1.cooldown_counter, s1.last_epoch) == (
            s2.best, s2.num_bad_epochs, s2.cooldown_counter, s2.last_epoch)


def test_negative_metric_rel_mode_is_fixed_and_torch_bug_reproducible():
    settings = {"mode": "min", "threshold": 0.1, "patience": 1}
    values = [-1.0] + [-0.95] * 4  # the metric got worse
    theirs, _ = _run(ReduceLROnPlateau, settings, values, [1.0])
    ours, _ = _run(PlateauLR, settings, values, [1.0])
    bug, _ = _run(PlateauLR, {**settings, "torch_rel_bug": True}, values, [1.0])
    assert theirs[-1] == (1.0,) and bug == theirs  # torch never reduces
    assert ours[-1][0] < 1.0


def test_torch_error_messages_kept():
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        PlateauLR(_opt(), factor=1.0)
    with pytest.raises(ValueError, match="mode foo is unknown"):
        PlateauLR(_opt(), mode="foo")
    with pytest.raises(ValueError, match="threshold mode bar is unknown"):
        PlateauLR(_opt(), threshold_mode="bar")
    with pytest.raises(ValueError, match="expected 1 min_lrs, got 2"):
        PlateauLR(_opt(), min_lr=[0.1, 0.2])
    with pytest.raises(PlateauError, match="patience must be >= 0"):
        PlateauLR(_opt(), patience=-1)
    with pytest.raises(PlateauError, match="needs monitor"):
        PlateauLR(_opt(), mode="auto")
    with pytest.raises(TypeError, match="is not an Optimizer"):
        PlateauLR(object())


@pytest.mark.parametrize("cls", [ReduceLROnPlateau, PlateauLR])
def test_a_param_group_added_later_with_a_min_lr_list_fails_only_at_a_reduction(cls):
    """torch checks the min_lr list against the groups in ``_reduce_lr`` only: evaluations
    before the first reduction go on; the reduction raises RuntimeError. Both classes alike."""
    opt = _opt((1.0, 0.5))
    sched = cls(opt, patience=1, min_lr=[0.0, 0.0])
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.25})
    sched.step(1.0)  # best
    sched.step(1.0)  # one bad evaluation: patience not yet spent
    assert [g["lr"] for g in opt.param_groups] == [1.0, 0.5, 0.25]
    with pytest.raises(RuntimeError, match="min_lrs"):
        sched.step(1.0)
    sched.min_lrs = [0.0, 0.0, 0.0]  # the fix both messages name
    sched.num_bad_epochs = 2
    sched.step(1.0)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.05, 0.025])


def test_auto_mode_from_monitor_name():
    s = PlateauLR(_opt(), mode="auto", monitor="val_accuracy")
    assert s.mode == "max"


def test_missing_monitored_metric_warns_and_journals(tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    s = PlateauLR(_opt(), monitor="val_loss", journal=j)
    with pytest.warns(UserWarning, match="'val_loss' is not among the metrics"):
        s.step({"train/loss": 0.3})
    assert s.last_epoch == 0
    assert [e.cause for e in Journal.load(tmp_path / "j.jsonl")] == ["warning"]
    s.step({"val_loss": 0.3})
    assert s.last_epoch == 1


def test_schedule_composition_is_multiplicative_and_waits_for_warmup(tmp_path):
    opt = _opt([1.0])
    spec = "warmup(10) >> constant(1.0)"
    s = PlateauLR(opt, patience=0, factor=0.5, schedule=spec, monitor="val_loss",
                  journal=tmp_path / "j.jsonl")
    assert opt.param_groups[0]["lr"] == 0.0
    lrs = []
    for epoch in range(6):
        for _ in range(4):  # 4 optimizer steps per epoch
            opt.step()
        s.step(1.0)  # never improves
        lrs.append(opt.param_groups[0]["lr"])
    # epochs 1-2 end inside the warm-up (steps 4, 8): no reduction; afterwards every epoch halves
    assert lrs == [0.4, 0.8, 0.5, 0.25, 0.125, 0.0625]
    causes = [e.cause for e in s.journal]
    assert causes[:4] == ["schedule", "schedule", "warmup-end", "plateau"]
    assert "warm-up ended" in s.journal.explain()[2]


def test_cosine_times_plateau():
    opt = _opt([1.0])
    s = PlateauLR(opt, patience=0, factor=0.5, schedule="cosine(1.0, steps=100)")
    for _ in range(10):
        opt.step()
    s.step(1.0)
    s.step(2.0)  # reduce
    from lrdoctor.schedules import parse

    assert opt.param_groups[0]["lr"] == pytest.approx(parse("cosine(1.0, steps=100)")(10) * 0.5)
    opt.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(parse("cosine(1.0, steps=100)")(11) * 0.5)


def test_early_stopping_and_restore_best(tmp_path):
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    s = PlateauLR(opt, monitor="val_loss", early_stopping={"patience": 2, "restore_best": True},
                  model=model, journal=tmp_path / "j.jsonl")
    best = None
    for epoch, v in enumerate([1.0, 0.5, 0.7, 0.8, 0.9]):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        s.step(v)
        if v == 0.5:
            best = model.weight.clone()
        if s.should_stop:
            break
    assert s.should_stop and epoch == 3
    assert s.restore_best()
    assert torch.equal(model.weight, best)
    assert Journal.load(tmp_path / "j.jsonl")[-1].cause == "early-stop"
    assert "stopping early" in s.journal.explain()[-1]


def test_restore_best_on_disk(tmp_path):
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    s = PlateauLR(opt, monitor="val_loss", early_stopping=EarlyStopConfig(patience=1, restore_best=True),
                  model=model, best_path=tmp_path / "best.pt")
    for epoch, v in enumerate([1.0, 0.2, 0.9]):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        s.step(v)
    assert (tmp_path / "best.pt").exists() and s.restore_best()
    assert float(model.weight.detach()) == 1.0


def test_stop_at_min_lr(tmp_path):
    opt = _opt([1.0])
    s = PlateauLR(opt, patience=0, factor=0.1, min_lr=0.01, stop_at_min_lr=True, journal=tmp_path / "j")
    for v in [1.0, 2.0, 2.0, 2.0]:
        s.step(v)
    assert s.should_stop
    assert s.journal[-1].evidence["reason"] == "min_lr"


def test_nonfinite_is_journaled(tmp_path):
    s = PlateauLR(_opt(), patience=3, journal=tmp_path / "j", monitor="val_loss")
    s.step(1.0)
    s.step(float("nan"))
    assert s.journal[-1].cause == "nonfinite"
    assert "not a finite number" in s.journal.explain()[-1]
    s2 = PlateauLR(_opt(), patience=3, nonfinite="reduce", factor=0.5)
    s2.step(float("inf"))
    assert s2.optimizer.param_groups[0]["lr"] == 0.5


def test_state_dict_is_weights_only_loadable(tmp_path):
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    s = PlateauLR(opt, schedule="warmup(3) >> cosine(0.1, steps=20)", journal=tmp_path / "j",
                  early_stopping={"patience": 5, "restore_best": True}, model=model, monitor="val_loss")
    for v in [1.0, 0.9, 0.95]:
        opt.step()
        s.step(v)
    torch.save(s.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    assert state["schedule_specs"] == [s.schedules[0].to_spec()]


# -- resume ---------------------------------------------------------------------------------
def _train(values, steps_per_epoch, settings, cut=None, tmp=None):
    """Run ``values`` evaluations; with ``cut``, checkpoint after that many epochs and continue
    in fresh objects. Returns the lr after every optimizer step and the journal entries."""
    def make(journal):
        model = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(model.parameters(), lr=settings.get("lr", 0.5), momentum=0.9)
        kw = {k: v for k, v in settings.items() if k != "lr"}
        return opt, PlateauLR(opt, journal=journal, monitor="val_loss", **kw)

    opt, s = make(Journal(tmp / "a.jsonl") if tmp else Journal())
    lrs = []
    for epoch, v in enumerate(values):
        if cut is not None and epoch == cut:
            ck = {"opt": opt.state_dict(), "sched": s.state_dict()}
            opt, s = make(Journal(tmp / "a.jsonl") if tmp else Journal())
            opt.load_state_dict(ck["opt"])
            s.load_state_dict(ck["sched"])
        for _ in range(steps_per_epoch):
            opt.step()
            lrs.append(opt.param_groups[0]["lr"])
        s.step(v)
        lrs.append(opt.param_groups[0]["lr"])
    return lrs, [e.to_dict() for e in s.journal]


SCHEDULES = [None, "warmup(5) >> cosine(0.5, steps=40)", "step(0.5, every=7, gamma=0.5)",
             "sgdr(0.5, period=6)"]


@settings(max_examples=500, deadline=None)
@given(
    values=st.lists(st.floats(-2, 2, allow_nan=False).map(lambda x: round(x, 1)), min_size=2, max_size=14),
    cut=st.integers(0, 14),
    steps=st.integers(0, 3),
    schedule=st.sampled_from(SCHEDULES),
    patience=st.integers(0, 3),
    cooldown=st.integers(0, 2),
    convention=st.sampled_from(["torch", "keras"]),
    early=st.booleans(),
)
def test_resume_is_exact(values, cut, steps, schedule, patience, cooldown, convention, early):
    settings = {"patience": patience, "cooldown": cooldown, "factor": 0.5, "convention": convention,
                "schedule": schedule, "threshold_mode": "abs", "min_lr": 1e-3}
    if early:
        settings["early_stopping"] = {"patience": 2}
    cut = min(cut, len(values))
    straight = _train(values, steps, settings)
    resumed = _train(values, steps, settings, cut=cut)
    assert straight == resumed


def test_resume_rewrites_journal_file(tmp_path):
    settings = {"patience": 0, "factor": 0.5}
    values = [1.0, 2.0, 2.0, 2.0, 2.0]
    _lrs, entries = _train(values, 1, settings, cut=2, tmp=tmp_path)
    on_disk = [e.to_dict() for e in Journal.load(tmp_path / "a.jsonl")]
    assert on_disk == entries and len(entries) == 4


# -- crash -----------------------------------------------------------------------------------
CHILD = """
import sys, time, torch
from lrdoctor.torch import PlateauLR
path = sys.argv[1]
opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
s = PlateauLR(opt, patience=0, factor=0.9, min_lr=0, eps=0, monitor="val_loss", journal=path)
epoch = 0
while True:
    s.step(1.0 + epoch % 2)  # every other evaluation is bad: a reduction every 2 epochs
    print(epoch + 1, opt.param_groups[0]["lr"], flush=True)
    epoch += 1
    if epoch > 40:
        time.sleep(0.02)
"""


def test_sigkill_leaves_a_parseable_journal_with_every_decision(tmp_path):
    path = tmp_path / "journal.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                            text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line.split())
        if len(seen) >= 60:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # every decision the child reported (it prints after step() returns) is on disk
    reductions = sum(1 for a, b in zip([["0", "1.0"]] + seen, seen) if float(b[1]) < float(a[1]))
    lines = path.read_text().splitlines()
    for line in lines:
        json.loads(line)  # every line parses
    journal = Journal.load(path)
    assert len(journal) >= reductions > 20
    assert all(e.cause == "plateau" for e in journal)
    assert [e.epoch for e in journal][:reductions] == [
        int(b[0]) for a, b in zip([["0", "1.0"]] + seen, seen) if float(b[1]) < float(a[1])]


# -- DDP -------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_two_ranks_agree(tmp_path):
    r0, r1 = two_ranks(Path(__file__).with_name("ddp_plateau_worker.py"), tmp_path)
    assert r0["lrs"] == r1["lrs"]  # same reductions at the same epochs on both ranks
    assert r0["local"] != r1["local"]  # although each rank saw different local metrics
    assert any(b < a for a, b in zip(r0["lrs"], r0["lrs"][1:]))
    files = sorted(p.name for p in tmp_path.glob("*.jsonl"))
    assert files == ["journal.jsonl"]  # one journal, written by rank 0 only
    journal = Journal.load(tmp_path / "journal.jsonl")
    assert len(journal) == r0["entries"] == r1["entries"] > 0


def test_a_journal_attached_later_records_true_optimizer_steps(tmp_path):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = PlateauLR(opt, patience=0)  # a plain drop-in: no schedule, no journal
    for _ in range(5):
        opt.step()
    journal = Journal(tmp_path / "journal.jsonl")
    sched.attach_journal(journal)
    sched.step(1.0)
    for _ in range(3):
        opt.step()
    sched.step(2.0)  # worse: patience 0 reduces at once
    assert [e.step for e in journal if e.cause == "plateau"] == [8]

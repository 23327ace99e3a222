"""lrdoctor.torch.find_lr: bit-exact restore, batch kinds, accumulation, AMP, bad input."""

from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn

from lrdoctor.errors import FinderError
from lrdoctor.finder import zoom_range
from lrdoctor.torch import FinderResult, find_lr

FAST = {"start_lr": 1e-5, "end_lr": 10.0, "num_steps": 40, "repeats": 2}


def make_problem(seed: int = 0, n: int = 256):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(16, 2))
    loader = [(x[i:i + 16], y[i:i + 16]) for i in range(0, n, 16)]
    return model, loader


def warm(model, optimizer, loader, steps: int = 3):
    """A few real steps so the optimizer has state and the params have .grad."""
    loss_fn = nn.CrossEntropyLoss()
    for xb, yb in loader[:steps]:
        optimizer.zero_grad()
        loss_fn(model(xb), yb).backward()
        optimizer.step()


def capture(model, optimizer, scaler=None):
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "buffers": [b.detach().clone() for b in model.buffers()],
        "modes": [m.training for m in model.modules()],
        "opt": copy.deepcopy(optimizer.state_dict()),
        "scaler": None if scaler is None else copy.deepcopy(scaler.state_dict()),
        "rng": torch.get_rng_state().clone(),
        "py": random.getstate(),
        "np": np.random.get_state()[1].copy(),
    }


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def assert_restored(before, model, optimizer, scaler=None):
    after = capture(model, optimizer, scaler)
    for key in before:
        assert same(before[key], after[key]), f"{key} not restored"


@pytest.fixture
def setup():
    model, loader = make_problem()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    warm(model, optimizer, loader)
    model.eval()  # a mode the test must put back
    return model, optimizer, loader


def test_normal_run_restores_everything_bit_exact(setup):
    model, optimizer, loader = setup
    before = capture(model, optimizer)
    res = find_lr(model, optimizer, loader, nn.CrossEntropyLoss(), **FAST)
    assert isinstance(res, FinderResult)
    assert len(res.curves) == 2 and len(res.lrs) == len(res.losses) == len(res.smoothed)
    assert res.suggestion is None or res.interval[0] <= res.suggestion <= res.interval[1]
    assert_restored(before, model, optimizer)


def test_exception_inside_step_fn_restores(setup):
    model, optimizer, loader = setup
    before = capture(model, optimizer)
    calls = {"n": 0}

    def step_fn(m, batch):
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("boom")
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    with pytest.raises(RuntimeError, match="boom"):
        find_lr(model, optimizer, loader, step_fn=step_fn, **FAST)
    assert_restored(before, model, optimizer)


def test_keyboard_interrupt_restores(setup):
    model, optimizer, loader = setup
    before = capture(model, optimizer)

    def progress(done, total):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        find_lr(model, optimizer, loader, nn.CrossEntropyLoss(), progress=progress, **FAST)
    assert_restored(before, model, optimizer)


def test_nan_losses_end_the_curve_and_restore(setup):
    model, optimizer, loader = setup
    before = capture(model, optimizer)
    calls = {"n": 0}

    def step_fn(m, batch):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(m(batch[0]), batch[1])
        return loss * float("nan") if calls["n"] > 15 else loss

    res = find_lr(model, optimizer, loader, step_fn=step_fn, **{**FAST, "repeats": 1})
    assert res.curves[0].stop == "nonfinite" and len(res.curves[0]) == 15
    assert_restored(before, model, optimizer)


def test_dict_batches_and_custom_step_fn():
    model, loader = make_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    dict_loader = [{"x": xb, "y": yb} for xb, yb in loader]
    a = find_lr(model, opt, dict_loader, nn.CrossEntropyLoss(), **FAST)
    b = find_lr(model, opt, loader, nn.CrossEntropyLoss(), **FAST)
    assert np.array_equal(a.losses, b.losses)  # same batches, same state: the same curve

    class Wrapped:  # not a tuple nor a dict: needs a step_fn
        def __init__(self, x, y):
            self.inputs, self.labels = x, y

    odd = [Wrapped(xb, yb) for xb, yb in loader]
    with pytest.raises(FinderError, match="step_fn"):
        find_lr(model, opt, odd, nn.CrossEntropyLoss(), **FAST)
    c = find_lr(model, opt, odd, step_fn=lambda m, b: nn.functional.cross_entropy(m(b.inputs), b.labels),
                **FAST)
    assert np.array_equal(c.losses, b.losses)


def test_hf_style_dict_batches_use_model_loss():
    class WithLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 2)

        def forward(self, input_ids, labels):
            return {"loss": nn.functional.cross_entropy(self.lin(input_ids), labels)}

    _, loader = make_problem()
    model = WithLoss()
    res = find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1),
                  [{"input_ids": x, "labels": y} for x, y in loader], **FAST)
    assert len(res.curves[0]) > 10


def test_accumulation_advances_once_per_optimizer_step():
    model, loader = make_problem(n=1024)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = {"n": 0}

    def step_fn(m, batch):
        seen["n"] += 1
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    res = find_lr(model, opt, loader, step_fn=step_fn, accumulation_steps=4,
                  start_lr=1e-4, end_lr=1e-1, num_steps=20, repeats=1, adapt=False)
    assert len(res.curves[0]) == 20 and seen["n"] == 80
    assert res.lrs[0] == pytest.approx(1e-4) and res.lrs[-1] == pytest.approx(1e-1)
    assert res.settings["accumulation_steps"] == 4


def test_param_groups_keep_their_ratios():
    model, loader = make_problem()
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.1},
                           {"params": model[4].parameters(), "lr": 0.01}])
    seen = []

    def step_fn(m, batch):
        seen.append([g["lr"] for g in opt.param_groups])
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    find_lr(model, opt, loader, step_fn=step_fn, **{**FAST, "repeats": 1})
    assert all(b == pytest.approx(a / 10) for a, b in seen)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]


def test_bf16_autocast_on_cpu():
    model, loader = make_problem()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dtypes = []

    def step_fn(m, batch):
        out = m[0](batch[0])
        dtypes.append(out.dtype)
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    res = find_lr(model, opt, loader, step_fn=step_fn, amp="bf16", **{**FAST, "repeats": 1})
    assert dtypes[0] == torch.bfloat16 and len(res.curves[0]) > 10
    assert res.settings["amp"] == "bf16"


def test_grad_scaler_skipped_steps_do_not_advance_the_ramp():
    model, loader = make_problem(n=1024)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    before = capture(model, opt, scaler)
    calls = {"n": 0}

    def overflowing(m, batch):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(m(batch[0]), batch[1])
        if calls["n"] % 5 == 0:
            return loss + 1e38 * m[4].weight.sum()  # huge gradient: overflows when scaled
        return loss

    res = find_lr(model, opt, loader, step_fn=overflowing, grad_scaler=scaler,
                  start_lr=1e-4, end_lr=1e-2, num_steps=20, repeats=1, adapt=False)
    assert res.settings["skipped_steps"] >= 3
    assert len(res.curves[0]) == 20 and calls["n"] == 20 + res.settings["skipped_steps"]
    assert np.all(np.diff(res.lrs) > 0)  # no LR repeated: skips did not advance it
    assert_restored(before, model, opt, scaler)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 + GradScaler needs a CUDA GPU")
def test_fp16_with_grad_scaler_on_gpu():
    model, loader = make_problem()
    model = model.cuda()
    loader = [(x.cuda(), y.cuda()) for x, y in loader]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda")
    warm(model, opt, loader)
    before = capture(model, opt, scaler)
    cuda_rng = torch.cuda.get_rng_state()
    res = find_lr(model, opt, loader, nn.CrossEntropyLoss(), amp="fp16", grad_scaler=scaler, **FAST)
    assert len(res.curves[0]) > 10
    assert_restored(before, model, opt, scaler)
    assert torch.equal(torch.cuda.get_rng_state(), cuda_rng)


# ---- bad input: a clear error, and the state as it was -------------------------------------------


def test_empty_loader(setup):
    model, optimizer, _ = setup
    before = capture(model, optimizer)
    with pytest.raises(FinderError, match="no batches"):
        find_lr(model, optimizer, [], nn.CrossEntropyLoss(), **FAST)
    assert_restored(before, model, optimizer)


def test_nan_from_the_first_step(setup):
    model, optimizer, loader = setup
    before = capture(model, optimizer)
    with pytest.raises(FinderError, match="first step"):
        find_lr(model, optimizer, loader, step_fn=lambda m, b: m(b[0]).sum() * float("nan"), **FAST)
    assert_restored(before, model, optimizer)


@pytest.mark.parametrize("kwargs, match", [
    ({"start_lr": 1.0, "end_lr": 1.0}, "below end_lr"),
    ({"start_lr": 1.0, "end_lr": 0.1}, "below end_lr"),
    ({"repeats": 0}, "repeats"),
    ({"accumulation_steps": 0}, "accumulation_steps"),
    ({"amp": "int8"}, "amp"),
    ({"rule": "vibes"}, "rule"),
])
def test_bad_settings(setup, kwargs, match):
    model, optimizer, loader = setup
    before = capture(model, optimizer)
    with pytest.raises(FinderError, match=match):
        find_lr(model, optimizer, loader, nn.CrossEntropyLoss(), **{**FAST, **kwargs})
    assert_restored(before, model, optimizer)


def test_no_trainable_parameters(setup):
    model, optimizer, loader = setup
    for p in model.parameters():
        p.requires_grad_(False)
    before = capture(model, optimizer)
    with pytest.raises(FinderError, match="no trainable parameters"):
        find_lr(model, optimizer, loader, nn.CrossEntropyLoss(), **FAST)
    assert_restored(before, model, optimizer)


def test_missing_loss_fn_is_explained(setup):
    model, optimizer, loader = setup
    with pytest.raises(FinderError, match="loss_fn"):
        find_lr(model, optimizer, loader, **FAST)


def test_validation_loss_curve():
    model, loader = make_problem(n=512)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = find_lr(model, opt, loader[:24], nn.CrossEntropyLoss(), val_loader=loader[24:],
                  val_every=2, start_lr=1e-4, end_lr=1.0, num_steps=20, repeats=1, zoom=False,
                  adapt=False)
    assert len(res.curves[0]) == 10 and res.settings["validation"]


def test_zoomed_second_pass_reads_the_minimum_off_a_slower_ramp(setup):
    model, optimizer, loader = setup
    before = capture(model, optimizer)
    seen = []
    res = find_lr(model, optimizer, loader * 4, nn.CrossEntropyLoss(), start_lr=1e-5,
                  end_lr=10.0, num_steps=60, repeats=2, progress=lambda d, t: seen.append((d, t)))
    assert_restored(before, model, optimizer)
    assert res.coarse is not None and res.coarse.suggestion is not None
    lo, hi = res.settings["zoom"]
    assert (lo, hi) == pytest.approx(zoom_range(res.coarse))
    assert res.settings["zoom_steps"] == 30 and len(res.curves) == 2
    assert all(math.isclose(c.lrs[0], lo) and c.lrs[-1] <= hi * (1 + 1e-9) for c in res.curves)
    assert lo <= res.suggestion <= hi
    assert seen[-1] == (2 * 60 + 2 * 30, 2 * 60 + 2 * 30)  # the bar counts both passes
    assert res.to_dict()["coarse"]["suggestion"] == res.coarse.suggestion
    plain = find_lr(model, optimizer, loader * 4, nn.CrossEntropyLoss(), start_lr=1e-5,
                    end_lr=10.0, num_steps=60, repeats=2, zoom=False)
    assert plain.coarse is None and plain.settings["zoom"] is None
    assert plain.suggestion == res.coarse.suggestion  # the same first pass
    assert_restored(before, model, optimizer)


@pytest.mark.parametrize("bad", [5, 2.5, True])
def test_bad_zoom_steps(setup, bad):
    model, optimizer, loader = setup
    with pytest.raises(FinderError, match="zoom_steps"):
        find_lr(model, optimizer, loader, nn.CrossEntropyLoss(), **FAST, zoom_steps=bad)


def test_examples_task_end_to_end():
    pytest.importorskip("sklearn")
    from lrdoctor import examples

    task = examples.get("digits-mlp")
    model = task.build_model()
    opt = examples.make_optimizer("adam", model, 1e-3)
    res = find_lr(model, opt, task.train_loader, task.loss_fn, start_lr=1e-5, end_lr=10,
                  num_steps=100, repeats=1)
    assert res.suggestion is not None and 1e-4 < res.suggestion < 0.1
    assert res.grade in ("good", "fair", "poor")


@pytest.mark.ddp
@pytest.mark.slow
def test_ddp_two_ranks_agree(tmp_path):
    from pathlib import Path

    from .._torchrun import two_ranks

    r0, r1 = two_ranks(Path(__file__).with_name("ddp_finder_worker.py"), tmp_path)
    assert r0["suggestion"] == r1["suggestion"] and r0["interval"] == r1["interval"]
    assert r0["losses"] == r1["losses"]  # all-reduced: one curve on both ranks
    assert r0["probe"] is not None and r0["probe"] == r1["probe"]
    assert r0["restored"] and r1["restored"]


def _lr_driven(optimizer, probing, probe_loss):
    """A step_fn whose loss is a clean range-test curve of the LR, then, once
    ``probing["on"]`` (the budget probe), ``probe_loss(lr)``."""

    def step_fn(model, batch):
        lr = optimizer.param_groups[0]["lr"]
        tie = 0.0 * model(batch[0]).sum()  # a graph to backpropagate through
        if probing["on"]:
            return tie + probe_loss(lr)
        x = math.log10(lr)
        return tie + 2.0 - math.tanh(x + 2) + (40.0 * (lr - 0.1) if lr > 0.1 else 0.0)

    return step_fn


@pytest.mark.parametrize("holds", [True, False])
def test_budget_probe_moves_the_suggestion_only_when_the_loss_holds(setup, holds):
    model, optimizer, loader = setup
    before = capture(model, optimizer)
    passes = 2 * 60 + 2 * 30
    probe_loss = (lambda lr: 1.0) if holds else (lambda lr: 1.0 if lr < 0.03 else 3.0)
    seen = []
    probing = {"on": False}

    def progress(done, total):
        seen.append((done, total))
        probing["on"] = done >= passes  # both passes are counted done: the probe is next

    res = find_lr(model, optimizer, loader * 8, start_lr=1e-5, end_lr=10.0, num_steps=60,
                  repeats=2, budget_steps=40, progress=progress,
                  step_fn=_lr_driven(optimizer, probing, probe_loss))
    assert_restored(before, model, optimizer)
    probe = res.probe
    assert probe is not None and probe.warm_steps == 10 and probe.moved is holds
    assert probe.reference == pytest.approx(1.0)
    no_probe = res.picks["margin"]
    ramps = sum(len(c) for c in (*res.curves, *res.coarse.curves))
    assert res.settings["budget_steps"] == 40
    assert res.settings["steps_run"] == ramps + 10 + len(probe.lrs)
    assert seen[-1] == (passes + 10 + 60, passes + 10 + 60)
    if holds:
        assert res.suggestion == pytest.approx(res.min_loss_lr / math.sqrt(2))
        assert res.suggestion > no_probe
    else:
        assert res.suggestion == pytest.approx(no_probe) and probe.edge_lr < res.min_loss_lr
    assert res.notes[-1] == probe.sentence()


@pytest.mark.parametrize("bad", [3, 2.5, True])
def test_bad_budget_steps(setup, bad):
    model, optimizer, loader = setup
    before = capture(model, optimizer)
    with pytest.raises(FinderError, match="budget_steps"):
        find_lr(model, optimizer, loader, nn.CrossEntropyLoss(), **FAST, budget_steps=bad)
    assert_restored(before, model, optimizer)


def test_no_descent_means_no_probe_and_the_bar_still_completes(setup):
    model, optimizer, loader = setup
    seen = []

    def flat(m, batch):  # a loss that does not depend on the LR: nothing to suggest
        return 0.0 * m(batch[0]).sum() + 1.0

    res = find_lr(model, optimizer, loader * 4, step_fn=flat, **FAST, budget_steps=40,
                  progress=lambda d, t: seen.append((d, t)))
    assert res.suggestion is None and res.probe is None
    # the first pass, the continued ramp to 1e4 (no divergence, no descent), then the zoom and
    # the probe that did not run, counted done
    total = 2 * 40 + 2 * 40 + 2 * 20 + 10 + 60
    assert seen[-1] == (total, total)


@pytest.mark.parametrize("budget_steps", [None, 40])
def test_training_after_the_test_goes_on_as_if_it_never_ran(budget_steps):
    """Mid-training: the steps after find_lr (dropout draws, BatchNorm statistics, Adam's
    moments) are bit for bit those of the same training without it."""

    def training(run_finder: bool) -> list[torch.Tensor]:
        model, loader = make_problem()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        warm(model, optimizer, loader)
        torch.manual_seed(123)
        if run_finder:
            res = find_lr(model, optimizer, loader * 4, nn.CrossEntropyLoss(), **FAST,
                          budget_steps=budget_steps)
            assert res.settings["steps_run"] > 0
        model.train()
        warm(model, optimizer, loader[3:], steps=6)
        return [*model.parameters(), *model.buffers()]

    for a, b in zip(training(True), training(False)):
        assert torch.equal(a, b)


class GRUClassifier(nn.Module):
    """A small GRU whose task (name the first of 12 tokens) is learnt late: flat at first."""

    def __init__(self, vocab: int = 6, hidden: int = 24):
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)
        self.rnn = nn.GRU(8, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x):
        out, _ = self.rnn(self.embed(x))
        return self.head(out[:, -1])


def gru_problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 6, (1024, 12), generator=g)
    y = x[:, 0].clone()
    torch.manual_seed(seed)
    return GRUClassifier(), [(x[i:i + 32], y[i:i + 32]) for i in range(0, 1024, 32)]


def test_a_late_descending_gru_gets_a_suggestion_its_reason_and_state_back():
    model, loader = gru_problem()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    warm(model, opt, loader)
    before = capture(model, opt)
    plain = find_lr(model, opt, loader, nn.CrossEntropyLoss(), repeats=2, zoom=False,
                    adapt=False)
    assert plain.grade == "fallback" and "no clear descent" in plain.notes[0]
    res = find_lr(model, opt, loader, nn.CrossEntropyLoss(), repeats=2, zoom=False)
    assert_restored(before, model, opt)
    assert [p["kind"] for p in res.settings["passes"]] == ["first", "slow"]
    assert res.grade in ("good", "fair", "poor") and res.suggestion is not None
    assert "slower ramp" in res.reason and res.to_dict()["reason"] == res.reason
    assert res.suggestion < res.settings["passes"][0]["divergence_lr"]

    def accuracy_after(lr: float) -> float:  # the suggestion trains it; the habitual 1e-3 not yet
        m, batches = gru_problem()
        o = torch.optim.Adam(m.parameters(), lr=lr)
        for xb, yb in batches * 4:
            o.zero_grad()
            nn.functional.cross_entropy(m(xb), yb).backward()
            o.step()
        xs, ys = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
        with torch.no_grad():
            return float((m(xs).argmax(1) == ys).float().mean())

    assert accuracy_after(res.suggestion) > accuracy_after(1e-3) + 0.3


def test_adaptive_passes_restore_state_and_training_goes_on_bit_for_bit():
    def trained(run_finder: bool) -> list[torch.Tensor]:
        model, loader = gru_problem(1)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        warm(model, opt, loader)
        if run_finder:
            before = capture(model, opt)
            res = find_lr(model, opt, loader, nn.CrossEntropyLoss(), repeats=1, num_steps=60,
                          budget_steps=40)
            assert len(res.settings["passes"]) >= 2  # it adapted
            assert_restored(before, model, opt)
        for xb, yb in loader[:5]:
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
        return [p.detach().clone() for p in model.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(trained(True), trained(False)))


def test_epochs_sizes_the_budget_probe(setup):
    model, optimizer, loader = setup
    res = find_lr(model, optimizer, loader, nn.CrossEntropyLoss(), **FAST, epochs=3)
    if res.suggestion is not None and res.grade != "fallback":
        assert res.settings["budget_steps"] == 3 * len(loader)
        assert res.probe is not None and res.probe.warm_steps == 3 * len(loader) // 4
    with pytest.raises(FinderError, match="not both"):
        find_lr(model, optimizer, loader, nn.CrossEntropyLoss(), **FAST, epochs=3,
                budget_steps=40)
    with pytest.raises(FinderError, match="epochs must be"):
        find_lr(model, optimizer, loader, nn.CrossEntropyLoss(), **FAST, epochs=0)
    with pytest.raises(FinderError, match="len"):
        find_lr(model, optimizer, iter(loader), nn.CrossEntropyLoss(), **FAST, epochs=2)

"""Issue 18's symptoms, each on a run or a log shape the doctor was not tuned on.

Real runs: an MLP 64-256-128-64-10 on the digits (wider and deeper than the P3 tuning model
digits-mlp 64-128-64-10, and not one of the corpus families), seed 21 (P3 tuned on 0-12), one
torch thread, trained here in about a second each. Log shapes: synthetic series built from the
shape the issue describes, with numbers not taken from any tuning run.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from lrdoctor.doctor import diagnose
from lrdoctor.logs import Series, TrainingLog, load

HIDDEN = (256, 128, 64)
SEED = 21


def _train(tmp, tag, *, momentum=0.9, lr_factor=1.0, noise=0.0, plateau_min_acc=False,
           epochs=8):
    torch = pytest.importorskip("torch")
    from lrdoctor import examples
    from lrdoctor.torch import Monitor

    torch.set_num_threads(1)
    task = examples.get("digits-mlp", seed=SEED, hidden=HIDDEN)
    x, y = task.data.x_train.copy(), task.data.y_train.copy()
    if noise:
        rng = np.random.default_rng(SEED)
        flip = rng.random(len(y)) < noise            # to another class, uniformly
        y[flip] = (y[flip] + rng.integers(1, task.data.n_classes, flip.sum())) % 10
    torch.manual_seed(SEED)
    model = task.build_model(SEED)
    opt = torch.optim.SGD(model.parameters(), lr=task.reference_lrs["sgd"] * lr_factor,
                          momentum=momentum)
    sched = (torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=1)
             if plateau_min_acc else None)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
    xv = torch.as_tensor(task.data.x_val, dtype=torch.float32)
    yv = torch.as_tensor(task.data.y_val)
    gen = torch.Generator().manual_seed(SEED)
    rows, jsonl = [], tmp / f"{tag}.jsonl"
    with Monitor(model, opt, jsonl, loss_fn=task.loss_fn) as mon:
        for epoch in range(epochs):
            model.train()
            tot = correct = 0.0
            for idx in torch.randperm(len(yt), generator=gen).split(task.batch_size):
                out = model(xt[idx])
                loss = task.loss_fn(out, yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.step(loss=float(loss.detach()), inputs=xt[idx], targets=yt[idx])
                tot += float(loss.detach()) * len(idx)
                correct += float((out.argmax(1) == yt[idx]).sum())
            model.eval()
            with torch.no_grad():
                vo = model(xv)
                vl, va = float(task.loss_fn(vo, yv)), float((vo.argmax(1) == yv).float().mean())
            rows.append({"epoch": epoch, "accuracy": correct / len(yt), "loss": tot / len(yt),
                         "lr": opt.param_groups[0]["lr"], "val_accuracy": va, "val_loss": vl})
            mon.epoch(loss=rows[-1]["loss"], accuracy=rows[-1]["accuracy"], val_loss=vl,
                      val_accuracy=va)
            if sched is not None:
                sched.step(va)                       # the mistake: mode='min' on an accuracy
    path = tmp / f"{tag}.csv"                        # what a Keras CSVLogger holds
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return load(jsonl), load(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("symptoms")
    return {"plateau": _train(tmp, "plateau", plateau_min_acc=True, epochs=10),
            "noise": _train(tmp, "noise", noise=0.5, epochs=6),
            "sgd": _train(tmp, "sgd", momentum=0.0, lr_factor=100, epochs=6)}


def _problems(log):
    return [f.code for f in diagnose(log).problems]


def test_torch_plateau_scheduler_in_mode_min_on_val_accuracy_is_named_from_the_curves(runs):
    for log in runs["plateau"]:
        assert not [e for e in log.events if e.code == "lr-scheduler"]  # not declared
        d = diagnose(log)
        assert d.problems and d.problems[0].code == "plateau-monitor-mismatch", d.codes
        f = d.problems[0]
        assert f.data["metric"] == "val/accuracy" and f.data["mode"] == "min"
        assert "mode='max'" in f.fix


def _hf_like(lr: np.ndarray, every: int = 50) -> TrainingLog:
    n = len(lr)
    steps = np.arange(1, n + 1)
    loss = 1.0 + 1.1 * np.exp(-steps / 300) + 0.03 * np.random.default_rng(5).standard_normal(n)
    ev = steps[every - 1::every]
    return TrainingLog({"train/loss": Series(steps, loss), "lr": Series(steps, lr),
                        "val/loss": Series(ev, 1.05 + 1.0 * np.exp(-ev / 300)),
                        "val/accuracy": Series(ev, 0.8 - 0.3 * np.exp(-ev / 300))},
                       format="hf-trainer-state")


@pytest.mark.parametrize("shape", ["linear", "cosine", "linear-warmup", "step-every-300"])
def test_a_fixed_schedule_is_never_a_scheduler_problem(shape):
    """A Hugging Face run with linear decay (to 0: the last logged steps halve the lr) was told
    its plateau scheduler watches the wrong metric; no fixed schedule may be."""
    n, peak = 1400, 5e-5
    t = np.arange(n) / (n - 1)
    lr = {"linear": peak * (1 - t) + 1e-12,
          "cosine": 0.5 * peak * (1 + np.cos(np.pi * t)) + 1e-12,
          "linear-warmup": np.minimum(t / 0.1, (1 - t) / 0.9) * peak + 1e-12,
          "step-every-300": peak * 0.3 ** (np.arange(n) // 300)}[shape]
    assert "plateau-monitor-mismatch" not in diagnose(_hf_like(lr)).codes


def test_heavy_label_noise_is_named_label_noise_not_underfitting(runs):
    live, curves = runs["noise"]
    for log in (live, curves):
        d = diagnose(log)
        problems = [f.code for f in d.problems]
        assert "underfitting" not in problems, d.codes
        assert problems and problems[0] in ("label-noise", "over-regularization"), d.codes
    d = diagnose(live)                               # the Monitor records no dropout: decided
    assert d.problems[0].code == "label-noise"
    under = {f.code: f for f in d.findings}.get("underfitting")
    assert under is None or under.explained_by == "label-noise"
    # from the columns alone the finding names label noise as a candidate either way
    f = diagnose(curves).problems[0]
    assert f.code == "label-noise" or "label-noise" in f.data.get("candidates", [])


def test_lr_far_too_high_with_plain_sgd_is_named_before_its_consequences(runs):
    live, _ = runs["sgd"]
    d = diagnose(live)
    assert d.problems[0].code == "lr-too-high", d.codes
    found = {f.code: f for f in d.findings}
    for code in ("dead-relu", "vanishing-gradients", "underfitting"):
        if code in found:
            assert found[code].explained_by == "lr-too-high" and found[code].severity == "info"
    assert set(found["lr-too-high"].data.get("explains", [])) & {"dead-relu",
                                                                  "vanishing-gradients"}


def test_underfitting_is_not_a_co_finding_of_these_faulty_runs(runs):
    for pair in runs.values():
        for log in pair:
            assert "underfitting" not in _problems(log), diagnose(log).codes


def _epochs_log(val_loss, train_loss=None, val_acc=None, step_unit="epoch") -> TrainingLog:
    n = len(val_loss)
    ep = np.arange(n, dtype=float)
    train = (np.asarray(train_loss, float) if train_loss is not None
             else 0.9 * np.asarray(val_loss, float))
    cols = {"train/loss": Series(ep, train, ep), "val/loss": Series(ep, np.asarray(val_loss), ep)}
    if val_acc is not None:
        cols["val/accuracy"] = Series(ep, np.asarray(val_acc, float), ep)
    return TrainingLog(cols, format="keras-csv", step_unit=step_unit)


def test_a_validation_loss_flat_for_the_last_third_is_a_plateau():
    """Falls for 20 epochs, then sits at 0.74 +- 0.01 for 40 (a real-log shape): plateau, and
    neither underfitting nor a learning rate too low."""
    rng = np.random.default_rng(3)
    x = np.arange(60)
    val = 0.74 + 1.1 * np.exp(-x / 4) + 0.01 * rng.standard_normal(60)
    train = 0.3 + 1.4 * np.exp(-x / 6) + 0.005 * rng.standard_normal(60)
    d = diagnose(_epochs_log(val, train, val_acc=0.75 - 0.5 * np.exp(-x / 4)))
    assert "plateau" in d.codes
    assert not {"underfitting", "lr-too-low"} & {f.code for f in d.problems}


def test_validation_swinging_epoch_to_epoch_is_oscillation():
    """Validation loss around a falling trend, up and down every epoch by a quarter of its
    whole fall: oscillation; the same trend with small noise is not."""
    x = np.arange(16)
    trend = 0.3 + 1.2 * np.exp(-x / 3)
    swing = trend + 0.25 * (-1) ** x * np.r_[np.zeros(4), np.ones(12)]
    assert "oscillation" in _problems(_epochs_log(swing, 0.8 * trend))
    rng = np.random.default_rng(4)
    calm = trend + 0.003 * rng.standard_normal(16)
    assert "oscillation" not in _problems(_epochs_log(calm, 0.8 * trend))


def test_training_flat_while_eval_moves_is_a_data_problem():
    """A LoRA-like run: the training loss stays at 2.1 +- 0.05 (logged every 10 steps) while
    the eval loss falls from 2.0 to 1.6: the batches it trains on are not the task."""
    rng = np.random.default_rng(6)
    steps = np.arange(10, 2010, 10)
    ev = np.arange(200, 2001, 200)
    log = TrainingLog({"train/loss": Series(steps, 2.1 + 0.05 * rng.standard_normal(200)),
                       "val/loss": Series(ev, 1.6 + 0.4 * np.exp(-(ev - 200) / 500)),
                       "lr": Series(steps, np.linspace(2e-4, 0, 200))},
                      format="hf-trainer-state")
    assert _problems(log)[:1] == ["data-problem"]


def test_a_training_loss_of_exactly_zero_is_a_data_problem():
    steps = np.arange(10, 1010, 10)
    log = TrainingLog({"train/loss": Series(steps, np.zeros(100)),
                       "lr": Series(steps, np.linspace(2e-4, 0, 100))})
    assert _problems(log)[:1] == ["data-problem"]
    assert math.isclose(diagnose(log).problems[0].score, 0.7)

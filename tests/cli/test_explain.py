"""``lrdoctor explain``: the cause of every LR change, from logs alone and from journals.

Three kinds of run are simulated with the pure plateau core and a schedule and written as the
logs a user would have: (1) a plateau reducer on val accuracy in the wrong mode while the
training loss improves (per-step CSV); (2) a cosine decay (Keras CSVLogger, per epoch);
(3) warm-up, then plateau reductions on val loss (per-step JSONL). Every LR change must get the
right cause, and the seed question must be answered.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from lrdoctor.cli import main
from lrdoctor.cli._explain import explain_path
from lrdoctor.journal import Entry, Journal
from lrdoctor.plateau import PlateauConfig, update, warmup_end
from lrdoctor.schedules import parse


def simulate(spec, cfg, epochs, steps_per_epoch, metric_fn, train_fn, seed=0):
    """Train-loop stand-in: LR = schedule(k) x plateau factor, plateau stepped each epoch."""
    rng = np.random.default_rng(seed)
    sched = parse(spec)
    wu = warmup_end(sched)
    scale, state, rows, drops = 1.0, cfg.initial_state(), [], []
    k = 0
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            rows.append({"step": k, "epoch": epoch, "train_loss": train_fn(k, rng), "lr": sched(k) * scale})
            k += 1
        metrics = metric_fn(epoch, rng)
        rows[-1].update(metrics)
        lr_now = sched(k) * scale
        o = update(cfg, state, metrics[cfg.monitor], (lr_now,), hold=k < wu)
        state = o.state
        if o.reduced:
            scale *= o.lrs[0] / lr_now
            drops.append(k)
    return rows, drops


def write_csv(path, rows, fields):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({f: r.get(f, "") for f in fields})


def run_wrong_mode(tmp_path):
    cfg = PlateauConfig(monitor="val_accuracy", mode="min", patience=2, factor=0.5)
    acc = lambda e, rng: {"val_accuracy": round(0.9 - 0.4 * math.exp(-e / 6) + rng.normal(0, 0.01), 4)}
    train = lambda k, rng: 2.0 * math.exp(-k / 150) + 0.05 + rng.normal(0, 0.01)
    rows, drops = simulate("constant(0.1)", cfg, 30, 10, acc, train)
    path = tmp_path / "metrics.csv"
    write_csv(path, rows, ["step", "epoch", "train_loss", "lr", "val_accuracy"])
    return path, drops


def test_plateau_on_val_accuracy_in_wrong_mode(tmp_path, capsys):
    path, drops = run_wrong_mode(tmp_path)
    out = explain_path(path)
    assert out["kind"] == "log"
    changes = out["changes"]
    assert [c["step"] for c in changes] == drops and len(drops) >= 3
    assert {c["cause"] for c in changes} == {"plateau"}
    assert {c["metric"] for c in changes} == {"val/accuracy"}
    assert {c["mode"] for c in changes} == {"min"}
    assert "mode='max'" in out["answer"] and "train/loss was still falling" in out["answer"]
    assert main(["explain", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "plateau of val/accuracy (mode=min)" in printed and "Why did the LR drop" in printed


def test_cosine_decay_per_epoch_keras_csv(tmp_path):
    sched = parse("cosine(0.01, end=1e-4, steps=20)")
    rows = [{"epoch": e, "learning_rate": sched(e), "loss": 1.0 / (1 + e), "val_loss": 1.2 / (1 + 0.8 * e)}
            for e in range(25)]
    path = tmp_path / "training.log"
    write_csv(path, rows, ["epoch", "learning_rate", "loss", "val_loss"])
    out = explain_path(path)
    assert len(out["changes"]) == 1
    (c,) = out["changes"]
    assert c["kind"] == "decay" and c["cause"] == "schedule"
    assert c["old_lr"] == pytest.approx(0.01) and c["new_lr"] == pytest.approx(1e-4)
    assert "decays with the step count" in out["answer"]


def test_warmup_then_plateau_jsonl(tmp_path):
    cfg = PlateauConfig(monitor="val_loss", mode="min", patience=3, factor=0.3)

    def val(e, rng):
        return {"val_loss": round(max(0.6, 1.5 - 0.1 * e) + rng.normal(0, 0.01), 4)}

    train = lambda k, rng: 2.0 * math.exp(-k / 200) + 0.1
    rows, drops = simulate("warmup(40) >> constant(0.05)", cfg, 30, 10, val, train, seed=3)
    path = tmp_path / "log.jsonl"
    with open(path, "w") as fh:
        fh.writelines(json.dumps({k: v for k, v in r.items()}) + "\n" for r in rows)
    out = explain_path(path)
    causes = [c["cause"] for c in out["changes"]]
    assert causes[0] == "warmup-end" and out["changes"][0]["end_step"] == 40
    plateau = [c for c in out["changes"] if c["cause"] == "plateau"]
    assert [c["step"] for c in plateau] == drops and len(drops) >= 2
    assert causes == ["warmup-end"] + ["plateau"] * len(drops)
    assert {c["metric"] for c in plateau} == {"val/loss"}
    assert "overfitting" in out["answer"]


def test_step_decay_is_a_schedule(tmp_path):
    sched = parse("step(0.1, every=50, gamma=0.5)")
    rng = np.random.default_rng(1)
    rows = [{"step": k, "train_loss": 1 / (1 + k / 30), "lr": sched(k)} for k in range(300)]
    for r in rows[9::10]:
        r["val_loss"] = round(1.0 / (1 + r["step"] / 40) + rng.normal(0, 0.002), 4)
    path = tmp_path / "m.csv"
    write_csv(path, rows, ["step", "train_loss", "lr", "val_loss"])
    out = explain_path(path)
    assert [c["step"] for c in out["changes"]] == [50, 100, 150, 200, 250]
    assert {c["cause"] for c in out["changes"]} == {"schedule"}


def test_sgdr_restarts(tmp_path):
    sched = parse("sgdr(0.1, period=50)")
    rows = [{"step": k, "train_loss": 1 / (1 + k / 30), "lr": sched(k)} for k in range(160)]
    path = tmp_path / "m.csv"
    write_csv(path, rows, ["step", "train_loss", "lr"])
    causes = [c["cause"] for c in explain_path(path)["changes"]]
    # decays over 1..49, 51..99, 101..149, 151..159; restarts at 50, 100, 150
    assert causes == ["schedule", "restart"] * 3 + ["schedule"]


def test_from_journal_with_log(tmp_path, capsys):
    j = Journal(tmp_path / "journal.jsonl")
    j.append(Entry("plateau", epoch=12, step=120, old_lrs=[1e-3], new_lrs=[5e-4],
                   evidence={"monitor": "val_accuracy", "mode": "min", "best": 0.912, "best_evaluation": 9,
                             "num_bad": 3, "patience": 2, "threshold": 1e-4, "threshold_mode": "rel",
                             "factor": 0.5}))
    rows = [{"step": k, "train_loss": 2.0 / (1 + k / 20), "lr": 1e-3 if k < 120 else 5e-4} for k in range(200)]
    write_csv(tmp_path / "metrics.csv", rows, ["step", "train_loss", "lr"])
    out = explain_path(tmp_path)
    assert out["kind"] == "journal"
    assert out["changes"][0]["sentence"].startswith("epoch 12 (step 120): val_accuracy has not improved")
    assert "mode='max'" in out["answer"]
    assert main(["explain", str(tmp_path / "journal.jsonl"), "--json", str(tmp_path / "o.json")]) == 0
    data = json.loads((tmp_path / "o.json").read_text())
    assert data["changes"][0]["cause"] == "plateau"
    assert "epoch 12" in capsys.readouterr().out


def test_bad_input(tmp_path, capsys):
    assert main(["explain", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    no_lr = tmp_path / "no_lr.csv"
    write_csv(no_lr, [{"step": k, "train_loss": 1.0} for k in range(5)], ["step", "train_loss"])
    assert main(["explain", str(no_lr)]) == 2
    assert "no learning-rate column" in capsys.readouterr().err
    damaged = tmp_path / "journal.jsonl"
    damaged.write_text('{"cause": "plateau", "old_lrs": [1], "new_lrs": [0.5]}\n{broken\n{"x": 1}\n')
    assert main(["explain", str(damaged)]) == 0  # the good entry, and a note per damaged line
    out = " ".join(capsys.readouterr().out.split())
    assert "lr 1 → 0.5" in out and "line 2 is not a complete journal entry" in out
    assert "line 3 is not a complete journal entry" in out
    damaged.write_text("{broken\n" + '{"cause": 3, "old_lrs": []}\n')
    assert main(["explain", str(damaged)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "line 1 is not a journal entry" in err


def test_constant_lr_has_no_changes(tmp_path):
    write_csv(tmp_path / "c.csv", [{"step": k, "train_loss": 1.0 / (k + 1), "lr": 0.1} for k in range(20)],
              ["step", "train_loss", "lr"])
    out = explain_path(tmp_path / "c.csv")
    assert out["changes"] == [] and out["answer"] is None


def test_journal_answer_weighs_patience_against_noise(tmp_path):
    j = Journal(tmp_path / "journal.jsonl")
    j.append(Entry("plateau", epoch=8, step=80, old_lrs=[0.1], new_lrs=[0.01],
                   evidence={"monitor": "val_loss", "mode": "min", "best": 0.5, "best_evaluation": 5,
                             "num_bad": 3, "patience": 2, "threshold": 1e-4, "threshold_mode": "rel",
                             "factor": 0.1}))
    rng = np.random.default_rng(0)
    rows = [{"step": k, "train_loss": 2.0 / (1 + k / 20), "lr": 0.1 if k < 80 else 0.01} for k in range(120)]
    for r in rows[9::10]:
        r["val_loss"] = round(0.5 + rng.normal(0, 0.05), 4)
    write_csv(tmp_path / "metrics.csv", rows, ["step", "train_loss", "lr", "val_loss"])
    out = explain_path(tmp_path)
    assert out["kind"] == "journal"
    assert "taken on val_loss (mode='min'), not on the training loss" in out["answer"]
    assert "jumps by about" in out["answer"] and "raise patience" in out["answer"]


def test_fast_replay_equals_the_core():
    from lrdoctor.plateau._replay import _fast_replay, _replay

    rng = np.random.default_rng(5)
    for _ in range(400):
        values = list(np.round(rng.normal(0, 1, int(rng.integers(3, 30))).cumsum(), 1))
        if rng.random() < 0.2:
            values[int(rng.integers(0, len(values)))] = float("nan")
        args = (str(rng.choice(["min", "max"])), int(rng.integers(0, 4)), str(rng.choice(["rel", "abs"])),
                float(rng.choice([0.0, 1e-4, 0.1])), int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        assert _fast_replay(values, *args) == _replay(np.array(values), *args)


def test_wrong_mode_under_a_warmup(tmp_path):
    """Evaluations inside the warm-up are not counted (PlateauLR's rule): the replay knows it."""
    cfg = PlateauConfig(monitor="val_accuracy", mode="min", patience=2, factor=0.5)
    acc = lambda e, rng: {"val_accuracy": round(0.9 - 0.4 * math.exp(-e / 6) + rng.normal(0, 0.005), 4)}
    train = lambda k, rng: 2.0 * math.exp(-k / 150) + 0.05
    rows, drops = simulate("warmup(35) >> constant(0.05)", cfg, 25, 16, acc, train, seed=4)
    path = tmp_path / "m.csv"
    write_csv(path, rows, ["step", "epoch", "train_loss", "lr", "val_accuracy"])
    out = explain_path(path)
    assert [c["cause"] for c in out["changes"]] == ["warmup-end"] + ["plateau"] * len(drops)
    assert [c["step"] for c in out["changes"][1:]] == drops
    assert "mode='max'" in out["answer"]

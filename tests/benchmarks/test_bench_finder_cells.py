"""P1's held-out sequence cells (benchmarks/_p1_cells.py) and how bench_finder.py uses them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import _p1_cells as P1


def test_the_labels_follow_each_task_rule():
    xt, yt, xv, yv, classes = P1._arrays("gru-recall")
    assert (yt == xt[:, 2]).all() and (yv == xv[:, 2]).all() and classes == 6
    xt, yt, *_ , classes = P1._arrays("lstm-count")
    assert (yt == np.minimum((xt == 0).sum(1), 4)).all() and classes == 5
    assert set(np.unique(yt)) == set(range(5))  # every class occurs
    xt, yt, *_, classes = P1._arrays("transformer-majority")
    counts = np.stack([(xt == v).sum(1) for v in range(classes)], 1)
    assert (counts[np.arange(len(yt)), yt] == counts.max(1)).all()
    for name in P1.CELLS:
        xt, yt, xv, yv, _ = P1._arrays(name)
        assert len(xt) == 1200 and len(xv) == P1.N_VAL and xt.dtype == np.int64


def test_the_data_never_changes_and_the_model_comes_from_the_seed():
    a = P1._SPECS["lstm-count"].data()
    b = P1._SPECS["lstm-count"].data()
    assert all(np.array_equal(u, v) for u, v in zip(a[:2], b[:2]))
    task = P1.get("transformer-majority", seed=3)
    state = torch.random.get_rng_state()
    m1, m2 = task.build_model(), task.build_model()
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is left alone
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
    other = task.replace(seed=4).build_model()
    assert not all(torch.equal(p, q) for p, q in zip(m1.parameters(), other.parameters()))
    xb, _ = next(iter(task.train_loader))
    assert m1(xb).shape == (32, task.data.n_classes) and task.steps_per_epoch == 38


def test_train_score_learns_and_scores_a_diverged_run_as_chance(monkeypatch):
    task = P1.get("gru-recall", epochs=1)
    chance = 100.0 / 6
    assert P1.train_score(task, "adam", 1e-2) > chance + 10
    monkeypatch.setattr(P1.SeqTask, "loss_fn",
                        property(lambda self: lambda out, y: out.sum() * float("nan")))
    assert P1.train_score(task, "adam", 1e-2) == pytest.approx(chance)


def test_an_unknown_cell_is_named_with_the_choices():
    with pytest.raises(KeyError, match="gru-recall"):
        P1.get("gru-nope")


def test_bench_finder_holds_the_sequence_cells_out_and_keys_them_apart():
    threads = torch.get_num_threads()
    import bench_finder as B  # sets 1 thread for its training, put back below

    torch.set_num_threads(threads)
    assert set(P1.HELD_OUT) <= set(B.HELD_OUT) and set(B.SEQUENCE) == set(P1.HELD_OUT)
    assert not set(P1.TUNING) & set(B.HELD_OUT) and set(B.SEQ_TUNING) == set(P1.TUNING)
    assert not set(P1.CELLS) & set(B.examples.names())
    seq = B._get("gru-recall").replace(epochs=12)
    ex = B._get("digits-mlp")
    assert B._label(seq) == "gru-recall" and B._label(ex) == "digits-mlp"
    assert B._key(seq, "adam", 1e-3, 0).startswith(B.seq_code("gru-recall"))
    assert B._key(ex, "adam", 1e-3, 0).startswith(B.CODE) and B.seq_code("gru-recall") != B.CODE
    # the benchmark's worker scores a sequence cell with _p1_cells's loop, bit for bit
    got = B._train_score("lstm-count", {}, 1, "adam", 3e-3, 1)
    torch.set_num_threads(threads)
    assert got == P1.train_score(P1.get("lstm-count", seed=1, epochs=1), "adam", 3e-3)


def test_cells_have_roles_and_the_held_out_switch_selects_exactly_that_set(monkeypatch):
    assert "gru-recall" in P1.TUNING  # the convergence gate was diagnosed on it
    assert set(P1.FRESH) <= set(P1.HELD_OUT) and len(P1.FRESH) >= 2
    assert set(P1.TUNING) | set(P1.HELD_OUT) == set(P1.CELLS)
    assert not set(P1.TUNING) & set(P1.HELD_OUT)
    import importlib

    import bench_finder as B

    threads = torch.get_num_threads()
    try:
        monkeypatch.setenv("LRDOCTOR_BENCH_TASKS", "held-out")
        held = importlib.reload(B)
        assert set(held.TASKS) == {"digits-mlp+tanh", "mnist1d-conv+bn", "digits-cnn+gelu",
                                   "charlm+1layer", "lstm-count", "transformer-majority",
                                   *P1.FRESH}
        assert held.RAW == "bench_finder_x4_held_out.json"
        monkeypatch.setenv("LRDOCTOR_BENCH_TASKS", "fresh")
        assert set(importlib.reload(B).TASKS) == set(P1.FRESH)
        monkeypatch.setenv("LRDOCTOR_BENCH_TASKS", "tuning-sequence")
        assert set(importlib.reload(B).TASKS) == set(P1.TUNING)
        monkeypatch.setenv("LRDOCTOR_BENCH_TASKS", "nope")
        with pytest.raises(SystemExit, match="LRDOCTOR_BENCH_TASKS must be one of"):
            importlib.reload(B)
    finally:
        monkeypatch.delenv("LRDOCTOR_BENCH_TASKS")
        importlib.reload(B)
        torch.set_num_threads(threads)


def test_each_cell_hashes_its_own_sources():
    hashes = {name: P1.source_hash(name) for name in P1.CELLS}
    assert len(set(hashes.values())) == len(P1.CELLS)  # one per cell
    assert hashes == {name: P1.source_hash(name) for name in P1.CELLS}  # stable


def test_the_gate_sweep_picks_the_moved_lr_only_above_the_gate():
    import bench_finder as B

    probe = {"edge_lr": 0.8, "min_loss_lr": 0.2, "warm_lr": 0.05, "reference": 0.002,
             "warm_start": 2.0}
    assert B.would_move(probe) and B.warm_ratio(probe) == pytest.approx(0.001)
    assert B.gate_pick(probe, 0.05, 0.0) == pytest.approx(0.2 / B.NEAR_MARGIN)
    assert B.gate_pick(probe, 0.05, 0.01) == 0.05
    assert B.gate_pick({**probe, "edge_lr": 0.1}, 0.05, 0.0) == 0.05  # the ramp rose early
    assert B.gate_pick(None, 0.05, 0.0) == 0.05

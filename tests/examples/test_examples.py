"""The example tasks: shapes, determinism by seed, RNG isolation, the training loop, faults."""

from __future__ import annotations

import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from lrdoctor import examples
from lrdoctor.errors import LRDoctorError
from lrdoctor.examples._data import decode_chars, fingerprint


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("name", examples.names())
def test_task_shapes_and_loss(name):
    task = examples.get(name, seed=3)
    model = task.build_model()
    xb, yb = next(iter(task.train_loader))
    assert len(xb) == task.batch_size
    out = model(xb)
    loss = task.loss_fn(out, yb)
    assert loss.ndim == 0 and torch.isfinite(loss)
    metrics = task.evaluate(model)
    assert task.metric_key in metrics
    assert set(metrics) == ({"val_loss", "val_accuracy"} if task.metric == "accuracy" else {"val_loss"})
    assert model.training  # evaluate() restores the mode


@pytest.mark.parametrize("name", examples.names())
def test_deterministic_by_seed(name):
    a, b, c = examples.get(name, seed=1), examples.get(name, seed=1), examples.get(name, seed=2)
    for pa, pb in zip(_params(a.build_model()), _params(b.build_model())):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(_params(a.build_model()), _params(c.build_model())))
    xa, _ = next(iter(a.train_loader))
    xb, _ = next(iter(b.train_loader))
    xc, _ = next(iter(c.train_loader))
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)
    assert fingerprint(a.data) == fingerprint(c.data)  # splits do not depend on the seed


def test_build_model_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    examples.get("digits-mlp").build_model()
    assert torch.equal(torch.rand(3), expected)


def test_mnist1d_generation_is_isolated(monkeypatch, tmp_path):
    from lrdoctor.examples import _data

    monkeypatch.setenv("LRDOCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.delitem(_data._MEMO, "mnist1d", raising=False)
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    before = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    data = _data.mnist1d()
    after = (random.random(), np.random.rand(), torch.rand(1))
    assert before[:2] == after[:2] and torch.equal(before[2], after[2])
    assert data.x_train.shape == (3000, 40) and data.x_test.shape == (1000, 40)
    assert list(tmp_path.glob("mnist1d-*.npz"))  # cached on disk
    monkeypatch.delitem(_data._MEMO, "mnist1d")
    assert fingerprint(_data.mnist1d()) == fingerprint(data)  # read back from the cache


def test_charlm_corpus_is_text_from_the_stdlib():
    task = examples.get("charlm", max_chars=40_000, seq_len=32)
    x, y = task.data.x_train, task.data.y_train
    assert x.shape[1] == 32 and np.array_equal(x[0, 1:], y[0, :-1])
    assert "import" in decode_chars(x[:200])


def test_train_is_deterministic_and_learns():
    task = examples.get("digits-mlp", seed=0, epochs=2)
    r1 = examples.train(task, "sgd", lr=0.05)
    r2 = examples.train(task, "sgd", lr=0.05)
    assert r1.metrics == r2.metrics
    assert r1.metrics["val_accuracy"] > 0.6
    assert len(r1.history) == 2 and r1.steps == 2 * task.steps_per_epoch and not r1.diverged


def test_train_stops_on_divergence_and_calls_monitor():
    calls = {"step": 0, "epoch": 0}

    class Mon:
        def step(self, **kw):
            calls["step"] += 1

        def epoch(self, **kw):
            calls["epoch"] += 1

    task = examples.get("digits-mlp", epochs=1)
    ok = examples.train(task, "sgd", lr=0.01, monitor=Mon())
    assert calls == {"step": task.steps_per_epoch, "epoch": 1} and not ok.diverged
    bad = examples.train(task.with_data(x_train=task.data.x_train * 1e6), "sgd", lr=10.0)
    assert bad.diverged


def test_plateau_scheduler_gets_the_metric():
    task = examples.get("digits-mlp", epochs=2)
    model = task.build_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    examples.train(task, opt, model=model, scheduler=sched)
    assert sched.last_epoch == 2


def test_fault_injection_helpers():
    task = examples.get("digits-cnn", activation="sigmoid", init="normal:1.0", batchnorm=True)
    model = task.build_model()
    assert any(isinstance(m, torch.nn.Sigmoid) for m in model.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    order = np.argsort(task.data.y_train, kind="stable")
    sorted_task = task.with_data(x_train=task.data.x_train[order], y_train=task.data.y_train[order])
    _, y = next(iter(sorted_task.loader("train", shuffle=False)))
    assert (y == 0).all()
    small = examples.get("digits-mlp", n_train=100)
    assert len(small.data.y_train) == 100
    batch = next(iter(small.loader("train", as_dict=True)))
    assert set(batch) == {"x", "y"}


def test_bad_input_is_a_clear_error():
    with pytest.raises(LRDoctorError, match="unknown example"):
        examples.get("imagenet")
    with pytest.raises(LRDoctorError, match="no option"):
        examples.get("digits-mlp", widht=3)
    with pytest.raises(LRDoctorError, match="needs lr"):
        examples.train(examples.get("digits-mlp"), "adam")
    with pytest.raises(LRDoctorError, match="activation"):
        examples.get("digits-mlp", activation="swishy").build_model()

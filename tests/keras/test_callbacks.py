"""``lrdoctor.keras.ReduceLROnPlateau`` / ``EarlyStopping`` against the real Keras 3 callbacks.

Both are driven directly through ``on_epoch_end`` on the same random metric sequences (the pure
core is compared on 5,000 more in tests/plateau/test_differential.py); learning rates, ``wait``,
``best`` and ``stop_training`` must agree after every epoch. A short real ``fit`` checks the
callbacks inside Keras' training loop.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from lrdoctor.errors import PlateauError
from lrdoctor.journal import Journal
from lrdoctor.keras import EarlyStopping, ReduceLROnPlateau
from tests.plateau._sequences import metric_sequence, plateau_settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class _Model:
    """What the callbacks touch: an optimizer, stop_training, weights, metrics."""

    def __init__(self, lr):
        self.optimizer = keras.optimizers.SGD(learning_rate=lr)
        self.stop_training = False
        self.metrics = []
        self.weights = [np.zeros(1)]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, w):
        self.weights = w


def _drive(cb, values, lr0=0.1, monitor="val_loss"):
    model = _Model(lr0)
    cb.set_model(model)
    cb.on_train_begin()
    out = []
    for epoch, v in enumerate(values):
        model.weights = [np.full(1, float(epoch))]
        cb.on_epoch_end(epoch, {monitor: v})
        out.append((float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)), cb.wait,
                    model.stop_training))
        if model.stop_training:
            break
    return out, model


def test_reduce_lr_on_plateau_matches_keras():
    rng = np.random.default_rng(11)
    for case in range(1000):
        s = plateau_settings(rng, keras=True)
        values = metric_sequence(rng, int(rng.integers(5, 25)))
        lr0 = float(rng.choice([1.0, 0.1, 1e-2]))
        ours, _ = _drive(ReduceLROnPlateau(**s), values, lr0)
        theirs, _ = _drive(keras.callbacks.ReduceLROnPlateau(**s), values, lr0)
        assert ours == theirs, (case, s, values)


def test_early_stopping_matches_keras():
    rng = np.random.default_rng(12)
    for case in range(1000):
        kw = {"mode": str(rng.choice(["min", "max", "auto"])), "patience": int(rng.integers(0, 5)),
              "min_delta": float(rng.choice([0.0, 1e-4, 1e-2])), "start_from_epoch": int(rng.integers(0, 3)),
              "baseline": None if rng.random() < 0.6 else float(rng.uniform(0.2, 2.0)),
              "restore_best_weights": bool(rng.random() < 0.5)}
        values = metric_sequence(rng, int(rng.integers(3, 25)))
        ours, m1 = _drive(EarlyStopping(**kw), values)
        theirs, m2 = _drive(keras.callbacks.EarlyStopping(**kw), values)
        assert ours == theirs, (case, kw, values)
        cb1, cb2 = EarlyStopping(**kw), keras.callbacks.EarlyStopping(**kw)
        for cb, m in ((cb1, m1), (cb2, m2)):
            cb.set_model(m)
        _drive(cb1, values)
        _drive(cb2, values)
        assert (cb1.best, cb1.best_epoch, cb1.stopped_epoch) == (cb2.best, cb2.best_epoch, cb2.stopped_epoch)


def test_isinstance_of_keras_callbacks():
    assert isinstance(ReduceLROnPlateau(), keras.callbacks.ReduceLROnPlateau)
    assert isinstance(EarlyStopping(), keras.callbacks.EarlyStopping)


def test_journal_sentences(tmp_path):
    path = tmp_path / "j.jsonl"
    cb = ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=2, journal=path)
    _drive(cb, [0.5, 0.6, 0.6, 0.6, 0.6], 1e-3, monitor="val_accuracy")
    lines = Journal.load(path).explain()
    assert lines == [
        ("epoch 4: val_accuracy has not improved by more than 0.0001 over its best 0.6000 (epoch 2) "
        "for 2 evaluations (patience 2) → lr 1e-3 → 5e-4 (factor 0.5, mode=max)")
    ]


def test_early_stopping_journal(tmp_path):
    cb = EarlyStopping(monitor="val_loss", patience=1, journal=tmp_path / "j.jsonl")
    _out, model = _drive(cb, [1.0, 0.5, 0.6, 0.7])
    assert model.stop_training
    (entry,) = Journal.load(tmp_path / "j.jsonl")
    assert entry.cause == "early-stop" and entry.epoch == 3
    assert "stopping early: val_loss has not improved" in entry.explain()


def test_stop_at_min_lr_stops_training():
    cb = ReduceLROnPlateau(patience=1, factor=0.1, min_lr=0.01, stop_at_min_lr=True)
    _out, model = _drive(cb, [1.0] * 12, 1.0)
    assert model.stop_training


def test_bad_input():
    with pytest.raises(PlateauError, match="mode must be one of"):
        ReduceLROnPlateau(mode="minimize")
    with pytest.raises(ValueError, match="does not support"):  # Keras' own check on factor >= 1
        ReduceLROnPlateau(factor=1.0)
    with pytest.raises(PlateauError, match="patience must be >= 0"):
        ReduceLROnPlateau(patience=-1)
    with pytest.raises(PlateauError, match="patience must be >= 0"):
        EarlyStopping(patience=-2)
    cb = ReduceLROnPlateau(monitor="throughput")
    with pytest.raises(PlateauError, match="pass mode='min' or mode='max'"):
        _drive(cb, [1.0])


def test_missing_metric_warns_and_journals(tmp_path):
    cb = ReduceLROnPlateau(monitor="val_loss", journal=tmp_path / "j.jsonl")
    with pytest.warns(UserWarning, match="`val_loss` which is not available"):
        _drive(cb, [1.0], monitor="loss")
    assert [e.cause for e in Journal.load(tmp_path / "j.jsonl")] == ["warning"]


def test_inside_fit(tmp_path):
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = np.zeros((64, 1), "float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate=0.0), loss="mse")  # lr 0: loss never moves
    model.optimizer.learning_rate = 0.1
    path = tmp_path / "j.jsonl"
    rl = ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5, min_delta=10.0, journal=path)
    es = EarlyStopping(monitor="loss", patience=3, min_delta=10.0, journal=path)
    hist = model.fit(x, y, epochs=10, verbose=0, callbacks=[rl, es])
    causes = [e.cause for e in Journal.load(path)]
    assert causes.count("plateau") >= 2 and causes[-1] == "early-stop"
    assert len(hist.history["loss"]) == 4


def test_schedule_times_plateau_inside_fit(tmp_path):
    from lrdoctor.schedules import parse

    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = np.zeros((64, 1), "float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    spec = "warmup(8) >> constant(0.1)"
    path = tmp_path / "j.jsonl"
    rl = ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5, min_delta=10.0, schedule=spec,
                           journal=path)
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(
        float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))))
    model.fit(x, y, epochs=6, batch_size=32, verbose=0, callbacks=[rl, record])
    # 2 steps per epoch: epochs 1-3 end inside the warm-up (steps 2, 4, 6): no reduction there;
    # from epoch 4 (step 8) every epoch halves the plateau factor
    s = parse(spec)
    expected = [s(2), s(4), s(6), 0.1 * 0.5, 0.1 * 0.25, 0.1 * 0.125]
    assert seen == pytest.approx(expected, rel=1e-6)
    causes = [e.cause for e in Journal.load(path)]
    assert "warmup-end" in causes and causes.count("plateau") == 3
    assert causes.index("warmup-end") < causes.index("plateau")


def test_float32_rounding_after_warmup_is_not_journaled_as_a_schedule_move(tmp_path):
    # the optimizer holds the lr in float32; after the warm-up ends at 0.05 (not exact in
    # float32) nothing moves, so the journal must not say "schedule moved lr 0.05 -> 0.05"
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = np.zeros((64, 1), "float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate=0.05), loss="mse")
    path = tmp_path / "j.jsonl"
    rl = ReduceLROnPlateau(monitor="loss", patience=100, schedule="warmup(3) >> constant(0.05)",
                           journal=path)
    model.fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[rl])
    entries = Journal.load(path)
    causes = [e.cause for e in entries]
    # the ramp's own move in epoch 1, the warm-up end, then nothing: the lr holds at 0.05
    assert causes == ["schedule", "warmup-end"]
    assert entries[0].new_lrs != entries[0].old_lrs

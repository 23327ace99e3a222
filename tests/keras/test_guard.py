"""lrdoctor.keras.Guard in real ``model.fit`` runs: a NaN batch and an LR spike are survived, a
restore puts the weights and the optimizer state back bit for bit, too many rewinds stop."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from lrdoctor.errors import GuardError, LRDoctorError
from lrdoctor.journal import Journal
from lrdoctor.keras import Guard

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BATCH = 32


def _data(n: int = 768, nan_batch: int | None = None):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = ((x[:, 0] > 0).astype("int32") + (x[:, 1] > 0)).astype("int32")
    if nan_batch is not None:
        x[nan_batch * BATCH:(nan_batch + 1) * BATCH] = np.nan
    return x, y


def _model(seed: int = 0, lr: float = 0.05):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dropout(0.1),
        keras.layers.BatchNormalization(), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.SGD(lr, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _fit(model, x, y, callbacks, epochs=3):
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
                     callbacks=callbacks).history["loss"]


def _finite(model) -> bool:
    return all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.weights)


class LRSpike(keras.callbacks.Callback):
    """The LR times ``factor`` for batches ``at``..``at+n-1`` (counted over the whole fit)."""

    def __init__(self, at: int, factor: float = 1000.0, n: int = 3):
        super().__init__()
        self.at, self.factor, self.n, self.k, self.saved = at, factor, n, 0, None

    def on_train_batch_begin(self, batch, logs=None):
        if self.at <= self.k < self.at + self.n:
            self.saved = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            self.model.optimizer.learning_rate = self.saved * self.factor

    def on_train_batch_end(self, batch, logs=None):
        if self.saved is not None:
            self.model.optimizer.learning_rate = self.saved
            self.saved = None
        self.k += 1


def test_a_nan_batch_is_undone_and_training_ends_like_the_clean_run(tmp_path):
    clean = _fit(_model(), *_data(), [])
    x, y = _data(nan_batch=14)
    assert np.isnan(_fit(_model(), x, y, [])[-1])          # unguarded, the run is lost
    model, guard = _model(), Guard(journal=tmp_path / "guard.jsonl")
    losses = _fit(model, x, y, [guard])
    assert [(e.step, e.action, e.reason) for e in guard.events] == [
        (14, "skip", "nonfinite-loss"), (38, "skip", "nonfinite-loss"),
        (62, "skip", "nonfinite-loss")]                    # batch 14 of each of 3 epochs
    assert guard.events[0].evidence["restored"] == 11      # >= 2 batches before the bad one
    assert _finite(model) and np.isfinite(losses).all()
    assert losses[-1] < 1.25 * clean[-1] and losses[-1] < 0.7 * losses[0]
    entries = Journal.load(tmp_path / "guard.jsonl").entries
    assert [e.evidence["action"] for e in entries] == ["skip"] * 3
    assert "Keras had applied its update" in entries[0].message


def test_an_lr_spike_is_survived():
    clean = _fit(_model(), *_data(), [])
    spiked = _fit(_model(), *_data(), [LRSpike(at=30)])
    assert spiked[-1] > 10 * clean[-1]                     # unguarded, the spike ruins the run
    model, guard = _model(), Guard()
    losses = _fit(model, *_data(), [LRSpike(at=30), guard])
    assert guard.events and {e.reason for e in guard.events} == {"spike"}
    assert all(31 <= e.step <= 34 for e in guard.events)
    assert _finite(model) and losses[-1] < 1.25 * clean[-1]


class Record(keras.callbacks.Callback):
    """The model's and optimizer's variables after every batch (after the Guard's restore)."""

    def __init__(self):
        super().__init__()
        self.states = []

    def on_train_batch_end(self, batch, logs=None):
        opt = self.model.optimizer
        self.states.append(
            ([keras.ops.convert_to_numpy(v).copy() for v in self.model.variables],
             [keras.ops.convert_to_numpy(v).copy() for v in opt.variables
              if v is not opt._learning_rate]))


def test_a_restore_puts_weights_and_optimizer_state_back_bit_for_bit():
    x, y = _data(n=24 * BATCH, nan_batch=17)
    model, guard, rec = _model(), Guard(snapshot_every=5), Record()
    _fit(model, x, y, [guard, rec], epochs=1)
    (event,) = guard.events
    assert (event.step, event.evidence["restored"]) == (17, 11)
    # the snapshot labelled 11 is the state batch 11 starts from: the one after batch 10
    after, before = rec.states[17], rec.states[10]
    names = [v.path for v in model.variables]
    assert any("seed_generator" in n for n in names) and any("moving_mean" in n for n in names)
    for a, b in zip(after[0] + after[1], before[0] + before[1]):
        assert np.array_equal(a, b)
    assert int(after[1][0]) == 11                           # the optimizer's iterations
    assert not np.array_equal(rec.states[16][0][0], before[0][0])  # the state had moved on
    assert _finite(model)


def test_the_lr_is_lowered_after_a_rewind_and_other_callbacks_see_it_unscaled():
    seen, used = [], []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):   # after the Guard's: the lowered LR
            used.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    x, y = _data(n=30 * BATCH)
    x[20 * BATCH:22 * BATCH] = np.nan
    guard = Guard(patience=2, cooldown_steps=4, lr_factor=0.25)
    _fit(_model(), x, y, [guard, Watch()], epochs=1)
    assert [e.action for e in guard.events] == ["skip", "rewind"]
    assert np.allclose(np.array(used[22:27]) / 0.05, [0.25, 0.4375, 0.625, 0.8125, 1.0])
    assert np.allclose(seen, 0.05)


def test_too_many_rewinds_stop_with_what_it_saw():
    x, y = _data(n=40 * BATCH)
    x[10 * BATCH:] = np.nan
    guard = Guard(patience=2, max_rewinds=2)
    with pytest.raises(GuardError, match=r"2 rewinds within 1000 batches .* loss nan") as err:
        _fit(_model(), x, y, [guard], epochs=1)
    assert [e.action for e in err.value.events] == ["skip", "rewind"] * 2 + ["skip", "stop"]


def test_bad_settings_and_an_uncompiled_model_are_named():
    with pytest.raises(LRDoctorError, match="Guard patience must be an int >= 1, got 0"):
        Guard(patience=0)
    guard = Guard()
    guard.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    with pytest.raises(LRDoctorError, match="compiled model"):
        guard.on_train_begin()


def test_a_scheduled_lr_is_lowered_through_a_wrapper_and_put_back():
    seen = []

    class Watch(keras.callbacks.Callback):   # the LR a batch uses, and the schedule's own
        def on_train_batch_begin(self, batch, logs=None):
            opt = self.model.optimizer
            seen.append([float(keras.ops.convert_to_numpy(v))
                         for v in (opt.learning_rate, schedule(opt.iterations))])

    schedule = keras.optimizers.schedules.CosineDecay(0.05, decay_steps=60)
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data(n=30 * BATCH)
    x[20 * BATCH:22 * BATCH] = np.nan
    guard = Guard(patience=2, cooldown_steps=4, lr_factor=0.25)
    _fit(model, x, y, [guard, Watch()], epochs=1)
    assert [e.action for e in guard.events] == ["skip", "rewind"]
    used, planned = np.array(seen).T
    assert np.allclose(used[22:27] / planned[22:27], [0.25, 0.4375, 0.625, 0.8125, 1.0])
    assert model.optimizer._learning_rate is schedule

"""lrdoctor.keras.schedule: spec schedules inside Keras 3 optimizers."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from lrdoctor.keras import SpecSchedule, schedule
from lrdoctor.schedules import ScheduleError, parse

SPEC = "warmup(10) >> cosine(0.01, end=1e-4, steps=90)"


def test_fit_uses_the_schedule_step_by_step():
    keras.utils.set_random_seed(0)
    sch = schedule(SPEC)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=sch), loss="mse")
    x, y = np.random.rand(64, 4), np.random.rand(64, 1)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            it = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            seen.append((it, float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))))

    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[Record()])
    s = parse(SPEC)
    assert [k for k, _ in seen] == list(range(24))
    for k, lr in seen:
        assert lr == pytest.approx(s(k), rel=1e-6)  # float32 inside Keras


def test_config_round_trip_and_model_saving(tmp_path):
    sch = schedule(SPEC)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(sch))
    assert isinstance(again, SpecSchedule) and again.spec == parse(SPEC).to_spec()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=sch), loss="mse")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.optimizer.learning_rate is not None
    assert loaded.optimizer._learning_rate.spec == sch.spec


def test_symbolic_lookup_matches_closed_form():
    sch = schedule("sgdr(0.1, period=7, mult=2)", horizon=200)
    steps = keras.ops.convert_to_tensor(np.arange(250), dtype="int32")
    table = keras.ops.convert_to_numpy(sch._lookup(steps))
    expected = parse("sgdr(0.1, period=7, mult=2)").values(201)
    assert np.allclose(table[:201], expected, rtol=1e-6)
    assert np.all(table[200:] == table[200])  # clamped at the horizon


def test_bad_input():
    with pytest.raises(ScheduleError, match="unknown argument"):
        schedule("cosine(0.1, stepz=3)")
    with pytest.raises(ScheduleError, match="horizon"):
        schedule(SPEC, horizon=0)


def test_keras_own_serialization_check_on_a_growing_sgdr():
    """Keras' CosineDecayRestarts config test (m_mul=4.0), run by Keras' own checker on ours."""
    from keras.src import testing

    spec = "sgdr(0.05, end=0.005, period=10, mult=3.0, decay=4.0)"
    case = testing.TestCase()
    case.run_class_serialization_test(schedule(spec))
    steps = keras.ops.convert_to_tensor(np.arange(40), dtype="int32")
    values = keras.ops.convert_to_numpy(schedule(spec, horizon=40)._lookup(steps))
    assert np.allclose(values, parse(spec).values(40), rtol=1e-6) and values.max() > 0.05


def test_a_growing_sgdr_stays_finite_in_float32():
    sch = schedule("sgdr(1, period=1, decay=4.0)", horizon=100)
    eager = float(keras.ops.convert_to_numpy(sch(80)))
    table = keras.ops.convert_to_numpy(sch._lookup(keras.ops.convert_to_tensor(np.arange(100), dtype="int32")))
    assert np.isfinite(eager) and np.all(np.isfinite(table)) and eager == table[80] == np.finfo(np.float32).max


def test_a_traced_lookup_of_a_huge_duration_names_horizon_instead_of_filling_memory():
    steps = keras.ops.convert_to_tensor(np.arange(5), dtype="int32")
    huge = schedule("cosine(0.1, steps=1000000000)")
    assert float(huge(keras.ops.convert_to_tensor(10))) == pytest.approx(huge.schedule(10))  # eager: exact
    with pytest.raises(ScheduleError, match="horizon=N"):
        huge._lookup(steps)
    bounded = schedule("cosine(0.1, steps=1000000000)", horizon=1000)
    got = keras.ops.convert_to_numpy(bounded._lookup(steps))
    assert np.allclose(got, [bounded.schedule(k) for k in range(5)], rtol=1e-6)

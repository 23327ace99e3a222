"""lrdoctor.keras.MonitorCallback: the same JSONL log as the torch Monitor, from model.fit."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from lrdoctor.keras import MonitorCallback, schedule
from lrdoctor.logs import load
from lrdoctor.schedules import parse

SPEC = "warmup(8) >> cosine(0.05, end=1e-3, steps=24)"


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (x[:, :3].sum(1) > 0).astype("int32")
    return x, y


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule(SPEC), momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _fit(model, path, epochs, initial_epoch=0):
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=epochs, initial_epoch=initial_epoch, shuffle=False,
              validation_data=(x[:16], y[:16]), verbose=0, callbacks=[MonitorCallback(path)])


def test_log_has_per_step_loss_lr_grad_norm_and_epoch_metrics(tmp_path):
    model = _model()
    _fit(model, tmp_path / "log.jsonl", 3)
    log = load(tmp_path / "log.jsonl")
    assert log.format == "lrdoctor-jsonl"
    s = parse(SPEC)
    assert log.lr().steps.tolist() == list(range(24))
    np.testing.assert_allclose(log.lr().values, [s(k) for k in range(24)], rtol=1e-6)
    loss = log.get("train/loss")
    assert len(loss) == 24 and np.isfinite(loss.values).all()
    assert log.has("grad_norm") and (log.get("grad_norm").values > 0).all()
    assert log.get("val/loss").steps.tolist() == [7, 15, 23]
    assert log.has("val/accuracy") and log.has("train/accuracy")
    # per-batch losses, not the running mean: their epoch mean is the epoch loss Keras reports
    epoch_mean = log.get("train/loss_epoch").values
    np.testing.assert_allclose(loss.values.reshape(3, 8).mean(1), epoch_mean, rtol=1e-4)


def test_same_reader_and_doctor_as_the_torch_monitor(tmp_path):
    from lrdoctor.doctor import diagnose

    _fit(_model(), tmp_path / "log.jsonl", 2)
    first = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])
    assert first["type"] == "meta" and first["framework"] == "keras"
    diagnosis = diagnose(load(tmp_path / "log.jsonl"))
    assert diagnosis.findings and all(f.code for f in diagnosis.findings)


def test_resume_from_a_saved_model_continues_steps_and_lr(tmp_path):
    whole = tmp_path / "whole.jsonl"
    _fit(_model(), whole, 4)
    parts = tmp_path / "parts.jsonl"
    model = _model()
    _fit(model, parts, 2)
    model.save(tmp_path / "ckpt.keras")
    restored = keras.saving.load_model(tmp_path / "ckpt.keras")
    _fit(restored, parts, 4, initial_epoch=2)
    a, b = load(whole), load(parts)
    assert b.lr().steps.tolist() == a.lr().steps.tolist() == list(range(32))
    np.testing.assert_allclose(b.lr().values, a.lr().values, rtol=1e-6)  # float32 after a reload
    assert b.get("train/loss").steps.tolist() == list(range(32))
    np.testing.assert_allclose(b.get("train/loss").values, a.get("train/loss").values, rtol=1e-4)
    assert b.get("val/loss").steps.tolist() == [7, 15, 23, 31]


def test_log_journal_and_diagnosis_with_the_plateau_callback(tmp_path):
    from lrdoctor.doctor import diagnose
    from lrdoctor.journal import Journal
    from lrdoctor.keras import ReduceLROnPlateau

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    plateau = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=0, min_delta=10.0,
                                journal=tmp_path / "journal.jsonl")  # never "improves" by 10
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, validation_data=(x[:16], y[:16]),
              verbose=0, callbacks=[MonitorCallback(tmp_path / "log.jsonl"), plateau])
    log = load(tmp_path / "log.jsonl")
    journal = Journal.load(tmp_path / "journal.jsonl")
    reductions = [e for e in journal if e.cause == "plateau"]
    assert [e.epoch for e in reductions] == [2, 3]   # Keras: the first value is an improvement
    lr = log.lr().values
    np.testing.assert_allclose(lr[:16], 0.05, rtol=1e-6)
    for e in reductions[:-1]:              # the next epoch's steps use the reduced lr
        np.testing.assert_allclose(lr[8 * e.epoch], e.new_lrs[0], rtol=1e-6)
    assert diagnose(log).findings

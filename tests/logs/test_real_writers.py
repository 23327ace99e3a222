"""Readers on files written by the real Keras, Lightning, transformers and tensorboard writers."""

from __future__ import annotations

import os

import numpy as np
import pytest

from lrdoctor.logs import load


def test_torch_summary_writer(tmp_path):
    pytest.importorskip("tensorboard")
    tb = pytest.importorskip("torch.utils.tensorboard")
    w = tb.SummaryWriter(log_dir=str(tmp_path / "run"))
    for step in range(5):
        w.add_scalar("train/loss", 1.0 / (step + 1), step)
        w.add_scalar("Loss/val", 2.0 / (step + 1), step)
        w.add_scalar("learning_rate", 0.1, step)
    w.close()
    log = load(tmp_path / "run")
    assert log.format == "tensorboard"
    assert log.get("train/loss").values == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert log.get("val/loss").steps.tolist() == [0, 1, 2, 3, 4]
    assert log.has("lr")
    event_file = next((tmp_path / "run").glob("*tfevents*"))
    assert len(load(event_file).get("train/loss")) == 5


def test_keras_csvlogger_and_history(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    path = tmp_path / "training.log"
    hist = model.fit(x, y, validation_split=0.25, epochs=3, batch_size=16, verbose=0,
                     callbacks=[keras.callbacks.CSVLogger(str(path))])
    log = load(path)
    assert log.format == "keras-csv"
    assert {"train/loss", "val/loss", "train/accuracy", "val/accuracy"} <= set(log.names())
    assert log.get("val/loss").values == pytest.approx(hist.history["val_loss"], rel=1e-5)
    import json
    hpath = tmp_path / "history.json"
    hpath.write_text(json.dumps({k: [float(v) for v in vs] for k, vs in hist.history.items()}))
    assert load(hpath).get("train/loss").values == pytest.approx(hist.history["loss"], rel=1e-6)


def test_lightning_csvlogger(tmp_path):
    torch = pytest.importorskip("torch")
    pl = pytest.importorskip("pytorch_lightning")

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 2)

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", torch.nn.functional.cross_entropy(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    ds = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())
    dl = torch.utils.data.DataLoader(ds, batch_size=8)
    logger = pl.loggers.CSVLogger(str(tmp_path), name="lightning_logs")
    trainer = pl.Trainer(max_epochs=2, logger=logger, log_every_n_steps=2, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False,
                         accelerator="cpu")
    trainer.fit(Tiny(), dl, dl)
    log = load(tmp_path)
    assert log.format == "lightning-csv"
    assert {"train/loss", "train/loss_epoch", "val/loss"} <= set(log.names())
    assert len(log.get("val/loss")) == 2


def test_transformers_trainer_state(tmp_path):
    tr = pytest.importorskip("transformers")
    state = tr.TrainerState(global_step=4, max_steps=4)
    state.log_history = [
        {"loss": 1.2, "grad_norm": 2.0, "learning_rate": 1e-4, "epoch": 0.5, "step": 2},
        {"loss": 0.9, "grad_norm": 1.5, "learning_rate": 5e-5, "epoch": 1.0, "step": 4},
        {"eval_loss": 1.0, "eval_accuracy": 0.5, "epoch": 1.0, "step": 4},
        {"train_runtime": 1.0, "train_loss": 1.05, "epoch": 1.0, "step": 4},
    ]
    path = tmp_path / "checkpoint-4" / "trainer_state.json"
    path.parent.mkdir()
    state.save_to_json(str(path))
    log = load(tmp_path)
    assert log.format == "hf-trainer-state"
    assert log.get("train/loss").values.tolist() == [1.2, 0.9]
    assert log.get("grad_norm").values.tolist() == [2.0, 1.5]
    assert log.get("val/accuracy").values.tolist() == [0.5]


def test_tensorboard_keras_layout(tmp_path):
    """Keras' TensorBoard callback writes train/ and validation/ folders with epoch_* tags."""
    pytest.importorskip("tensorboard")
    tb = pytest.importorskip("torch.utils.tensorboard")
    for split, base in (("train", 1.0), ("validation", 1.2)):
        w = tb.SummaryWriter(log_dir=str(tmp_path / "logs" / split))
        for epoch in range(3):
            w.add_scalar("epoch_loss", base / (epoch + 1), epoch)
            w.add_scalar("epoch_accuracy", 0.5 + 0.1 * epoch, epoch)
        w.close()
    log = load(tmp_path / "logs")
    assert {"train/loss", "val/loss", "train/accuracy", "val/accuracy"} <= set(log.names())
    assert log.get("val/loss").values[0] == pytest.approx(1.2)

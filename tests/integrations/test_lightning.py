"""The Lightning callback and recipes with the real pytorch-lightning, on a tiny model, on CPU."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pl_mod = pytest.importorskip("lrdoctor.integrations.lightning")

from lrdoctor.integrations.lightning import (
    LRDoctorCallback,
    _pl,
    find_lr,
    plateau,
    scheduled,
)
from lrdoctor.journal import Journal
from lrdoctor.logs import load

SPEC = "warmup(8) >> sgdr(0.05, end=0.001, period=8)"


def _data(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, :3].sum(1) > 0).long()
    return torch.utils.data.TensorDataset(x, y)


class Tiny(_pl.LightningModule):
    def __init__(self, recipe="scheduled", val_loss=None):
        super().__init__()
        self.recipe, self.fixed_val = recipe, val_loss
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        if self.fixed_val is not None:  # a metric that never improves: plateau every epoch
            loss = torch.tensor(self.fixed_val)
        self.log("val_loss", loss)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(_data(0), batch_size=8, shuffle=False)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(_data(1, 16), batch_size=16)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        if self.recipe == "scheduled":
            return {"optimizer": opt, "lr_scheduler": scheduled(opt, SPEC)}
        return {"optimizer": opt,
                "lr_scheduler": plateau(opt, monitor="val_loss", patience=0, factor=0.5)}


def _fit(tmp, module, epochs, *, ckpt_path=None, out="run", checkpoint=False, diagnose=False):
    callbacks = [LRDoctorCallback(tmp / out, html=False, diagnose=diagnose)]
    if checkpoint:
        callbacks.append(_pl.callbacks.ModelCheckpoint(dirpath=tmp / "ckpt", save_top_k=-1,
                                                       every_n_epochs=1,
                                                       save_on_train_epoch_end=True))
    trainer = _pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                          enable_progress_bar=False, enable_model_summary=False,
                          enable_checkpointing=checkpoint, callbacks=callbacks,
                          default_root_dir=tmp, num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, ckpt_path=ckpt_path)
    return trainer, callbacks[0]


def _lrs(path):
    s = load(path).lr()
    return s.steps.tolist(), s.values.tolist()


def test_scheduled_recipe_writes_log_journal_and_diagnosis(tmp_path):
    torch.manual_seed(0)
    _trainer, cb = _fit(tmp_path, Tiny("scheduled"), 3, diagnose=True)
    run = tmp_path / "run"
    steps, lrs = _lrs(run / "log.jsonl")
    from lrdoctor.schedules import parse

    s = parse(SPEC)
    assert steps == list(range(24))                       # 8 batches x 3 epochs, step-wise
    np.testing.assert_allclose(lrs, [s(k) for k in range(24)], rtol=1e-12)  # the lr each step used
    journal = Journal.load(run / "journal.jsonl")
    causes = [(e.cause, e.step) for e in journal]
    assert ("warmup-end", 8) in causes and ("restart", 16) in causes
    diagnosis = json.loads((run / "diagnosis.json").read_text())
    assert isinstance(diagnosis["findings"], list) and diagnosis["findings"]
    assert cb.diagnosis is not None


def test_plateau_recipe_journals_reductions(tmp_path):
    torch.manual_seed(0)
    _trainer, _ = _fit(tmp_path, Tiny("plateau", val_loss=1.0), 3)
    journal = Journal.load(tmp_path / "run" / "journal.jsonl")
    plateaus = [e for e in journal if e.cause == "plateau"]
    assert [e.epoch for e in plateaus] == [2, 3]          # torch convention, patience 0
    assert plateaus[0].new_lrs == (0.025,) and plateaus[1].new_lrs == (0.0125,)
    _, lrs = _lrs(tmp_path / "run" / "log.jsonl")
    assert lrs[:16] == [0.05] * 16 and lrs[16:] == [0.025] * 8
    log = load(tmp_path / "run" / "log.jsonl")
    assert log.has("val/loss")
    # the run's log carries the scheduler's settings and its cuts (Monitor.watch)
    settings = [e.data for e in log.events if e.code == "lr-scheduler"]
    assert settings == [{"kind": "PlateauLR", "mode": "min", "factor": 0.5, "patience": 0,
                         "threshold": 1e-4, "threshold_mode": "rel", "cooldown": 0,
                         "monitor": "val_loss"}]
    assert [e.data["new_lrs"] for e in log.events if e.code == "plateau"] == [[0.025], [0.0125]]


@pytest.mark.parametrize("recipe", ["scheduled", "plateau"])
def test_resume_keeps_lr_trajectory_and_journal(tmp_path, recipe):
    val = 1.0 if recipe == "plateau" else None
    torch.manual_seed(0)
    _fit(tmp_path, Tiny(recipe, val), 4, out="whole")
    torch.manual_seed(0)
    # a run that checkpoints every epoch and "crashes" after epoch 3 ...
    _fit(tmp_path, Tiny(recipe, val), 3, out="parts", checkpoint=True)
    ckpt = min((tmp_path / "ckpt").glob("epoch=1*.ckpt"))  # ... resumed from epoch 2
    _fit(tmp_path, Tiny(recipe, val), 4, out="parts", ckpt_path=ckpt)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert _lrs(parts / "log.jsonl") == _lrs(whole / "log.jsonl")
    a, b = Journal.load(whole / "journal.jsonl"), Journal.load(parts / "journal.jsonl")
    assert [e.to_dict() for e in b] == [e.to_dict() for e in a] and len(a) > 0
    la, lb = load(whole / "log.jsonl"), load(parts / "log.jsonl")
    assert la.get("train/loss").steps.tolist() == lb.get("train/loss").steps.tolist()
    np.testing.assert_allclose(lb.get("train/loss").values, la.get("train/loss").values, rtol=1e-5)
    assert lb.get("val/loss") == la.get("val/loss")  # one evaluation record per epoch, no repeats


def test_find_lr_on_a_lightning_module():
    torch.manual_seed(0)
    module = Tiny("scheduled")
    before = {k: v.clone() for k, v in module.state_dict().items()}
    result = find_lr(module, num_steps=30, repeats=1, start_lr=1e-4, end_lr=10)
    assert 1e-4 < result.suggestion < 10
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # restored bit for bit

"""The Guard's Lightning and HF Trainer callbacks: a NaN batch is skipped, training ends finite."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")


class NaNAt(torch.utils.data.Dataset):
    """Rows of a learnable task; the rows of batch ``bad`` (batch size 8) are NaN."""

    def __init__(self, n=64, bad=5, as_dict=False):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 6, generator=g)
        self.y = (self.x[:, :3].sum(1) > 0).long()
        self.x[bad * 8:(bad + 1) * 8] = float("nan")
        self.as_dict = as_dict

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if self.as_dict:
            return {"x": self.x[i], "labels": self.y[i]}
        return self.x[i], self.y[i]


def test_lightning_guard_callback_skips_the_nan_batch(tmp_path):
    from lrdoctor.integrations.guard_lightning import GuardCallback
    from lrdoctor.integrations.lightning import _pl

    class Tiny(_pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(),
                                           torch.nn.Linear(16, 2))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def train_dataloader(self):
            return torch.utils.data.DataLoader(NaNAt(), batch_size=8)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    cb = GuardCallback(journal=tmp_path / "guard.jsonl")
    trainer = _pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False,
                          enable_progress_bar=False, enable_model_summary=False,
                          enable_checkpointing=False, callbacks=[cb], default_root_dir=tmp_path)
    module = Tiny()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module)
    assert [(e.step, e.reason) for e in cb.guard.events] == [(5, "nonfinite-loss"),
                                                              (13, "nonfinite-loss")]
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert (tmp_path / "guard.jsonl").read_text().count('"cause": "guard"') == 2


def test_hf_guard_callback_skips_the_nan_batch(tmp_path):
    transformers = pytest.importorskip("transformers")
    from lrdoctor.integrations.guard_hf import GuardCallback

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(),
                                           torch.nn.Linear(16, 2))

        def forward(self, x, labels=None):
            logits = self.net(x)
            loss = torch.nn.functional.cross_entropy(logits, labels)
            return {"loss": loss, "logits": logits}

    torch.manual_seed(0)
    model = Net()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, num_train_epochs=1,
        report_to=[], use_cpu=True, disable_tqdm=True, save_strategy="no", seed=0,
        logging_nan_inf_filter=False, max_grad_norm=0.0)
    cb = GuardCallback()
    trainer = transformers.Trainer(model=model, args=args,
                                   train_dataset=NaNAt(as_dict=True), callbacks=[cb])
    trainer.get_train_dataloader = lambda: torch.utils.data.DataLoader(  # keep the order
        NaNAt(as_dict=True), batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    assert [(e.step, e.reason) for e in cb.guard.events] == [(5, "nonfinite-loss")]
    assert all(torch.isfinite(p).all() for p in model.parameters())

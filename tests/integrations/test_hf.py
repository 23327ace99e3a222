"""The Hugging Face Trainer callback with the real transformers, on a tiny BERT, on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lrdoctor.integrations.hf import LRDoctorCallback, optimizers
from lrdoctor.journal import Journal
from lrdoctor.logs import load
from lrdoctor.schedules import parse

SPEC = "warmup(6) >> sgdr(5e-3, end=1e-4, period=6)"


class Pairs(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 30, (n, 8), generator=g)
        self.labels = (self.ids[:, 0] > 15).long()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def _model():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=16, num_labels=2)
    return transformers.BertForSequenceClassification(config)


def _train(out, *, max_steps=18, resume=None, save_steps=None, plateau=False):
    model = _model()
    args = transformers.TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=8, max_steps=max_steps,
        logging_steps=3, eval_strategy="steps", eval_steps=6, report_to=[], use_cpu=True,
        disable_tqdm=True, seed=0, data_seed=0, save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500, save_only_model=False,
        metric_for_best_model="eval_loss" if plateau else None)
    if plateau:
        from lrdoctor.torch import PlateauLR

        opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
        opts = (opt, PlateauLR(opt, patience=0, factor=0.5, threshold=10.0, monitor="eval_loss"))
    else:
        opts = optimizers(model, SPEC)
    cb = LRDoctorCallback(html=False)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Pairs(48, 0),
                                   eval_dataset=Pairs(16, 1), optimizers=opts, callbacks=[cb])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train(resume_from_checkpoint=resume)
    return cb


def test_trainer_writes_log_journal_and_diagnosis(tmp_path):
    cb = _train(tmp_path)
    run = tmp_path / "lrdoctor"
    log = load(run / "log.jsonl")
    lr = log.lr()
    s = parse(SPEC)
    assert lr.steps.tolist() == list(range(18))
    np.testing.assert_allclose(lr.values, [s(k) for k in range(18)], rtol=1e-9)  # the lr used
    assert log.has("train/loss") and log.has("grad_norm") and log.has("val/loss")
    assert len(log.get("train/loss")) == 18                                 # one per step
    causes = [(e.cause, e.step) for e in Journal.load(run / "journal.jsonl")]
    assert causes == [("warmup-end", 6), ("restart", 12), ("restart", 18)]
    assert json.loads((run / "diagnosis.json").read_text())["findings"]
    assert cb.diagnosis is not None


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("hf")
    _train(out, save_steps=9)   # trainer_state.json in checkpoint-9 and -18, and our log
    return out


def _cli(*args):
    out = subprocess.run([sys.executable, "-m", "lrdoctor", *map(str, args)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


def test_cli_explain_on_the_output_directory(output_dir):
    text = _cli("explain", output_dir)
    assert "warm-up ended" in text and "restarted" in text


def test_cli_diagnose_on_the_output_directory(output_dir):
    _cli("diagnose", output_dir, "--json", output_dir / "d.json")
    assert json.loads((output_dir / "d.json").read_text())["findings"]


def test_trainer_state_of_a_checkpoint_is_readable_on_its_own(output_dir):
    state = load(output_dir / "checkpoint-18" / "trainer_state.json")
    assert state.has("train/loss") and state.has("lr") and state.has("val/loss")
    _cli("diagnose", output_dir / "checkpoint-18" / "trainer_state.json")


def test_plateau_scheduler_gets_the_journal(tmp_path):
    _train(tmp_path, plateau=True)
    plateaus = [e for e in Journal.load(tmp_path / "lrdoctor" / "journal.jsonl")
                if e.cause == "plateau"]
    assert [e.step for e in plateaus] == [6, 12, 18]  # eval_loss never improves by 1000%
    assert plateaus[0].new_lrs == (2.5e-3,)
    log = load(tmp_path / "lrdoctor")  # settings and cuts in the run's log (Monitor.watch)
    assert [e.data["mode"] for e in log.events if e.code == "lr-scheduler"] == ["min"]
    assert [e.step for e in log.events if e.code == "plateau"] == [6, 12, 18]


def test_resume_keeps_lr_trajectory_and_journal(tmp_path):
    _train(tmp_path / "whole")
    _train(tmp_path / "parts", save_steps=12)             # "crashes" after its last checkpoint
    _train(tmp_path / "parts", resume=str(tmp_path / "parts" / "checkpoint-12"))
    a = load(tmp_path / "whole" / "lrdoctor" / "log.jsonl")
    b = load(tmp_path / "parts" / "lrdoctor" / "log.jsonl")
    assert b.lr() == a.lr()
    assert b.get("train/loss").steps.tolist() == list(range(18))
    np.testing.assert_allclose(b.get("train/loss").values, a.get("train/loss").values, rtol=1e-4)
    ja = Journal.load(tmp_path / "whole" / "lrdoctor" / "journal.jsonl")
    jb = Journal.load(tmp_path / "parts" / "lrdoctor" / "journal.jsonl")
    assert [e.to_dict() for e in jb] == [e.to_dict() for e in ja]

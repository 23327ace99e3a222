"""The Python examples in the README and every guide run as written.

Every fenced ``python`` block of a page runs, in order, in one namespace per page, inside a
temporary directory (so files the examples write land there).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
#: page -> the package its examples need (the test skips, saying so, where it is missing)
PAGES = {
    "README.md": "torch",
    "docs/schedules.md": "keras",
    "docs/plateau.md": "keras",
    "docs/explain.md": "torch",
    "docs/finder.md": "torch",
    "docs/examples.md": "torch",
    "docs/doctor.md": "torch",
    "docs/logs.md": "torch",
    "docs/lab.md": "torch",
    "docs/integrations/lightning.md": "pytorch_lightning",
    "docs/integrations/hf.md": "transformers",
    "docs/integrations/keras.md": "keras",
    "docs/integrations/ddp.md": "torch",
}


#: Reference snippets use the reader's own objects (``model``, ``train_loader``, a log file);
#: these preludes supply real ones before the page's blocks run.
_TRAIN_OBJECTS = """
import numpy as np
import torch
from lrdoctor import examples
task = examples.get("digits-mlp", seed=0)
model = task.build_model()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
criterion = task.loss_fn
train_loader = task.train_loader
epochs, vl, va, ta = 1, 0.3, 0.9, 0.92
rng = np.random.default_rng(0)
"""
PRELUDES = {
    "docs/finder.md": _TRAIN_OBJECTS,
    "docs/examples.md": _TRAIN_OBJECTS,
    "docs/doctor.md": _TRAIN_OBJECTS + """
import json
history = [{"loss": 2.3 - 0.1 * k, "learning_rate": 1e-3, "step": 10 * k, "epoch": k / 10}
           for k in range(1, 20)]
history += [{"eval_loss": 2.0 - 0.05 * k, "step": 50 * k, "epoch": k / 2} for k in range(1, 4)]
with open("trainer_state.json", "w") as fh:
    json.dump({"log_history": history, "global_step": 190, "max_steps": 190}, fh)
import matplotlib.pyplot as plt
fig = plt.figure()
rows = [["A", "91%"], ["B", "12%"]]
lines = ["epoch 3: val_loss has not improved ... -> lr 1e-3 -> 1e-4"]
""",
    "docs/logs.md": """
import os
os.makedirs("lightning_logs/version_3")
with open("lightning_logs/version_3/metrics.csv", "w") as fh:
    fh.write("epoch,lr-Adam,step,train_loss,train_loss_epoch,val_accuracy,val_loss\\n")
    for k in range(10):
        fh.write(f"0,0.001,{k},{2.3 - 0.1 * k},,,\\n")
    fh.write("0,,9,,1.9,0.6,1.8\\n")
""",
}


def test_every_guide_with_examples_is_listed():
    pages = {str(p.relative_to(ROOT)) for p in [ROOT / "README.md", *ROOT.glob("docs/**/*.md")]}
    with_code = {p for p in pages if BLOCK.search((ROOT / p).read_text())}
    assert with_code == set(PAGES), "add the page (and what it needs) to PAGES"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_python_examples_run(page, tmp_path, monkeypatch):
    pytest.importorskip(PAGES[page])
    blocks = BLOCK.findall((ROOT / page).read_text())
    assert blocks, f"{page} has no python examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    exec(compile(PRELUDES.get(page, ""), f"{page}[prelude]", "exec"), namespace) # noqa: S102 (runs the docs)
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page}[block {i}]", "exec"), namespace)  # noqa: S102
        except Exception as err:  # pragma: no cover - the message is the point
            raise AssertionError(f"{page}, python block {i} failed: {err!r}\n{code}") from err

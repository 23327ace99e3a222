"""The Python examples of the integration guides run as written (one namespace per page, in a
temporary directory)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["lightning.md", "hf.md", "keras.md", "ddp.md"]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
NEEDS = {"lightning.md": "pytorch_lightning", "hf.md": "transformers", "keras.md": "keras",
         "ddp.md": "torch"}


@pytest.mark.parametrize("page", PAGES)
def test_guide_examples_run(page, tmp_path, monkeypatch, capsys):
    pytest.importorskip(NEEDS[page])
    blocks = BLOCK.findall((ROOT / "docs" / "integrations" / page).read_text())
    assert blocks, f"{page} has no python examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, code in enumerate(blocks):
            try:
                exec(compile(code, f"{page}[block {i}]", "exec"), namespace)
            except Exception as err:  # pragma: no cover - the message is the point
                raise AssertionError(f"{page}, python block {i} failed: {err!r}\n{code}") from err
    produced = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    if page in ("lightning.md", "hf.md"):
        assert {"log.jsonl", "journal.jsonl", "diagnosis.json", "report.html"} <= produced
    if page == "keras.md":
        assert "log.jsonl" in produced

"""The Python examples of docs/plateau.md and docs/explain.md run as written (each page in one
namespace, in a temporary directory)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("page", ["docs/plateau.md", "docs/explain.md"])
def test_examples_run(page, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    if page.endswith("plateau.md"):
        pytest.importorskip("keras")
    blocks = BLOCK.findall((ROOT / page).read_text())
    assert blocks
    monkeypatch.chdir(tmp_path)
    ns: dict[str, object] = {"__name__": "__docs__"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page}[{i}]", "exec"), ns)
        except Exception as err:  # pragma: no cover - the message is the point
            raise AssertionError(f"{page} block {i} failed: {err!r}\n{code}") from err

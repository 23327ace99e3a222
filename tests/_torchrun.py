"""Run a worker script on two CPU processes with ``torchrun`` (gloo) and read what each rank
wrote: the worker saves ``rank0.json`` and ``rank1.json`` into the folder it is given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def two_ranks(worker: Path, out: Path, *args: str, timeout: int = 240) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``worker out *args`` on 2 ranks; return the two ranks' JSON results."""
    import torch.distributed

    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available in this build")
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           str(worker), str(out), *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return tuple(json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))  # type: ignore[return-value]

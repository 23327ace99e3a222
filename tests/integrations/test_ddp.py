"""``torchrun --nproc_per_node=2`` (gloo, CPU): every rank takes the same decisions.

One run of ``examples/ddp_train.py`` with the LR finder, PlateauLR on a warm-up schedule, a
RankMonitor writing on both ranks, and a NaN loss injected on rank 1 at step 5.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytestmark = [pytest.mark.ddp, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NAN_STEP = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    # one torchrun per session, also under xdist: the workers' temp dirs share this session's
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "lrdoctor-ddp"
    try:
        from filelock import FileLock
    except ImportError:  # pragma: no cover - filelock comes with transformers
        return _torchrun(tmp_path_factory.mktemp("ddp"))
    with FileLock(str(shared) + ".lock"):
        if not (shared / "rank1.json").exists():
            shared.mkdir(exist_ok=True)
            _torchrun(shared)
    ranks = [json.loads((shared / f"rank{r}.json").read_text()) for r in (0, 1)]
    return shared, ranks


def _torchrun(out):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", str(ROOT / "examples" / "ddp_train.py"),
           "--out", str(out), "--epochs", "3", "--find-lr", "--write", "all",
           "--nan-rank", "1", "--nan-step", str(NAN_STEP), "--no-report"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return out, ranks


def test_finder_suggestion_is_the_same_on_every_rank(run):
    _, (a, b) = run
    assert a["suggestion"] is not None and a["suggestion"] == b["suggestion"]


def test_plateau_decisions_and_lrs_are_the_same_on_every_rank(run):
    out, (a, b) = run
    assert a["lrs"] == b["lrs"] and len(a["lrs"]) > 20
    assert a["decisions"] == b["decisions"]
    causes = [d["cause"] for d in a["decisions"]]
    assert "warmup-end" in causes
    # one journal file, written by rank 0, holding exactly those decisions
    from lrdoctor.journal import Journal

    assert [e.to_dict() for e in Journal.load(out / "journal.jsonl")] == a["decisions"]


def test_a_nan_on_one_rank_makes_every_rank_skip_the_same_step(run):
    _, (a, b) = run
    assert a["skipped_steps"] == b["skipped_steps"] == [NAN_STEP]
    assert np.isfinite(a["final_val_loss"]) and a["final_val_loss"] == b["final_val_loss"]


def test_monitor_log_is_the_same_on_every_rank(run):
    from lrdoctor.logs import load

    out, _ = run
    a, b = load(out / "log.jsonl"), load(out / "log.rank1.jsonl")
    assert a.lr() == b.lr()
    assert a.get("train/loss") == b.get("train/loss")        # the mean over ranks, NaN included
    assert np.isnan(a.get("train/loss").values[NAN_STEP])
    np.testing.assert_allclose(a.get("grad_norm").values, b.get("grad_norm").values, rtol=1e-6)
    assert a.get("val/loss") == b.get("val/loss")


def test_diagnosis_names_the_rank_that_diverged(run):
    out, _ = run
    findings = json.loads((out / "diagnosis.json").read_text())["findings"]
    ranks = [f for f in findings if f["code"] == "ranks-diverge"]
    assert ranks and ranks[0]["severity"] == "critical"
    assert ranks[0]["steps"] == [NAN_STEP] and ranks[0]["data"]["ranks"] == [1]

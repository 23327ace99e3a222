"""The ranks-diverge rule on per-rank logs (pure, no processes)."""

from __future__ import annotations

import numpy as np

from lrdoctor.integrations.ranks import CODE, diagnose_ranks
from lrdoctor.logs import Series, TrainingLog


def _log(loss, lr):
    steps = np.arange(len(loss))
    return TrainingLog({"train/loss": Series(steps, np.asarray(loss, float)),
                        "lr/0": Series(steps, np.asarray(lr, float))})


def test_agreeing_ranks_give_no_finding():
    rng = np.random.default_rng(0)
    loss = 2 * np.exp(-np.arange(100) / 40)
    logs = {r: _log(loss + 0.02 * rng.normal(size=100), [0.1] * 100) for r in range(4)}
    assert diagnose_ranks(logs) == []


def test_different_learning_rates_are_critical():
    loss = np.linspace(2, 1, 60)
    lr1 = [0.1] * 30 + [0.05] * 30                 # rank 1 stepped a scheduler alone
    findings = diagnose_ranks({0: _log(loss, [0.1] * 60), 1: _log(loss, lr1)})
    assert [f.code for f in findings] == [CODE]
    f = findings[0]
    assert f.severity == "critical" and f.steps == (30,) and "step 30" in f.evidence
    assert f.data["lr_by_rank"] == {"0": 0.1, "1": 0.05}


def test_losses_drifting_apart_warn_and_nan_on_one_rank_is_critical():
    loss = np.linspace(2, 1, 60)
    drift = loss * np.r_[np.ones(30), np.linspace(1, 3, 30)]   # rank 1's replica falls apart
    findings = diagnose_ranks({0: _log(loss, [0.1] * 60), 1: _log(drift, [0.1] * 60)})
    assert [(f.code, f.severity) for f in findings] == [(CODE, "warning")]
    nan = loss.copy()
    nan[40:] = np.nan
    findings = diagnose_ranks({0: _log(loss, [0.1] * 60), 1: _log(nan, [0.1] * 60)})
    assert findings[0].severity == "critical" and findings[0].data["ranks"] == [1]
    assert findings[0].steps == (40,)

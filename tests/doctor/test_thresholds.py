"""The threshold registry: every cut-off a rule reads is registered, and override() reaches it."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest

from lrdoctor.doctor import diagnose
from lrdoctor.doctor._thresholds import REGISTRY, T, current, override, table
from lrdoctor.logs import Series, TrainingLog

SRC = Path(__file__).resolve().parents[2] / "src" / "lrdoctor" / "doctor"


def _used() -> set[str]:
    names: set[str] = set()
    for path in SRC.glob("_*.py"):
        if path.name != "_thresholds.py":
            names |= set(re.findall(r"\bT\.([A-Z][A-Z0-9_]*)", path.read_text()))
    return names - {"NAME"}  # the docstrings say ``T.NAME``


def test_every_threshold_a_rule_reads_is_registered_and_every_registered_one_is_read():
    used = _used()
    assert used - set(REGISTRY) == set()
    assert set(REGISTRY) - used == set()


def test_each_entry_has_its_provenance():
    for t in table():
        assert t.default in t.candidates and len(t.candidates) <= 4, t.name
        assert t.what and t.set_by and t.rule, t.name


def test_override_is_scoped_and_checked():
    assert T.FLAT_REL == REGISTRY["FLAT_REL"].default
    with override(FLAT_REL=0.5, OVERFIT_CONFIRM=3) as values:
        assert T.FLAT_REL == 0.5 and values["FLAT_REL"] == 0.5
        assert T.OVERFIT_CONFIRM == 3 and isinstance(T.OVERFIT_CONFIRM, int)
        with override(FLAT_REL=0.1):
            assert T.FLAT_REL == 0.1
        assert T.FLAT_REL == 0.5
    assert current()["FLAT_REL"] == REGISTRY["FLAT_REL"].default
    with pytest.raises(ValueError, match="FLAT_RELL"), override(FLAT_RELL=0.1):
        pass
    with pytest.raises(ValueError, match="finite number"), override(FLAT_REL=float("nan")):
        pass
    with pytest.raises(AttributeError, match="NOPE"):
        T.NOPE  # noqa: B018


def test_an_override_does_not_leak_into_another_thread():
    seen = []
    with override(FLAT_REL=0.5):
        t = threading.Thread(target=lambda: seen.append(T.FLAT_REL))
        t.start()
        t.join()
    assert seen == [REGISTRY["FLAT_REL"].default]


def test_a_rule_reads_the_overridden_value():
    """The spike rule fires at a loss 4x its start only once SPIKE_FACTOR is below 4."""
    n = 200
    loss = 0.2 + 2.1 * np.exp(-np.arange(n) / 20.0)
    loss[100] = 4.0 * loss[:10].mean()
    log = TrainingLog({"train/loss": Series(np.arange(n), loss)})
    assert "lr-too-high" not in diagnose(log).codes
    with override(SPIKE_FACTOR=3.0):
        assert "lr-too-high" in diagnose(log).codes


def test_docs_give_every_thresholds_provenance():
    doc = (SRC.parents[2] / "docs" / "doctor.md").read_text()
    for t in table():
        assert f"| `{t.name}` | {t.default:g} |" in doc, t.name

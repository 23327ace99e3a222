"""LR changes found in a log: the records and the segmentation of an LR curve into sudden
drops/jumps and smooth runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrdoctor.errors import PlateauError
from lrdoctor.plateau._state import infer_mode

__all__ = ["Arrays", "Attribution", "Change"]

Arrays = Mapping[str, tuple[Any, Any]]


@dataclass
class Change:
    """One LR change: ``step`` is where the new LR is first seen (``end_step`` for a segment)."""

    kind: str  # drop | decay | warmup | restart | rise
    step: float
    old_lr: float
    new_lr: float
    cause: str  # plateau | schedule | warmup-end | restart | unknown
    end_step: float | None = None
    metric: str | None = None
    mode: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    train_improving: bool | None = None
    sentence: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("kind", "step", "end_step", "old_lr", "new_lr", "cause",
                                               "metric", "mode", "evidence", "train_improving",
                                               "sentence")}


@dataclass
class Attribution:
    changes: list[Change]
    answer: str | None
    notes: list[str] = field(default_factory=list)
    unit: str = "step"

    def to_dict(self) -> dict[str, Any]:
        return {"changes": [c.to_dict() for c in self.changes], "answer": self.answer,
                "notes": self.notes, "unit": self.unit}


def _arr(pair: tuple[Any, Any]) -> tuple[np.ndarray, np.ndarray]:
    s, v = (np.asarray(x, dtype=float) for x in pair)
    keep = np.isfinite(s) & np.isfinite(v)
    s, v = s[keep], v[keep]
    order = np.argsort(s, kind="stable")
    return s[order], v[order]


def _natural_mode(name: str) -> str | None:
    try:
        return infer_mode(name.split("/")[-1])
    except PlateauError:
        return None


# -- segmentation ----------------------------------------------------------------------------
def _segments(steps: np.ndarray, lr: np.ndarray) -> list[Change]:
    """Split the LR curve into sudden drops/jumps and smooth same-sign runs."""
    n = len(lr)
    if n < 2:
        return []
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where((lr[1:] > 0) & (lr[:-1] > 0), np.log(lr[1:] / np.where(lr[:-1] > 0, lr[:-1], 1)),
                     np.sign(lr[1:] - lr[:-1]) * np.inf)
    d[np.abs(d) < 1e-9] = 0.0
    d[np.isnan(d)] = 0.0
    sign = np.sign(d)
    out: list[Change] = []
    i = 0
    while i < n - 1:
        if sign[i] == 0:
            i += 1
            continue
        j = i
        while j + 1 < n - 1 and sign[j + 1] == sign[i]:
            j += 1
        run = d[i:j + 1]
        # a sudden change inside a smooth run (a plateau cut within a decay) is split out
        if j > i and sign[i] < 0:
            # compare each step's absolute change with its neighbours' in the run: a cut is
            # many times larger; smooth shapes (cosine, linear, exponential) change gradually
            absd = np.abs(np.diff(lr[i:j + 2]))
            spikes = []
            for k in range(len(absd)):
                near = [absd[m] for m in (k - 1, k + 1) if 0 <= m < len(absd)]
                if near and absd[k] > 8 * max(near) and run[k] < -0.05:
                    spikes.append(i + k)
        else:
            spikes = []
        if j == i:
            kind = "drop" if sign[i] < 0 else "jump"
            out.append(Change(kind, float(steps[i + 1]), float(lr[i]), float(lr[i + 1]), "unknown"))
        else:
            start = i
            for k in spikes + [j + 1]:
                if k > start:
                    kind = "decay" if sign[i] < 0 else "rise"
                    out.append(Change(kind, float(steps[start + 1]), float(lr[start]), float(lr[k]),
                                      "schedule", end_step=float(steps[k])))
                if k <= j:
                    out.append(Change("drop", float(steps[k + 1]), float(lr[k]), float(lr[k + 1]), "unknown"))
                start = k + 1
        i = j + 1
    # fix the ends of sub-runs split by spikes
    return [c for c in out if c.old_lr != c.new_lr]



"""Shared checks for the differential (parity) tests against peer implementations."""

from __future__ import annotations

import numpy as np

REL = 1e-9


def assert_same(ours: np.ndarray, theirs: np.ndarray, config: object, *, rel: float = REL, what: str = "lr") -> None:
    """Equal to ``rel`` relative (with a tiny absolute floor for values that reach 0)."""
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = np.maximum(np.abs(ours), np.abs(theirs))
    floor = 1e-15 * max(float(np.max(np.abs(theirs))), 1e-300)
    bad = np.abs(ours - theirs) > rel * scale + floor
    if bad.any():
        k = int(np.argmax(bad))
        raise AssertionError(
            f"{what} differs at step {k}: ours {ours[k]!r} vs peer {theirs[k]!r} "
            f"({int(bad.sum())} steps differ) for {config}"
        )

"""JSON output that strict parsers accept: NaN/Inf become null, arrays and paths plain values."""

from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any

__all__ = ["jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as None, numpy values as Python ones, paths as text.

    >>> jsonable({"a": float("nan"), "b": (1, 2.5)})
    {'a': None, 'b': [1, 2.5]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    return value

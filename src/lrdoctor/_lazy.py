"""Lazy attribute loading for the framework adapters.

``lrdoctor.torch`` and ``lrdoctor.keras`` expose their public names through module
``__getattr__`` so that importing the package costs nothing and a missing framework produces
an error that says which extra to install.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["lazy_module", "require"]


def require(module: str, extra: str) -> Any:
    """Import ``module`` or raise an ImportError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"this part of lrdoctor needs {module!r}, which is not installed; "
            f"install it with: pip install 'lrdoctor[{extra}]'"
        ) from err


def lazy_module(package: str, names: dict[str, str], framework: str, extra: str) -> Any:
    """A module ``__getattr__`` that imports ``names[attr]`` (a submodule) on first use."""

    def __getattr__(attr: str) -> Any:
        if attr not in names:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}")
        require(framework, extra)
        module = importlib.import_module(f"{package}.{names[attr]}")
        return getattr(module, attr)

    return __getattr__

"""PyTorch adapters: schedulers, plateau reduction, the LR finder and the live monitor.

Names are imported on first use, so ``import lrdoctor.torch`` is cheap; each raises an error
naming the extra to install if torch is missing.
"""

from lrdoctor._lazy import lazy_module

_NAMES = {
    "ScheduledLR": "_scheduled",
    "PlateauLR": "_plateau",
    "find_lr": "_finder",
    "FinderResult": "_finder",
    "auto_lr": "_auto",
    "AutoResult": "_auto",
    "Monitor": "_monitor",
    "Guard": "_guard",
    "GuardEvent": "_guard",
}

__all__ = sorted(_NAMES)  # noqa: PLE0605 (the lazy names, one list)
__getattr__ = lazy_module(__name__, _NAMES, "torch", "torch")


def __dir__() -> list[str]:
    return __all__

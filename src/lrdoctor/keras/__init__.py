"""Keras 3 adapters: spec schedules, plateau reduction, early stopping and a monitor callback.

Names are imported on first use; each raises an error naming the extra if keras is missing.
"""

from lrdoctor._lazy import lazy_module

_NAMES = {
    "schedule": "_schedule",
    "SpecSchedule": "_schedule",
    "ReduceLROnPlateau": "_callbacks",
    "EarlyStopping": "_early_stop",
    "PlateauScaledSchedule": "_callbacks",
    "MonitorCallback": "_monitor",
    "Guard": "_guard",
}

__all__ = sorted(_NAMES)  # noqa: PLE0605 (the lazy names, one list)
__getattr__ = lazy_module(__name__, _NAMES, "keras", "keras")


def __dir__() -> list[str]:
    return __all__

"""Learning-rate schedules: pure, closed-form functions of the optimizer step.

>>> from lrdoctor.schedules import parse
>>> s = parse("warmup(500) >> cosine(3e-4, end=3e-6, steps=9500)")
>>> s.duration, s(0), s(500)
(10000, 0.0, 0.0003)

Build them from spec strings (:func:`parse`), from dicts (:func:`from_dict`) or from the
classes, and combine with ``>>`` and ``*``. Framework adapters live in ``lrdoctor.torch`` and
``lrdoctor.keras``.
"""

from lrdoctor.errors import ScheduleError
from lrdoctor.schedules._base import Mark, Schedule, from_dict
from lrdoctor.schedules._compose import Product, Scaled, Sequence
from lrdoctor.schedules._cyclic import SGDR, Cyclic, OneCycle
from lrdoctor.schedules._decay import (
    Constant,
    Cosine,
    Exponential,
    InverseSqrt,
    InverseTime,
    Linear,
    MultiStep,
    Piecewise,
    Polynomial,
    Step,
)
from lrdoctor.schedules._parse import parse
from lrdoctor.schedules._warmup import WSD, Ramp, Warmup, WarmupUntuned

__all__ = [
    "Constant", "Cosine", "Cyclic", "Exponential", "InverseSqrt", "InverseTime", "Linear", "Mark",
    "MultiStep", "OneCycle", "Piecewise", "Polynomial", "Product", "Ramp", "SGDR", "Scaled",
    "Schedule", "ScheduleError", "Sequence", "Step", "WSD", "Warmup", "WarmupUntuned",
    "from_dict", "parse",
]

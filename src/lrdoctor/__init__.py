"""lrdoctor: learning rates you can control and explain.

The top level is framework-free (numpy and the standard library only); PyTorch and Keras
adapters are imported explicitly: ``lrdoctor.torch``, ``lrdoctor.keras``.
"""

from lrdoctor.errors import LRDoctorError, ScheduleError
from lrdoctor.schedules import Schedule, parse

__version__ = "0.1.0"

__all__ = ["LRDoctorError", "Schedule", "ScheduleError", "__version__", "parse"]

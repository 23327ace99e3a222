"""lrdoctor: learning rates you can control and explain.

>>> import lrdoctor
>>> lrdoctor.parse("warmup(10) >> cosine(1e-3, steps=90)")(10)
0.001

The top level is framework-free (numpy and the standard library); PyTorch and Keras adapters
are imported explicitly: ``lrdoctor.torch``, ``lrdoctor.keras``. ``lrdoctor.diagnose(log)``
runs the training doctor (the rules live in ``lrdoctor.doctor``) on a log from
``lrdoctor.logs.load(path)``.
"""

from lrdoctor import doctor, logs
from lrdoctor.doctor import Diagnosis, Finding, diagnose
from lrdoctor.errors import LRDoctorError, ScheduleError, UnsupportedChange
from lrdoctor.healing import RepairResult, repair
from lrdoctor.schedules import Schedule, parse

__version__ = "0.1.0"

__all__ = [
    "Diagnosis",
    "Finding",
    "LRDoctorError",
    "RepairResult",
    "Schedule",
    "ScheduleError",
    "UnsupportedChange",
    "__version__",
    "diagnose",
    "doctor",
    "logs",
    "parse",
    "repair",
]

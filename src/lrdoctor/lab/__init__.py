"""The error-surface lab: real ``torch.optim`` optimizers on two-parameter surfaces.

>>> from lrdoctor.lab import Valley, run
>>> t = run(Valley(), "sgd:1e-2", steps=1000)      # doctest: +SKIP
>>> t.points[-2:, 1]                               # doctest: +SKIP
array([-1.,  1.])

Surfaces (:class:`Valley`, :class:`Rosenbrock`, :class:`Saddle`, :class:`Noisy`) are frozen
dataclasses whose loss works on torch tensors and numpy arrays alike; :func:`run` records a
:class:`Trajectory`; :func:`figure` and :func:`animate` draw runs and :func:`tour` tells the
whole story as captioned pictures. Running needs torch (``pip install 'lrdoctor[torch]'``);
importing this package does not.
"""

from lrdoctor.lab._plots import PANELS, animate, figure
from lrdoctor.lab._run import OPTIMIZERS, OptimizerSetup, Trajectory, parse_optimizer, run
from lrdoctor.lab._surfaces import SURFACES, Noisy, Rosenbrock, Saddle, Surface, Valley, get_surface
from lrdoctor.lab._tour import SCENES, tour

__all__ = [
    "OPTIMIZERS",
    "PANELS",
    "SCENES",
    "SURFACES",
    "Noisy",
    "OptimizerSetup",
    "Rosenbrock",
    "Saddle",
    "Surface",
    "Trajectory",
    "Valley",
    "animate",
    "figure",
    "get_surface",
    "parse_optimizer",
    "run",
    "tour",
]

"""Two-parameter error surfaces: each is a frozen dataclass with one formula.

The formula is written once with ``+ - * **`` only, so the same method evaluates a torch tensor
(for the optimizer run) and numpy arrays (for contours). Every surface also gives its gradient
in closed form, which the runner uses instead of autograd to keep 10⁵-step runs to a few
seconds; a test checks the closed form against ``torch.autograd``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrdoctor.errors import LRDoctorError

__all__ = ["Noisy", "Rosenbrock", "SURFACES", "Saddle", "Surface", "Valley", "get_surface"]

Point = tuple[float, float]


class Surface:
    """A loss over two parameters ``(x, y)`` with known minima.

    Subclasses define :meth:`f` and :meth:`grad` on anything that supports arithmetic (a torch
    tensor or numpy arrays), ``start`` (the default initial point), ``minima`` and ``bounds``
    (the contour window ``((x_lo, x_hi), (y_lo, y_hi))``).
    """

    name: str = ""
    start: Point
    minima: tuple[Point, ...]
    bounds: tuple[Point, Point]
    #: Standard deviation of the gradient noise (0 for the exact surfaces).
    noise: float = 0.0

    def f(self, x: Any, y: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def grad(self, x: Any, y: Any) -> tuple[Any, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, p: Any) -> Any:
        """The loss at ``p = (x, y)``: a torch tensor of shape (2,) gives a 0-d tensor."""
        return self.f(p[0], p[1])

    def loss_np(self, x: Any, y: Any) -> np.ndarray:
        """The loss on numpy arrays (for contours and for recorded trajectories)."""
        return np.asarray(self.f(np.asarray(x, dtype=float), np.asarray(y, dtype=float)))

    @property
    def min_loss(self) -> float:
        """The loss at the (best) minimum."""
        return float(min(self.loss_np(*m) for m in self.minima))

    def distance_to_min(self, points: np.ndarray) -> np.ndarray:
        """Euclidean distance from each point (rows of ``points``) to the nearest minimum."""
        pts = np.asarray(points, dtype=float).reshape(-1, 2)
        d = [np.hypot(pts[:, 0] - mx, pts[:, 1] - my) for mx, my in self.minima]
        return np.min(d, axis=0)

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True)
class Valley(Surface):
    """An ill-conditioned quadratic valley ``f = (shallow·x² + steep·y²) / 2``, minimum (0, 0).

    The defaults (steep 200, shallow 1: condition number 200) are chosen for the story plain
    gradient descent tells on it. The step multiplies ``y`` by ``1 - lr·steep`` and ``x`` by
    ``1 - lr·shallow``:

    * lr = 1e-2 sits exactly on the stability edge of the steep direction (lr·steep = 2): every
      step reflects ``y`` to ``-y`` — the iterate bounces between the walls for ever while ``x``
      slides to 0; the loss stays at ``steep·y0²/2`` and the gradient norm at ``steep·|y0|``.
    * lr = 1e-7: after 10⁵ steps ``x`` has kept ``(1 - 1e-7)^1e5 ≈ 0.99`` of its distance —
      crawling.
    """

    steep: float = 200.0
    shallow: float = 1.0
    start: Point = (-4.0, 1.0)
    bounds: tuple[Point, Point] = ((-4.6, 4.6), (-1.4, 1.4))
    minima = ((0.0, 0.0),)
    name = "valley"

    def __post_init__(self) -> None:
        if not (self.steep > 0 and self.shallow > 0):
            raise LRDoctorError(
                f"valley curvatures must be > 0, got steep={self.steep!r}, shallow={self.shallow!r}"
            )

    def f(self, x: Any, y: Any) -> Any:
        return 0.5 * (self.shallow * x**2 + self.steep * y**2)

    def grad(self, x: Any, y: Any) -> tuple[Any, Any]:
        return self.shallow * x, self.steep * y


@dataclass(frozen=True)
class Rosenbrock(Surface):
    """The Rosenbrock crescent ``f = (a - x)² + b·(y - x²)²``, minimum (a, a²).

    A curved, flat-bottomed valley: the gradient points across it, not along it.
    """

    a: float = 1.0
    b: float = 100.0
    start: Point = (-1.5, 2.0)
    bounds: tuple[Point, Point] = ((-2.0, 2.0), (-1.0, 3.0))
    name = "rosenbrock"

    def __post_init__(self) -> None:
        if not self.b > 0:
            raise LRDoctorError(f"rosenbrock b must be > 0, got {self.b!r}")

    @property
    def minima(self) -> tuple[Point, ...]:  # type: ignore[override]
        return ((self.a, self.a**2),)

    def f(self, x: Any, y: Any) -> Any:
        return (self.a - x) ** 2 + self.b * (y - x**2) ** 2

    def grad(self, x: Any, y: Any) -> tuple[Any, Any]:
        r = y - x**2
        return -2.0 * (self.a - x) - 4.0 * self.b * x * r, 2.0 * self.b * r


@dataclass(frozen=True)
class Saddle(Surface):
    """A saddle between two minima: ``f = (x² - y²)/2 + y⁴/4``, minima (0, ±1), saddle (0, 0).

    Started almost on the ridge (``y = 1e-4``), gradient descent slides towards the saddle and
    sits there while the gradient is tiny, then escapes along ``y``; the loss shows a plateau.
    """

    start: Point = (1.5, 1e-4)
    bounds: tuple[Point, Point] = ((-1.8, 1.8), (-1.6, 1.6))
    minima = ((0.0, 1.0), (0.0, -1.0))
    name = "saddle"

    def f(self, x: Any, y: Any) -> Any:
        return 0.5 * (x**2 - y**2) + 0.25 * y**4

    def grad(self, x: Any, y: Any) -> tuple[Any, Any]:
        return x, y**3 - y


@dataclass(frozen=True)
class Noisy(Surface):
    """A surface whose gradients carry Gaussian noise: stochastic-gradient descent on ``base``.

    Step k sees ``grad(p) + noise·ξ_k`` with ``ξ_k ~ N(0, I)`` drawn from a generator seeded
    with ``seed``, i.e. the gradient of the stochastic loss ``f(p) + noise·ξ_k·p``. Contours,
    minima and the recorded loss are the base surface's.
    """

    base: Surface = dataclasses.field(default_factory=lambda: Valley())
    noise: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.noise >= 0:
            raise LRDoctorError(f"noise must be >= 0, got {self.noise!r}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"noisy-{self.base.name}"

    @property
    def label(self) -> str:
        return f"{self.base.name} (gradient noise σ={self.noise:g})"

    @property
    def start(self) -> Point:  # type: ignore[override]
        return self.base.start

    @property
    def minima(self) -> tuple[Point, ...]:  # type: ignore[override]
        return self.base.minima

    @property
    def bounds(self) -> tuple[Point, Point]:  # type: ignore[override]
        return self.base.bounds

    def f(self, x: Any, y: Any) -> Any:
        return self.base.f(x, y)

    def grad(self, x: Any, y: Any) -> tuple[Any, Any]:
        return self.base.grad(x, y)


#: The surfaces the CLI knows by name.
SURFACES: dict[str, Surface] = {
    "valley": Valley(),
    "rosenbrock": Rosenbrock(),
    "saddle": Saddle(),
    "noisy-valley": Noisy(Valley(), noise=2.0),
    "noisy-rosenbrock": Noisy(Rosenbrock(), noise=5.0),
    "noisy-saddle": Noisy(Saddle(), noise=0.1),
}


def get_surface(name: str, *, noise: float | None = None, seed: int = 0) -> Surface:
    """The surface called ``name``; ``noise`` wraps it in :class:`Noisy` (or re-sets σ)."""
    if name not in SURFACES:
        raise LRDoctorError(f"unknown surface {name!r}; expected one of {', '.join(SURFACES)}")
    surface = SURFACES[name]
    if isinstance(surface, Noisy):
        surface = dataclasses.replace(surface, seed=seed)
        if noise is not None:
            surface = dataclasses.replace(surface, noise=noise)
    elif noise:
        surface = Noisy(surface, noise=noise, seed=seed)
    return surface

"""Surfaces: one formula for torch and numpy, closed-form gradients equal to autograd."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lrdoctor.errors import LRDoctorError
from lrdoctor.lab import SURFACES, Noisy, Rosenbrock, Saddle, Valley, get_surface

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name", list(SURFACES))
def test_closed_form_gradient_matches_autograd(name):
    surface = SURFACES[name]
    rng = np.random.default_rng(0)
    (x0, x1), (y0, y1) = surface.bounds
    for _ in range(20):
        p = torch.tensor([rng.uniform(x0, x1), rng.uniform(y0, y1)], dtype=torch.float64,
                         requires_grad=True)
        surface.loss(p).backward()
        gx, gy = surface.grad(*p.detach().tolist())
        np.testing.assert_allclose(p.grad.numpy(), [gx, gy], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(SURFACES))
def test_torch_and_numpy_losses_agree_and_minima_are_stationary(name):
    surface = SURFACES[name]
    xs, ys = np.meshgrid(np.linspace(*surface.bounds[0], 7), np.linspace(*surface.bounds[1], 5))
    numpy_loss = surface.loss_np(xs, ys)
    torch_loss = [float(surface.loss(torch.tensor([x, y], dtype=torch.float64)))
                  for x, y in zip(xs.ravel(), ys.ravel())]
    np.testing.assert_allclose(numpy_loss.ravel(), torch_loss, rtol=1e-12)
    for m in surface.minima:
        assert np.allclose(surface.grad(*m), 0.0)
        assert surface.loss_np(*m) == pytest.approx(surface.min_loss)
    assert np.all(numpy_loss >= surface.min_loss - 1e-12)


def test_valley_curvatures_tell_the_story():
    v = Valley()
    # SGD multiplies y by 1 - lr*steep: exactly -1 at lr 1e-2 (bounce), and x by 1 - lr*shallow.
    assert 1 - 1e-2 * v.steep == -1.0
    assert (1 - 1e-7 * v.shallow) ** 100_000 > 0.98
    assert v.steep / v.shallow == 200


def test_surfaces_are_frozen_values():
    v = Valley()
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.steep = 3.0  # type: ignore[misc]
    assert Valley() == v and hash(Valley()) == hash(v)
    assert Rosenbrock(a=2.0).minima == ((2.0, 4.0),)
    assert len(Saddle().minima) == 2


def test_noisy_wraps_the_base_surface():
    n = get_surface("valley", noise=3.0, seed=4)
    assert isinstance(n, Noisy) and n.noise == 3.0 and n.seed == 4
    assert n.name == "noisy-valley" and n.minima == Valley().minima
    assert get_surface("noisy-valley", noise=0.5).noise == 0.5
    assert get_surface("valley").noise == 0


def test_bad_surface_inputs_raise_package_errors():
    with pytest.raises(LRDoctorError, match="unknown surface 'bowl'"):
        get_surface("bowl")
    with pytest.raises(LRDoctorError, match="curvatures must be > 0"):
        Valley(steep=-1)
    with pytest.raises(LRDoctorError, match="noise must be >= 0"):
        Noisy(Valley(), noise=-1)

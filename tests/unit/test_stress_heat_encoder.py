"""Learned encoder with the physical moments fixed: W_0 = 1 + σ/(ρT), W_1 = q/(ρT^{3/2})."""

import numpy as np
import pytest
import torch

from kinclose.kinetic.grid import VelocityGrid
from kinclose.kinetic.moments import fields
from kinclose.kinetic.solver import DVMSolver
from kinclose.moments.decoders import MomentAutoencoder
from kinclose.moments.shape import to_shape
from kinclose.physics import mu_ref_for_knudsen


def test_fixed_moments_are_stress_and_heat_flux():
    torch.manual_seed(0)
    nx = 12
    x = (np.arange(nx) + 0.5) / nx
    rho, u, T = 1 + 0.3 * np.sin(2 * np.pi * x), 0.5 * np.cos(2 * np.pi * x), 1 + 0.4 * np.sin(2 * np.pi * x + 1)
    grid = VelocityGrid.for_states(u, 2.0 * T, 160, width=9.0)
    s = DVMSolver(0, 1, nx, grid, mu_ref_for_knudsen(0.3, 0.5), 0.5, "bgk", "periodic", 0.5, "mc", threads=1)
    s.set_maxwellian(rho, u, T)
    for _ in range(40):
        s.step()
    g, h = s.interior
    f = fields(g, h, grid.v, grid.dv)
    model = MomentAutoencoder("learned", M=4, xi_max=7.0, n_xi=128, stress_heat_moments=True)
    G, H = to_shape(g, h, grid.v, grid.dv, model.grid)[:2]
    with torch.no_grad():
        W = model.encode(torch.as_tensor(G), torch.as_tensor(H)).numpy()
    p = f["rho"] * f["T"]
    scale_s, scale_q = np.abs(f["sigma"] / p).max(), np.abs(f["q"] / (p * np.sqrt(f["T"]))).max()
    assert scale_s > 1e-3 and scale_q > 1e-3  # genuinely non-equilibrium cells
    np.testing.assert_allclose(W[:, 0] - 1.0, f["sigma"] / p, atol=2e-3 * scale_s)
    np.testing.assert_allclose(W[:, 1], f["q"] / (p * np.sqrt(f["T"])), atol=2e-3 * scale_q)
    # the learned weights are still networks: two seeds give different W_2, W_3
    torch.manual_seed(1)
    other = MomentAutoencoder("learned", M=4, xi_max=7.0, n_xi=128, stress_heat_moments=True)
    with torch.no_grad():
        W2 = other.encode(torch.as_tensor(G), torch.as_tensor(H)).numpy()
    np.testing.assert_array_equal(W2[:, :2], W[:, :2])
    assert np.abs(W2[:, 2:] - W[:, 2:]).max() > 1e-6


def test_stress_heat_needs_a_learned_moment():
    with pytest.raises(ValueError, match="M >= 3"):
        MomentAutoencoder("learned", M=2, stress_heat_moments=True)

"""Mott-Smith bimodal shock: the spectral collision integral J equals the exact Maxwell-molecule value,
the profile carries the Rankine–Hugoniot fluxes at every x (which checks σ and q), and its density
thickness is the logistic one."""

import numpy as np
import pytest

from kinclose.kinetic.mott_smith import mott_smith_rate, mott_smith_shock
from kinclose.physics import rankine_hugoniot
from kinclose.shockprofile import profile_metrics


@pytest.mark.parametrize("mach", [2.0, 5.5])
def test_maxwell_molecules_rate_is_exact(mach):
    s = rankine_hugoniot(mach)
    r = mott_smith_rate(s, omega=1.0, n=32)
    exact = -(2.0 / 3.0) * s.rho1 * s.rho2 * (s.u1 - s.u2) ** 2 / r["mu_ref"]
    assert r["J"] == pytest.approx(exact, rel=2e-3)


def test_profile_fluxes_and_thickness():
    s = rankine_hugoniot(3.0)
    p = mott_smith_shock(s, omega=0.5, n=24, dx=0.02, x_min=-15.0, x_max=15.0)
    mass = p.rho * p.u
    momentum = p.rho * p.u**2 + p.rho * p.T + p.sigma
    energy = p.rho * p.u * (0.5 * p.u**2 + 2.5 * p.T) + p.sigma * p.u + p.q
    for flux in (mass, momentum, energy):
        np.testing.assert_allclose(flux, flux[0], rtol=1e-12)
    np.testing.assert_allclose([p.rho[0], p.u[0], p.T[0]], [s.rho1, s.u1, s.T1], rtol=1e-6)
    np.testing.assert_allclose([p.rho[-1], p.u[-1], p.T[-1]], [s.rho2, s.u2, s.T2], rtol=1e-6)
    assert p.sigma.min() >= 0.0 and p.q.max() <= 0.0  # compression: normal stress > 0, heat flows upstream
    inv = profile_metrics(p)["inv_density_thickness"]
    assert inv == pytest.approx(p.metrics["inv_density_thickness_exact"], rel=1e-3)

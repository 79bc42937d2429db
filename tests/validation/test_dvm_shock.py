"""Steady BGK shock structure: Rankine–Hugoniot, constant fluxes, grid convergence.

x in upstream mean free paths λ1 (VHS, ω = 0.5), ρ1 = T1 = 1, u1 = Ma √(5/3).
"""

import numpy as np
import pytest

from kinclose.kinetic.shock import steady_shock
from kinclose.physics import rankine_hugoniot
from kinclose.shockprofile import FIELDS, center, profile_metrics


def _shock(mach, dx, nv, **kw):
    opts = dict(x_min=-20.0, x_max=10.0, levels=2, progress=False)
    opts.update(kw)
    return center(steady_shock(rankine_hugoniot(mach), dx=dx, nv=nv, **opts))


def test_shock_satisfies_rankine_hugoniot_and_constant_fluxes():
    p = _shock(3.0, 0.25, 64)
    m = profile_metrics(p)
    s = p.states
    assert m["converged"]
    np.testing.assert_allclose([p.rho[0], p.u[0], p.T[0]], [s.rho1, s.u1, s.T1], rtol=5e-3)
    np.testing.assert_allclose([p.rho[-1], p.u[-1], p.T[-1]], [s.rho2, s.u2, s.T2], rtol=1e-3)
    for k in ("mass", "momentum", "energy"):
        assert m[f"{k}_flux_max_deviation"] < 2e-3, (k, m)
    # physics: temperature rises ahead of density, compressive normal stress, heat flux upstream
    assert m["density_temperature_separation"] > 0.3
    assert p.sigma.max() > 0.1 and p.q.min() < -0.1
    assert np.all(np.diff(p.rho) > -1e-4 * (s.rho2 - s.rho1))  # monotone up to 1e-4 of the jump


def test_shock_grid_converged_mach2():
    """Halving Δx and Δv changes the inverse density thickness by < 0.5 % and profiles by < 1 %."""
    a = _shock(2.0, 0.125, 48)
    b = _shock(2.0, 0.0625, 96)
    ma, mb = profile_metrics(a), profile_metrics(b)
    assert abs(ma["inv_density_thickness"] / mb["inv_density_thickness"] - 1) < 5e-3
    for name in FIELDS:
        fa = getattr(a, name)
        fb = np.interp(a.x, b.x, getattr(b, name))
        scale = np.ptp(getattr(b, name)) if name in ("rho", "u", "T") else np.abs(getattr(b, name)).max()
        assert np.abs(fa - fb).max() / scale < 1e-2, name


def test_shakhov_shock_is_thicker_in_temperature():
    """Pr = 2/3 (more heat conduction than BGK's Pr = 1) widens the temperature precursor."""
    bgk = profile_metrics(_shock(3.0, 0.25, 64))
    sha = profile_metrics(_shock(3.0, 0.25, 64, collision="shakhov"))
    assert sha["density_temperature_separation"] > bgk["density_temperature_separation"]


def test_bad_shock_input():
    with pytest.raises(ValueError, match="Mach > 1"):
        rankine_hugoniot(0.9)
    with pytest.raises(ValueError, match="cfl"):
        steady_shock(rankine_hugoniot(2.0), cfl=1.5)
    with pytest.raises(ValueError, match="contain x = 0"):
        steady_shock(rankine_hugoniot(2.0), x_min=1.0, x_max=5.0)

"""The numba DVM step equals the plain-NumPy reference step on tiny grids."""

import math

import numpy as np
import pytest

from kinclose.kinetic import reference
from kinclose.kinetic.grid import VelocityGrid
from kinclose.kinetic.moments import maxwellian
from kinclose.kinetic.solver import DVMSolver


def _random_state(rng, nx, v):
    x = (np.arange(nx) + 0.5) / nx
    rho = 1 + 0.3 * rng.random(nx)
    u = 0.5 * (rng.random(nx) - 0.5)
    T = 1 + 0.5 * rng.random(nx)
    g, h = maxwellian(rho, u, T, v)
    # non-equilibrium perturbation with heat flux and stress
    c = v[None, :] - u[:, None]
    g = g * (1 + 0.05 * np.sin(2 * np.pi * x)[:, None] * c * np.exp(-0.1 * c * c))
    h = h * (1 + 0.03 * np.cos(2 * np.pi * x)[:, None] * np.exp(-0.2 * c * c))
    return rho, u, T, g, h


@pytest.mark.parametrize("collision", ["bgk", "shakhov"])
@pytest.mark.parametrize("limiter", ["minmod", "vanleer", "mc", "superbee", "fromm", "upwind"])
@pytest.mark.parametrize("bc", ["periodic", "reservoir"])
@pytest.mark.parametrize("kn", [1e-3, 0.3, math.inf])
def test_numba_step_matches_numpy_reference(rng, collision, limiter, bc, kn):
    nx, nv = 12, 24
    grid = VelocityGrid(-9.0, 9.0, nv)
    v = grid.v
    rho, u, T, g, h = _random_state(rng, nx, v)
    mu_ref = math.inf if math.isinf(kn) else kn
    left = (1.1, 0.2, 1.0)
    right = (0.9, -0.1, 1.3)
    solver = DVMSolver(0.0, 1.0, nx, grid, mu_ref, 0.7, collision, bc, 0.8, limiter,
                       left if bc == "reservoir" else None, right if bc == "reservoir" else None)
    solver.set_distribution(g, h)
    dt = solver.dt_max
    solver.step(dt)
    gn, hn = solver.interior
    lr = maxwellian(*left, v) if bc == "reservoir" else None
    rr = maxwellian(*right, v) if bc == "reservoir" else None
    gr, hr = reference.step(g, h, v, grid.dv, solver.dx, dt, mu_ref, 0.7, collision, limiter, bc, lr, rr)
    np.testing.assert_allclose(gn, gr, rtol=1e-11, atol=1e-13 * g.max())
    np.testing.assert_allclose(hn, hr, rtol=1e-11, atol=1e-13 * h.max())


def test_limiters_are_tvd_bounded():
    a = np.array([1.0, -1.0, 2.0, 0.5, 0.0])
    b = np.array([3.0, 2.0, 1.0, 0.5, 1.0])
    for lim in ("minmod", "vanleer", "mc", "superbee"):
        s = reference.limited_slope(a, b, lim)
        assert s[1] == 0.0 and s[4] == 0.0  # extremum / flat side: no slope
        assert np.all(np.abs(s) <= 2 * np.minimum(np.abs(a), np.abs(b)) + 1e-15)


@pytest.mark.parametrize("T", [1e-4, 0.05, 0.12, 1.0, 30.0])
@pytest.mark.parametrize("u", [-7.0, 0.0, 0.37, 9.0])
def test_gaussian_recurrence_is_the_exponential(u, T):
    """The Maxwellian's Gaussian by the blocked recurrence (two exp per 16 nodes) equals coef exp(−a), a = ξ²/2,
    node by node to the rounding of the recurrence (16² ulp) plus that of the exponent itself (a few ulp of a,
    relative error ~ a ulp in exp(−a)), where it is above 1e-200; within 1e-200 below; positive wherever exp(−a) is;
    never NaN. Coarse rows (Δv > √T/2, here T = 1e-4) take the direct formula. u = ±7, 9 put the peak at or beyond
    the ends of the grid; T = 0.12 with u = 9 or −7 has blocks that start in exp's underflow."""
    from kinclose.kinetic._kernels import GAUSS_BLOCK, _gaussian_row

    grid = VelocityGrid(-8.0, 8.0, 101)
    v = np.ascontiguousarray(grid.v)
    G = np.empty(v.size)
    coef = 1.3 / math.sqrt(2 * math.pi * T)
    _gaussian_row(v, grid.dv, u, math.sqrt(T), coef, G)
    a = 0.5 * ((v - u) / math.sqrt(T)) ** 2
    exact = coef * np.exp(-a)
    assert np.all(np.isfinite(G))
    big = exact > 1e-200
    bound = 2.3e-16 * (GAUSS_BLOCK**2 + 4 * a[big])
    assert np.all(np.abs(G[big] - exact[big]) <= bound * exact[big]), np.max(np.abs(G[big] / exact[big] - 1) / bound)
    assert np.all(np.abs(G[~big] - exact[~big]) <= 1e-200)
    assert np.all((G > 0) == (exact > 0))

"""Validation of the BGK/Shakhov DVM solver against exact results.

Units: R = 1, domain length L = 1, Knudsen number ε = λ_ref/L (VHS, kinclose.physics).
"""

import math

import numpy as np
import pytest

from kinclose.kinetic.grid import VelocityGrid
from kinclose.kinetic.moments import entropy, maxwellian
from kinclose.kinetic.solver import DVMSolver
from kinclose.physics import collision_frequency, mu_ref_for_knudsen
from kinclose.problem import Problem


def _smooth_state(nx, rng=None):
    x = (np.arange(nx) + 0.5) / nx
    phase = 0.0 if rng is None else rng.random(3) * 2 * np.pi
    ph = np.broadcast_to(phase, (3,))
    rho = 1 + 0.3 * np.sin(2 * np.pi * x + ph[0])
    u = 0.4 * np.cos(2 * np.pi * x + ph[1])
    T = 1 + 0.3 * np.sin(4 * np.pi * x + ph[2])
    return x, rho, u, T


@pytest.mark.parametrize("collision", ["bgk", "shakhov"])
@pytest.mark.parametrize("kn", [1e-4, 1e-2, 1.0, 10.0])
def test_conservation_to_roundoff(rng, collision, kn):
    nx = 64
    _, rho, u, T = _smooth_state(nx, rng)
    rho = rho * (1 + 0.1 * rng.random(nx))  # rough data too
    grid = VelocityGrid.for_states(u, 2 * T, 48)
    s = DVMSolver(0, 1, nx, grid, mu_ref_for_knudsen(kn, 0.5), 0.5, collision, "periodic", 0.9, "mc")
    s.set_maxwellian(rho, u, T)
    before = s.totals()
    for _ in range(100):
        s.step()
    after = s.totals()
    scale = np.array([before[0], before[0] * np.sqrt(T.max()), before[2]])
    np.testing.assert_allclose((after - before) / scale, 0.0, atol=5e-14)


@pytest.mark.parametrize("collision", ["bgk", "shakhov"])
@pytest.mark.parametrize("bc", ["periodic", "reservoir"])
def test_maxwellian_is_fixed_point(collision, bc):
    nx, state = 16, (1.3, 0.7, 2.0)
    grid = VelocityGrid.for_states(state[1], state[2], 40)
    res = dict(left=state, right=state) if bc == "reservoir" else {}
    s = DVMSolver(0, 1, nx, grid, mu_ref_for_knudsen(0.05, 0.5), 0.5, collision, bc, 0.9, "mc", **res)
    s.set_maxwellian(*(np.full(nx, a) for a in state))
    g0 = s.interior[0].copy()
    for _ in range(50):
        s.step()
    np.testing.assert_allclose(s.interior[0], g0, rtol=0, atol=1e-13 * g0.max())


def _free_streaming_error(nx):
    grid = VelocityGrid(-7, 7, 32)
    x = (np.arange(nx) + 0.5) / nx

    def rho0(y):
        return 1 + 0.5 * np.sin(2 * np.pi * y)

    s = DVMSolver(0, 1, nx, grid, math.inf, 0.5, "bgk", "periodic", 0.5, "mc")
    s.set_maxwellian(rho0(x), np.full(nx, 0.3), np.ones(nx))
    s.run(0.3)
    v = grid.v[None, :]
    exact = rho0((x[:, None] - v * s.t) % 1.0) * np.exp(-0.5 * (v - 0.3) ** 2) / np.sqrt(2 * np.pi)
    return np.abs(s.interior[0] - exact).mean()


def test_free_streaming_matches_characteristics_second_order():
    """ε = ∞: g(x, v, t) = g0(x − v t, v) exactly; MUSCL-mc converges at second order in L1."""
    errs = [_free_streaming_error(n) for n in (32, 64, 128)]
    assert errs[-1] < 2e-4
    ratios = [errs[i] / errs[i + 1] for i in range(2)]
    assert min(ratios) > 3.5, (errs, ratios)


def _smooth_run(nx, kn):
    x, rho, u, T = _smooth_state(nx)
    s = DVMSolver(0, 1, nx, VelocityGrid(-9, 9, 48), mu_ref_for_knudsen(kn, 0.5), 0.5, "bgk", "periodic", 0.5, "mc")
    s.set_maxwellian(rho, u, T)
    s.run(0.2)
    return s.fields_array()[:, :3]


@pytest.mark.parametrize("kn", [1e-3, 1e-2])
def test_second_order_convergence_with_collisions(kn):
    """Self-convergence on a smooth periodic problem (fine solution restricted by cell averaging)."""
    fine = _smooth_run(256, kn)
    errs = []
    for n in (32, 64, 128):
        ref = fine
        while ref.shape[0] > n:
            ref = 0.5 * (ref[0::2] + ref[1::2])
        errs.append(np.abs(_smooth_run(n, kn) - ref).mean())
    ratios = [errs[i] / errs[i + 1] for i in range(2)]
    assert min(ratios) > 3.5, (errs, ratios)


@pytest.mark.parametrize("collision", ["bgk"])
def test_entropy_non_increasing(rng, collision):
    """H-theorem of BGK (the Shakhov model has no H-theorem, so it is not tested here)."""
    nx = 64
    _, rho, u, T = _smooth_state(nx, rng)
    grid = VelocityGrid.for_states(u, 2 * T, 64)
    s = DVMSolver(0, 1, nx, grid, mu_ref_for_knudsen(0.05, 0.5), 0.5, collision, "periodic", 0.5, "minmod")
    s.set_maxwellian(rho, u, T)

    def H():
        g, h = s.interior
        return float(entropy(g, h, grid.dv).sum() * s.dx)

    hist = [H()]
    for _ in range(60):
        s.step()
        hist.append(H())
    d = np.diff(hist)
    assert np.all(d <= 1e-12 * abs(hist[0])), d.max()
    assert hist[-1] < hist[0] - 1e-6  # it does produce entropy


@pytest.mark.parametrize("collision, rate_factor", [("bgk", 1.0), ("shakhov", 2.0 / 3.0)])
def test_heat_flux_relaxes_at_prandtl_rate(collision, rate_factor):
    """Homogeneous relaxation: q(t) = q0 exp(−Pr ν t) (Shakhov Pr = 2/3, BGK Pr = 1), σ(t) = σ0 exp(−ν t)."""
    nx, rho, u, T = 4, 1.0, 0.0, 1.0
    grid = VelocityGrid(-10, 10, 200)
    v = grid.v
    G, Hh = maxwellian(rho, u, T, v)
    xi = v / np.sqrt(T)
    g = G * (1 + 0.2 * np.sin(xi) + 0.1 * np.cos(xi))  # heat flux and normal stress, g > 0
    h = Hh * (1 + 0.1 * np.sin(xi))
    mu_ref = 0.1
    s = DVMSolver(0, 1, nx, grid, mu_ref, 0.5, collision, "periodic", 0.5, "mc")
    s.set_distribution(np.tile(g, (nx, 1)), np.tile(h, (nx, 1)))
    f0 = s.fields_array()[0]
    nu = float(collision_frequency(f0[0], f0[2], mu_ref, 0.5))
    dt = 0.02 / nu
    for _ in range(50):
        s.step(dt)
    f1 = s.fields_array()[0]
    assert f1[4] / f0[4] == pytest.approx(math.exp(-rate_factor * nu * s.t), rel=2e-3)
    assert f1[3] / f0[3] == pytest.approx(math.exp(-nu * s.t), rel=2e-3)


def test_sod_tends_to_exact_euler_solution():
    """ε = 1e-4: the DVM converges to the exact Riemann solution of Euler's equations under refinement."""
    riemann = pytest.importorskip("kinclose.macro.riemann")
    from kinclose.models import run_model

    errs = []
    for nx in (100, 200, 400):
        x = -0.5 + (np.arange(nx) + 0.5) / nx
        left = x < 0
        rho = np.where(left, 1.0, 0.125)
        T = np.where(left, 1.0, 0.8)
        prob = Problem(-0.5, 0.5, rho, np.zeros(nx), T, kn=1e-4, t_end=0.15, bc="reservoir")
        out = run_model("dvm", prob, nv=64)
        sol = riemann.solve(1.0, 0.0, 1.0, 0.125, 0.0, 0.1)
        ex_rho, ex_u, ex_p = riemann.exact_solution(sol, x, 0.15)
        errs.append(np.abs(out.rho - ex_rho).mean() + np.abs(out.u - ex_u).mean() + np.abs(out.rho * out.T - ex_p).mean())
    assert errs[-1] < 0.01, errs
    assert errs[0] > errs[1] > errs[2], errs

"""Euler finite volumes (MUSCL–HLLC–SSP-RK): convergence to the exact Riemann solution,
second order on smooth data, conservation, boundary handling and input errors. γ = 5/3."""

from __future__ import annotations

import numpy as np
import pytest

from kinclose.macro import riemann
from kinclose.macro.euler import CFL_MAX, integrate, run_problem
from kinclose.physics import GAMMA, PhysicalStateError, conservative
from kinclose.problem import Fields, Problem

EPS = np.finfo(float).eps

RIEMANN = {  # (ρL, uL, pL, ρR, uR, pR)
    "sod": (1.0, 0.0, 1.0, 0.125, 0.0, 0.1),
    "lax": (0.445, 0.698, 3.528, 0.5, 0.0, 0.571),
    "123": (1.0, -2.0, 0.4, 1.0, 2.0, 0.4),
}
RESOLUTIONS = (100, 200, 400, 800)
# Regression bounds on the density L1 error per resolution: 1.25 × the values measured when the
# solver was written (MC limiter, SSP-RK3, CFL 0.4). The physics checks are the rates below.
L1_BOUND = {
    "sod": (5.9e-3, 3.1e-3, 2.1e-3, 1.2e-3),
    "lax": (1.32e-2, 8.4e-3, 4.4e-3, 3.1e-3),
    "123": (9.6e-3, 4.9e-3, 2.5e-3, 1.3e-3),
}


def _riemann_run(name: str, nx: int, **opts) -> tuple[np.ndarray, np.ndarray, float]:
    """Numerical and exact cell averages (nx, 3) of U on [−½, ½] at t = 0.4 / max wave speed."""
    d = RIEMANN[name]
    sol = riemann.solve(*d, gamma=GAMMA)
    t = 0.4 / max(abs(v) for v in sol.wave_speeds().values())
    faces = np.linspace(-0.5, 0.5, nx + 1)
    xc = 0.5 * (faces[1:] + faces[:-1])
    left = xc < 0.0
    rho, u, p = (np.where(left, d[i], d[i + 3]) for i in range(3))
    prob = Problem(-0.5, 0.5, rho, u, p / rho, kn=1.0, t_end=t, bc="reservoir")
    f = run_problem(prob, **opts)
    ra, ua, pa = riemann.cell_averages(sol, faces, t)
    return conservative(f.rho, f.u, f.T), conservative(ra, ua, pa / ra), 1.0 / nx


@pytest.mark.parametrize("name", sorted(RIEMANN))
def test_converges_to_exact_riemann_solution(name: str) -> None:
    """L1 error of (ρ, ρu, E) falls under refinement at ≈ first order (contacts of a
    second-order TVD scheme converge like h^(2/3), shocks like h): the least-squares rate over
    four resolutions is >= 0.65, every refinement reduces the error by >= 1.35, and the density
    error stays below its per-resolution bound."""
    errs = []
    for nx, bound in zip(RESOLUTIONS, L1_BOUND[name]):
        U, Ua, dx = _riemann_run(name, nx)
        e = np.abs(U - Ua).sum(0) * dx
        assert e[0] <= bound, f"{name} nx={nx}: L1(rho) = {e[0]:.3e} > {bound:.3e}"
        errs.append(e)
    errs = np.array(errs)
    h = 1.0 / np.array(RESOLUTIONS)
    for k in range(3):
        rate = np.polyfit(np.log(h), np.log(errs[:, k]), 1)[0]
        assert rate >= 0.65, f"{name}: component {k} L1 rate {rate:.3f} < 0.65 (errors {errs[:, k]})"
        ratios = errs[:-1, k] / errs[1:, k]
        assert np.all(ratios >= 1.35), f"{name}: component {k} error ratios {ratios}"


def _smooth_advection(nx: int, rk: int) -> float:
    """L1 density error after one period of ρ = 1 + 0.2 sin 2πx advected at u = 1, p = 1."""
    dx = 1.0 / nx
    xc = (np.arange(nx) + 0.5) * dx
    # exact cell averages of 1 + 0.2 sin 2πx
    rho = 1.0 + 0.2 * (np.cos(2 * np.pi * (xc - dx / 2)) - np.cos(2 * np.pi * (xc + dx / 2))) / (2 * np.pi * dx)
    prob = Problem(0.0, 1.0, rho, np.ones(nx), 1.0 / rho, kn=1.0, t_end=1.0)
    f = run_problem(prob, rk=rk)
    return float(np.abs(f.rho - rho).sum() * dx)


@pytest.mark.parametrize("rk", [2, 3])
def test_second_order_on_smooth_periodic_advection(rk: int) -> None:
    errs = np.array([_smooth_advection(nx, rk) for nx in (64, 128, 256)])
    rates = np.log2(errs[:-1] / errs[1:])
    np.testing.assert_array_less(1.8, rates, err_msg=f"L1 errors {errs}, rates {rates}")


def _gl_cell_averages(nx: int) -> np.ndarray:
    """(nx, 3) cell averages of a smooth nonlinear state (sound and entropy waves) on [0, 1)."""
    dx = 1.0 / nx
    xf = np.arange(nx + 1) * dx
    nodes, w = np.polynomial.legendre.leggauss(8)
    xq = 0.5 * (xf[:-1, None] + xf[1:, None]) + 0.5 * dx * nodes
    U = conservative(1 + 0.2 * np.sin(2 * np.pi * xq), 0.3 * np.cos(2 * np.pi * xq), 1 + 0.2 * np.sin(4 * np.pi * xq))
    return (U * w[None, :, None]).sum(1) / 2.0


def test_second_order_self_convergence_nonlinear_smooth() -> None:
    """Richardson: ‖U_h − R U_{h/2}‖₁ (R: average pairs of fine cells) falls like h² before
    any shock forms (t = 0.1)."""
    sols = {}
    for nx in (64, 128, 256, 512):
        U, stats, _ = integrate(_gl_cell_averages(nx), 1.0 / nx, 0.1, periodic=True)
        sols[nx] = U
    errs = np.array([np.abs(sols[n] - sols[2 * n].reshape(n, 2, 3).mean(1)).sum(0) / n for n in (64, 128, 256)])
    rates = np.log2(errs[:-1] / errs[1:])
    np.testing.assert_array_less(1.8, rates, err_msg=f"errors {errs}, rates {rates}")


@pytest.mark.parametrize("limiter", ["mc", "vanleer", "minmod", "none"])
def test_conservation_to_round_off_periodic(limiter: str) -> None:
    rng = np.random.default_rng(7)
    nx = 200
    x = (np.arange(nx) + 0.5) / nx
    rho = 1 + 0.5 * (x > 0.3) * (x < 0.6) + 0.1 * rng.random(nx)
    u = 0.5 * np.sin(2 * np.pi * x) + 0.1 * rng.standard_normal(nx)
    T = 1 + 0.8 * (x > 0.5) + 0.1 * rng.random(nx)
    prob = Problem(0.0, 1.0, rho, u, T, kn=1.0, t_end=0.3)
    f = run_problem(prob, limiter=limiter, cfl=min(0.4, CFL_MAX[limiter]))
    U0 = conservative(rho, u, T).sum(0) * prob.dx
    U1 = conservative(f.rho, f.u, f.T).sum(0) * prob.dx
    steps = f.stats["steps"]
    # a few rounding errors of size eps·|U| per stage and cell, accumulated over the steps
    np.testing.assert_allclose(U1, U0, rtol=10 * EPS * steps, atol=0.0)
    np.testing.assert_allclose(f.stats["conservation_drift"], U1 - U0, rtol=0.0, atol=1e-12)


def test_fields_contract_and_uniform_state() -> None:
    nx = 50
    for bc in ("periodic", "reservoir"):
        prob = Problem(0.0, 2.0, np.full(nx, 1.3), np.full(nx, 0.4), np.full(nx, 0.7), kn=0.1, t_end=0.5, bc=bc)
        f = run_problem(prob)
        assert isinstance(f, Fields)
        for k in ("x", "rho", "u", "T", "sigma", "q"):
            assert getattr(f, k).shape == (nx,)
        np.testing.assert_allclose(f.x, prob.x, rtol=0, atol=0)
        np.testing.assert_allclose(f.rho, 1.3, rtol=1e-14, atol=0)
        np.testing.assert_allclose(f.u, 0.4, rtol=1e-13, atol=0)
        np.testing.assert_allclose(f.T, 0.7, rtol=1e-13, atol=0)
        np.testing.assert_array_equal(f.sigma, 0.0)
        np.testing.assert_array_equal(f.q, 0.0)
        assert f.t == 0.5


def test_reservoir_keeps_stationary_contact() -> None:
    """A pressure-balanced density jump at rest between two reservoirs stays exactly in place."""
    nx = 64
    x = (np.arange(nx) + 0.5) / nx
    rho = np.where(x < 0.5, 1.0, 0.25)
    prob = Problem(0.0, 1.0, rho, np.zeros(nx), 1.0 / rho, kn=1.0, t_end=1.0, bc="reservoir")
    f = run_problem(prob)
    np.testing.assert_allclose(f.rho, rho, rtol=1e-13, atol=0)
    np.testing.assert_allclose(f.u, 0.0, rtol=0, atol=1e-13)


def test_galilean_shift_of_periodic_problem() -> None:
    """A constant velocity shift c translates the solution by c t (here exactly one cell)."""
    nx = 100
    x = (np.arange(nx) + 0.5) / nx
    rho, u, T = 1 + 0.3 * np.sin(2 * np.pi * x), 0.2 * np.cos(2 * np.pi * x), 1 + 0.2 * np.cos(4 * np.pi * x)
    t = 0.05
    c = (1.0 / nx) / t
    a = run_problem(Problem(0.0, 1.0, rho, u, T, kn=1.0, t_end=t))
    b = run_problem(Problem(0.0, 1.0, rho, u + c, T, kn=1.0, t_end=t))
    # same physics, different time steps and upwinding: agreement to discretization error
    np.testing.assert_allclose(np.roll(a.rho, 1), b.rho, rtol=0, atol=2e-3)
    np.testing.assert_allclose(np.roll(a.u, 1) + c, b.u, rtol=0, atol=2e-3)


def test_cfl_above_bound_raises() -> None:
    prob = Problem(0.0, 1.0, np.ones(10), np.zeros(10), np.ones(10), kn=1.0, t_end=0.1)
    with pytest.raises(ValueError, match=r"cfl=0\.9 is above the stable bound 0\.5"):
        run_problem(prob, cfl=0.9)
    with pytest.raises(ValueError, match=r"cfl=0\.7 is above the stable bound 0\.6667"):
        run_problem(prob, cfl=0.7, limiter="minmod")
    with pytest.raises(ValueError, match="cfl must be a positive number"):
        run_problem(prob, cfl=0.0)
    with pytest.raises(ValueError, match="unknown limiter"):
        run_problem(prob, limiter="superbee")
    with pytest.raises(ValueError, match="rk must be one of"):
        run_problem(prob, rk=4)


def test_unknown_option_raises() -> None:
    prob = Problem(0.0, 1.0, np.ones(10), np.zeros(10), np.ones(10), kn=1.0, t_end=0.1)
    with pytest.raises(TypeError, match="cfll"):
        run_problem(prob, cfll=0.3)


def test_non_physical_data_rejected() -> None:
    with pytest.raises(PhysicalStateError, match="rho must be > 0"):
        Problem(0.0, 1.0, np.array([1.0, -1.0, 1.0]), np.zeros(3), np.ones(3), kn=1.0, t_end=0.1)
    with pytest.raises(PhysicalStateError, match="T is not finite"):
        Problem(0.0, 1.0, np.ones(3), np.zeros(3), np.array([1.0, np.nan, 1.0]), kn=1.0, t_end=0.1)


def test_non_physical_state_is_reported_not_hidden() -> None:
    """A state with negative pressure stops with PhysicalStateError naming the cell."""
    U0 = np.tile([1.0, 0.0, 1.5], (4, 1))
    U0[1, 1] = 2.0  # kinetic energy 2 > E = 1.5: p < 0 in cell 1
    with pytest.raises(PhysicalStateError, match="cell 1"):
        integrate(U0, 0.1, 0.1, periodic=True)

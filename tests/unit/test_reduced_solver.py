"""Contract of the reduced moment solver: every closure conserves U, keeps a uniform state, and the
Maxwellian closure (the Euler limit) gives a steady shock between the Rankine–Hugoniot states."""

import math

import numpy as np
import pytest

from kinclose.kinetic.grid import VelocityGrid
from kinclose.kinetic.solver import DVMSolver
from kinclose.macro import riemann
from kinclose.models import run_model
from kinclose.physics import mu_ref_for_knudsen, rankine_hugoniot
from kinclose.problem import Problem
from kinclose.reduced.closure import MaxwellianClosure, OracleClosure, hermite_weights
from kinclose.reduced.run import run_problem
from kinclose.reduced.shock import reduced_shock
from kinclose.reduced.solver import ReducedSolver
from kinclose.shockprofile import center, profile_metrics


def _closures(nx, rho, u, T):
    a, b = hermite_weights((3, 4, 5))
    grid = VelocityGrid.for_states(u, 2 * T, 48)
    dvm = DVMSolver(0, 1, nx, grid, mu_ref_for_knudsen(0.1, 0.5))
    dvm.set_maxwellian(rho, u, T)
    oracle = OracleClosure(grid.v, grid.dv, a, b)
    oracle.update(*dvm.interior)
    return {"maxwellian": MaxwellianClosure(a, b), "oracle": oracle}


@pytest.mark.parametrize("name", ["maxwellian", "oracle"])
def test_closure_contract(name):
    nx = 24
    x = (np.arange(nx) + 0.5) / nx
    rho, u, T = 1 + 0.2 * np.sin(2 * np.pi * x), 0.2 * np.cos(2 * np.pi * x), 1 + 0.1 * np.sin(2 * np.pi * x)
    cl = _closures(nx, rho, u, T)[name]
    W_eq = cl.equilibrium()
    assert W_eq.shape == (cl.n_moments,)
    n = 5
    W = np.tile(W_eq, (n, 1))
    m, k = cl.frame(W, np.zeros(n), np.ones(n), np.arange(n))
    np.testing.assert_allclose(m, W, atol=1e-12)  # m(W; 0, 1) = W
    assert cl.stress_heat(W, np.arange(n)).shape == (n, 2)
    s = ReducedSolver(0, 1, nx, cl, mu_ref_for_knudsen(0.1, 0.5), 0.5, "periodic", 0.5)
    s.set_state(rho, u, T)
    U0 = s.U.sum(0)
    for _ in range(10):
        s.step()
    np.testing.assert_allclose(s.U.sum(0), U0, rtol=0, atol=1e-12 * np.abs(U0).max())


def test_uniform_state_stays_uniform_and_galilean():
    a, b = hermite_weights((3, 4))
    cl = MaxwellianClosure(a, b)
    for u0 in (0.0, 1.7):
        s = ReducedSolver(0, 1, 16, cl, math.inf, 0.5, "periodic", 0.5)
        s.set_state(np.full(16, 1.3), np.full(16, u0), np.full(16, 0.8))
        for _ in range(5):
            s.step()
        f = s.fields_array()
        np.testing.assert_allclose(f[:, :3], np.tile([1.3, u0, 0.8], (16, 1)), rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(s.W, np.tile(cl.equilibrium(), (16, 1)), atol=1e-12)


@pytest.mark.parametrize("steady", ["march", "newton"])
def test_maxwellian_closure_shock_is_rankine_hugoniot(steady):
    """The Maxwellian closure is Euler: a steady shock between the RH states with σ = q = 0, time-marched and by
    Newton. (The van Leer limiter: with MC this inviscid shock marches ~15000 steps to the tolerance, 4 minutes.)"""
    p = center(reduced_shock(rankine_hugoniot(2.0), closure=MaxwellianClosure(*hermite_weights((3,))),
                             dx=0.5, x_min=-8.0, x_max=8.0, tol=1e-4, flux="rusanov", limiter="vanleer",
                             steady=steady))
    s = p.states
    m = profile_metrics(p)
    assert m["converged"]
    np.testing.assert_allclose([p.rho[0], p.u[0], p.T[0]], [s.rho1, s.u1, s.T1], rtol=1e-6)
    np.testing.assert_allclose([p.rho[-1], p.u[-1], p.T[-1]], [s.rho2, s.u2, s.T2], rtol=1e-3)  # tol=1e-4 residual
    assert np.all(p.sigma == 0) and np.all(p.q == 0)


def test_reduced_solver_rejects_bad_input():
    cl = MaxwellianClosure(*hermite_weights((3,)))
    with pytest.raises(ValueError, match="cfl"):
        ReducedSolver(0, 1, 8, cl, 1.0, cfl=1.5)
    with pytest.raises(ValueError, match="unknown flux"):
        ReducedSolver(0, 1, 8, cl, 1.0, flux="roe")
    for args, kw, word in (((0, 1, 0, cl, 1.0), {}, "nx must be"), ((1, 0, 8, cl, 1.0), {}, "x_left < x_right"),
                           ((0, 1, 8, cl, 0.0), {}, "mu_ref must be > 0"), ((0, 1, 8, cl, 1.0), {"omega": 3.0}, "omega")):
        with pytest.raises(ValueError, match=word):
            ReducedSolver(*args, **kw)
    s = ReducedSolver(0, 1, 8, cl, 1.0)
    with pytest.raises(ValueError, match="T must be > 0"):
        s.set_state(np.ones(8), np.zeros(8), -np.ones(8))
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        s.set_state(np.ones(8), np.zeros(7), np.ones(8))
    with pytest.raises(ValueError, match=r"W must have shape \(8, 1\)"):
        s.set_state(np.ones(8), np.zeros(8), np.ones(8), W=np.zeros((8, 2)))
    with pytest.raises(ValueError, match="W is not finite at cell 3"):
        s.set_state(np.ones(8), np.zeros(8), np.ones(8), W=np.where(np.arange(8)[:, None] == 3, np.nan, 0.0))
    s.set_state(np.ones(8), np.zeros(8), np.ones(8))
    with pytest.raises(ValueError, match="exceeds the stable step"):
        s.step(10 * s.dt_max())


def test_ap_flux_is_rusanov_without_collisions():
    nx = 16
    x = (np.arange(nx) + 0.5) / nx
    cl = MaxwellianClosure(*hermite_weights((3,)), xi_max=5.0)
    out = []
    for flux in ("ap", "rusanov"):
        s = ReducedSolver(0, 1, nx, cl, math.inf, 0.5, "periodic", 0.5, flux=flux)
        s.set_state(1 + 0.3 * np.sin(2 * np.pi * x), 0.2 * np.cos(2 * np.pi * x), 1 + 0.2 * np.cos(4 * np.pi * x))
        for _ in range(3):
            s.step()
        out.append(s.U)
    np.testing.assert_array_equal(out[0], out[1])


def test_ap_flux_keeps_a_contact_in_the_collision_limit():
    """A stationary contact (u = 0, p = 1, ρ jumps) at ε = 1e-8: the HLLC part of the "ap" flux keeps it
    to the O(κ) Rusanov share; the Rusanov flux (dissipation speed ξ_max √T) smears it at once."""
    nx = 32
    x = (np.arange(nx) + 0.5) / nx
    rho = np.where(np.abs(x - 0.5) < 0.25, 1.0, 0.5)
    cl = MaxwellianClosure(*hermite_weights((3,)), xi_max=5.0)
    change = {}
    for flux in ("ap", "rusanov"):
        s = ReducedSolver(0, 1, nx, cl, mu_ref_for_knudsen(1e-8, 0.5), 0.5, "periodic", 0.5, flux=flux)
        s.set_state(rho, np.zeros(nx), 1.0 / rho)
        for _ in range(10):
            s.step()
        change[flux] = np.abs(s.fields_array()[:, 0] - rho).max()
    assert change["ap"] < 1e-4
    assert change["rusanov"] > 0.05


def test_ap_flux_euler_limit_matches_exact_riemann():
    """Sod's problem (γ = 5/3) at ε = 1e-6 with the Maxwellian closure: the "ap" flux is as accurate as
    the MUSCL–HLLC Euler solver (L1 error of ρ against the exact solution), Rusanov with ξ_max = 5 is not."""
    nx, t_end = 50, 0.15
    x = (np.arange(nx) + 0.5) / nx
    left = x < 0.5
    rho, p = np.where(left, 1.0, 0.125), np.where(left, 1.0, 0.1)
    prob = Problem(0.0, 1.0, rho, np.zeros(nx), p / rho, kn=1e-6, t_end=t_end, bc="reservoir")
    exact = riemann.cell_averages(riemann.solve(1.0, 0.0, 1.0, 0.125, 0.0, 0.1), np.linspace(0, 1, nx + 1), t_end, 0.5)
    cl = MaxwellianClosure(*hermite_weights((3,)), xi_max=5.0)
    err = {name: np.abs(f.rho - exact[0]).mean() for name, f in [
        ("ap", run_problem(prob, cl, flux="ap")), ("rusanov", run_problem(prob, cl, flux="rusanov")),
        ("euler", run_model("euler", prob))]}
    assert err["ap"] < 1.2 * err["euler"], err
    assert err["rusanov"] > 1.8 * err["ap"], err


def test_characteristic_outflow_ghost_passes_leaving_waves_and_holds_the_entering_one():
    """Right state (ρ, u, p) = (1, 0.5, 1), c = √(5/3) > u: the entropy and u + c waves leave, the u − c wave
    enters. A last cell that differs from the right state by a leaving wave is copied into the ghost cell;
    by an entering wave, the ghost holds the right state; both at once, the ghost holds the leaving part.
    With u > c everything leaves. The uniform right state is a fixed point of the solver."""
    cl = MaxwellianClosure(*hermite_weights((3,)))
    W_eq = cl.equilibrium()
    c = math.sqrt(5.0 / 3.0)

    def state(d_rho, d_u, d_p, base=(1.0, 0.5, 1.0)):
        rho = base[0] + d_rho
        return np.concatenate([[rho, base[1] + d_u, (base[0] * base[2] + d_p) / rho], W_eq])

    s = ReducedSolver(0, 1, 8, cl, 1.0, 0.5, "reservoir", 0.5, left=(1.0, 0.5, 1.0), right=(1.0, 0.5, 1.0),
                      outflow="characteristic")
    e = 1e-3
    entropy, plus, minus = (e, 0.0, 0.0), (e / c**2, e / c, e), (e / c**2, -e / c, e)  # (δρ, δu, δp), Z = ρc = c
    np.testing.assert_allclose(s._characteristic_ghost(state(*entropy)), state(*entropy), atol=1e-15)
    np.testing.assert_allclose(s._characteristic_ghost(state(*plus)), state(*plus), atol=1e-15)
    np.testing.assert_allclose(s._characteristic_ghost(state(*minus)), state(0, 0, 0), atol=1e-15)
    both = [a + b for a, b in zip(plus, minus)]
    np.testing.assert_allclose(s._characteristic_ghost(state(*both)), state(*plus), atol=1e-15)
    fast = ReducedSolver(0, 1, 8, cl, 1.0, 0.5, "reservoir", 0.5, left=(1.0, 2.0, 1.0), right=(1.0, 2.0, 1.0),
                         outflow="characteristic")
    last = state(*both, base=(1.0, 2.0, 1.0))
    np.testing.assert_allclose(fast._characteristic_ghost(last), last, atol=1e-15)
    s.set_state(np.ones(8), np.full(8, 0.5), np.ones(8))
    U0 = s.U.copy()
    for _ in range(3):
        s.step()
    np.testing.assert_allclose(s.U, U0, rtol=0, atol=1e-14)


def test_characteristic_outflow_reaches_the_same_steady_shock_in_fewer_steps():
    """The shipped MLC at Mach 5.5 on a coarse grid: the characteristic outflow converges in fewer steps
    than the reservoir's fixed ghost state, to the same profile (within the tolerance's effect)."""
    s = rankine_hugoniot(5.5)
    out = {o: reduced_shock(s, closure="pretrained:mlc_small_rollout", dx=0.5, cfl=0.9, xi_max=5.0, tol=1e-4,
                            x_min=-20.0, x_max=8.0, levels=2, outflow=o) for o in ("reservoir", "characteristic")}
    assert all(p.metrics["converged"] for p in out.values())
    assert out["characteristic"].metrics["cell_steps"] < 0.9 * out["reservoir"].metrics["cell_steps"]
    a, b = center(out["reservoir"]), center(out["characteristic"])
    assert abs(profile_metrics(a)["inv_density_thickness"] / profile_metrics(b)["inv_density_thickness"] - 1) < 0.01
    np.testing.assert_allclose([b.rho[-1], b.u[-1], b.T[-1]], [s.rho2, s.u2, s.T2], rtol=1e-3)


def test_unknown_outflow_is_rejected():
    with pytest.raises(ValueError, match="unknown outflow"):
        ReducedSolver(0, 1, 8, MaxwellianClosure(*hermite_weights((3,))), 1.0, outflow="open")

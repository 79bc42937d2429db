"""Navier–Stokes–Fourier: steady shocks against Becker's solution (Pr = 3/4), the FV solver
against the steady shock, second order, conservation, stiff viscous limits and input errors.

Units: R = 1, γ = 5/3; shock lengths in upstream mean free paths λ₁ (μ_ref = 1/C(ω) for
ρ₁ = T₁ = 1, i.e. ε = 1 with x in λ₁)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from kinclose.macro.becker import becker_profile, becker_x_constant_mu
from kinclose.macro.euler import run_problem as run_euler
from kinclose.macro.nsf import run_problem
from kinclose.macro.shock import euler_shock, lambda1_mu_ref, nsf_shock
from kinclose.physics import PhysicalStateError, ShockStates, conservative, rankine_hugoniot
from kinclose.problem import Problem
from kinclose.shockprofile import flux_mismatch, midpoint

EPS = np.finfo(float).eps


def _profile_errors(a, b) -> dict[str, float]:
    """Max errors of normalized ρ, u, T and of σ, q relative to max|σ|, max|q| of b."""
    e = {k: float(np.abs(a.normalized(k) - b.normalized(k)).max()) for k in ("rho", "u", "T")}
    for k in ("sigma", "q"):
        e[k] = float(np.abs(getattr(a, k) - getattr(b, k)).max() / np.abs(getattr(b, k)).max())
    return e


@pytest.mark.parametrize("omega", [0.5, 0.81])
@pytest.mark.parametrize("mach", [1.5, 3.0, 5.5])
def test_nsf_shock_matches_becker_for_prandtl_3_4(mach: float, omega: float) -> None:
    st = rankine_hugoniot(mach)
    prof = nsf_shock(st, collision="bgk", omega=omega, prandtl=0.75, nx=801, half_width=40.0)
    ref = becker_profile(st, prof.x, mu_ref=lambda1_mu_ref(st, omega), omega=omega)
    errs = _profile_errors(prof, ref)
    assert max(errs.values()) < 1e-4, errs


@pytest.mark.parametrize("mach", [1.5, 5.5])
def test_becker_quadrature_matches_closed_form_constant_mu(mach: float) -> None:
    st = rankine_hugoniot(mach)
    u = np.linspace(st.u2, st.u1, 41)[1:-1]
    x = becker_x_constant_mu(st, u, mu=0.7)
    b = becker_profile(st, x, mu_ref=0.7, omega=0.0)
    np.testing.assert_allclose(b.u, u, rtol=0.0, atol=1e-12 * st.u1)
    # Becker: total enthalpy constant, σu + q = 0, density mid-point at x = 0
    np.testing.assert_allclose(0.5 * b.u**2 + 2.5 * b.T, 0.5 * st.u1**2 + 2.5, rtol=1e-14, atol=0)
    np.testing.assert_allclose(b.sigma * b.u + b.q, 0.0, rtol=0, atol=1e-13)
    mid = becker_profile(st, np.array([0.0]), mu_ref=0.7, omega=0.0)
    np.testing.assert_allclose(mid.rho, 0.5 * (st.rho1 + st.rho2), rtol=1e-14, atol=0)


@pytest.mark.parametrize("collision", ["bgk", "shakhov"])
@pytest.mark.parametrize("mach", [1.2, 5.5])
def test_nsf_shock_conserves_fluxes_and_reaches_rh_states(mach: float, collision: str) -> None:
    st = rankine_hugoniot(mach)
    prof = nsf_shock(st, collision=collision, omega=0.5, half_width=200.0 if mach < 1.5 else 30.0)
    fm = flux_mismatch(prof)
    assert max(fm.values()) < 1e-13, fm
    np.testing.assert_allclose([prof.rho[0], prof.u[0], prof.T[0]], [st.rho1, st.u1, st.T1], rtol=1e-9, atol=0)
    np.testing.assert_allclose([prof.rho[-1], prof.u[-1], prof.T[-1]], [st.rho2, st.u2, st.T2], rtol=1e-9, atol=0)
    assert midpoint(prof.x, prof.normalized("rho")) == pytest.approx(0.0, abs=1e-12)
    assert prof.metrics["prandtl"] == pytest.approx({"bgk": 1.0, "shakhov": 2.0 / 3.0}[collision], rel=1e-15)
    # NSF shocks are monotone in ρ and u (up to the ~1e-11 relative noise of the rtol = 1e-12 ODE
    # solution near the upstream node); compression u' < 0 gives σ = −(4/3)μu' > 0, and T' > 0
    # gives q = −κT' < 0 (heat flows upstream); σ and q are differences of O(P), O(mH₁) flux
    # terms, so their noise is measured against those scales
    tol = 1e-10
    assert np.all(np.diff(prof.rho) >= -tol * (st.rho2 - st.rho1))
    assert np.all(np.diff(prof.u) <= tol * (st.u1 - st.u2))
    P = st.rho1 * st.u1**2 + st.rho1 * st.T1
    mH = st.rho1 * st.u1 * (0.5 * st.u1**2 + 2.5 * st.T1)
    assert prof.sigma.min() >= -tol * P and prof.q.max() <= tol * mH


def test_nsf_shock_mach_5_5_is_fast() -> None:
    st = rankine_hugoniot(5.5)
    nsf_shock(st, collision="bgk", omega=0.5)  # imports / first call
    t0 = time.perf_counter()
    nsf_shock(st, collision="bgk", omega=0.5)
    assert time.perf_counter() - t0 < 0.5


def _fv_shock_errors(mach: float, omega: float, nx: int, viscous: str) -> dict[str, float]:
    """Run the FV NSF solver from the ODE profile between reservoirs to t = 30 λ₁/√T₁ and
    compare with the ODE profile (x shifted to the FV density mid-point)."""
    st = rankine_hugoniot(mach)
    ref = nsf_shock(st, collision="bgk", omega=omega, nx=16001, half_width=40.0)
    L = 25.0
    x = -L + (np.arange(nx) + 0.5) * (2 * L / nx)
    init = {k: np.interp(x, ref.x, getattr(ref, k)) for k in ("rho", "u", "T")}
    # ε = 1 with x in λ₁ makes μ_ref = 1/C(ω), as in nsf_shock
    prob = Problem(-L, L, init["rho"], init["u"], init["T"], kn=1.0, t_end=30.0, omega=omega, bc="reservoir")
    f = run_problem(prob, viscous=viscous)
    xs = f.x - midpoint(f.x, (f.rho - st.rho1) / (st.rho2 - st.rho1))
    e = {}
    for k in ("rho", "u", "T"):
        e[k] = float(np.abs(getattr(f, k) - np.interp(xs, ref.x, getattr(ref, k))).max() / abs(getattr(st, k + "2") - getattr(st, k + "1")))
    for k in ("sigma", "q"):
        r = getattr(ref, k)
        e[k] = float(np.abs(getattr(f, k) - np.interp(xs, ref.x, r)).max() / np.abs(r).max())
    return e


@pytest.mark.parametrize("viscous", ["explicit", "rkl2"])
def test_fv_steady_shock_converges_to_ode_profile_second_order(viscous: str) -> None:
    errs = [_fv_shock_errors(2.0, 0.5, nx, viscous) for nx in (100, 200, 400)]
    for k in errs[0]:
        e = np.array([d[k] for d in errs])
        rates = np.log2(e[:-1] / e[1:])
        assert np.all(rates > 1.6), f"{viscous} {k}: errors {e}, rates {rates}"
        assert e[-1] < 3e-3, f"{viscous} {k}: error at nx=400 {e[-1]:.3e}"


def _smooth_problem(nx: int, kn: float, collision: str = "bgk") -> Problem:
    x = (np.arange(nx) + 0.5) / nx
    return Problem(
        0.0, 1.0, 1 + 0.2 * np.sin(2 * np.pi * x), 0.3 * np.cos(2 * np.pi * x), 1 + 0.2 * np.sin(4 * np.pi * x),
        kn=kn, t_end=0.2, collision=collision,
    )


@pytest.mark.parametrize("kn, viscous", [(1e-3, "explicit"), (0.1, "explicit"), (0.1, "rkl2"), (1.0, "rkl2")])
def test_second_order_self_convergence_smooth_periodic(kn: float, viscous: str) -> None:
    sols = {nx: run_problem(_smooth_problem(nx, kn), viscous=viscous) for nx in (64, 128, 256)}
    e = []
    for nx in (64, 128):
        a, b = sols[nx], sols[2 * nx]
        e.append(sum(np.abs(getattr(a, k) - getattr(b, k).reshape(nx, 2).mean(1)).mean() for k in ("rho", "u", "T")))
    rate = np.log2(e[0] / e[1])
    assert rate > 1.8, f"errors {e}, rate {rate}"


@pytest.mark.parametrize("kn, viscous", [(1e-3, "auto"), (1.0, "explicit"), (1.0, "rkl2"), (10.0, "auto")])
def test_conservation_to_round_off_periodic(kn: float, viscous: str) -> None:
    rng = np.random.default_rng(3)
    nx = 64
    x = (np.arange(nx) + 0.5) / nx
    rho = 1 + 0.5 * (x > 0.4) + 0.05 * rng.random(nx)
    u = 0.3 * np.sin(2 * np.pi * x)
    T = 1 + 0.5 * (x < 0.2) + 0.05 * rng.random(nx)
    prob = Problem(0.0, 1.0, rho, u, T, kn=kn, t_end=0.05 if viscous == "explicit" else 0.2, collision="shakhov")
    f = run_problem(prob, viscous=viscous)
    U0 = conservative(rho, u, T).sum(0) * prob.dx
    U1 = conservative(f.rho, f.u, f.T).sum(0) * prob.dx
    # each step applies a few (RK) or s (RKL2) stage combinations, each rounding at eps·|U|
    n_updates = f.stats["steps"] * 4 + 2 * f.stats["rkl2_stage_total"]
    np.testing.assert_allclose(U1, U0, rtol=4 * EPS * n_updates, atol=0.0)
    assert np.abs(U1 - U0).max() < 1e-11


def test_rkl2_strang_splitting_is_second_order_in_time() -> None:
    """At a fixed grid, RKL2 super-time-stepping with Strang splitting converges to the
    (time-resolved) explicit solution at second order in Δt. The first-order reconstruction keeps
    the spatial operator smooth, so no limiter switching blurs the temporal order."""
    prob = _smooth_problem(64, 1.0)
    ref = run_problem(prob, viscous="explicit", cfl=0.025, limiter="none")
    diffs = []
    for cfl in (0.4, 0.2, 0.1):
        b = run_problem(prob, viscous="rkl2", cfl=cfl, limiter="none")
        assert b.stats["rkl2_stage_max"] > 2
        diffs.append(max(np.abs(getattr(b, k) - getattr(ref, k)).max() for k in ("rho", "u", "T")))
    diffs = np.array(diffs)
    rates = np.log2(diffs[:-1] / diffs[1:])
    assert np.all(rates > 1.9), f"differences {diffs}, rates {rates}"


@pytest.mark.parametrize("kn", [0.1, 1.0])
def test_rkl2_splitting_error_is_below_spatial_error_and_cheaper(kn: float) -> None:
    """With the MC limiter the splitting error is not cleanly O(Δt²) (limiter switching), but it
    stays below twice the spatial error estimate ‖U_h − R U_{h/2}‖∞, at a fraction of the steps."""
    nx = 128
    a = run_problem(_smooth_problem(nx, kn), viscous="explicit")
    b = run_problem(_smooth_problem(nx, kn), viscous="rkl2")
    c = run_problem(_smooth_problem(2 * nx, kn), viscous="rkl2")
    split = max(np.abs(getattr(a, k) - getattr(b, k)).max() for k in ("rho", "u", "T"))
    space = max(np.abs(getattr(b, k) - getattr(c, k).reshape(nx, 2).mean(1)).max() for k in ("rho", "u", "T"))
    assert split < 2.0 * space, (split, space)
    assert b.stats["steps"] * 10 < a.stats["steps"]
    assert run_problem(_smooth_problem(nx, 1.0)).stats["rkl2_steps"] > 0  # auto picks RKL2 here
    assert run_problem(_smooth_problem(nx, 1e-3)).stats["rkl2_steps"] == 0  # ...and explicit here


def test_small_knudsen_tends_to_euler() -> None:
    prob = _smooth_problem(128, 1e-7)
    a = run_problem(prob)
    b = run_euler(prob)
    for k in ("rho", "u", "T"):
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), rtol=0, atol=1e-5, err_msg=k)
    assert np.abs(a.sigma).max() < 1e-5 and np.abs(a.q).max() < 1e-5


def test_stress_and_heat_flux_are_newton_fourier() -> None:
    """σ = −(4/3)μ∂x u and q = −κ∂x T with κ = (5/2)μ/Pr at t = 0 (t_end = 0)."""
    nx = 400
    x = (np.arange(nx) + 0.5) / nx
    u = 0.1 * np.sin(2 * np.pi * x)
    T = 1 + 0.1 * np.cos(2 * np.pi * x)
    for collision, pr in (("bgk", 1.0), ("shakhov", 2.0 / 3.0)):
        prob = Problem(0.0, 1.0, np.ones(nx), u, T, kn=0.05, t_end=0.0, omega=0.81, collision=collision)
        f = run_problem(prob)
        mu = prob.mu_ref * T**0.81
        np.testing.assert_allclose(f.sigma, -(4 / 3) * mu * 0.2 * np.pi * np.cos(2 * np.pi * x), rtol=0, atol=2e-4 * np.abs(f.sigma).max())
        np.testing.assert_allclose(f.q, -(2.5 / pr) * mu * (-0.2 * np.pi) * np.sin(2 * np.pi * x), rtol=0, atol=2e-4 * np.abs(f.q).max())
    f = run_problem(Problem(0.0, 1.0, np.ones(nx), u, T, kn=0.05, t_end=0.0), prandtl=0.5)
    assert f.stats["prandtl"] == 0.5


def test_bad_options_raise() -> None:
    prob = _smooth_problem(16, 0.1)
    with pytest.raises(ValueError, match=r"cfl=0\.8 is above the stable bound 0\.5"):
        run_problem(prob, cfl=0.8)
    with pytest.raises(TypeError, match="viscosity"):
        run_problem(prob, viscosity=1.0)
    with pytest.raises(ValueError, match="unknown viscous mode"):
        run_problem(prob, viscous="implicit")
    with pytest.raises(ValueError, match="prandtl must be a positive number"):
        run_problem(prob, prandtl=0.0)
    with pytest.raises(ValueError, match="rkl2_safety"):
        run_problem(prob, rkl2_safety=1.5)


def test_shock_solvers_reject_bad_states_and_options() -> None:
    st = rankine_hugoniot(2.0)
    with pytest.raises(ValueError, match="Mach > 1"):
        rankine_hugoniot(0.9)
    sub = ShockStates(0.8, st.rho1, st.u1, st.T1, st.rho2, st.u2, st.T2)
    for solver in (nsf_shock, euler_shock):
        with pytest.raises(ValueError, match="Mach > 1"):
            solver(sub, collision="bgk", omega=0.5)
        with pytest.raises(PhysicalStateError, match="T must be > 0"):
            solver(ShockStates(2.0, 1.0, st.u1, -1.0, st.rho2, st.u2, st.T2), collision="bgk", omega=0.5)
        with pytest.raises(ValueError, match="Rankine–Hugoniot"):
            solver(ShockStates(2.0, 1.0, st.u1, 1.0, st.rho2, st.u2, 1.1 * st.T2), collision="bgk", omega=0.5)
        with pytest.raises(ValueError, match="unknown collision"):
            solver(st, collision="maxwell", omega=0.5)
        with pytest.raises(TypeError, match="nxx"):
            solver(st, collision="bgk", omega=0.5, nxx=10)


def test_euler_shock_is_the_rh_jump() -> None:
    st = rankine_hugoniot(5.5)
    p = euler_shock(st, collision="bgk", omega=0.5, nx=100, half_width=10.0)
    assert midpoint(p.x, p.normalized("rho")) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_array_equal(p.rho, np.where(p.x < 0, st.rho1, st.rho2))
    np.testing.assert_array_equal(p.sigma, 0.0)
    assert max(flux_mismatch(p).values()) < 1e-14

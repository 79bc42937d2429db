"""Steady normal shock of the reduced moment model (``kinclose-shock model=mlc|hermmlc``).

Same setting and output contract as the kinetic shock (``kinclose.kinetic.shock``): x in upstream
mean free paths λ1 (μ_ref = 1/C(ω)), RH reservoirs at both ends with W = W_eq, tanh initial
profile, whole-cell re-centring, drift-corrected residual max|∂tρ| λ1/(ρ1 u1) < tol.
"""

from __future__ import annotations

import math
import time

import numpy as np

from kinclose.physics import ShockStates, mfp_coefficient
from kinclose.reduced.closure import ShapeClosure
from kinclose.reduced.run import load_closure
from kinclose.reduced.solver import ReducedSolver
from kinclose.shockprofile import ShockProfile, midpoint


def reduced_shock(states: ShockStates, *, collision: str = "bgk", omega: float = 0.5,
                  closure: ShapeClosure | str, model: str = "mlc", x_min: float = -30.0, x_max: float = 10.0,
                  dx: float = 0.125, cfl: float = 0.5, tol: float = 1e-5, max_steps: int = 200000,
                  check_every: int = 50, xi_max: float | None = None) -> ShockProfile:
    """March the reduced model to a steady shock; returns the profile with x in λ1 (not centred)."""
    if collision != "bgk":
        raise ValueError(f"the reduced model has the exact BGK source only; got collision={collision!r}")
    if not (x_min < 0.0 < x_max):
        raise ValueError(f"the shock domain must contain x = 0, got [{x_min}, {x_max}]")
    s = states
    cl = load_closure(closure, xi_max)
    nx = int(round((x_max - x_min) / dx))
    mu_ref = 1.0 / mfp_coefficient(omega)
    solver = ReducedSolver(x_min, x_max, nx, cl, mu_ref, omega, "reservoir", cfl,
                           left=(s.rho1, s.u1, s.T1), right=(s.rho2, s.u2, s.T2))
    x = solver.x
    w = 0.5 * (1.0 + np.tanh(x / 2.0))
    solver.set_state(s.rho1 + (s.rho2 - s.rho1) * w, s.u1 + (s.u2 - s.u1) * w, s.T1 + (s.T2 - s.T1) * w)
    t0 = time.perf_counter()
    residual, drift, shifts = math.inf, math.nan, 0

    def rho_of() -> np.ndarray:
        return solver.U[:, 0].copy()

    rho_prev = rho_of()
    x0_prev = midpoint(x, (rho_prev - s.rho1) / (s.rho2 - s.rho1))
    while solver.steps < max_steps:
        dts = 0.0
        for _ in range(check_every):
            dt = solver.dt_max()
            solver.step(dt)
            dts += dt
        rho = rho_of()
        x0 = midpoint(x, (rho - s.rho1) / (s.rho2 - s.rho1))
        if not math.isfinite(x0):
            raise RuntimeError(f"reduced shock left the domain at step {solver.steps}")
        disp = x0 - x0_prev
        residual = float(np.max(np.abs(rho - rho_prev + disp * np.gradient(rho_prev, x)))) / (dts * s.rho1 * s.u1)
        drift = disp / (dts * s.u1)
        shift = int(round(x0 / solver.dx))
        if shift != 0:
            _shift(solver, shift)
            shifts += 1
            rho_prev = rho_of()
            x0_prev = midpoint(x, (rho_prev - s.rho1) / (s.rho2 - s.rho1))
            continue
        rho_prev, x0_prev = rho, x0
        if residual < tol:
            break
    wall = time.perf_counter() - t0
    f = solver.fields()
    metrics = {"nx": nx, "dx": solver.dx, "cfl": cfl, "steps": solver.steps, "residual": residual, "tol": tol,
               "converged": bool(residual < tol), "recentre_shifts": shifts, "drift_speed": drift,
               "solve_wall_s": wall, "n_moments": cl.n_moments,
               "W_out_of_range_fraction": _out_of_range(cl, solver.W)}
    metrics.update(_eigen_diagnostics(cl, solver.U, solver.W))
    return ShockProfile(x.copy(), f[:, 0], f[:, 1], f[:, 2], f[:, 3], f[:, 4], states, model, metrics)


def _out_of_range(cl: ShapeClosure, W: np.ndarray) -> float | None:
    check = getattr(cl, "check_range", None)
    if check is None:
        return None
    res = check(W)
    return float(res["fraction"]) if isinstance(res, dict) and "fraction" in res else None


def _eigen_diagnostics(cl: ShapeClosure, U: np.ndarray, W: np.ndarray) -> dict:
    """Fraction of complex eigenvalues of the closed-flux Jacobian over the profile's cells and the
    largest characteristic speed |λ − u|/√T (closures that provide the diagnostic only)."""
    diag = getattr(cl, "flux_jacobian_eigenvalues", None)
    if diag is None:
        return {}
    d = diag(U, W)
    return {"complex_eigenvalue_fraction": float(d["fraction_complex"]),
            "states_with_complex_eigenvalues": float(d["fraction_states_complex"]),
            "max_characteristic_speed": float(d["max_speed"]),
            "fraction_speed_above_xi_max": float(d["fraction_above_xi_max"])}


def _shift(solver: ReducedSolver, shift: int) -> None:
    """Move the profile by ``shift`` whole cells towards x = 0, refilling from the reservoirs."""
    from kinclose.physics import conservative

    U, W = solver.U, solver.W
    if shift > 0:
        U[:-shift], W[:-shift] = U[shift:].copy(), W[shift:].copy()
        U[-shift:] = conservative(*solver.right)
        W[-shift:] = solver.W_eq
    else:
        k = -shift
        U[k:], W[k:] = U[:-k].copy(), W[:-k].copy()
        U[:k] = conservative(*solver.left)
        W[:k] = solver.W_eq


def mlc_shock(states: ShockStates, **kw) -> ShockProfile:
    return reduced_shock(states, model="mlc", **kw)


def hermmlc_shock(states: ShockStates, **kw) -> ShockProfile:
    return reduced_shock(states, model="hermmlc", **kw)

"""Finite-volume solver for the 1D Navier–Stokes–Fourier equations of a monatomic gas.

Solves (R = 1, γ = 5/3, p = ρT, E = ½ρu² + (3/2)ρT)
    ∂t ρ + ∂x(ρu) = 0,
    ∂t(ρu) + ∂x(ρu² + p + σ) = 0,
    ∂t E + ∂x((E + p + σ)u + q) = 0,
    σ = −(4/3) μ ∂x u,   q = −κ ∂x T,   μ = μ_ref T^ω,   κ = c_p μ / Pr = (5/2) μ / Pr,
with μ_ref from the Knudsen number of the :class:`~kinclose.problem.Problem` (VHS mean free path,
ε = λ_ref / L) and Pr from its collision model (BGK 1, Shakhov/Boltzmann 2/3) unless overridden.

Discretization: the MUSCL–HLLC operator of :mod:`kinclose.macro.euler` for the inviscid flux and
central differences for σ and q at the faces (face T, u = averages of the two cells), conservative
flux differences throughout, so Σ U_i dx is constant to round-off on periodic domains.

Time stepping (parabolic limit Δt_par = dx²/(2D), D = max((4/3)μ, κ/c_v)/ρ):
  * ``viscous="explicit"``: SSP-RK on the full operator with
    Δt = CFL / (a/dx + CFL_max/Δt_par) — efficient when Δt_par ≳ Δt_hyp (small ε);
  * ``viscous="rkl2"``: Strang splitting, RKL2 super-time-stepping (second order, s stages with
    s² ≈ 4Δt/Δt_par) for the viscous half steps around a hyperbolic SSP-RK step at Δt_hyp — cost
    grows like √(Δt_hyp/Δt_par) instead of linearly (large ε);
  * ``viscous="auto"`` (default): explicit unless the viscous limit would halve the time step.
"""

from __future__ import annotations

import math

import numpy as np

from kinclose.macro.euler import Viscous, integrate
from kinclose.physics import GAMMA, primitive
from kinclose.problem import Fields, Problem

C_P = 2.5  # R = 1, monatomic


def kappa_factor(prandtl: float) -> float:
    """κ/μ = c_p / Pr."""
    if not (isinstance(prandtl, (int, float)) and math.isfinite(prandtl) and prandtl > 0.0):
        raise ValueError(f"prandtl must be a positive number, got {prandtl!r}")
    return C_P / float(prandtl)


def run_problem(
    problem: Problem,
    *,
    cfl: float = 0.4,
    limiter: str = "mc",
    rk: int = 3,
    viscous: str = "auto",
    prandtl: float | None = None,
    rkl2_safety: float = 0.8,
    max_steps: int = 10_000_000,
) -> Fields:
    """Solve the NSF equations on ``problem`` until ``problem.t_end``.

    Parameters
    ----------
    problem : initial data (nx,) arrays, ε, ω, collision model, boundary condition.
    cfl : Courant number of the inviscid part (<= 1/2 for the MC and van Leer limiters,
        2/3 for minmod); a larger value raises ValueError.
    limiter, rk : reconstruction limiter and SSP Runge–Kutta order, as in the Euler solver.
    viscous : "auto", "explicit" or "rkl2" (see module docstring).
    prandtl : override of the Prandtl number (None: ``problem.prandtl``).
    rkl2_safety : fraction of the forward-Euler viscous limit used to choose the RKL2 stages.
    max_steps : RuntimeError when exceeded.

    Returns
    -------
    Fields : (nx,) ρ, u, T and σ, q at cell centres (σ, q = mean of the two face values),
        ``stats`` with steps, wall time, RKL2 stage counts, conservation drift (periodic).
    """
    pr = problem.prandtl if prandtl is None else prandtl
    visc = Viscous(
        mu_ref=problem.mu_ref, omega=float(problem.omega), kappa_factor=kappa_factor(pr), mode=viscous,
        rkl2_safety=float(rkl2_safety),
    )
    U0 = np.stack(
        [problem.rho, problem.rho * problem.u, 0.5 * problem.rho * problem.u**2 + 1.5 * problem.rho * problem.T], axis=1
    )
    U, stats, (S, Q) = integrate(
        U0, problem.dx, problem.t_end, periodic=problem.bc == "periodic", cfl=cfl, limiter=limiter, rk=rk,
        gamma=GAMMA, viscous=visc, max_steps=max_steps,
    )
    rho, u, T = primitive(U)
    sigma = 0.5 * (S[:-1] + S[1:])
    q = 0.5 * (Q[:-1] + Q[1:])
    stats.update({"model": "nsf", "prandtl": float(pr), "mu_ref": problem.mu_ref, "viscous": viscous})
    return Fields(problem.x, rho, u, T, sigma, q, float(problem.t_end), stats)
